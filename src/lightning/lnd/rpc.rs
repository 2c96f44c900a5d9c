//! The gRPC client generated (by build.rs) from the vendored subset of
//! lnd's protos, and redacted `Debug` for the messages that carry
//! preimages.

#![allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]

use std::fmt;

/// lnd's `lnrpc` package: the `Lightning` service (GetInfo, AddInvoice).
pub(crate) mod lnrpc {
    include!(concat!(env!("OUT_DIR"), "/lnrpc.rs"));
}

/// lnd's `routerrpc` package: the `Router` service (SendPaymentV2,
/// TrackPaymentV2).
pub(crate) mod routerrpc {
    include!(concat!(env!("OUT_DIR"), "/routerrpc.rs"));
}

impl fmt::Debug for lnrpc::Payment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payment")
            .field("payment_hash", &self.payment_hash)
            .field("payment_preimage", &"<redacted>")
            .field("value_msat", &self.value_msat)
            .field("status", &self.status())
            .field("fee_msat", &self.fee_msat)
            .field("payment_index", &self.payment_index)
            .field("failure_reason", &self.failure_reason())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for lnrpc::Invoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoice")
            .field("memo", &self.memo)
            .field("r_preimage", &"<redacted>")
            .field("r_hash", &hex::encode(&self.r_hash))
            .field("value_msat", &self.value_msat)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}
