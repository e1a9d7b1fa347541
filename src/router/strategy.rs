//! Choosing one deployment of a model group for one attempt. The candidates are narrowed in a
//! fixed order, each step documented in docs/routing.md:
//!
//! 1. not tried yet by this request, not cooling down, not failed by a health check;
//! 2. pre-call checks: the prompt fits the context window; under `rpm`/`tpm` this minute;
//! 3. the request's preferred region, when some candidate is in it;
//! 4. the lowest `order`;
//! 5. canaries take their fixed share of what is left;
//! 6. the routing strategy picks among the rest.
//!
//! Everything here is synchronous and allocates one small vector: it runs once per attempt and
//! must stay far below the 5 µs budget with 50 deployments (`cargo bench --bench routing`).

use std::sync::Arc;

use fastrand::Rng;

use super::cooldown::{Availability, CooldownStore};
use super::usage::{until_next_minute, UsageStore};
use super::{Deployment, ModelGroup};
use crate::config::RoutingStrategy;

/// The facts of one attempt that selection depends on.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    pub now_ms: u64,
    pub stream: bool,
    /// Preferred region (`litellm_params.region_name`).
    pub region: Option<&'a str>,
    /// Estimated prompt tokens (0 when unknown); used by pre-call checks and usage limits.
    pub prompt_tokens: u64,
    /// Deployments this request already tried in this group.
    pub exclude: &'a [Arc<Deployment>],
}

#[derive(Debug, Clone)]
pub struct Picked {
    pub deployment: Arc<Deployment>,
    /// Chosen for its canary share.
    pub canary: bool,
    /// This attempt is the half-open probe of a deployment coming out of a cooldown.
    pub probe: bool,
}

/// Why no deployment could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPick {
    /// Every candidate is cooling down (or being probed by another request).
    CoolingDown {
        /// When the first cooldown ends.
        until_ms: u64,
        /// Every cooldown was caused by a 429.
        rate_limited: bool,
        deployments: usize,
    },
    /// Every candidate is at its `rpm`/`tpm` limit for this minute.
    OverLimits { reset_in_ms: u64 },
    /// Every candidate has spent its `max_budget` for the current window.
    OverBudget { reset_in_ms: u64 },
    /// The prompt is larger than every candidate's context window.
    ContextWindow { prompt_tokens: u64, largest: u64 },
    /// Every deployment was already tried by this request.
    AllTried,
}

