//! `guardrail: secrets` (LiteLLM's enterprise `hide_secrets`, built in): API keys by their
//! well-known prefixes (`sk-…`, AWS `AKIA…`, GitHub `ghp_…`, Slack `xox…`, Google `AIza…`),
//! JSON Web Tokens and PEM private-key blocks. Prefix-anchored, so a scan is one `memchr`-style
//! walk over the bytes and a look at the few positions where a prefix starts.
//!
//! What is found is redacted (or blocks the request); the value itself is never logged,
//! counted or put into an error: only its kind is.

use super::pii::{ends_clean, prev_is_word};
use super::{Action, Entity, Guardrail, Hit, Label};

/// The longest secret a stream holds back for. A private-key block is longer; in a stream it is
/// caught by its `-----BEGIN … PRIVATE KEY-----` line (docs/guardrails.md).
pub const MAX_SECRET_BYTES: usize = 512;

pub struct Secrets {
    pub action: Action,
    /// Per kind, over `action`.
    pub per_entity: Vec<(Entity, Action)>,
}

impl Guardrail for Secrets {
    fn scan(&self, text: &str, hits: &mut Vec<Hit>) {
        let mut found = Vec::new();
        find(text, &mut found);
        for (start, end, entity) in found {
            let action = self
                .per_entity
                .iter()
                .find(|(e, _)| *e == entity)
                .map_or(self.action, |(_, a)| *a);
            hits.push(Hit {
                start,
                end,
                label: Label::Entity(entity),
                action,
            });
        }
    }

    fn max_match_bytes(&self) -> usize {
        MAX_SECRET_BYTES
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// How many bytes from `from` are in `class` (at most `max`).
fn run(bytes: &[u8], from: usize, max: usize, class: fn(u8) -> bool) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .take(max)
        .take_while(|b| class(**b))
        .count()
}

/// Every secret in `text`, in order, not overlapping.
pub fn find(text: &str, out: &mut Vec<(usize, usize, Entity)>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Every prefix starts with one of these bytes: skip the rest fast.
        if !matches!(bytes[i], b's' | b'A' | b'g' | b'x' | b'e' | b'-') {
            i += 1;
            continue;
        }
        let found = if bytes[i] == b'-' {
            private_key(bytes, i)
        } else if prev_is_word(bytes, i) {
            None
        } else {
            token(bytes, i)
        };
        match found {
            Some((end, entity)) => {
                out.push((i, end, entity));
                i = end;
            }
            None => i += 1,
        }
    }
}

fn token(bytes: &[u8], i: usize) -> Option<(usize, Entity)> {
    let rest = &bytes[i..];
    // (prefix, kind, the least and most characters after it, the class they are in)
    let (entity, body_start, min, max, class): (Entity, usize, usize, usize, fn(u8) -> bool) =
        if rest.starts_with(b"sk-") {
            (Entity::ApiKey, 3, 20, 256, is_token)
        } else if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") {
            (Entity::AwsAccessKey, 4, 16, 16, |b| {
                b.is_ascii_uppercase() || b.is_ascii_digit()
            })
        } else if rest.starts_with(b"github_pat_") {
            (Entity::GithubToken, 11, 22, 255, is_token)
        } else if rest.len() > 4
            && rest.starts_with(b"gh")
            && matches!(rest[2], b'p' | b'o' | b'u' | b's' | b'r')
            && rest[3] == b'_'
        {
            (Entity::GithubToken, 4, 36, 255, |b| {
                b.is_ascii_alphanumeric()
            })
        } else if rest.len() > 5
            && rest.starts_with(b"xox")
            && matches!(rest[3], b'a' | b'b' | b'p' | b'r' | b's')
            && rest[4] == b'-'
        {
            (Entity::SlackToken, 5, 10, 255, is_token)
        } else if rest.starts_with(b"AIza") {
            (Entity::GoogleApiKey, 4, 35, 35, is_token)
        } else if rest.starts_with(b"eyJ") {
            return jwt(bytes, i).map(|end| (end, Entity::Jwt));
        } else {
            return None;
        };
    let body = run(bytes, i + body_start, max + 1, class);
    let end = i + body_start + body;
    (body >= min && body <= max && ends_clean(bytes, end)).then_some((end, entity))
}

