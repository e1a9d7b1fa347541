//! Switchyard: an OpenAI- and Anthropic-compatible AI gateway.
//!
//! The request path reads top to bottom: `api` parses, `auth` identifies the caller, `router` picks
//! a deployment, `providers` speak the upstream's wire format, `telemetry` records what happened.
//! See DESIGN.md for the map and the invariants.

pub mod api;
pub mod auth;
pub mod cache;
pub mod calendar;
pub mod callbacks;
pub mod config;
pub mod guardrails;
pub mod money;
pub mod pipeline;
pub mod policy;
pub mod providers;
pub mod reload;
pub mod router;
pub mod schema;
pub mod server;
pub mod spend;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ui;