impl NoPick {
    /// A short name for the attempt trail and logs.
    pub fn name(&self) -> &'static str {
        match self {
            NoPick::CoolingDown { .. } => "cooling_down",
            NoPick::OverLimits { .. } => "over_rate_limits",
            NoPick::OverBudget { .. } => "over_budget",
            NoPick::ContextWindow { .. } => "context_window",
            NoPick::AllTried => "no_deployment",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Selector {
    pub strategy: RoutingStrategy,
    pub lowest_latency_buffer: f64,
    pub pre_call_checks: bool,
}

struct Candidate<'a> {
    deployment: &'a Arc<Deployment>,
    half_open: bool,
}

impl Selector {
    pub fn pick(
        &self,
        group: &ModelGroup,
        cooldowns: &dyn CooldownStore,
        usage: &dyn UsageStore,
        ctx: &PickContext<'_>,
        rng: &mut Rng,
    ) -> Result<Picked, NoPick> {
        if let [only] = group.deployments.as_slice() {
            return self.pick_only(only, cooldowns, usage, ctx);
        }
        let mut candidates: Vec<Candidate<'_>> = Vec::with_capacity(group.deployments.len());
        // Deployments that failed their last background health check sit out while others
        // can serve; when none can, they are tried anyway (a check can be wrong, a refusal
        // is certain to be).
        let mut earliest_until = u64::MAX;
        let mut all_rate_limited = true;
        let mut unavailable = 0;
        for deployment in &group.deployments {
            if ctx.exclude.iter().any(|d| Arc::ptr_eq(d, deployment)) {
                continue;
            }
            let available = |half_open| Candidate {
                deployment,
                half_open,
            };
            match cooldowns.availability(&deployment.id, ctx.now_ms) {
                Availability::Available => candidates.push(available(false)),
                Availability::HalfOpen => candidates.push(available(true)),
                Availability::Probing => {
                    unavailable += 1;
                    all_rate_limited = false;
                    // The probe gives its verdict within the attempt's timeout; a second is
                    // an honest "try again" hint.
                    earliest_until = earliest_until.min(ctx.now_ms + 1_000);
                }
                Availability::CoolingDown {
                    until_ms,
                    rate_limited,
                } => {
                    unavailable += 1;
                    all_rate_limited &= rate_limited;
                    earliest_until = earliest_until.min(until_ms);
                }
            }
        }
        if candidates
            .iter()
            .any(|c| !c.deployment.stats.failed_health_check())
        {
            candidates.retain(|c| !c.deployment.stats.failed_health_check());
        }
        if candidates.is_empty() {
            return Err(if unavailable == 0 {
                NoPick::AllTried
            } else {
                NoPick::CoolingDown {
                    until_ms: if earliest_until == u64::MAX {
                        ctx.now_ms + 1_000
                    } else {
                        earliest_until
                    },
                    rate_limited: all_rate_limited,
                    deployments: unavailable,
                }
            });
        }

        if self.pre_call_checks && ctx.prompt_tokens > 0 {
            let fits = |d: &Deployment| fits(d, ctx);
            if !candidates.iter().any(|c| fits(c.deployment)) {
                return Err(NoPick::ContextWindow {
                    prompt_tokens: ctx.prompt_tokens,
                    largest: candidates
                        .iter()
                        .filter_map(|c| c.deployment.max_input_tokens)
                        .max()
                        .unwrap_or(0),
                });
            }
            candidates.retain(|c| fits(c.deployment));
        }
        if self.checks_limits() {
            candidates.retain(|c| under_limits(c.deployment, usage, ctx));
            if candidates.is_empty() {
                return Err(NoPick::OverLimits {
                    reset_in_ms: until_next_minute(ctx.now_ms),
                });
            }
        }
        if candidates.iter().any(|c| c.deployment.budget.is_some()) {
            let reset_in_ms = candidates
                .iter()
                .filter_map(|c| budget_reset_in(c.deployment, ctx.now_ms))
                .min();
            candidates.retain(|c| budget_reset_in(c.deployment, ctx.now_ms).is_none());
            if candidates.is_empty() {
                return Err(NoPick::OverBudget {
                    reset_in_ms: reset_in_ms.unwrap_or(1_000),
                });
            }
        }
        if let Some(region) = ctx.region {
            if candidates
                .iter()
                .any(|c| c.deployment.region.as_deref() == Some(region))
            {
                candidates.retain(|c| c.deployment.region.as_deref() == Some(region));
            }
        }

        loop {
            let min_order = candidates
                .iter()
                .map(|c| c.deployment.order)
                .min()
                .unwrap_or(u32::MAX);
            let (index, canary) = self.choose(&candidates, min_order, ctx, usage, rng);
            let chosen = &candidates[index];
            if chosen.half_open && !cooldowns.try_claim_probe(&chosen.deployment.id, ctx.now_ms) {
                // Another request took the probe since we looked: choose again without it.
                candidates.swap_remove(index);
                if candidates.is_empty() {
                    return Err(NoPick::CoolingDown {
                        until_ms: ctx.now_ms + 1_000,
                        rate_limited: false,
                        deployments: group.deployments.len(),
                    });
                }
                continue;
            }
            return Ok(Picked {
                deployment: chosen.deployment.clone(),
                canary,
                probe: chosen.half_open,
            });
        }
    }

