//! Canonical request and response types: the OpenAI wire shape, typed where Switchyard needs to
//! read or change a field, with every other field kept in an `extra` map so it passes through
//! unchanged. This module depends on no other module of the crate.

mod chat;
pub(crate) mod open;
mod passthrough;
mod raw;

pub use chat::*;
pub use passthrough::*;
pub use raw::{ChatAnswer, RawCompletion};

/// Unknown fields, forwarded as they came (in key order: serde_json keeps maps sorted, and JSON
/// objects are unordered).
pub type Extra = serde_json::Map<String, serde_json::Value>;
