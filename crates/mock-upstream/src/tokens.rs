//! Token and word counting for `usage`, and the split of the reply into stream pieces.
//!
//! The mock does not tokenize: a prompt token is "4 characters, rounded up", which is the usual
//! rule of thumb and, more importantly, deterministic and documented, so tests can predict it.
//! Request content is counted while it is parsed, without copying the strings.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// ceil(chars / 4), at least 1: an empty prompt is still a request.
pub fn prompt_tokens(chars: usize) -> u64 {
    estimate_tokens(chars).max(1)
}

/// ceil(chars / 4).
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Completion tokens of the reply: its whitespace-separated words.
pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The end of the stream piece that starts at `start`: one word plus the whitespace after it
/// (and, for the first piece, any whitespace before it), so the pieces concatenate to the text.
pub fn piece_end(text: &str, start: usize) -> usize {
    let mut seen_word = false;
    let mut in_trailing_space = false;
    for (offset, c) in text[start..].char_indices() {
        if c.is_whitespace() {
            in_trailing_space |= seen_word;
        } else if in_trailing_space {
            return start + offset;
        } else {
            seen_word = true;
        }
    }
    text.len()
}

/// The stream pieces of `text`, in order.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = piece_end(text, start);
        let piece = &text[start..end];
        start = end;
        Some(piece)
    })
}

/// The number of characters of text in a chat message's `content`, whatever its shape: a string,
/// an array of parts (`{"type":"text","text":...}` counts, images and audio do not), or `null`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct TextChars(pub usize);

impl<'de> Deserialize<'de> for TextChars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextCharsVisitor)
    }
}

struct TextCharsVisitor;

impl<'de> Visitor<'de> for TextCharsVisitor {
    type Value = TextChars;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextChars, E> {
        Ok(TextChars(v.chars().count()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<TextChars, E> {
        Ok(TextChars(0))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<TextChars, D::Error> {
        TextChars::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextChars, A::Error> {
        let mut total = 0;
        while let Some(TextChars(n)) = seq.next_element()? {
            total += n;
        }
        Ok(TextChars(total))
    }

    /// A content part: only its `text` field is text.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextChars, A::Error> {
        let mut total = 0;
        while let Some(IsTextKey(is_text)) = map.next_key()? {
            if is_text {
                total += map.next_value::<TextChars>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(TextChars(total))
    }
}

/// A map key, remembered only as "is it `text`?".
struct IsTextKey(bool);

impl<'de> Deserialize<'de> for IsTextKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = IsTextKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsTextKey, E> {
                Ok(IsTextKey(v == "text"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The prompt tokens of a legacy completions `prompt` (or an embeddings `input`): strings count
/// by the 4-characters rule, token ids count one each, arrays add up.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PromptTokens(pub u64);

impl<'de> Deserialize<'de> for PromptTokens {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PromptTokensVisitor)
    }
}

struct PromptTokensVisitor;

impl<'de> Visitor<'de> for PromptTokensVisitor {
    type Value = PromptTokens;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, an array of strings, or an array of token ids")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PromptTokens, E> {
        Ok(PromptTokens(estimate_tokens(v.chars().count())))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<PromptTokens, E> {
        Ok(PromptTokens(1))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<PromptTokens, E> {
        Ok(PromptTokens(1))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PromptTokens, A::Error> {
        let mut total = 0;
        while let Some(PromptTokens(n)) = seq.next_element()? {
            total += n;
        }
        Ok(PromptTokens(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_tokens_round_up_with_a_floor_of_one() {
        assert_eq!(prompt_tokens(0), 1);
        assert_eq!(prompt_tokens(1), 1);
        assert_eq!(prompt_tokens(4), 1);
        assert_eq!(prompt_tokens(5), 2);
        assert_eq!(prompt_tokens(400), 100);
    }

    #[test]
    fn words_are_whitespace_separated() {
        assert_eq!(count_words("Hello from the Switchyard mock upstream."), 6);
        assert_eq!(count_words("  a\tb\n c  "), 3);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in [
            "Hello from the Switchyard mock upstream.",
            "  leading and trailing  ",
            "one",
            "multi\n\nline\ttabs",
            "héllo wörld ✓ done",
            "   ",
            "",
        ] {
            let parts: Vec<&str> = pieces(text).collect();
            assert_eq!(parts.concat(), text, "{text:?}");
            if count_words(text) > 0 {
                assert_eq!(parts.len() as u64, count_words(text), "{text:?}");
            }
        }
        let parts: Vec<&str> = pieces("Hello from  the mock").collect();
        assert_eq!(parts, ["Hello ", "from  ", "the ", "mock"]);
    }

    #[test]
    fn text_chars_counts_strings_and_text_parts_only() {
        let count = |json: &str| serde_json::from_str::<TextChars>(json).expect("parses").0;
        assert_eq!(count(r#""héllo""#), 5);
        assert_eq!(count("null"), 0);
        assert_eq!(
            count(
                r#"[{"type":"text","text":"abc"},
                   {"type":"image_url","image_url":{"url":"http://x/y.png"}},
                   {"type":"text","text":"de"}]"#
            ),
            5
        );
    }

    #[test]
    fn prompt_tokens_handle_every_prompt_shape() {
        let count = |json: &str| {
            serde_json::from_str::<PromptTokens>(json)
                .expect("parses")
                .0
        };
        assert_eq!(count(r#""abcdefgh""#), 2);
        assert_eq!(count(r#"["abcd", "e"]"#), 2);
        assert_eq!(count("[1, 2, 3]"), 3);
        assert_eq!(count("[[1, 2], [3]]"), 3);
        assert!(serde_json::from_str::<PromptTokens>("{}").is_err());
    }
}
