//! One caller's handle on one fetch: what it wants to hear, and its way to
//! stop the fetch before it pays.
//!
//! The handle travels down with the request ([`FetchRequest::call`]), so
//! the client never has to guess which caller a payment belongs to. Its
//! one rule: **no payment once cancelled; once paying, the payment
//! completes and is recorded.** [`Call::cancel`] and the client's last
//! step before sending a payment take the same lock, so exactly one of
//! them wins.
//!
//! [`FetchRequest::call`]: super::FetchRequest::call

use std::sync::{Arc, Mutex};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Approver;

/// What a fetch tells its caller as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// The payment is about to be sent: a cancellation can no longer stop
    /// it.
    Paying {
        /// The URL whose 402 asked for it.
        url: String,
        /// The invoice amount, msat.
        amount_msat: u64,
        /// The most the routing fee may be, msat.
        fee_limit_msat: u64,
    },
    /// The payment succeeded; the request is sent again with the token.
    Paid {
        /// The URL.
        url: String,
        /// The amount paid, msat.
        amount_msat: u64,
        /// The routing fee paid, msat.
        fee_msat: u64,
    },
    /// The payment did not go through (or its outcome is not known).
    PaymentFailed {
        /// A sentence.
        reason: String,
    },
}

type Listener = Box<dyn Fn(FetchEvent) + Send + Sync>;

#[derive(Default)]
struct State {
    cancelled: bool,
    paying: bool,
}

struct Inner {
    state: Mutex<State>,
    cancelled: CancellationToken,
    listener: Option<Listener>,
    /// Who is asked before a payment above the threshold, for this call
    /// only; else the client's approver.
    approver: std::sync::OnceLock<Arc<dyn Approver>>,
}

/// A caller's handle on one fetch; clones share it. The default handle
/// listens to nothing and is never cancelled.
#[derive(Clone)]
pub struct Call {
    inner: Arc<Inner>,
}

impl Default for Call {
    fn default() -> Self {
        Call::new(None)
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Call")
            .field("cancelled", &s.cancelled)
            .field("paying", &s.paying)
            .finish_non_exhaustive()
    }
}

impl Call {
    fn new(listener: Option<Listener>) -> Self {
        Call {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                cancelled: CancellationToken::new(),
                listener,
                approver: std::sync::OnceLock::new(),
            }),
        }
    }

    /// A handle whose events go to `listener` (called on the task that
    /// pays: it must not block).
    pub fn with_listener(listener: impl Fn(FetchEvent) + Send + Sync + 'static) -> Self {
        Call::new(Some(Box::new(listener)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels the fetch. Before its payment is sent, the payment never
    /// is; returns true when the payment had already started (it completes
    /// and is recorded all the same).
    pub fn cancel(&self) -> bool {
        let paying = {
            let mut s = self.lock();
            s.cancelled = true;
            s.paying
        };
        self.inner.cancelled.cancel();
        paying
    }

    /// Whether [`Call::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// Resolves when the call is cancelled.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.inner.cancelled.clone().cancelled_owned()
    }

    /// A token cancelled with the call; it does not keep the call (or its
    /// listener) alive.
    pub fn cancellation(&self) -> CancellationToken {
        self.inner.cancelled.clone()
    }

    /// The last step before a payment is sent: true (and from now on a
    /// cancellation cannot stop it) unless the call was cancelled.
    pub(crate) fn begin_paying(&self) -> bool {
        let mut s = self.lock();
        if s.cancelled {
            return false;
        }
        s.paying = true;
        true
    }

    /// Asks `approver`, for this call, before a payment above the
    /// threshold, instead of the client's (a server whose callers come and
    /// go asks each through its own request). The first one set stays.
    pub fn set_approver(&self, approver: Arc<dyn Approver>) {
        let _ = self.inner.approver.set(approver);
    }

    /// This call's own approver, if one was set.
    pub(crate) fn approver(&self) -> Option<Arc<dyn Approver>> {
        self.inner.approver.get().cloned()
    }

    /// Tells the listener, if any.
    pub(crate) fn emit(&self, event: FetchEvent) {
        if let Some(listener) = &self.inner.listener {
            listener(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_before_paying_wins_and_paying_before_cancel_wins() {
        let call = Call::default();
        assert!(!call.cancel(), "nothing was paying");
        assert!(!call.begin_paying(), "a cancelled call never pays");

        let call = Call::default();
        assert!(call.begin_paying());
        assert!(call.cancel(), "the payment had started");
        assert!(call.is_cancelled());
    }

    #[test]
    fn clones_share_one_handle_and_events_reach_the_listener() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let call = Call::with_listener(move |e| s.lock().unwrap().push(e));
        let other = call.clone();
        other.emit(FetchEvent::PaymentFailed { reason: "x".into() });
        call.cancel();
        assert!(other.is_cancelled());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
