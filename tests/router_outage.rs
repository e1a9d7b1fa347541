//! The outage drill in small: while requests flow, the primary upstream is killed and later
//! restarted on the same port. No client request may fail; traffic must move to the fallback
//! and come back. (`bench/outage` is the same drill as a command, with a report.)

mod common;
mod routing;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use routing::*;

struct Outcome {
    at: Duration,
    status: u16,
    served_by: String,
}

#[tokio::test]
async fn killing_and_restarting_the_primary_fails_no_request() {
    let primary = mock_upstream(&[]);
    let port = primary.url.rsplit(':').next().unwrap().to_owned();
    let backup = mock_upstream(&[]);
    let gw = Arc::new(gateway(
        &config(
            &[
                entry("primary", "p", &primary, "", ""),
                entry("backup", "b", &backup, "", ""),
            ],
            "router_settings:\n  fallbacks: [{\"primary\": [\"backup\"]}]\n  cooldown_time: 0.5\n",
        ),
        &[],
    ));

    let started = Instant::now();
    let run_for = Duration::from_millis(4_500);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (gw, outcomes) = (gw.clone(), outcomes.clone());
            tokio::spawn(async move {
                while started.elapsed() < run_for {
                    let response = post(&gw, &chat_body("primary")).await;
                    let outcome = Outcome {
                        at: started.elapsed(),
                        status: response.status().as_u16(),
                        served_by: header(&response, "x-switchyard-model-id").to_owned(),
                    };
                    outcomes.lock().unwrap().push(outcome);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1_000)).await;
    primary.stop();
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let _restarted = spawn(&["mock-upstream", "--port", &port], &[]);
    let restarted_at = started.elapsed();
    for worker in workers {
        worker.await.unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    let failed = outcomes.iter().filter(|o| o.status != 200).count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", outcomes.len());
    let served = |from: Duration, to: Duration, id: &str| {
        outcomes
            .iter()
            .filter(|o| o.at >= from && o.at < to && o.served_by == id)
            .count()
    };
    let before = served(Duration::ZERO, killed_at, "p");
    assert!(before > 0 && served(Duration::ZERO, killed_at, "b") == 0);
    let outage = killed_at + Duration::from_millis(100)..restarted_at;
    assert!(
        served(outage.start, outage.end, "b") > 0,
        "traffic moved to the fallback"
    );
    assert_eq!(served(outage.start, outage.end, "p"), 0);
    // Within a cooldown (0.5 s) of the restart, the probe finds the primary and traffic is back.
    let back = restarted_at + Duration::from_millis(1_000);
    assert!(served(back, run_for, "p") > 0, "traffic came back");
    assert_eq!(served(back, run_for, "b"), 0, "and stayed back");
}
