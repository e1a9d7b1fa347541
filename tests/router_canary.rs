//! A canary deployment serves its fixed share of the group's traffic, visibly in response
//! headers and in metrics.

mod common;
mod routing;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use routing::*;

const REQUESTS: usize = 2_000;
const WORKERS: usize = 8;

#[tokio::test]
async fn canary_at_ten_percent_serves_ten_percent() {
    let gw = Arc::new(gateway(
        &config(
            &[
                offline("chat", "stable-1", "stable", "", ""),
                offline("chat", "stable-2", "stable", "", ""),
                offline("chat", "canary", "canary", "", ", canary_share: 0.1"),
            ],
            "",
        ),
        &[],
    ));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let canary = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (gw, next, canary) = (gw.clone(), next.clone(), canary.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                    let response = post(&gw, &chat_body("chat")).await;
                    assert_eq!(response.status(), 200);
                    let is_canary = header(&response, "x-switchyard-model-id") == "canary";
                    assert_eq!(
                        is_canary,
                        header(&response, "x-switchyard-canary") == "true"
                    );
                    canary.fetch_add(usize::from(is_canary), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");

    // Binomial(2000, 0.1): mean 200, standard deviation 13.4. The tolerance is four standard
    // deviations, ±54 requests = ±2.7 percentage points: a correct router fails this check
    // about once in 16,000 runs.
    let served = canary.load(Ordering::Relaxed);
    assert!(
        (146..=254).contains(&served),
        "canary served {served} of {REQUESTS} ({:.1}%), expected 10% ± 2.7",
        served as f64 * 100.0 / REQUESTS as f64
    );

    // The metrics tell the same story.
    let text = metrics(&gw).await;
    let served_by = |id: &str| {
        metric(
            &text,
            "switchyard_deployment_served_total",
            &format!("deployment=\"{id}\""),
        ) as usize
    };
    assert_eq!(served_by("canary"), served);
    assert_eq!(
        served_by("canary") + served_by("stable-1") + served_by("stable-2"),
        REQUESTS
    );
    assert!(text.contains("deployment=\"canary\",provider=\"openai\",canary=\"true\""));
}
