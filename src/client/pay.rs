//! The irreversible part: reserve, write the pending token, pay, record;
//! and recovery of payments a crash or a timeout left unresolved.
//!
//! Order matters. The budget is reserved and the token written as pending
//! BEFORE the payment is sent, so a crash at any point leaves a record
//! that says a payment may have happened; [`L402Client::recover`] then asks
//! the payment backend what became of it and never pays that invoice again.
//! The payment itself runs in its own task: a caller that gives up (an MCP
//! cancellation, a dropped future) cannot stop a payment half-way; it
//! completes and is recorded.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Url;

use std::sync::Arc;

use super::checks::{Checked, Offer};
use super::held::Held;
use super::task::blocking;
use super::{
    Call, FetchError, FetchEvent, L402Client, RecoveryReport, Refusal, error::budget_refusal,
    recovery_grace,
};
use crate::budget::{BudgetError, Ledger, Reservation, ReserveRequest};
use crate::lightning::{Invoice, PayError, Payer, Payment, PaymentHash, PaymentStatus};
use crate::store::{NewToken, Origin, PaymentState, Store, Token, TokenStatus};

/// The steps between reserve and retry, for fault-injection tests: with
/// `L402_MCP_ABORT_AT=<step>` in the environment the process aborts (as
/// `kill -9` would: no destructors, no flushing) when it reaches the step.
pub const ABORT_STEPS: [&str; 5] = [
    "after_reserve",
    "after_pending",
    "after_in_flight",
    "after_pay",
    "after_mark_paid",
];

fn abort_point(step: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("L402_MCP_ABORT_AT").ok())
        .as_deref()
        == Some(step)
    {
        eprintln!("L402_MCP_ABORT_AT={step}: aborting");
        std::process::abort();
    }
}

/// What a successful `pay` bought.
#[derive(Debug)]
pub(super) struct Paid {
    pub amount_msat: u64,
    pub fee_msat: u64,
}

/// One payment and its recording, run as a task of its own: a caller that
/// gives up (a cancelled MCP call, a passed deadline, a dropped future)
/// cannot stop a payment half-way or leave it paid but unrecorded.
struct Settle {
    payer: Arc<dyn Payer>,
    store: Arc<Store>,
    ledger: Ledger,
    invoice: Invoice,
    reservation: Reservation,
    fee_limit_msat: u64,
    timeout: Duration,
    call: Call,
    url: String,
    /// How long the token stays the buyer's if it never presents it.
    buyer_hold: Duration,
    _in_flight: InFlightGuard,
}

