//! Remembered signature checks, so a reused token costs no cryptography.
//!
//! The request-independent half of verification (identifier, preimage, HMAC
//! chain: [`verify_signature`]) depends only on the credential's exact text
//! and the root key. This cache maps that text to its outcome and the
//! parsed caveats; the request-dependent half ([`check_caveats`]: service,
//! capability, expiry) still runs on every request. A credential that
//! differs by one byte is a different key and is verified from scratch.
//! Bounded: two generations of at most `capacity` entries each; when the
//! young one fills, the old one is dropped, so the most recently used
//! credentials stay.
//!
//! [`verify_signature`]: crate::l402::verify_signature
//! [`check_caveats`]: crate::l402::check_caveats

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::l402::{Caveat, Identifier};

/// A credential whose signature and preimage verified.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    pub identifier: Identifier,
    pub caveats: Arc<[Caveat]>,
    /// Set once the metrics counted this token's revenue, so that later
    /// requests on it skip the metrics' sold set (and its lock).
    pub sold: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Box<str>, Verified>,
    old: HashMap<Box<str>, Verified>,
}

/// The cache. Only successes are remembered: a failure is re-checked, so a
/// flood of bad credentials cannot evict good ones.
#[derive(Debug)]
pub(super) struct VerifiedCache {
    capacity: usize,
    inner: Mutex<Generations>,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, credential: &str) -> Option<Verified> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g.young.get(credential) {
            return Some(v.clone());
        }
        let (key, v) = g.old.remove_entry(credential)?;
        Self::insert_locked(&mut g, self.capacity, key, v.clone());
        Some(v)
    }

    pub fn insert(&self, credential: &str, verified: Verified) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert_locked(&mut g, self.capacity, credential.into(), verified);
    }

    fn insert_locked(g: &mut Generations, capacity: usize, key: Box<str>, v: Verified) {
        if g.young.len() >= capacity {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightning::PaymentHash;

    fn v(n: u8) -> Verified {
        Verified {
            identifier: Identifier::new(PaymentHash([n; 32])),
            caveats: Arc::from(Vec::new()),
            sold: Arc::default(),
        }
    }

    #[test]
    fn recently_used_entries_survive_and_size_stays_bounded() {
        let cache = VerifiedCache::new(2);
        cache.insert("a", v(1));
        cache.insert("b", v(2));
        cache.insert("c", v(3)); // young {a,b} becomes old; young {c}
        assert!(cache.get("a").is_some()); // promoted
        cache.insert("d", v(4)); // young {c,a} full -> old; young {d}
        cache.insert("e", v(5));
        cache.insert("f", v(6)); // young {d,e} -> old; {c,a} dropped
        assert!(cache.get("c").is_none());
        assert!(cache.get("e").is_some());
        let g = cache.inner.lock().unwrap();
        assert!(g.young.len() + g.old.len() <= 4);
    }
}
