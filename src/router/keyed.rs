//! Per-deployment state keyed by the deployment's stable id (`model_info.id` or the config
//! hash), never by its position in the config: a reload that adds, removes or reorders
//! deployments keeps the state of every deployment whose id did not change, and a shared store
//! (Redis) can use the same keys on every instance.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

/// FNV-1a: the keys are a few short ids from the operator's config, not attacker input, so
/// SipHash's flooding resistance buys nothing and costs a few hundred instructions per lookup.
#[derive(Default)]
pub struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A map keyed by deployment id.
pub type IdMap<V> = HashMap<Arc<str>, V, BuildHasherDefault<FnvHasher>>;

/// State `T` per deployment id, created on first write. Reads on the request path take an
/// uncontended read lock and hash a short string; writers of new ids take the write lock once.
pub struct ByDeployment<T> {
    map: RwLock<IdMap<T>>,
}

impl<T> Default for ByDeployment<T> {
    fn default() -> Self {
        ByDeployment {
            map: RwLock::new(IdMap::default()),
        }
    }
}

impl<T: Default> ByDeployment<T> {
    /// `f` on the state of `id`, if it has any.
    pub fn read<R>(&self, id: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).map(f)
    }

    /// `f` on the state of `id`, made first if it has none.
    pub fn write<R>(&self, id: &str, f: impl FnOnce(&T) -> R) -> R {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = map.get(id) {
                return f(state);
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        f(map.entry(Arc::from(id)).or_default())
    }

    /// Drops the state of every id `keep` refuses (deployments a reload removed).
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn state_is_made_on_write_and_kept_by_id() {
        let by: ByDeployment<AtomicU32> = ByDeployment::default();
        assert_eq!(by.read("a", |v| v.load(Ordering::Relaxed)), None);
        by.write("a", |v| v.fetch_add(2, Ordering::Relaxed));
        by.write("a", |v| v.fetch_add(1, Ordering::Relaxed));
        by.write("b", |v| v.fetch_add(7, Ordering::Relaxed));
        assert_eq!(by.read("a", |v| v.load(Ordering::Relaxed)), Some(3));
        by.retain(&|id| id == "b");
        assert_eq!(by.read("a", |v| v.load(Ordering::Relaxed)), None);
        assert_eq!(by.read("b", |v| v.load(Ordering::Relaxed)), Some(7));
    }
}
