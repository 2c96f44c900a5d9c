//! The tool calls in flight in one session, and the payer wrapper that
//! tells them about their payment.
//!
//! The client pays inside its own task and tells nobody; what it does
//! before paying is write the payment's row (with its URL) to the store.
//! [`ProgressPayer`] wraps the real payer: when asked to pay, it finds the
//! row by payment hash, the calls fetching that URL (or that origin) in
//! this session, and
//!
//! - refuses to pay when every such call was cancelled: cancellation before
//!   the payment starts stops it (the client records the attempt as failed,
//!   and releases the reservation);
//! - otherwise marks them as paying, so that a cancellation from now on
//!   does not stop anything: the payment completes and is recorded;
//! - and sends each call that asked for progress (and was not cancelled) a
//!   notification before and after paying. A notification never holds up a
//!   payment's record: one that the client does not take within
//!   [`PROGRESS_SEND_TIMEOUT`] (it stopped reading, or closed its input and
//!   the session is winding down) is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;
use tokio_util::sync::CancellationToken;

use crate::client::Sats;
use crate::lightning::{Invoice, Network, PayError, Payer, Payment, PaymentHash, PaymentStatus};
use crate::store::{Origin, Store};

/// The steps a progress-reporting fetch announces (requesting, paying,
/// paid); the result itself is the last.
pub(crate) const PROGRESS_STEPS: f64 = 3.0;

/// Where a call's progress notifications go.
#[derive(Clone)]
pub(crate) struct ProgressSink {
    pub peer: Peer<RoleServer>,
    pub token: ProgressToken,
}

/// How long a progress notification may wait for the transport. Sending
/// one waits until it is written; once the client has closed its input, the
/// session stops writing and a send would wait until the session is torn
/// down, while the payment it reports waits to be recorded.
pub(crate) const PROGRESS_SEND_TIMEOUT: Duration = Duration::from_secs(1);

impl ProgressSink {
    /// Sends one notification; a client that went away, or does not take it
    /// within [`PROGRESS_SEND_TIMEOUT`], is not an error.
    pub async fn notify(&self, step: f64, message: impl Into<String>) {
        let param = ProgressNotificationParam::new(self.token.clone(), step)
            .with_total(PROGRESS_STEPS)
            .with_message(message);
        match tokio::time::timeout(PROGRESS_SEND_TIMEOUT, self.peer.notify_progress(param)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot send a progress notification"),
            Err(_) => tracing::debug!("progress notification not taken in time; dropped"),
        }
    }
}

/// One `l402_fetch` in flight.
pub(crate) struct Call {
    id: u64,
    url: String,
    origin: Option<Origin>,
    progress: Option<ProgressSink>,
    state: Mutex<CallState>,
    /// Cancelled when the MCP client cancels the call.
    pub cancelled: CancellationToken,
}

#[derive(Default)]
struct CallState {
    cancelled: bool,
    paying: bool,
}

impl Call {
    /// Marks the call cancelled. Returns true when its payment had already
    /// started: it completes and is recorded all the same.
    pub fn cancel(&self) -> bool {
        let paying = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.cancelled = true;
            s.paying
        };
        self.cancelled.cancel();
        paying
    }

    /// Where its progress goes, if it asked for progress.
    pub fn progress(&self) -> Option<&ProgressSink> {
        self.progress.as_ref()
    }

    /// Where its progress goes while the client still wants it: a cancelled
    /// request is over for the client, which drops anything more about it.
    fn live_progress(&self) -> Option<&ProgressSink> {
        let cancelled = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancelled;
        if cancelled { None } else { self.progress() }
    }
}

/// The calls in flight in one session.
#[derive(Default)]
pub(crate) struct Calls {
    next: AtomicU64,
    live: Mutex<Vec<Arc<Call>>>,
}

/// Removes its call from the registry when the call ends.
pub(crate) struct CallGuard {
    calls: Arc<Calls>,
    pub call: Arc<Call>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let id = self.call.id;
        self.calls.lock().retain(|c| c.id != id);
    }
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Call>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a fetch of `url` until the guard is dropped.
    pub fn begin(self: &Arc<Self>, url: &str, progress: Option<ProgressSink>) -> CallGuard {
        let parsed = Url::parse(url.trim()).ok();
        let call = Arc::new(Call {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            url: parsed
                .as_ref()
                .map_or_else(|| url.to_string(), Url::to_string),
            origin: parsed.as_ref().and_then(|u| Origin::from_url(u).ok()),
            progress,
            state: Mutex::default(),
            cancelled: CancellationToken::new(),
        });
        self.lock().push(call.clone());
        CallGuard {
            calls: self.clone(),
            call,
        }
    }

    /// The calls a payment for `url` belongs to: those fetching exactly
    /// that URL; else those fetching its origin (a redirect); else the only
    /// call in flight.
    pub fn matching(&self, url: Option<&str>) -> Vec<Arc<Call>> {
        let live = self.lock();
        if let Some(url) = url {
            let exact: Vec<_> = live.iter().filter(|c| c.url == url).cloned().collect();
            if !exact.is_empty() {
                return exact;
            }
            let origin = Url::parse(url).ok().and_then(|u| Origin::from_url(&u).ok());
            let same: Vec<_> = live
                .iter()
                .filter(|c| origin.is_some() && c.origin == origin)
                .cloned()
                .collect();
            if !same.is_empty() {
                return same;
            }
        }
        if live.len() == 1 {
            return live.clone();
        }
        Vec::new()
    }
}

