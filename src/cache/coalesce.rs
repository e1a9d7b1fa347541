//! Request coalescing: of concurrent identical requests whose key is not cached, one (the
//! leader) goes upstream; the others (followers) wait for its answer, each until its own
//! deadline at most. A leader that fails, or is dropped (its client left), releases its
//! followers, who then go upstream themselves, as they would have without coalescing.
//!
//! Per instance: with a Redis backend, N instances make at most N upstream calls for one key.
//!
//! Why not a `tokio::sync::watch` channel per key: almost every miss is led alone, and a
//! channel (eight wait lists inside, a receiver kept in the map) was ~1.5 k instructions a
//! miss to make and drop. A leader is a map entry (its key, an id, the answer once there); the
//! followers' meeting point ([`Waiters`]: a mutex and a `Notify`) is made by the first
//! follower, so a miss nobody follows allocates nothing here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::entry::Entry;

type Answer = Option<Arc<Entry>>;
/// A key's digest (it covers the namespace: see `key.rs`).
type Digest = [u8; 32];

/// The keys are digests already: hashed by their first bytes (`key::DigestHash`).
type InFlight = HashMap<Digest, Slot, super::key::DigestHash>;

/// One key in flight.
struct Slot {
    /// Which leader holds it (a dropped leader removes only its own slot).
    leader: u64,
    /// The leader's answer, once given: a follower joining after it gets it at once.
    answer: Answer,
    /// Made by the first follower.
    waiters: Option<Arc<Waiters>>,
}

/// Where the followers of one key wait.
pub struct Waiters {
    state: Mutex<State>,
    notify: Notify,
}

enum State {
    Waiting,
    Answered(Arc<Entry>),
    /// The leader left without an answer.
    Gone,
}

#[derive(Default)]
pub struct Coalescer {
    in_flight: Mutex<InFlight>,
    next_leader: std::sync::atomic::AtomicU64,
}

/// Held by the request that goes upstream; dropping it releases the followers.
pub struct Leader {
    coalescer: Arc<Coalescer>,
    key: Digest,
    id: u64,
}

pub enum Role {
    Leader(Leader),
    Follower(Arc<Waiters>),
}

impl Coalescer {
    fn map(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn join(self: &Arc<Self>, key: &Digest) -> Role {
        let mut in_flight = self.map();
        if let Some(slot) = in_flight.get_mut(key) {
            let waiters = slot.waiters.get_or_insert_with(|| {
                let state = match &slot.answer {
                    Some(entry) => State::Answered(entry.clone()),
                    None => State::Waiting,
                };
                Arc::new(Waiters {
                    state: Mutex::new(state),
                    notify: Notify::new(),
                })
            });
            return Role::Follower(waiters.clone());
        }
        let id = self
            .next_leader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        in_flight.insert(
            *key,
            Slot {
                leader: id,
                answer: None,
                waiters: None,
            },
        );
        Role::Leader(Leader {
            coalescer: self.clone(),
            key: *key,
            id,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Waiters {
    fn set(&self, state: State) {
        let mut current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*current, State::Waiting) {
            *current = state;
            drop(current);
            self.notify.notify_waiters();
        }
    }
}

impl Leader {
    /// Hands the answer to the followers, and to any that join before the leader is dropped.
    pub fn answer(&self, entry: Arc<Entry>) {
        let mut in_flight = self.coalescer.map();
        let Some(slot) = in_flight.get_mut(&self.key).filter(|s| s.leader == self.id) else {
            return;
        };
        if let Some(waiters) = &slot.waiters {
            waiters.set(State::Answered(entry.clone()));
        }
        slot.answer = Some(entry);
    }

    /// Whether any follower joined.
    pub fn followed(&self) -> bool {
        self.coalescer
            .map()
            .get(&self.key)
            .is_some_and(|s| s.leader == self.id && s.waiters.is_some())
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut in_flight = self.coalescer.map();
        if in_flight
            .get(&self.key)
            .is_some_and(|s| s.leader == self.id)
        {
            if let Some(Slot {
                waiters: Some(waiters),
                ..
            }) = in_flight.remove(&self.key)
            {
                drop(in_flight);
                // No-op if the answer came first.
                waiters.set(State::Gone);
            }
        }
    }
}

/// What a follower got: the leader's answer, or `None` (the leader failed or left, or the
/// follower's deadline came first).
pub async fn wait(waiters: Arc<Waiters>, deadline: Option<tokio::time::Instant>) -> Answer {
    let done = async {
        // Bounded: each turn ends in an answer or the leader's one state change.
        loop {
            let notified = waiters.notify.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between is not missed.
            notified.as_mut().enable();
            match &*waiters.state.lock().unwrap_or_else(|e| e.into_inner()) {
                State::Answered(entry) => return Some(entry.clone()),
                State::Gone => return None,
                State::Waiting => {}
            }
            notified.await;
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
        Arc::new(Entry::new(Bytes::from_static(b"{}"), "d".into(), 1))
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

    #[tokio::test]
    async fn a_follower_joining_after_the_answer_gets_it_at_once() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join(&[7; 32]) else {
            panic!()
        };
        leader.answer(entry());
        let Role::Follower(rx) = c.join(&[7; 32]) else {
            panic!()
        };
        assert_eq!(wait(rx, None).await, Some(entry()));
        drop(leader);
        assert_eq!(c.len(), 0);
        // A new leader for the key: the old one's release does not touch it.
        let Role::Leader(second) = c.join(&[7; 32]) else {
            panic!()
        };
        assert!(!second.followed());
    }
}
