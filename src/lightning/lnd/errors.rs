//! What lnd's answers mean for the money: gRPC errors and failed payments
//! become sentences, and each is sorted by what is certain.
//!
//! The rule: a payment is reported as not sent ([`PayError::Failed`] or
//! [`PayError::Unreachable`]) only when lnd's answer proves it never left:
//! the connection was never made, or lnd refused the request with one of
//! the errors its code returns before dispatching a payment (an expired
//! invoice, a macaroon without permission, a locked wallet, ...). Anything
//! else is [`PayError::Unknown`]: the client keeps the token pending and
//! asks `TrackPaymentV2` later.

use std::error::Error as _;

use tonic::{Code, Status};

use super::rpc::lnrpc::PaymentFailureReason;
use super::tls;
use crate::lightning::PayError;

/// What an error answering `SendPaymentV2`, before any payment update,
/// means.
#[derive(Debug)]
pub(crate) enum SendError {
    /// lnd already has a payment to this hash (paid, in flight, or just
    /// initiated): not a failure; its outcome is read with TrackPaymentV2.
    AlreadyExists,
    /// Certain: nothing was sent ([`PayError::Failed`] or
    /// [`PayError::Unreachable`]), or unknown ([`PayError::Unknown`]).
    Pay(PayError),
}

/// lnd's messages for requests it refuses before any payment is
/// dispatched (lnrpc/routerrpc extractIntentFromSendRequest, zpay32), as
/// (what the message contains, the sentence's start).
const REFUSED_BEFORE_SENDING: &[(&str, &str)] = &[
    ("invoice expired", "the invoice has expired"),
    (
        "not for current active network",
        "the invoice is for another network than the node's",
    ),
    (
        "self-payments not allowed",
        "the invoice is the node's own, and lnd does not pay itself",
    ),
    (
        "amount must be specified",
        "the invoice has no amount and none was given",
    ),
    (
        "amount must not be specified",
        "the invoice already names an amount",
    ),
    (
        "payment request must contain",
        "the invoice has neither a payment secret nor blinded paths",
    ),
    ("exceeds maximum", "the amount is above lnd's limit"),
    ("time preference out of range", "the request is malformed"),
];

/// lnd's messages for a macaroon it does not accept (checked before any
/// RPC runs).
const MACAROON_REFUSED: &[&str] = &[
    "permission denied",
    "verification failed",
    "macaroon",
    "invalid signature",
];

/// lnd's messages while it cannot serve yet (rpcperms, before any RPC runs).
const NOT_READY: &[&str] = &[
    "wallet locked",
    "wallet not created",
    "waiting to start",
    "not yet ready to accept calls",
    "in the process of starting up",
];

fn contains_any(message: &str, needles: &[&str]) -> bool {
    let m = message.to_ascii_lowercase();
    needles.iter().any(|n| m.contains(n))
}

/// Why lnd refused a call that lnd itself never ran (connection, macaroon,
/// readiness, missing service), as a sentence; `None` when the error is not
/// one of those. `rpc` is the method's path, e.g.
/// `/routerrpc.Router/SendPaymentV2`.
pub(crate) fn not_run(status: &Status, host: &str, rpc: &str) -> Option<String> {
    if let Some(c) = tls::connect_error(status) {
        return Some(c.to_string());
    }
    let msg = status.message();
    if matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    ) || contains_any(msg, MACAROON_REFUSED)
    {
        return Some(format!(
            "lnd at {host} refused the macaroon for {rpc} ({msg}); use a macaroon that allows {rpc} \
             (see \"Use with a real node\" in the README)"
        ));
    }
    if contains_any(msg, NOT_READY) {
        return Some(format!(
            "lnd at {host} is not ready ({msg}); unlock its wallet or wait until it has started"
        ));
    }
    if status.code() == Code::Unimplemented {
        return Some(format!(
            "lnd at {host} does not offer {rpc} ({msg}); l402-mcp needs lnd 0.13 or newer with the router RPC"
        ));
    }
    None
}