/// The session's payer: the operator's, behind the cancellation gate and
/// the progress notifications.
pub(crate) struct ProgressPayer {
    inner: Arc<dyn Payer>,
    calls: Arc<Calls>,
    store: Arc<Store>,
}

impl std::fmt::Debug for ProgressPayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressPayer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ProgressPayer {
    pub fn new(inner: Arc<dyn Payer>, calls: Arc<Calls>, store: Arc<Store>) -> Self {
        ProgressPayer {
            inner,
            calls,
            store,
        }
    }

    /// The URL the client wrote down for this payment before paying.
    async fn url_of(&self, hash: PaymentHash) -> Option<String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.payments_for_hash(&hash))
            .await
            .ok()?
            .ok()?
            .pop()
            .map(|p| p.url)
    }
}

#[async_trait]
impl Payer for ProgressPayer {
    fn network(&self) -> Network {
        self.inner.network()
    }

    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        let url = self.url_of(invoice.payment_hash()).await;
        let calls = self.calls.matching(url.as_deref());

        // The gate: pay only if some call still wants it; from here on, a
        // cancellation lets the payment complete.
        let mut wanted = calls.is_empty();
        for call in &calls {
            let mut s = call.state.lock().unwrap_or_else(|e| e.into_inner());
            if !s.cancelled {
                s.paying = true;
                wanted = true;
            }
        }
        if !wanted {
            tracing::info!(payment_hash = %invoice.payment_hash(), "request cancelled before paying; not paying");
            return Err(PayError::Refused(
                "the MCP client cancelled the request before the payment started; nothing was paid"
                    .into(),
            ));
        }

        let amount = invoice.amount_msat().unwrap_or(0);
        let what = url.as_deref().unwrap_or("the request");
        for sink in calls.iter().filter_map(|c| c.live_progress()) {
            sink.notify(
                1.0,
                format!(
                    "paying {} (+ up to {} in fees) for {what}",
                    Sats(amount),
                    Sats(max_fee_msat)
                ),
            )
            .await;
        }
        let outcome = self.inner.pay(invoice, max_fee_msat).await;
        let message = match &outcome {
            Ok(p) => format!(
                "paid {} (+{} fee); fetching {what} with the new token",
                Sats(p.amount_msat),
                Sats(p.fee_msat)
            ),
            Err(e) => format!("the payment did not go through: {e}"),
        };
        for sink in calls.iter().filter_map(|c| c.live_progress()) {
            sink.notify(2.0, message.clone()).await;
        }
        outcome
    }

    async fn status(&self, payment_hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        self.inner.status(payment_hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightning::Invoicer;
    use crate::lightning::dev::DevNode;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts payments and pays none.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Payer for Counting {
        fn network(&self) -> Network {
            Network::Regtest
        }
        async fn pay(&self, _: &Invoice, _: u64) -> Result<Payment, PayError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(PayError::Failed("counted, not paid".into()))
        }
        async fn status(&self, _: &PaymentHash) -> Result<PaymentStatus, PayError> {
            Ok(PaymentStatus::Unknown)
        }
    }

    async fn invoice() -> Invoice {
        let issued = DevNode::new()
            .create_invoice(21_000, "test", Duration::from_secs(600))
            .await
            .unwrap();
        issued.bolt11.parse().unwrap()
    }

    #[tokio::test]
    async fn a_call_cancelled_before_its_payment_never_pays() {
        let counting = Arc::new(Counting::default());
        let calls = Arc::new(Calls::default());
        let store = Arc::new(Store::open_in_memory().unwrap());
        let payer = ProgressPayer::new(counting.clone(), calls.clone(), store);
        let invoice = invoice().await;

        let guard = calls.begin("http://a.example/x", None);
        assert!(!guard.call.cancel(), "nothing was paying yet");
        let refused = payer.pay(&invoice, 0).await.unwrap_err();
        assert!(matches!(refused, PayError::Refused(ref s) if s.contains("cancelled")));
        assert_eq!(counting.0.load(Ordering::SeqCst), 0);
        drop(guard);

        // A live call pays; cancelled afterwards, it says the payment had
        // started (and the client completes and records it).
        let guard = calls.begin("http://a.example/x", None);
        let _ = payer.pay(&invoice, 0).await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        assert!(guard.call.cancel());
    }

    #[test]
    fn payments_match_calls_by_url_then_origin_then_the_only_call() {
        let calls = Arc::new(Calls::default());
        let a = calls.begin("http://a.example/x", None);
        let b = calls.begin("http://b.example/y", None);
        let ids = |v: Vec<Arc<Call>>| v.iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(calls.matching(Some("http://a.example/x"))),
            vec![a.call.id]
        );
        assert_eq!(
            ids(calls.matching(Some("http://b.example/z"))),
            vec![b.call.id]
        );
        assert!(calls.matching(Some("http://c.example/")).is_empty());
        drop(b);
        assert_eq!(ids(calls.matching(None)), vec![a.call.id]);
        drop(a);
        assert!(calls.lock().is_empty());
    }
}
