//! The dev Lightning network: a node that signs real regtest BOLT11
//! invoices and settles them over HTTP, and a payer that pays through it.
//!
//! [`DevNode`] is the gateway's embedded [`Invoicer`](super::Invoicer): its
//! invoices are real (`lnbcrt…`, signed with the node's own key, random
//! payment secret), and it keeps each one's preimage. [`router`] serves
//! settlement on the gateway's own listener:
//!
//! - `POST /dev/pay` with `{"invoice": "<bolt11>"}` answers
//!   `200 {"preimage": "<hex>", "amount_msat": N, "fee_msat": 0}`, or
//!   `400` malformed, `404` not issued here, `409` already paid, `410`
//!   expired, each with `{"error": "<sentence>"}`;
//! - `GET /dev/payments/{payment_hash}` answers
//!   `{"status": "succeeded", "preimage": …, "amount_msat": …, "fee_msat": 0}`,
//!   `{"status": "unpaid"}`, or `404`.
//!
//! [`DevPayer`] is the client's [`Payer`](super::Payer) on that network. It
//! refuses any invoice that is not regtest before sending anything, so a dev
//! setup can never touch real money. Everything else (macaroons, tokens,
//! budgets, the store) is the real thing; only the Lightning network is
//! stood in for.
//!
//! ```
//! use std::sync::Arc;
//! use l402_mcp::lightning::dev::{DevNode, DEFAULT_INVOICE_EXPIRY, router};
//! use l402_mcp::lightning::Invoicer;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Arc::new(DevNode::new());
//! let issued = node.create_invoice(21_000, "demo", DEFAULT_INVOICE_EXPIRY).await?;
//! let payment = node.settle(&issued.bolt11)?;
//! assert!(payment.preimage.matches(&issued.payment_hash));
//! let app: axum::Router = router(node); // .merge() into the gateway
//! # let _ = app; Ok(()) }
//! ```

mod http;
mod node;
mod payer;

pub use http::{MAX_PAY_BODY, router};
pub use node::{
    DEFAULT_INVOICE_EXPIRY, DEV_MIN_FINAL_CLTV_EXPIRY_DELTA, DevInvoiceStatus, DevNode,
    EXPIRED_INVOICE_RETENTION, InvalidNodeKey, MAX_INVOICE_EXPIRY, MAX_SETTLED_INVOICES,
    MAX_UNPAID_INVOICES, SettleError,
};
pub use payer::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DevPayer, DevPayerError};