/// What an error answering SendPaymentV2 before any payment update means.
pub(crate) fn send_error(status: &Status, host: &str) -> SendError {
    const RPC: &str = "/routerrpc.Router/SendPaymentV2";
    if status.code() == Code::AlreadyExists {
        return SendError::AlreadyExists;
    }
    if let Some(sentence) = not_run(status, host, RPC) {
        return SendError::Pay(PayError::Unreachable(format!(
            "{sentence}; nothing was paid"
        )));
    }
    let msg = status.message();
    // A plain error status comes from lnd's own code; a status tonic made
    // from a transport error (it has a source) may hide a request lnd got.
    if status.source().is_none() {
        let lower = msg.to_ascii_lowercase();
        if let Some((_, start)) = REFUSED_BEFORE_SENDING
            .iter()
            .find(|(needle, _)| lower.contains(needle))
        {
            return SendError::Pay(PayError::Failed(format!(
                "{start}: lnd refused to pay it ({msg}); nothing was paid"
            )));
        }
    }
    SendError::Pay(PayError::Unknown(format!(
        "lnd at {host} answered the payment with an error that does not tell whether it was sent \
         ({}: {msg}); it is looked up again later",
        code_name(status.code())
    )))
}

/// An error while following a payment's updates (after lnd started it), or
/// while asking for its status: the outcome is not known, unless the
/// connection was never made.
pub(crate) fn stream_error(status: &Status, host: &str, rpc: &str) -> PayError {
    match not_run(status, host, rpc) {
        Some(sentence) if tls::is_connect_error(status) => PayError::Unreachable(sentence),
        Some(sentence) => PayError::Unknown(sentence),
        None => PayError::Unknown(format!(
            "lnd at {host} broke off {rpc} ({}: {})",
            code_name(status.code()),
            status.message()
        )),
    }
}

