//! OpenAI's Responses API (`POST /v1/responses`), the surface new OpenAI SDK code uses.
//!
//! OpenAI and Azure OpenAI deployments get the request natively (the client's body with only
//! `model` rewritten; see [`crate::providers::Provider::responses`]); every other deployment
//! gets it as a chat request, and the answer back as a Response. Everything between the two
//! formats lives in this folder: `request.rs` (Responses request → chat request),
//! `response.rs` (chat answer → Response, usage both ways), `stream.rs` (chat chunks →
//! Responses events), `native.rs` (what the gateway reads from a native answer), `store.rs`
//! (the conversations `previous_response_id` continues) and `wire.rs` (the types). The
//! gateway's surface (`api/responses.rs`) only calls these.

pub mod native;
pub mod request;
pub mod response;
pub mod store;
pub mod stream;
pub mod wire;

#[cfg(test)]
mod tests;