    /// The same steps for a group of one deployment, without the candidate list: the common
    /// case of a model served by one deployment takes no allocation.
    fn pick_only(
        &self,
        only: &Arc<Deployment>,
        cooldowns: &dyn CooldownStore,
        usage: &dyn UsageStore,
        ctx: &PickContext<'_>,
    ) -> Result<Picked, NoPick> {
        if ctx.exclude.iter().any(|d| Arc::ptr_eq(d, only)) {
            return Err(NoPick::AllTried);
        }
        let probe = match cooldowns.availability(&only.id, ctx.now_ms) {
            Availability::Available => false,
            Availability::HalfOpen => true,
            Availability::Probing => {
                return Err(NoPick::CoolingDown {
                    until_ms: ctx.now_ms + 1_000,
                    rate_limited: false,
                    deployments: 1,
                })
            }
            Availability::CoolingDown {
                until_ms,
                rate_limited,
            } => {
                return Err(NoPick::CoolingDown {
                    until_ms,
                    rate_limited,
                    deployments: 1,
                })
            }
        };
        if self.pre_call_checks && ctx.prompt_tokens > 0 && !fits(only, ctx) {
            return Err(NoPick::ContextWindow {
                prompt_tokens: ctx.prompt_tokens,
                largest: only.max_input_tokens.unwrap_or(0),
            });
        }
        if self.checks_limits() && !under_limits(only, usage, ctx) {
            return Err(NoPick::OverLimits {
                reset_in_ms: until_next_minute(ctx.now_ms),
            });
        }
        if let Some(reset_in_ms) = budget_reset_in(only, ctx.now_ms) {
            return Err(NoPick::OverBudget { reset_in_ms });
        }
        if probe && !cooldowns.try_claim_probe(&only.id, ctx.now_ms) {
            return Err(NoPick::CoolingDown {
                until_ms: ctx.now_ms + 1_000,
                rate_limited: false,
                deployments: 1,
            });
        }
        Ok(Picked {
            deployment: only.clone(),
            canary: only.canary_share.is_some(),
            probe,
        })
    }

    /// `rpm`/`tpm` are limits (not only weights) under usage-based-routing or pre-call checks.
    fn checks_limits(&self) -> bool {
        self.pre_call_checks || self.strategy == RoutingStrategy::UsageBased
    }

