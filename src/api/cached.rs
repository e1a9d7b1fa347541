//! Answers from the response cache (pipeline stage 5): a hit is rendered here, as a whole
//! JSON body or, for a stream request, replayed as an SSE stream; a miss is marked. Either
//! way the request still reports its finished event (a hit with `cache_hit` and cost 0).

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use super::{served_headers, sse, Reply};
use crate::cache::{Hit, Lookup, Pending};
use crate::money::{Cost, CostSource, Nanos};
use crate::pipeline::RequestContext;
use crate::providers::anthropic::response::usage_to_openai;
use crate::providers::anthropic::wire::MessageResponse;
use crate::router::Deployment;
use crate::schema::{ChatCompletion, PassthroughResponse, Usage};

pub const CACHE_HEADER: &str = "x-switchyard-cache";
pub const LITELLM_CACHE_KEY_HEADER: &str = "x-litellm-cache-key";

/// Marks a response as a miss that went upstream (`x-switchyard-cache: miss`).
pub(crate) fn mark_miss(response: &mut Response) {
    const CACHE: HeaderName = HeaderName::from_static(CACHE_HEADER);
    response
        .headers_mut()
        .insert(CACHE, HeaderValue::from_static("miss"));
}

/// What the cache said, for a handler.
pub(crate) enum Outcome {
    /// A hit: answer with this.
    Answered(Reply),
    /// Go upstream; with a pending miss, hand it the answer.
    Upstream(Option<Pending>),
}
use Outcome::{Answered, Upstream};

pub(crate) fn chat(
    ctx: &mut RequestContext,
    lookup: Lookup,
    stream: bool,
    include_usage: bool,
) -> Outcome {
    let hit = match lookup {
        Lookup::Skip => return Upstream(None),
        Lookup::Miss(pending) => return Upstream(Some(pending)),
        Lookup::Hit(hit) => hit,
    };
    if stream {
        let Ok(answer) = serde_json::from_slice::<ChatCompletion>(&hit.entry.body) else {
            return Upstream(None);
        };
        let usage = answer.usage.clone();
        let chunks = crate::cache::stream::replay(answer);
        let chunks = futures_util::stream::iter(chunks.into_iter().map(Ok));
        mark_hit(ctx, &hit, usage);
        let mut reply = sse::chat_stream(Box::pin(chunks), include_usage, None, None);
        hit_headers(ctx, &mut reply.response, &hit);
        return Answered(Reply::Stream(reply));
    }
    let usage = hit.entry.usage(|body| {
        crate::schema::RawCompletion::parse(body.clone())
            .ok()
            .and_then(|raw| raw.usage)
    });
    Answered(whole(ctx, hit, usage))
}

/// A `/v1/messages` hit: the stored `message` JSON as it is, or, for a stream request, replayed
/// as Anthropic's events (see `cache/message_stream.rs`).
pub(crate) fn messages(ctx: &mut RequestContext, lookup: Lookup, stream: bool) -> Outcome {
    let hit = match lookup {
        Lookup::Skip => return Upstream(None),
        Lookup::Miss(pending) => return Upstream(Some(pending)),
        Lookup::Hit(hit) => hit,
    };
    // Only this endpoint writes its entries; one that does not parse (a foreign Redis value
    // under our key) is a miss. A whole answer is sent as stored: only its usage is read, once.
    let usage = hit.entry.usage(|body| {
        serde_json::from_slice::<MessageResponse>(body)
            .ok()
            .map(|message| usage_to_openai(&message.usage))
    });
    if usage.is_none() {
        return Upstream(None);
    }
    if !stream {
        return Answered(whole(ctx, hit, usage));
    }
    let Ok(message) = serde_json::from_slice::<MessageResponse>(&hit.entry.body) else {
        return Upstream(None);
    };
    let events = crate::cache::message_stream::replay(&message);
    let frames = events
        .iter()
        .map(|event| Ok((Some(sse::anthropic_event(event)), None)))
        .collect::<Vec<_>>();
    mark_hit(ctx, &hit, usage);
    let mut reply = sse::anthropic_stream(Box::pin(futures_util::stream::iter(frames)));
    hit_headers(ctx, &mut reply.response, &hit);
    Answered(Reply::Stream(reply))
}

/// A completions or embeddings hit (never a stream: streamed completions skip the cache).
pub(crate) fn passthrough(ctx: &mut RequestContext, lookup: Lookup) -> Outcome {
    match lookup {
        Lookup::Skip => Upstream(None),
        Lookup::Miss(pending) => Upstream(Some(pending)),
        Lookup::Hit(hit) => {
            let usage = hit.entry.usage(|body| {
                serde_json::from_slice::<PassthroughResponse>(body)
                    .ok()
                    .and_then(|r| r.usage())
            });
            Answered(whole(ctx, hit, usage))
        }
    }
}

fn whole(ctx: &mut RequestContext, hit: Hit, usage: Option<Usage>) -> Reply {
    mark_hit(ctx, &hit, usage);
    let mut response = super::json_answer(hit.entry.body.clone());
    hit_headers(ctx, &mut response, &hit);
    Reply::Whole(response)
}

/// The request was answered from the cache: by the deployment that answered it first (for
/// headers and metric labels; any deployment of its group if a reload removed it), for nothing.
fn mark_hit(ctx: &mut RequestContext, hit: &Hit, usage: Option<Usage>) {
    ctx.cache_hit = true;
    ctx.usage = usage;
    ctx.cost = Some(Cost {
        total: Nanos::ZERO,
        source: CostSource::CacheHit,
    });
    let router = &ctx.config.router;
    let deployment: Option<Arc<Deployment>> = router
        .deployments()
        .iter()
        .find(|d| d.id.as_str() == &*hit.entry.deployment)
        .or_else(|| {
            router
                .group(&ctx.requested_model)
                .ok()
                .and_then(|g| g.deployments.first())
        })
        .cloned();
    ctx.served = deployment.map(|d| (d, 0));
}

fn hit_headers(ctx: &RequestContext, response: &mut Response, hit: &Hit) {
    const CACHE: HeaderName = HeaderName::from_static(CACHE_HEADER);
    const KEY: HeaderName = HeaderName::from_static(LITELLM_CACHE_KEY_HEADER);
    if let Some((deployment, _)) = &ctx.served {
        served_headers(response, deployment, 0);
    }
    let headers = response.headers_mut();
    headers.insert(CACHE, HeaderValue::from_static("hit"));
    if let Some(key) = hit.entry.key_header(&hit.key) {
        headers.insert(KEY, key);
    }
}
