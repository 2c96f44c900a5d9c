//! The spent-set of single-use tokens.
//!
//! Verification is stateless except here: a single-use token is good for
//! one request, so the gateway remembers which ones were used. The trait is
//! small so that replicas can share a store later; the in-memory set serves
//! one process.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::lightning::PaymentHash;

/// Remembers spent single-use tokens, by payment hash.
pub trait SpentSet: Send + Sync + std::fmt::Debug {
    /// Marks the token spent. True if it was not spent before (the request
    /// may go on); false if it was (refuse). Atomic: of two concurrent calls
    /// for one token, exactly one gets true. `forget_after` (unix seconds)
    /// is when the token expires anyway, so the entry may be dropped then.
    fn spend(&self, token: &PaymentHash, forget_after: u64) -> bool;

    /// Drops entries whose token has expired by `now`.
    fn prune(&self, now: u64);
}

/// A spent-set in memory: lost on restart (while the tokens' `valid_until`
/// has not passed, a restart lets each be used once more; use a shared
/// store where that matters).
#[derive(Debug, Default)]
pub struct MemorySpentSet {
    spent: Mutex<HashMap<PaymentHash, u64>>,
}

impl SpentSet for MemorySpentSet {
    fn spend(&self, token: &PaymentHash, forget_after: u64) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.insert(*token, forget_after).is_none()
    }

    fn prune(&self, now: u64) {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_spent_once() {
        let set = MemorySpentSet::default();
        let h = PaymentHash([7; 32]);
        assert!(set.spend(&h, 100));
        assert!(!set.spend(&h, 100));
    }

    #[test]
    fn prune_forgets_only_expired_tokens() {
        let set = MemorySpentSet::default();
        set.spend(&PaymentHash([1; 32]), 10);
        set.spend(&PaymentHash([2; 32]), 30);
        set.prune(20);
        assert!(set.spend(&PaymentHash([1; 32]), 10));
        assert!(!set.spend(&PaymentHash([2; 32]), 30));
    }
}
