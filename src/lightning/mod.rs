//! Lightning: the payment side of L402, and nothing of L402 itself.
//!
//! This module owns the nouns of a Lightning payment ([`PaymentHash`],
//! [`Preimage`], [`Invoice`], [`Network`]) and the two small traits the rest
//! of the crate talks to: [`Payer`] (the client pays an invoice, and can ask
//! what became of an earlier payment) and [`Invoicer`] (the gateway asks for
//! a fresh invoice). Backends implement them: [`dev`] is the embedded dev
//! network that lets everything run without a node; [`lnd`] is a real node.

pub mod dev;
mod invoice;
pub mod lnd;
pub mod nwc;
mod types;

pub use invoice::{Invoice, InvoiceError};
pub use types::{Msat, Network, PaymentHash, Preimage, PrimitiveError};

use std::time::Duration;

use async_trait::async_trait;

/// The result of a payment that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The preimage the payee revealed; `sha256(preimage) == payment_hash`.
    pub preimage: Preimage,
    /// What the payee received, in millisatoshis.
    pub amount_msat: u64,
    /// What the route cost on top, in millisatoshis.
    pub fee_msat: u64,
}

/// What a backend knows of a payment, looked up by payment hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The payment succeeded; the preimage is known.
    Succeeded(Payment),
    /// The payment is still under way; do not pay again.
    InFlight,
    /// The payment failed for good; nothing was spent and paying again is safe.
    Failed {
        /// Why, as a sentence.
        reason: String,
    },
    /// The backend has no record of a payment to this hash: nothing was spent.
    Unknown,
}

/// Why a payment did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The payer refuses this invoice before trying (wrong network, etc.).
    #[error("{0}")]
    Refused(String),
    /// The payment was tried and failed for good: nothing was spent.
    #[error("payment failed: {0}")]
    Failed(String),
    /// The outcome is not known (timeout, connection lost mid-payment). The
    /// payment may still complete: look it up with [`Payer::status`] and
    /// never pay the same hash again meanwhile.
    #[error("payment outcome unknown: {0}")]
    Unknown(String),
    /// The backend could not be reached before anything was sent.
    #[error("payment backend unreachable: {0}")]
    Unreachable(String),
}

/// Pays invoices. Implementations: [`dev::DevPayer`], [`lnd::LndNode`],
/// [`nwc::NwcPayer`].
#[async_trait]
pub trait Payer: Send + Sync + std::fmt::Debug {
    /// The network this payer's money lives on; invoices for any other
    /// network are refused before payment.
    fn network(&self) -> Network;

    /// Pays `invoice`, spending at most `max_fee_msat` on routing fees.
    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError>;

    /// What became of an earlier payment to `payment_hash`.
    async fn status(&self, payment_hash: &PaymentHash) -> Result<PaymentStatus, PayError>;

    /// Whether [`PaymentStatus::Unknown`] from [`status`](Payer::status),
    /// asked longer than the payment timeout after the payment was sent,
    /// proves it was never made and never will be. True for lnd (it
    /// records a payment before sending it) and the dev node. False for a
    /// wallet over Nostr Wallet Connect: it may receive a request late and
    /// carry it out after answering that it knows no such payment, so an
    /// unanswered payment stays pending until its invoice has expired.
    fn unknown_is_final(&self) -> bool {
        true
    }

    /// What the payer can spend, in millisatoshis, where it says
    /// (`None`: it does not say).
    async fn balance(&self) -> Result<Option<u64>, PayError> {
        Ok(None)
    }
}

/// A fresh invoice and what the issuer knows of it.
#[derive(Clone, Debug)]
pub struct IssuedInvoice {
    /// The BOLT11 text, as sent to a client.
    pub bolt11: String,
    /// Its payment hash (the macaroon identifier binds to it).
    pub payment_hash: PaymentHash,
}

/// Why an invoice could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InvoicerError {
    /// The request itself is wrong (zero amount, memo too long, ...).
    #[error("cannot create invoice: {0}")]
    Invalid(String),
    /// The backend failed or could not be reached.
    #[error("invoice backend failed: {0}")]
    Backend(String),
}

/// Creates invoices for the gateway. Implementations: [`dev::DevNode`]; LND later.
#[async_trait]
pub trait Invoicer: Send + Sync + std::fmt::Debug {
    /// The network the invoices are for.
    fn network(&self) -> Network;

    /// Creates an invoice for `amount_msat`, with `memo` as its description,
    /// payable for `expiry`.
    async fn create_invoice(
        &self,
        amount_msat: u64,
        memo: &str,
        expiry: Duration,
    ) -> Result<IssuedInvoice, InvoicerError>;
}
