//! A per-thread memo of the tokens of keys that were found, so a key presented again skips its
//! SHA-256 (about 2,000 instructions a request without SHA CPU extensions; under valgrind, whose
//! CPU has none, it was a fifth of what a virtual key costs).
//!
//! The memo is keyed by a 128-bit keyed hash of the presented key (two SipHash-1-3 with random
//! keys of the process): no raw key is kept, and what is kept helps an attacker no more than
//! the SHA-256 the database holds already. Only keys that were found are remembered, so random
//! keys sent by a client cannot fill it; the memo maps a key to its token and nothing else, so a
//! key deleted or blocked since is refused as before (the identity cache decides). Bounded: a
//! thread's memo is emptied when it reaches [`CAPACITY`] entries.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::keys::Token;

/// Keys remembered per worker thread.
pub const CAPACITY: usize = 4096;

/// The map's own hash: the keys are already uniformly random 128-bit values.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

struct Memo {
    seeds: [RandomState; 2],
    tokens: HashMap<u128, Token, BuildHasherDefault<Passthrough>>,
}

impl Memo {
    fn new() -> Self {
        Memo {
            seeds: [RandomState::new(), RandomState::new()],
            tokens: HashMap::default(),
        }
    }

    fn id(&self, key: &str) -> u128 {
        let [a, b] = &self.seeds;
        u128::from(a.hash_one(key)) << 64 | u128::from(b.hash_one(key))
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::new());
}

/// The token of `key` if this thread found it before.
pub fn recall(key: &str) -> Option<Token> {
    MEMO.with(|memo| {
        let memo = memo.borrow();
        memo.tokens.get(&memo.id(key)).cloned()
    })
}

/// Remembers the token of a key that was found.
pub fn remember(key: &str, token: &Token) {
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.tokens.len() >= CAPACITY {
            memo.tokens.clear();
        }
        let id = memo.id(key);
        memo.tokens.insert(id, token.clone());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys;

    #[test]
    fn a_remembered_key_recalls_its_token_and_no_other_key_does() {
        let key = "sk-memo-test-aaaaaaaaaaaaaaaaaaaaaaaa";
        assert!(recall(key).is_none());
        let token = keys::token(key);
        remember(key, &token);
        assert_eq!(
            recall(key).map(|t| t.as_str().to_owned()),
            Some(keys::hash(key))
        );
        assert!(recall("sk-memo-test-aaaaaaaaaaaaaaaaaaaaaaab").is_none());
        assert!(recall("").is_none());
    }

    #[test]
    fn the_memo_is_bounded() {
        for n in 0..CAPACITY + 10 {
            let key = format!("sk-bound-{n}");
            remember(&key, &keys::token(&key));
        }
        let len = MEMO.with(|memo| memo.borrow().tokens.len());
        assert!(len <= CAPACITY, "{len}");
        assert!(recall(&format!("sk-bound-{}", CAPACITY + 9)).is_some());
    }
}
