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

/// The steps a progress-reporting fetch announces: requesting (0), paying
/// (1), paid (2), done (3, just before the result; a reused token goes from
/// 0 to 3).
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

/// The progress of one call: its event task, and the last step.
pub(crate) struct Progress {
    sink: Option<ProgressSink>,
    /// Closing it ends the event task once it has sent what it holds.
    sender:
        std::sync::Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<FetchEvent>>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    cancelled: Option<tokio_util::sync::CancellationToken>,
}

impl Progress {
    /// Sends the last step (`message`; none when the call goes on in
    /// another round, as after `input_required`) after every step before
    /// it, unless the call was cancelled.
    pub async fn finish(mut self, message: Option<String>) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = self.task.take() {
            // Each of its sends gives up after PROGRESS_SEND_TIMEOUT.
            let _ = tokio::time::timeout(PROGRESS_SEND_TIMEOUT * 4, task).await;
        }
        let cancelled = self.cancelled.as_ref().is_some_and(|c| c.is_cancelled());
        if let (Some(sink), Some(message), false) = (&self.sink, message, cancelled) {
            sink.notify(PROGRESS_STEPS, message).await;
        }
    }
}

/// A call handle for one `l402_fetch`: its payment events become progress
/// notifications to `sink`, when the call asked for progress.
pub(crate) fn call_with_progress(sink: Option<ProgressSink>) -> (Call, Progress) {
    let Some(sink) = sink else {
        let progress = Progress {
            sink: None,
            sender: Default::default(),
            task: None,
            cancelled: None,
        };
        return (Call::default(), progress);
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FetchEvent>();
    let sender = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let listener = sender.clone();
    let call = Call::with_listener(move |event| {
        if let Some(tx) = listener.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(event);
        }
    });
    // The task holds only the cancellation token, not the call: it ends
    // when the sender is closed ([`Progress::finish`]) or the call is gone.
    let cancelled = call.cancellation();
    let task_cancelled = cancelled.clone();
    let task_sink = sink.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if task_cancelled.is_cancelled() {
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
            task_sink.notify(step, message).await;
        }
    });
    let progress = Progress {
        sink: Some(sink),
        sender,
        task: Some(task),
        cancelled: Some(cancelled),
    };
    (call, progress)
}