impl Settle {
    async fn run(self) -> Result<(Token, Payment), FetchError> {
        let hash = self.invoice.payment_hash();
        // The gate, taken under the same lock as a cancellation: a call
        // cancelled before this point never pays; from here on a
        // cancellation lets the payment complete.
        let outcome = if !self.call.begin_paying() {
            tracing::info!(payment_hash = %hash, "request cancelled before paying; not paying");
            Err(PayError::Refused(
                "the caller cancelled the request before the payment started; nothing was paid"
                    .into(),
            ))
        } else {
            self.call.emit(FetchEvent::Paying {
                url: self.url.clone(),
                amount_msat: self.invoice.amount_msat().unwrap_or(0),
                fee_limit_msat: self.fee_limit_msat,
            });
            let outcome = match tokio::time::timeout(
                self.timeout,
                self.payer.pay(&self.invoice, self.fee_limit_msat),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(PayError::Unknown(format!(
                    "no answer within {} s",
                    self.timeout.as_secs()
                ))),
            };
            self.call.emit(match &outcome {
                Ok(p) => FetchEvent::Paid {
                    url: self.url.clone(),
                    amount_msat: p.amount_msat,
                    fee_msat: p.fee_msat,
                },
                Err(e) => FetchEvent::PaymentFailed {
                    reason: e.to_string(),
                },
            });
            outcome
        };
        match outcome {
            Ok(payment) if payment.preimage.matches(&hash) => {
                abort_point("after_pay");
                let (store, ledger, r) = (self.store, self.ledger, self.reservation);
                let hold_secs = self.buyer_hold.as_secs();
                let p = payment.clone();
                let saved = blocking(move || {
                    // Commit first: money moved, and the spend log must say
                    // so even if the token cannot be written.
                    let committed = ledger.commit(&r, p.amount_msat, p.fee_msat);
                    if let Err(e) = &committed {
                        tracing::error!(payment_hash = %hash, error = %e, "cannot commit a payment that succeeded");
                    }
                    // The token is the buyer's until it has presented it.
                    let paid = store.mark_paid_for_buyer(&hash, &p.preimage, p.fee_msat, hold_secs);
                    abort_point("after_mark_paid");
                    paid.and_then(|()| store.get_by_hash(&hash))
                })
                .await?;
                match saved {
                    Ok(Some(token)) => Ok((token, payment)),
                    Ok(None) => Err(FetchError::PaidButNotSaved {
                        payment_hash: hash,
                        reason: "the pending token disappeared".into(),
                    }),
                    Err(e) => Err(FetchError::PaidButNotSaved {
                        payment_hash: hash,
                        reason: e.to_string(),
                    }),
                }
            }
            Ok(_) => Err(FetchError::PaymentUnknown {
                payment_hash: hash,
                reason: "the payer returned a preimage that does not match the invoice".into(),
            }),
            Err(PayError::Unknown(reason)) => {
                tracing::warn!(payment_hash = %hash, %reason, "payment outcome unknown; left pending");
                Err(FetchError::PaymentUnknown {
                    payment_hash: hash,
                    reason,
                })
            }
            Err(e) => {
                // Failed for good, refused by the payer, or never sent.
                let reason = e.to_string();
                tracing::warn!(payment_hash = %hash, %reason, "payment failed");
                let (store, ledger, r, why) =
                    (self.store, self.ledger, self.reservation, reason.clone());
                blocking(move || {
                    let _ = store.mark_failed(&hash);
                    ledger.fail(&r, &why)
                })
                .await?
                .map_err(FetchError::from)?;
                Err(FetchError::PaymentFailed(reason))
            }
        }
    }
}

/// Payments under way in this process, so that a server shutting down can
/// wait for them to be recorded.
static PAYMENTS_IN_FLIGHT: std::sync::LazyLock<Arc<InFlight>> =
    std::sync::LazyLock::new(Arc::default);

/// Waits until every payment this process started has been recorded, at
/// most `timeout`; true if none is left under way. A server calls this
/// before it exits, so that a client closing its session mid-payment does
/// not leave the payment for the next start's recovery.
pub async fn wait_for_payments(timeout: Duration) -> bool {
    PAYMENTS_IN_FLIGHT.wait_idle(timeout).await
}

/// Counts payments under way.
#[derive(Debug, Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
    /// The invoices being paid: their pending tokens are this process's
    /// own, to be recorded by their task, not left over from a crash.
    hashes: std::sync::Mutex<std::collections::HashSet<PaymentHash>>,
}

/// True when this process is paying `hash` right now.
pub(super) fn paying_here(hash: &PaymentHash) -> bool {
    PAYMENTS_IN_FLIGHT.lock_hashes().contains(hash)
}

impl InFlight {
    fn enter(self: &Arc<Self>, hash: PaymentHash) -> InFlightGuard {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.lock_hashes().insert(hash);
        InFlightGuard(self.clone(), hash)
    }

