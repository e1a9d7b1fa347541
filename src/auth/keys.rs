//! Virtual key material: generation, hashing, the printable abbreviation. A key is shown once,
//! when it is made; the gateway keeps only its SHA-256 (LiteLLM's `hash_token`, so a LiteLLM
//! database's `token` column means the same thing) and `sk-...abcd`.

use ring::rand::{SecureRandom, SystemRandom};

/// Letters and digits: keys stay copy-paste and URL safe.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// 32 characters of 62: about 190 bits (the issue asks for at least 128).
const KEY_CHARS: usize = 32;

/// A new key: `sk-` and 32 random characters from the system's CSPRNG.
pub fn generate() -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut key = String::with_capacity(3 + KEY_CHARS);
    key.push_str("sk-");
    while key.len() < 3 + KEY_CHARS {
        let mut bytes = [0u8; 64];
        rng.fill(&mut bytes)?;
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        for byte in bytes {
            if byte < 248 && key.len() < 3 + KEY_CHARS {
                key.push(ALPHABET[(byte % 62) as usize] as char);
            }
        }
    }
    Ok(key)
}

/// A key's stored form on the stack: what authentication looks a presented key up by, with no
/// allocation on the request path.
#[derive(Clone)]
pub struct Token([u8; 64]);

impl Token {
    pub fn as_str(&self) -> &str {
        // Only hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The stored form of a key: SHA-256, lowercase hex.
pub fn token(key: &str) -> Token {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.as_ref()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    Token(hex)
}

/// [`token`], owned.
pub fn hash(key: &str) -> String {
    token(key).as_str().to_owned()
}

/// Whether `text` is already a stored hash (management routes accept either form, as LiteLLM's).
pub fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key's stored form whichever form was given.
pub fn token_of(key_or_hash: &str) -> String {
    if is_hash(key_or_hash) {
        key_or_hash.to_owned()
    } else {
        hash(key_or_hash)
    }
}

/// `sk-...abcd`: enough to recognise a key, never enough to use it.
pub fn abbreviate(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// At most the last four characters, for messages about a presented key.
pub fn last_four(key: &str) -> String {
    let count = key.chars().count();
    if count <= 8 {
        return "****".into();
    }
    key.chars().skip(count - 4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_long_and_hash_like_litellm() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-") && a.len() == 35, "{a}");
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
        // hashlib.sha256(b"sk-1234").hexdigest(), as LiteLLM's hash_token computes it.
        assert_eq!(
            hash("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert!(is_hash(&hash("sk-1234")));
        assert_eq!(token_of(&hash("x")), hash("x"));
        assert_eq!(token_of("x"), hash("x"));
        assert_eq!(abbreviate("sk-abcdefgh1234"), "sk-...1234");
        assert_eq!(last_four("sk-abcdefgh1234"), "1234");
        assert_eq!(last_four("short"), "****");
    }
}
