//! Request coalescing: of concurrent identical requests whose key is not cached, one (the
//! leader) goes upstream; the others (followers) wait for its answer, each until its own
//! deadline at most. A leader that fails, or is dropped (its client left), releases its
//! followers, who then go upstream themselves, as they would have without coalescing.
//!
//! Per instance: with a Redis backend, N instances make at most N upstream calls for one key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::entry::Entry;

type Answer = Option<Arc<Entry>>;
/// A key's digest (it covers the namespace: see `key.rs`).
type Digest = [u8; 32];

/// foldhash (seeded per process), not SipHash: the keys are digests already.
type InFlight = HashMap<Digest, watch::Receiver<Answer>, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct Coalescer {
    in_flight: Mutex<InFlight>,
}

/// Held by the request that goes upstream; dropping it releases the followers.
pub struct Leader {
    coalescer: Arc<Coalescer>,
    key: Digest,
    answer: watch::Sender<Answer>,
}

pub enum Role {
    Leader(Leader),
    Follower(watch::Receiver<Answer>),
}

impl Coalescer {
    pub fn join(self: &Arc<Self>, key: &Digest) -> Role {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = in_flight.get(key) {
            return Role::Follower(rx.clone());
        }
        let (answer, rx) = watch::channel(None);
        in_flight.insert(*key, rx);
        Role::Leader(Leader {
            coalescer: self.clone(),
            key: *key,
            answer,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_flight.lock().unwrap().len()
    }
}

impl Leader {
    /// Hands the answer to the followers (then drop releases them).
    pub fn answer(&self, entry: Arc<Entry>) {
        self.answer.send_replace(Some(entry));
    }

    /// Whether any follower joined (the map's own receiver is not one).
    pub fn followed(&self) -> bool {
        self.answer.receiver_count() > 1
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut in_flight = self
            .coalescer
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if in_flight
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.answer.subscribe()))
        {
            in_flight.remove(&self.key);
        }
    }
}

/// What a follower got: the leader's answer, or `None` (the leader failed or left, or the
/// follower's deadline came first).
pub async fn wait(
    mut rx: watch::Receiver<Answer>,
    deadline: Option<tokio::time::Instant>,
) -> Answer {
    let done = async {
        loop {
            if let Some(entry) = rx.borrow_and_update().clone() {
                return Some(entry);
            }
            // Err: the leader is gone without an answer.
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, done).await.ok().flatten(),
        None => done.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry() -> Arc<Entry> {
        Arc::new(Entry {
            body: Bytes::from_static(b"{}"),
            deployment: "d".into(),
            stored_ms: 1,
        })
    }

    #[tokio::test]
    async fn followers_get_the_leaders_answer_and_the_key_is_freed() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join(&[7; 32]) else {
            panic!("first is the leader")
        };
        assert!(!leader.followed());
        let Role::Follower(rx) = c.join(&[7; 32]) else {
            panic!("second follows")
        };
        assert!(leader.followed());
        let waiter = tokio::spawn(wait(rx, None));
        leader.answer(entry());
        drop(leader);
        assert_eq!(waiter.await.unwrap(), Some(entry()));
        assert_eq!(c.len(), 0);
        assert!(matches!(c.join(&[7; 32]), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_failed_leader_releases_and_a_deadline_bounds_the_wait() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join(&[7; 32]) else {
            panic!()
        };
        let Role::Follower(rx) = c.join(&[7; 32]) else {
            panic!()
        };
        let Role::Follower(rx2) = c.join(&[7; 32]) else {
            panic!()
        };
        let started = tokio::time::Instant::now();
        let late = wait(rx2, Some(started + Duration::from_millis(50))).await;
        assert_eq!(late, None);
        assert!(started.elapsed() < Duration::from_secs(1));
        let waiter = tokio::spawn(wait(rx, None));
        drop(leader);
        assert_eq!(waiter.await.unwrap(), None);
    }
}
