//! What can go wrong in a fetch, as values a caller can match and sentences
//! an agent can act on, with lnget's exit codes.

use crate::budget::{BudgetError, Pause};
use crate::lightning::{Msat, Network, PaymentHash};
use crate::store::StoreError;

use super::net::UrlPolicyError;

/// Exit code: a general error, including a final non-2xx response.
pub const EXIT_GENERAL: u8 = 1;
/// Exit code: a check refused the payment (or the URL).
pub const EXIT_REFUSED: u8 = 2;
/// Exit code: the payment failed, or its outcome is unknown.
pub const EXIT_PAYMENT_FAILED: u8 = 3;
/// Exit code: the network failed (connect, DNS, TLS, timeout).
pub const EXIT_NETWORK: u8 = 4;

/// A check that refused to pay. Nothing was paid and nothing is reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The URL is not fetchable under the operator's policy.
    #[error(transparent)]
    Url(#[from] UrlPolicyError),
    /// The 402 carried no usable L402 challenge.
    #[error("the server asked for payment, but its challenge is unusable: {0}")]
    InvalidChallenge(String),
    /// The 402 offers only challenges this client does not pay (another
    /// `Payment` method or intent, or nothing it can read).
    #[error(
        "the server asked for payment, but offers no challenge this client pays ({0}); it pays \
         L402 and Payment with method=\"lightning\", intent=\"charge\""
    )]
    UnsupportedScheme(String),
    /// A `Payment` request's fields disagree with its invoice.
    #[error(
        "the server's Payment request does not match its invoice: {0}; paying it could buy \
         nothing, so it is never paid"
    )]
    RequestMismatch(String),
    /// A `Payment` challenge expired, or would before a payment completes.
    #[error("the server's Payment challenge {0}; retry to get a fresh one")]
    ChallengeExpiry(String),
    /// The invoice does not decode or its signature is wrong.
    #[error("the server's invoice is invalid: {0}")]
    InvalidInvoice(String),
    /// An invoice without an amount could be charged anything.
    #[error("the server's invoice has no amount; amountless invoices are never paid")]
    Amountless,
    /// The invoice has expired.
    #[error("the server's invoice expired {ago_secs} s ago; retry to get a fresh one")]
    Expired {
        /// How long ago.
        ago_secs: u64,
    },
    /// The invoice is for another network than the payer's money.
    #[error("the invoice is for {invoice}, but the payer is on {payer}; it is never paid")]
    WrongNetwork {
        /// The invoice's network.
        invoice: Network,
        /// The payer's network.
        payer: Network,
    },
    /// No payer is configured: nothing can be paid here.
    #[error(
        "no payer is configured, so nothing can be paid; a payment would need a payer on {invoice} \
         (the dev node for regtest invoices, or an lnd node)"
    )]
    NoPayer {
        /// The invoice's network.
        invoice: Network,
    },
    /// The macaroon is not bound to this invoice: paying would buy nothing.
    #[error(
        "the invoice's payment hash {invoice} differs from the macaroon's {macaroon}; \
         paying it would not buy this token"
    )]
    HashMismatch {
        /// The invoice's payment hash.
        invoice: PaymentHash,
        /// The macaroon identifier's payment hash.
        macaroon: PaymentHash,
    },
    /// The price is above the per-request cap.
    #[error(
        "{url} asks {asked}; the per-request cap is {cap}{raise}",
        asked = Msat(*asked_msat), cap = Msat(*cap_msat),
        raise = raise_refused_msat.map(|r| format!(
            " (this request asked for a cap of {}, but a request's max cost can only lower \
             the operator's cap, never raise it)", Msat(r)
        )).unwrap_or_default()
    )]
    OverCap {
        /// The URL.
        url: String,
        /// The invoice amount.
        asked_msat: u64,
        /// The cap in force (the operator's, or lower for this request).
        cap_msat: u64,
        /// The request asked for a cap above the operator's: this much.
        raise_refused_msat: Option<u64>,
    },
    /// The session budget cannot cover amount + fee limit.
    #[error(
        "{url} asks {asked} plus up to {fee} in fees; the session {session:?} has {left} left of {budget}",
        asked = Msat(*asked_msat), fee = Msat(*fee_limit_msat), left = Msat(*left_msat), budget = Msat(*budget_msat)
    )]
    OverBudget {
        /// The URL.
        url: String,
        /// The session.
        session: String,
        /// The invoice amount.
        asked_msat: u64,
        /// The fee limit.
        fee_limit_msat: u64,
        /// What is left in the session.
        left_msat: u64,
        /// The session's budget.
        budget_msat: u64,
    },
    /// What all sessions of this server may spend together cannot cover
    /// amount + fee limit.
    #[error(
        "{url} asks {asked} plus up to {fee} in fees; all sessions of this server together have \
         {left} left of the server budget of {budget} (the operator sets it with --server-budget)",
        asked = Msat(*asked_msat), fee = Msat(*fee_limit_msat), left = Msat(*left_msat), budget = Msat(*budget_msat)
    )]
    OverServerBudget {
        /// The URL.
        url: String,
        /// The invoice amount.
        asked_msat: u64,
        /// The fee limit.
        fee_limit_msat: u64,
        /// What is left in the pool.
        left_msat: u64,
        /// The pool's budget.
        budget_msat: u64,
    },
    /// The rolling 24-hour cap across sessions cannot cover it.
    #[error(
        "paying {needed} (amount plus fee limit) would exceed the 24-hour cap of {cap} ({left} left)",
        needed = Msat(*needed_msat), cap = Msat(*cap_msat), left = Msat(*left_msat)
    )]
    OverDailyCap {
        /// Amount plus fee limit.
        needed_msat: u64,
        /// Left in the window.
        left_msat: u64,
        /// The cap.
        cap_msat: u64,
    },
    /// Too many payments in the last minute.
    #[error("the payment rate limit of {per_minute} per minute is reached; retry in a minute")]
    RateLimited {
        /// The limit.
        per_minute: u32,
    },
    /// The approver said no.
    #[error("the payment of {asked} was not approved: {reason}", asked = Msat(*asked_msat))]
    NotApproved {
        /// The amount.
        asked_msat: u64,
        /// Why.
        reason: String,
    },
    /// Approval is needed but nobody can be asked.
    #[error(
        "{asked} is above the approval threshold of {threshold}, and no one can be asked to \
         approve it here; the operator can raise the threshold (--approve-above)",
        asked = Msat(*asked_msat), threshold = Msat(*threshold_msat)
    )]
    ApprovalUnavailable {
        /// The amount.
        asked_msat: u64,
        /// The threshold.
        threshold_msat: u64,
    },
    /// The operator paused every payment (the kill switch). Tokens bought
    /// before still work.
    #[error(
        "payments are {0}; nothing was paid. Tokens bought before still work; the operator \
         resumes payments with `l402-mcp resume` or the dashboard"
    )]
    Paused(Pause),
    /// A payment for this invoice is under way (here or in another
    /// process); paying again could pay twice.
    #[error("a payment for invoice {0} is already in flight; retry once it has settled")]
    PaymentInFlight(PaymentHash),
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Bad input from the caller (URL, header, method).
    #[error("{0}")]
    BadRequest(String),
    /// A check refused; nothing was paid.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The payment was tried and failed; nothing was spent.
    #[error("payment failed: {0}")]
    PaymentFailed(String),
    /// The payment's outcome is unknown; the token stays pending and the
    /// next attempt resolves it with the payment backend, never paying twice.
    #[error(
        "payment outcome unknown for invoice {payment_hash}: {reason}; it stays pending and \
         will be resolved with the payment backend before anything is paid again"
    )]
    PaymentUnknown {
        /// The invoice's payment hash.
        payment_hash: PaymentHash,
        /// What happened.
        reason: String,
    },
    /// The payment succeeded but the token could not be saved. The preimage
    /// can be recovered from the payment backend by its payment hash.
    #[error(
        "the payment of invoice {payment_hash} succeeded, but the token could not be saved: \
         {reason}; the node's payment history holds the preimage"
    )]
    PaidButNotSaved {
        /// The invoice's payment hash.
        payment_hash: PaymentHash,
        /// Why saving failed.
        reason: String,
    },
    /// Connect, DNS, TLS or timeout.
    #[error("network error: {0}")]
    Network(String),
    /// Too many redirects, or a redirect that cannot be followed.
    #[error("{0}")]
    Redirect(String),
    /// The token store failed.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    /// The spend ledger refused an operation it should not have.
    #[error("spend ledger: {0}")]
    Ledger(#[source] BudgetError),
    /// The lock file that keeps two processes from buying one origin's
    /// token twice could not be used.
    #[error("cannot {action} the origin lock {path}: {source}")]
    Lock {
        /// What was tried: "create", "open", "take".
        action: &'static str,
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A token in the store cannot be presented (no preimage, or a
    /// macaroon that does not parse): the store was changed by hand or is
    /// damaged.
    #[error("the stored token {payment_hash} cannot be used: {reason}")]
    CorruptToken {
        /// Its payment hash.
        payment_hash: PaymentHash,
        /// What is wrong.
        reason: String,
    },
    /// A task of the client's own failed (it panicked or was cancelled).
    #[error("an internal task failed: {0}")]
    Task(String),
    /// The session was never opened in this store.
    #[error("no session named {0:?} in the token store")]
    UnknownSession(String),
    /// What was asked for (a token) is not there.
    #[error("{0}")]
    NotFound(String),
}

impl From<BudgetError> for FetchError {
    fn from(e: BudgetError) -> Self {
        match e {
            BudgetError::UnknownSession(s) => FetchError::UnknownSession(s),
            BudgetError::Store(s) => FetchError::Store(s),
            BudgetError::Paused(p) => FetchError::Refused(Refusal::Paused(p)),
            e @ BudgetError::BadPauseText { .. } => FetchError::BadRequest(e.to_string()),
            other => FetchError::Ledger(other),
        }
    }
}

impl FetchError {
    /// lnget's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Refused(_) => EXIT_REFUSED,
            FetchError::PaymentFailed(_)
            | FetchError::PaymentUnknown { .. }
            | FetchError::PaidButNotSaved { .. } => EXIT_PAYMENT_FAILED,
            FetchError::Network(_) => EXIT_NETWORK,
            FetchError::BadRequest(_)
            | FetchError::Redirect(_)
            | FetchError::Store(_)
            | FetchError::Ledger(_)
            | FetchError::Lock { .. }
            | FetchError::CorruptToken { .. }
            | FetchError::Task(_)
            | FetchError::UnknownSession(_)
            | FetchError::NotFound(_) => EXIT_GENERAL,
        }
    }

    /// A short machine-readable name for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::BadRequest(_) => "bad_request",
            FetchError::Refused(r) => r.kind(),
            FetchError::PaymentFailed(_) => "payment_failed",
            FetchError::PaymentUnknown { .. } => "payment_unknown",
            FetchError::PaidButNotSaved { .. } => "paid_but_not_saved",
            FetchError::Network(_) => "network",
            FetchError::Redirect(_) => "redirect",
            FetchError::Store(_) => "store",
            FetchError::Ledger(_) => "ledger",
            FetchError::Lock { .. } => "lock",
            FetchError::CorruptToken { .. } => "corrupt_token",
            FetchError::Task(_) => "internal",
            FetchError::UnknownSession(_) => "unknown_session",
            FetchError::NotFound(_) => "not_found",
        }
    }
}

