//! Progress notifications of one `l402_fetch`.
//!
//! The call's [`Call`] handle goes down with the request; the client tells
//! it when the payment starts and how it ended, and [`call_with_progress`]
//! turns those events into `notifications/progress` for a call that sent a
//! progress token, in order, on a task of their own: a notification never
//! holds up a payment or its record. One that the client does not take
//! within [`PROGRESS_SEND_TIMEOUT`] (it stopped reading, or closed its
//! input and the session is winding down) is dropped, and a cancelled call
//! hears nothing more (the client has dropped the request).

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;

use crate::client::{Call, FetchEvent, Msat};

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

/// A call handle for one `l402_fetch`: its payment events become progress
/// notifications to `sink`, when the call asked for progress.
pub(crate) fn call_with_progress(sink: Option<ProgressSink>) -> Call {
    let Some(sink) = sink else {
        return Call::default();
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FetchEvent>();
    let call = Call::with_listener(move |event| {
        let _ = tx.send(event);
    });
    // The task holds only the cancellation token, not the call: it ends
    // when the call (and so the sender) is gone.
    let cancelled = call.cancellation();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if cancelled.is_cancelled() {
                continue;
            }
            let (step, message) = match event {
                FetchEvent::Paying {
                    url,
                    amount_msat,
                    fee_limit_msat,
                } => (
                    1.0,
                    format!(
                        "paying {} (+ up to {} in fees) for {url}",
                        Msat(amount_msat),
                        Msat(fee_limit_msat)
                    ),
                ),
                FetchEvent::Paid {
                    url,
                    amount_msat,
                    fee_msat,
                } => (
                    2.0,
                    format!(
                        "paid {} (+{} fee); fetching {url} with the new token",
                        Msat(amount_msat),
                        Msat(fee_msat)
                    ),
                ),
                FetchEvent::PaymentFailed { reason } => {
                    (2.0, format!("the payment did not go through: {reason}"))
                }
            };
            sink.notify(step, message).await;
        }
    });
    call
}