/// A failed payment's reason as a sentence. lnd reports a payment FAILED
/// only once none of its HTLCs is in flight: nothing was spent.
pub(crate) fn failure_sentence(
    reason: PaymentFailureReason,
    amount_msat: Option<u64>,
    fee_limit_msat: Option<u64>,
    timeout_secs: Option<u64>,
) -> String {
    let sats = |msat: u64| {
        if msat.is_multiple_of(1000) {
            format!("{} sat", msat / 1000)
        } else {
            format!("{}.{:03} sat", msat / 1000, msat % 1000)
        }
    };
    let what = match reason {
        PaymentFailureReason::FailureReasonNoRoute => match fee_limit_msat {
            Some(fee) => format!(
                "lnd found no route to the payee that could carry the payment within the {} fee limit",
                sats(fee)
            ),
            None => "lnd found no route to the payee that could carry the payment".to_string(),
        },
        PaymentFailureReason::FailureReasonInsufficientBalance => match amount_msat {
            Some(a) => format!(
                "the node's channels do not have enough outbound balance to pay {} plus fees",
                sats(a)
            ),
            None => "the node's channels do not have enough outbound balance".to_string(),
        },
        PaymentFailureReason::FailureReasonTimeout => match timeout_secs {
            Some(t) => format!("no route succeeded within lnd's {t} s payment timeout"),
            None => "no route succeeded within lnd's payment timeout".to_string(),
        },
        PaymentFailureReason::FailureReasonIncorrectPaymentDetails => {
            "the payee rejected the payment details (an unknown, canceled or already settled invoice, \
             a wrong amount, or an expired invoice)"
                .to_string()
        }
        PaymentFailureReason::FailureReasonError => {
            "lnd hit an error it cannot recover from while paying".to_string()
        }
        PaymentFailureReason::FailureReasonCanceled => "the payment was canceled".to_string(),
        PaymentFailureReason::FailureReasonNone => {
            "lnd reports the payment failed without a reason".to_string()
        }
    };
    format!("{what}; nothing was paid")
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightning::lnd::tls::ConnectError;

    const HOST: &str = "127.0.0.1:10009";

    fn pay(e: SendError) -> PayError {
        match e {
            SendError::Pay(p) => p,
            SendError::AlreadyExists => panic!("AlreadyExists"),
        }
    }

    #[test]
    fn already_paid_and_in_flight_resolve_through_tracking() {
        for msg in [
            "invoice is already paid",
            "payment is in transition",
            "payment already exists",
        ] {
            let s = Status::new(Code::AlreadyExists, msg);
            assert!(
                matches!(send_error(&s, HOST), SendError::AlreadyExists),
                "{msg}"
            );
        }
    }

    #[test]
    fn refusals_before_dispatch_are_failed_with_a_sentence() {
        let s = Status::new(
            Code::Unknown,
            "invoice expired. Valid until 2026-01-01 00:00:00 +0000 UTC",
        );
        let PayError::Failed(m) = pay(send_error(&s, HOST)) else {
            panic!()
        };
        assert_eq!(
            m,
            "the invoice has expired: lnd refused to pay it (invoice expired. Valid until \
             2026-01-01 00:00:00 +0000 UTC); nothing was paid"
        );
        let s = Status::new(
            Code::Unknown,
            "invoice not for current active network 'regtest'",
        );
        assert!(matches!(pay(send_error(&s, HOST)), PayError::Failed(_)));
        let s = Status::new(Code::Unknown, "self-payments not allowed");
        assert!(matches!(pay(send_error(&s, HOST)), PayError::Failed(_)));
    }

    #[test]
    fn macaroon_and_readiness_refusals_are_unreachable() {
        let s = Status::new(Code::Unknown, "permission denied");
        let PayError::Unreachable(m) = pay(send_error(&s, HOST)) else {
            panic!()
        };
        assert!(
            m.starts_with(
                "lnd at 127.0.0.1:10009 refused the macaroon for /routerrpc.Router/SendPaymentV2 (permission denied)"
            ),
            "{m}"
        );
        assert!(m.ends_with("nothing was paid"), "{m}");
        let s = Status::new(
            Code::Unknown,
            "wallet locked, unlock it to enable full RPC access",
        );
        assert!(matches!(
            pay(send_error(&s, HOST)),
            PayError::Unreachable(_)
        ));
        let s = Status::new(Code::Unimplemented, "unknown service routerrpc.Router");
        assert!(matches!(
            pay(send_error(&s, HOST)),
            PayError::Unreachable(_)
        ));
    }

    #[test]
    fn a_connection_never_made_is_unreachable() {
        let s = Status::from_error(Box::new(ConnectError {
            host: HOST.into(),
            reason: "Connection refused (os error 111)".into(),
        }));
        let PayError::Unreachable(m) = pay(send_error(&s, HOST)) else {
            panic!("{s:?}")
        };
        assert_eq!(
            m,
            "cannot connect to lnd at 127.0.0.1:10009: Connection refused (os error 111); nothing was paid"
        );
        assert!(matches!(
            stream_error(&s, HOST, "/routerrpc.Router/TrackPaymentV2"),
            PayError::Unreachable(_)
        ));
    }

    #[test]
    fn anything_else_is_unknown() {
        for (code, msg) in [
            (Code::Unavailable, "connection reset"),
            (Code::Unknown, "routerrpc server shutting down"),
            (Code::Internal, "h2 protocol error"),
            (Code::Cancelled, "operation was canceled"),
            (Code::Unknown, "unexpected payment type"),
        ] {
            let s = Status::new(code, msg);
            assert!(
                matches!(pay(send_error(&s, HOST)), PayError::Unknown(_)),
                "{msg}"
            );
            assert!(matches!(
                stream_error(&s, HOST, "/routerrpc.Router/SendPaymentV2"),
                PayError::Unknown(_)
            ));
        }
        // A known message inside a transport error is not trusted.
        let s = Status::from_error(Box::new(std::io::Error::other("invoice expired")));
        assert!(matches!(pay(send_error(&s, HOST)), PayError::Unknown(_)));
    }

    #[test]
    fn failure_reasons_are_sentences() {
        assert_eq!(
            failure_sentence(
                PaymentFailureReason::FailureReasonNoRoute,
                Some(100_000),
                Some(10_000),
                Some(55)
            ),
            "lnd found no route to the payee that could carry the payment within the 10 sat fee limit; nothing was paid"
        );
        assert_eq!(
            failure_sentence(
                PaymentFailureReason::FailureReasonInsufficientBalance,
                Some(2_000_500),
                None,
                None
            ),
            "the node's channels do not have enough outbound balance to pay 2000.500 sat plus fees; nothing was paid"
        );
        assert_eq!(
            failure_sentence(
                PaymentFailureReason::FailureReasonTimeout,
                None,
                None,
                Some(55)
            ),
            "no route succeeded within lnd's 55 s payment timeout; nothing was paid"
        );
        assert!(
            failure_sentence(
                PaymentFailureReason::FailureReasonIncorrectPaymentDetails,
                None,
                None,
                None
            )
            .contains("expired invoice")
        );
    }
}