impl Refusal {
    /// A short machine-readable name for the refusal.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Url(_) => "url_refused",
            Refusal::InvalidChallenge(_) => "invalid_challenge",
            Refusal::UnsupportedScheme(_) => "unsupported_scheme",
            Refusal::RequestMismatch(_) => "request_mismatch",
            Refusal::ChallengeExpiry(_) => "challenge_expired",
            Refusal::InvalidInvoice(_) => "invalid_invoice",
            Refusal::Amountless => "amountless_invoice",
            Refusal::Expired { .. } => "invoice_expired",
            Refusal::WrongNetwork { .. } => "wrong_network",
            Refusal::NoPayer { .. } => "no_payer",
            Refusal::HashMismatch { .. } => "payment_hash_mismatch",
            Refusal::OverCap { .. } => "over_cap",
            Refusal::OverBudget { .. } => "over_budget",
            Refusal::OverServerBudget { .. } => "over_server_budget",
            Refusal::OverDailyCap { .. } => "over_daily_cap",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::NotApproved { .. } => "not_approved",
            Refusal::ApprovalUnavailable { .. } => "approval_unavailable",
            Refusal::PaymentInFlight(_) => "payment_in_flight",
            Refusal::Paused(_) => "paused",
        }
    }
}

/// Maps a ledger refusal for `url` to a [`Refusal`]; other ledger errors
/// are store errors.
pub(super) fn budget_refusal(e: BudgetError, url: &str, fee_limit_msat: u64) -> FetchError {
    match e {
        BudgetError::OverBudget {
            session,
            needed_msat,
            left_msat,
            budget_msat,
        } => FetchError::Refused(Refusal::OverBudget {
            url: url.to_string(),
            session,
            asked_msat: needed_msat.saturating_sub(fee_limit_msat),
            fee_limit_msat,
            left_msat,
            budget_msat,
        }),
        BudgetError::OverPool {
            needed_msat,
            left_msat,
            budget_msat,
            ..
        } => FetchError::Refused(Refusal::OverServerBudget {
            url: url.to_string(),
            asked_msat: needed_msat.saturating_sub(fee_limit_msat),
            fee_limit_msat,
            left_msat,
            budget_msat,
        }),
        BudgetError::OverDailyCap {
            needed_msat,
            left_msat,
            cap_msat,
        } => FetchError::Refused(Refusal::OverDailyCap {
            needed_msat,
            left_msat,
            cap_msat,
        }),
        BudgetError::RateLimited { per_minute } => {
            FetchError::Refused(Refusal::RateLimited { per_minute })
        }
        BudgetError::Paused(pause) => FetchError::Refused(Refusal::Paused(pause)),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_sentences_say_what_to_do() {
        let r = Refusal::OverCap {
            url: "https://a/x".into(),
            asked_msat: 1_200_000,
            cap_msat: 1_000_000,
            raise_refused_msat: None,
        };
        assert_eq!(
            r.to_string(),
            "https://a/x asks 1200 sats; the per-request cap is 1000 sats"
        );
        assert_eq!(Msat(1500).to_string(), "1.5 sats");
        assert_eq!(FetchError::Refused(r).exit_code(), EXIT_REFUSED);
    }

    #[test]
    fn a_max_cost_above_the_cap_is_named_in_the_refusal() {
        let r = Refusal::OverCap {
            url: "https://a/x".into(),
            asked_msat: 2_000_000,
            cap_msat: 1_000_000,
            raise_refused_msat: Some(5_000_000),
        };
        assert_eq!(
            r.to_string(),
            "https://a/x asks 2000 sats; the per-request cap is 1000 sats (this request asked \
             for a cap of 5000 sats, but a request's max cost can only lower the operator's \
             cap, never raise it)"
        );
    }
}
