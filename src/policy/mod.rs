//! The pre-call policy stage: what a caller may ask of the gateway before anything is routed.
//! Today that is client-controlled routing (`routing.rs`); key access, rate limits, budgets and
//! guardrails join here (DESIGN.md), each in a file of its own. Nothing here waits on a
//! database: every check reads in-memory state.

mod routing;

use crate::auth::Principal;
use crate::router::{RequestOptions, RouteError, Router};

/// Runs every pre-call check on an admitted request; the first refusal is the answer.
pub fn pre_call(
    principal: &Principal,
    router: &Router,
    options: &mut RequestOptions,
) -> Result<(), RouteError> {
    routing::check(principal, router, options)
}