    fn lock_hashes(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<PaymentHash>> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no payment is under way, or `timeout`; true if none is.
    async fn wait_idle(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

struct InFlightGuard(Arc<InFlight>, PaymentHash);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.lock_hashes().remove(&self.1);
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

impl L402Client {
    /// Pays a checked challenge for `origin`. The caller holds the origin's
    /// lock. Returns the now-usable token.
    pub(super) async fn pay(
        &self,
        url: &Url,
        origin: &Origin,
        checked: &Checked,
        call: &Call,
    ) -> Result<(Arc<Held>, Paid), FetchError> {
        let hash = checked.invoice.payment_hash();

        // An invoice seen before: never pay it twice.
        let store = self.store.clone();
        if let Some(existing) = blocking(move || store.get_by_hash(&hash)).await?? {
            return match existing.info.status {
                TokenStatus::Paid => Ok((
                    self.remember_token(origin, &existing).await?,
                    Paid {
                        amount_msat: 0,
                        fee_msat: 0,
                    },
                )),
                TokenStatus::Pending => {
                    // Ask the backend what became of it.
                    self.recover().await?;
                    let store = self.store.clone();
                    match blocking(move || store.get_by_hash(&hash)).await?? {
                        Some(t) if t.info.status == TokenStatus::Paid => Ok((
                            self.remember_token(origin, &t).await?,
                            Paid {
                                amount_msat: 0,
                                fee_msat: 0,
                            },
                        )),
                        _ => Err(FetchError::Refused(Refusal::PaymentInFlight(hash))),
                    }
                }
                TokenStatus::Failed | TokenStatus::Stale => {
                    Err(FetchError::PaymentFailed(format!(
                        "invoice {hash} was paid or tried before; retry the request for a fresh invoice"
                    )))
                }
            };
        }

        // From here on this invoice is this process's to pay and record.
        let in_flight = PAYMENTS_IN_FLIGHT.enter(hash);

        // The payment rate limit.
        if self.limiter.check().is_err() {
            return Err(FetchError::Refused(Refusal::RateLimited {
                per_minute: self.config.payments_per_minute,
            }));
        }

        // Reserve amount + fee limit: the ledger refuses atomically, across
        // processes, if the session (or the 24-hour cap) cannot cover it.
        let fee_limit = self.config.fee_limit_msat;
        let amount = checked.amount_msat;
        let ledger = self.ledger.clone();
        let (session, o, u) = (self.config.session.clone(), origin.clone(), url.to_string());
        let scheme = checked.offer.scheme();
        let reservation = blocking(move || {
            ledger.reserve(&ReserveRequest {
                session: &session,
                origin: &o,
                url: &u,
                payment_hash: &hash,
                amount_msat: amount,
                fee_limit_msat: fee_limit,
                scheme,
            })
        })
        .await?
        .map_err(|e| budget_refusal(e, url.as_str(), fee_limit))?;
        abort_point("after_reserve");

        // Write the token as pending before paying.
        let store = self.store.clone();
        let (o, session) = (origin.clone(), self.config.session.clone());
        // What the credential is built from: the macaroon, or the Payment
        // challenge to echo (then bound to this path, until it expires).
        let (macaroon, bound_path, expires_at) = match &checked.offer {
            Offer::L402(c) => (c.macaroon.to_base64(), None, None),
            Offer::Payment { challenge, .. } => (
                serde_json::to_string(challenge).map_err(|e| FetchError::Task(e.to_string()))?,
                Some(url.path().to_string()),
                challenge
                    .expires_at()
                    .ok()
                    .flatten()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            ),
        };
        let invoice_text = checked.invoice.to_string();
        let inserted = blocking(move || {
            store.insert_pending(&NewToken {
                origin: &o,
                payment_hash: &hash,
                macaroon: &macaroon,
                invoice: &invoice_text,
                amount_msat: amount,
                session: &session,
                scheme,
                bound_path: bound_path.as_deref(),
                expires_at,
            })
        })
        .await?;
        if let Err(e) = inserted {
            self.release(&reservation).await;
            return Err(match e {
                crate::store::StoreError::DuplicatePaymentHash(h) => {
                    FetchError::Refused(Refusal::PaymentInFlight(h))
                }
                other => FetchError::Store(other),
            });
        }
        abort_point("after_pending");

        let ledger = self.ledger.clone();
        let r = reservation.clone();
        if let Err(e) = blocking(move || ledger.mark_in_flight(&r)).await? {
            let store = self.store.clone();
            if let BudgetError::Paused(_) = e {
                // Paused since the reservation, which the ledger gave back:
                // nothing was sent, so the pending token goes too.
                let _ = blocking(move || store.remove_token_by_hash(&hash)).await;
            } else {
                // Recovery in another process resolved it first: do not pay.
                let _ = blocking(move || store.mark_failed(&hash)).await;
            }
            return Err(e.into());
        }
        abort_point("after_in_flight");

        // Pay in a task of its own, so that a caller giving up cannot leave
        // the payment half-recorded.
        tracing::info!(
            %origin,
            payment_hash = %hash,
            amount_msat = amount,
            fee_limit_msat = fee_limit,
            "paying invoice"
        );
        let task = Settle {
            payer: self.payer.clone(),
            store: self.store.clone(),
            ledger: self.ledger.clone(),
            invoice: checked.invoice.clone(),
            reservation,
            fee_limit_msat: fee_limit,
            timeout: self.config.payment_timeout,
            call: call.clone(),
            url: url.to_string(),
            buyer_hold: buyer_hold(&self.config),
            _in_flight: in_flight,
        };
        let outcome = tokio::spawn(task.run()).await.unwrap_or_else(|e| {
            Err(FetchError::PaymentUnknown {
                payment_hash: hash,
                reason: format!("payment task failed: {e}"),
            })
        });
        let (token, payment) = outcome?;
        let token = self.remember_token(origin, &token).await?;
        tracing::info!(
            payment_hash = %hash,
            amount_msat = payment.amount_msat,
            fee_msat = payment.fee_msat,
            "payment succeeded"
        );
        Ok((
            token,
            Paid {
                amount_msat: payment.amount_msat,
                fee_msat: payment.fee_msat,
            },
        ))
    }

    async fn release(&self, reservation: &Reservation) {
        let (ledger, r) = (self.ledger.clone(), reservation.clone());
        if let Ok(Err(e)) = blocking(move || ledger.release(&r)).await {
            tracing::warn!(error = %e, "cannot release a reservation");
        }
    }

    /// Runs [`recover`](Self::recover) once per client, before its first
    /// fetch; a failure is logged, not fatal (recovery runs again before
    /// any invoice with a pending token is paid).
    pub(super) async fn recover_once(&self) {
        self.recovered
            .get_or_init(|| async {
                match self.recover().await {
                    Ok(r) if r != RecoveryReport::default() => {
                        tracing::info!(?r, "resolved payments left pending by an earlier run");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot resolve pending payments now"),
                }
            })
            .await;
    }

    /// Resolves every unresolved payment in the store with the payment
    /// backend: succeeded ones become usable tokens and committed spend;
    /// failed ones, and ones the backend never saw (once older than the
    /// grace period), are released. In-flight ones are left alone.
    pub async fn recover(&self) -> Result<RecoveryReport, FetchError> {
        let ledger = self.ledger.clone();
        let unresolved = blocking(move || ledger.unresolved(Duration::ZERO))
            .await?
            .map_err(FetchError::from)?;
        let mut report = RecoveryReport::default();
        let grace = recovery_grace(&self.config).as_secs();
        for p in unresolved {
            let hash = p.payment_hash;
            let reservation = Reservation::from(&p);
            let age = self.store.now().saturating_sub(p.updated_at);
            let status = match self.payer.status(&hash).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(payment_hash = %hash, error = %e, "cannot look up a pending payment");
                    report.still_pending += 1;
                    continue;
                }
            };
            // Released only when the payment cannot still happen: never
            // sent (only reserved), or the backend would know of it by now
            // (lnd), or its invoice has expired (a wallet over NWC can
            // carry out a request it did not know of when asked).
            let release_unknown = status == PaymentStatus::Unknown
                && (p.state == PaymentState::Reserved && age > 5
                    || age > grace
                        && (self.payer.unknown_is_final() || self.invoice_expired(&hash).await?));
            let (store, ledger) = (self.store.clone(), self.ledger.clone());
            match status {
                PaymentStatus::Succeeded(payment) if !payment.preimage.matches(&hash) => {
                    tracing::error!(payment_hash = %hash, "the payer says a pending payment succeeded, with a preimage that does not match its hash; left pending");
                    report.still_pending += 1;
                }
                PaymentStatus::Succeeded(mut payment) => {
                    if payment.amount_msat == 0 {
                        // The backend did not say: what was reserved for
                        // the invoice is its amount.
                        payment.amount_msat = p.amount_msat;
                    }
                    // Its buyer may be alive, about to record the payment and
                    // present the token (this store is shared by processes):
                    // the token stays the buyer's for as long as the buyer
                    // itself would hold it. Under the origin's lock, which a
                    // crashed buyer no longer holds, any run may use it.
                    let hold_secs = buyer_hold(&self.config).as_secs().saturating_sub(age);
                    blocking(move || {
                        let _ = ledger.commit(&reservation, payment.amount_msat, payment.fee_msat);
                        match store.get_by_hash(&hash) {
                            Ok(Some(t)) if t.info.status != TokenStatus::Stale => store
                                .mark_paid_for_buyer(
                                    &hash,
                                    &payment.preimage,
                                    payment.fee_msat,
                                    hold_secs,
                                ),
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        }
                    })
                    .await??;
                    tracing::info!(payment_hash = %hash, "a pending payment had succeeded; its token is usable");
                    report.succeeded += 1;
                }
                PaymentStatus::Failed { reason } => {
                    blocking(move || {
                        let _ = store.mark_failed(&hash);
                        ledger.fail(&reservation, &reason)
                    })
                    .await?
                    .map_err(FetchError::from)?;
                    report.released += 1;
                }
                PaymentStatus::Unknown if release_unknown => {
                    blocking(move || {
                        let _ = store.mark_failed(&hash);
                        ledger.release(&reservation)
                    })
                    .await?
                    .map_err(FetchError::from)?;
                    report.released += 1;
                }
                PaymentStatus::Unknown | PaymentStatus::InFlight => report.still_pending += 1,
            }
        }
        Ok(report)
    }
}

/// How long a token just bought stays its buyer's (see
/// [`Store::mark_paid_for_buyer`]): long enough for the buyer's retry with
/// it to be sent and answered.
fn buyer_hold(config: &super::ClientConfig) -> Duration {
    config.request_timeout + Duration::from_secs(30)
}

impl L402Client {
    /// True when the invoice of the pending token for `hash` expired more
    /// than [`EXPIRED_MARGIN`] ago: no wallet can pay it any more. A token
    /// or invoice that cannot be read bounds nothing: false.
    async fn invoice_expired(&self, hash: &PaymentHash) -> Result<bool, FetchError> {
        let (store, hash) = (self.store.clone(), *hash);
        let token = blocking(move || store.get_by_hash(&hash)).await??;
        let now = self.store.now();
        Ok(match token.map(|t| t.invoice().parse::<Invoice>()) {
            Some(Ok(invoice)) => invoice.expires_at_unix() + EXPIRED_MARGIN.as_secs() < now,
            _ => {
                tracing::warn!(payment_hash = %hash, "a pending payment's invoice cannot be read; left pending");
                false
            }
        })
    }
}

/// How long after its invoice's expiry an unanswered payment that the
/// payer does not know is still held: clocks differ, and a payment that
/// started just before the expiry may still be settling.
pub const EXPIRED_MARGIN: Duration = Duration::from_secs(10 * 60);
