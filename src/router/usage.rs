//! Requests and tokens per deployment in the current minute: what `usage-based-routing` balances
//! and what `rpm`/`tpm` limits are checked against. Behind [`UsageStore`] so several instances
//! can share the counts (DESIGN.md invariant 7); [`LocalUsage`] counts in this process.
//!
//! Windows are calendar minutes (LiteLLM's v2 keys its counters by minute too), so a shared
//! store needs no coordination beyond "add to this minute's key".

use super::keyed::ByDeployment;

/// Counts of one deployment in the current minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteUsage {
    pub requests: u64,
    pub tokens: u64,
}

pub trait UsageStore: Send + Sync {
    fn add(&self, deployment: &str, now_ms: u64, requests: u64, tokens: u64);
    fn current(&self, deployment: &str, now_ms: u64) -> MinuteUsage;
    /// A reload removed deployments: forget the counts of every id `keep` refuses.
    fn retain(&self, keep: &dyn Fn(&str) -> bool);
}

/// The in-process [`UsageStore`]: per deployment, two atomic words, each holding the minute in
/// its high 32 bits and the count in its low 32. One compare-and-swap both adds and, on a new
/// minute, starts over, so no count is lost at the boundary and no lock is taken.
#[derive(Default)]
pub struct LocalUsage {
    slots: ByDeployment<[std::sync::atomic::AtomicU64; 2]>,
}

const REQUESTS: usize = 0;
const TOKENS: usize = 1;
const COUNT_MASK: u64 = 0xffff_ffff;

impl LocalUsage {
    pub fn new() -> Self {
        Self::default()
    }
}

fn minute(now_ms: u64) -> u64 {
    (now_ms / 60_000) & COUNT_MASK
}

fn bump(word: &std::sync::atomic::AtomicU64, minute: u64, by: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    if by == 0 {
        return;
    }
    let mut current = word.load(Relaxed);
    loop {
        let count = if current >> 32 == minute {
            current & COUNT_MASK
        } else {
            0
        };
        let next = (minute << 32) | count.saturating_add(by).min(COUNT_MASK);
        match word.compare_exchange_weak(current, next, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

fn read(word: &std::sync::atomic::AtomicU64, minute: u64) -> u64 {
    let value = word.load(std::sync::atomic::Ordering::Relaxed);
    if value >> 32 == minute {
        value & COUNT_MASK
    } else {
        0
    }
}

impl UsageStore for LocalUsage {
    fn add(&self, deployment: &str, now_ms: u64, requests: u64, tokens: u64) {
        let minute = minute(now_ms);
        self.slots.write(deployment, |slot| {
            bump(&slot[REQUESTS], minute, requests);
            bump(&slot[TOKENS], minute, tokens);
        });
    }

    fn current(&self, deployment: &str, now_ms: u64) -> MinuteUsage {
        let minute = minute(now_ms);
        self.slots
            .read(deployment, |slot| MinuteUsage {
                requests: read(&slot[REQUESTS], minute),
                tokens: read(&slot[TOKENS], minute),
            })
            .unwrap_or_default()
    }

    fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.slots.retain(keep);
    }
}

/// Milliseconds until the current minute ends (when limits reset).
pub fn until_next_minute(now_ms: u64) -> u64 {
    60_000 - now_ms % 60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_minute_and_resets() {
        let usage = LocalUsage::new();
        let t = 120_000 * 1_000; // start of a minute
        usage.add("d0", t, 1, 0);
        usage.add("d0", t + 10, 1, 250);
        usage.add("d1", t + 10, 1, 7);
        assert_eq!(
            usage.current("d0", t + 59_999),
            MinuteUsage {
                requests: 2,
                tokens: 250
            }
        );
        assert_eq!(
            usage.current("d1", t + 20),
            MinuteUsage {
                requests: 1,
                tokens: 7
            }
        );
        assert_eq!(usage.current("d0", t + 60_000), MinuteUsage::default());
        usage.add("d0", t + 60_001, 1, 5);
        assert_eq!(
            usage.current("d0", t + 60_002),
            MinuteUsage {
                requests: 1,
                tokens: 5
            }
        );
        assert_eq!(until_next_minute(t + 59_000), 1_000);
        // An id never written reads as zero.
        assert_eq!(usage.current("d9", t), MinuteUsage::default());
    }

    #[test]
    fn concurrent_adds_are_not_lost() {
        let usage = std::sync::Arc::new(LocalUsage::new());
        let t = 60_000 * 5;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let usage = usage.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        usage.add("d0", t, 1, 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            usage.current("d0", t),
            MinuteUsage {
                requests: 40_000,
                tokens: 80_000
            }
        );
    }
}