/// `eyJ…` `.` `eyJ…` `.` signature: the header and payload are base64url JSON objects.
fn jwt(bytes: &[u8], i: usize) -> Option<usize> {
    let header = run(bytes, i, 2048, is_base64url);
    let payload_at = i + header;
    if header < 10 || bytes.get(payload_at) != Some(&b'.') {
        return None;
    }
    if !bytes[payload_at + 1..].starts_with(b"eyJ") {
        return None;
    }
    let payload = run(bytes, payload_at + 1, 8192, is_base64url);
    let signature_at = payload_at + 1 + payload;
    if bytes.get(signature_at) != Some(&b'.') {
        return None;
    }
    let signature = run(bytes, signature_at + 1, 1024, is_base64url);
    let end = signature_at + 1 + signature;
    (signature >= 16 && ends_clean(bytes, end)).then_some(end)
}

/// `-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE KEY-----` through its `-----END … -----`
/// line, or to the end of the text when the block is cut off (the key is still a secret).
fn private_key(bytes: &[u8], i: usize) -> Option<(usize, Entity)> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !bytes[i..].starts_with(BEGIN) {
        return None;
    }
    let label_at = i + BEGIN.len();
    let label = run(bytes, label_at, 40, |b| b.is_ascii_uppercase() || b == b' ');
    let label_end = label_at + label;
    if !bytes[label_at..label_end].ends_with(b"PRIVATE KEY")
        || !bytes[label_end..].starts_with(b"-----")
    {
        return None;
    }
    let body_at = label_end + 5;
    const END: &[u8] = b"-----END ";
    let end = match memchr::memmem::find(&bytes[body_at..], END) {
        Some(at) => {
            let after = body_at + at + END.len();
            let label = run(bytes, after, 40, |b| b.is_ascii_uppercase() || b == b' ');
            let close = after + label;
            if bytes[close..].starts_with(b"-----") {
                close + 5
            } else {
                close
            }
        }
        None => bytes.len(),
    };
    Some((end, Entity::PrivateKey))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(text: &str) -> Vec<(Entity, &str)> {
        let mut out = Vec::new();
        find(text, &mut out);
        out.into_iter().map(|(s, e, k)| (k, &text[s..e])).collect()
    }

    #[test]
    fn api_keys_by_prefix() {
        let openai = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        let aws = "AKIAIOSFODNN7EXAMPLE";
        let github = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        let slack = "xoxb-1234567890-abcdefghij";
        let google = "AIzaSyA-1234567890abcdefghijklmnopqrstu";
        let text = format!("keys: {openai}, {aws} {github}\n{slack} ({google})");
        assert_eq!(
            secrets(&text),
            vec![
                (Entity::ApiKey, openai),
                (Entity::AwsAccessKey, aws),
                (Entity::GithubToken, github),
                (Entity::SlackToken, slack),
                (Entity::GoogleApiKey, google),
            ]
        );
    }

    #[test]
    fn look_alikes_are_not_secrets() {
        for text in [
            "sk-short",
            "task-list-items-are-many-and-long-enough",
            "risk-assessment-for-the-whole-quarter-is-done",
            "AKIA is a prefix",
            "AKIAIOSFODNN7EXAMPLEX",
            "ghp_tooShort",
            "eyJhbGciOi is half a token",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        ] {
            assert!(secrets(text).is_empty(), "{text}: {:?}", secrets(text));
        }
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(secrets(&format!("Bearer {jwt}")), vec![(Entity::Jwt, jwt)]);
    }

    #[test]
    fn private_key_blocks() {
        let block =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            secrets(&format!("here:\n{block}\nthanks")),
            vec![(Entity::PrivateKey, block)]
        );
        // Cut off: everything after the header is the key.
        let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg";
        assert_eq!(secrets(cut), vec![(Entity::PrivateKey, cut)]);
    }

    #[test]
    fn hostile_text() {
        assert!(secrets(&"-".repeat(100_000)).is_empty());
        assert!(secrets(&"eyJ.".repeat(20_000)).is_empty());
        let long = format!("sk-{}", "a".repeat(10_000));
        assert!(secrets(&long).is_empty());
        assert!(secrets("ﬁsk-AbCdEfGhIjKlMnOpQrStUvWx").is_empty());
    }
}
