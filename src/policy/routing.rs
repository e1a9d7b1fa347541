//! Client-controlled routing: `fallbacks`, `num_retries` and `mock_testing_fallbacks` in a
//! request body steer the router, so they are checked here like any other permission.
//!
//! - Every group in `fallbacks` must be one the gateway serves (a 400 naming `fallbacks[i]`)
//!   and one the caller may use (a 403 naming it): a fallback must not be a way around the
//!   key's model list.
//! - `num_retries` above the operator's cap (`switchyard_routing.max_request_retries`) is
//!   lowered to the cap: a client cannot make the gateway call upstreams more often than the
//!   operator allows.
//! - `mock_testing_fallbacks` is allowed to every caller: the router simulates the failure
//!   without calling (or counting against) any deployment.

use super::access;
use crate::api::error::ApiError;
use crate::auth::Principal;
use crate::router::{RequestOptions, RouteError, Router};
use crate::store::EndUserRecord;

pub fn check(
    principal: &Principal,
    end_user: Option<&EndUserRecord>,
    router: &Router,
    options: &mut RequestOptions,
) -> Result<(), ApiError> {
    if let Some(fallbacks) = &options.fallbacks {
        for (i, group) in fallbacks.iter().enumerate() {
            if router.group(group).is_err() {
                return Err(RouteError::InvalidOptions {
                    param: format!("fallbacks[{i}]"),
                    message: format!("model `{group}` is not served by this gateway"),
                }
                .into());
            }
            access::check(principal, end_user, router, group).map_err(|denied| {
                ApiError::Forbidden(format!("`fallbacks[{i}]`: {}", denied.message()))
            })?;
        }
    }
    if let Some(requested) = options.num_retries {
        options.num_retries = Some(requested.min(router.max_request_retries()));
    }
    Ok(())
}