    /// Steps 4-6: order, canary share, strategy. Returns the index into `candidates`.
    fn choose(
        &self,
        candidates: &[Candidate<'_>],
        min_order: u32,
        ctx: &PickContext<'_>,
        usage: &dyn UsageStore,
        rng: &mut Rng,
    ) -> (usize, bool) {
        let in_tier = |c: &Candidate<'_>| c.deployment.order == min_order;
        // A canary takes its share of the group's traffic, drawn first; what is left goes to
        // the strategy among the regular deployments. Without regular deployments left (all
        // cooling down), canaries take everything.
        let mut draw = None;
        let mut regular = 0;
        for (i, c) in candidates.iter().enumerate() {
            if !in_tier(c) {
                continue;
            }
            match c.deployment.canary_share {
                Some(share) => {
                    let point = *draw.get_or_insert_with(|| rng.f64());
                    if point < share {
                        return (i, true);
                    }
                    draw = Some(point - share);
                }
                None => regular += 1,
            }
        }
        let eligible =
            |c: &Candidate<'_>| in_tier(c) && (regular == 0 || c.deployment.canary_share.is_none());
        let index = match self.strategy {
            RoutingStrategy::SimpleShuffle => weighted(candidates, eligible, rng),
            RoutingStrategy::LeastBusy => lowest(candidates, eligible, rng, |d| {
                f64::from(d.stats.in_flight())
            }),
            RoutingStrategy::LatencyBased => {
                let latency = |d: &Deployment| {
                    let measured = if ctx.stream {
                        d.stats.ttft().or_else(|| d.stats.latency())
                    } else {
                        d.stats.latency()
                    };
                    // Unmeasured deployments count as fastest, so each gets tried and measured.
                    measured.map_or(0.0, |l| l.as_secs_f64())
                };
                within_buffer(
                    candidates,
                    eligible,
                    rng,
                    latency,
                    self.lowest_latency_buffer,
                )
            }
            RoutingStrategy::UsageBased => lowest(candidates, eligible, rng, |d| {
                usage.current(&d.id, ctx.now_ms).tokens as f64
            }),
            RoutingStrategy::CostBased => lowest(candidates, eligible, rng, |d| d.cost_per_token),
        };
        let canary = regular == 0 && candidates[index].deployment.canary_share.is_some();
        (index, canary)
    }
}

/// The prompt fits the deployment's context window (or it declares none).
fn fits(deployment: &Deployment, ctx: &PickContext<'_>) -> bool {
    deployment
        .max_input_tokens
        .is_none_or(|max| ctx.prompt_tokens <= max)
}

/// The deployment has room this minute for one more request of the prompt's size.
/// `Some(ms until its window ends)` when the deployment has spent its budget.
fn budget_reset_in(deployment: &Deployment, now_ms: u64) -> Option<u64> {
    let budget = deployment.budget?;
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let (start, end) = budget.window(now);
    (deployment.stats.budget.spent(start) >= budget.max)
        .then(|| u64::try_from(end.saturating_sub(now)).unwrap_or(0).max(1))
}

fn under_limits(deployment: &Deployment, usage: &dyn UsageStore, ctx: &PickContext<'_>) -> bool {
    if deployment.rpm.is_none() && deployment.tpm.is_none() {
        return true;
    }
    let used = usage.current(&deployment.id, ctx.now_ms);
    deployment.rpm.is_none_or(|rpm| used.requests < rpm)
        && deployment
            .tpm
            .is_none_or(|tpm| used.tokens + ctx.prompt_tokens <= tpm)
}

/// Weighted random choice by each deployment's shuffle weight; equal chances when all are 0.
fn weighted(
    candidates: &[Candidate<'_>],
    eligible: impl Fn(&Candidate<'_>) -> bool,
    rng: &mut Rng,
) -> usize {
    let total: f64 = candidates
        .iter()
        .filter(|c| eligible(c))
        .map(|c| c.deployment.shuffle_weight)
        .sum();
    if total > 0.0 {
        let mut point = rng.f64() * total;
        let mut last = 0;
        for (i, c) in candidates.iter().enumerate() {
            if !eligible(c) || c.deployment.shuffle_weight <= 0.0 {
                continue;
            }
            if point < c.deployment.shuffle_weight {
                return i;
            }
            point -= c.deployment.shuffle_weight;
            last = i;
        }
        return last;
    }
    uniform(candidates, eligible, rng)
}

fn uniform(
    candidates: &[Candidate<'_>],
    eligible: impl Fn(&Candidate<'_>) -> bool,
    rng: &mut Rng,
) -> usize {
    let count = candidates.iter().filter(|c| eligible(c)).count();
    let nth = rng.usize(..count.max(1));
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| eligible(c))
        .nth(nth)
        .map_or(0, |(i, _)| i)
}

/// The candidate with the lowest `score`, ties broken at random (reservoir sampling, so no
/// allocation).
fn lowest(
    candidates: &[Candidate<'_>],
    eligible: impl Fn(&Candidate<'_>) -> bool,
    rng: &mut Rng,
    score: impl Fn(&Deployment) -> f64,
) -> usize {
    within_buffer(candidates, eligible, rng, score, 0.0)
}

/// A random candidate among those scoring at most `lowest * (1 + buffer)`.
fn within_buffer(
    candidates: &[Candidate<'_>],
    eligible: impl Fn(&Candidate<'_>) -> bool,
    rng: &mut Rng,
    score: impl Fn(&Deployment) -> f64,
    buffer: f64,
) -> usize {
    let mut best = f64::INFINITY;
    let mut any = None;
    for (i, c) in candidates.iter().enumerate() {
        if eligible(c) {
            best = best.min(score(c.deployment));
            any.get_or_insert(i);
        }
    }
    let Some(first) = any else {
        return 0;
    };
    if !best.is_finite() {
        return uniform(candidates, eligible, rng);
    }
    let ceiling = best + best.abs() * buffer;
    let mut seen = 0u32;
    let mut chosen = first;
    for (i, c) in candidates.iter().enumerate() {
        if eligible(c) && score(c.deployment) <= ceiling {
            seen += 1;
            if rng.u32(..seen) == 0 {
                chosen = i;
            }
        }
    }
    chosen
}
