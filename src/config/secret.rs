//! A string that must never be printed: provider keys and the master key.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The raw value, for the one place that needs it (an outgoing header, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A hint safe to show an operator: the first 3 characters and the length, never more.
    pub fn masked(&self) -> String {
        let prefix: String = self.0.chars().take(3).collect();
        if self.0.chars().count() <= 8 {
            "****".to_owned()
        } else {
            format!("{prefix}**** ({} chars)", self.0.chars().count())
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("sk-very-secret-value".into());
        assert!(!format!("{s:?}").contains("secret-value"));
        assert!(!format!("{s}").contains("secret-value"));
        assert_eq!(Secret::new("short".into()).masked(), "****");
    }
}
