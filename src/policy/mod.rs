//! The pre-call policy stage: what a caller may ask of the gateway before anything is routed.
//! Each concern is a file: model access (`access.rs`), client-controlled routing
//! (`routing.rs`), rate limits (`enforce.rs` decides which apply, the engine is `limits/`). Nothing here waits on a database: every check
//! reads in-memory state (or, scaled out, Redis counters).

pub mod access;
pub mod budget;
pub mod enforce;
pub mod limits;
mod redis_health;
mod routing;

use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::router::{RequestOptions, Router};
use crate::store::EndUserRecord;

/// Runs every pre-call check on an admitted request; the first refusal is the answer.
pub fn pre_call(
    principal: &Principal,
    end_user: Option<&EndUserRecord>,
    router: &Router,
    model: &str,
    options: &mut RequestOptions,
) -> Result<(), ApiError> {
    if let Some(end_user) = end_user.filter(|e| e.blocked) {
        return Err(ApiError::Forbidden(format!(
            "end user `{}` is blocked",
            end_user.user_id
        )));
    }
    access::check(principal, end_user, router, model).map_err(ApiError::ModelAccess)?;
    routing::check(principal, end_user, router, options)
}
