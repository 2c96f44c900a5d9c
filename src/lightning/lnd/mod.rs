//! LND over gRPC: the client's [`Payer`](super::Payer) and the gateway's
//! [`Invoicer`](super::Invoicer) on a real Lightning node.
//!
//! [`LndNode::connect`] opens one HTTP/2 connection to lnd, pinning the
//! node's self-signed `tls.cert` ([`TlsCert`]) as the only certificate
//! trusted: the node must present exactly it, valid for the host name
//! connected to, and no system roots are consulted (lnd's certificate is a
//! CA certificate, which standard verification refuses as a server's; the
//! pin checks it instead of turning verification off). It sends the
//! macaroon with every call and calls `GetInfo`: a node on another network
//! than the configured one is refused before anything else happens. Then:
//!
//! - paying is `SendPaymentV2` with an explicit fee limit and timeout,
//!   following the payment's updates until it succeeds or fails; lnd's
//!   "already paid" and "in flight" answers are followed through
//!   `TrackPaymentV2` (they are not failures), and a preimage is returned
//!   only once it hashes to the payment hash;
//! - a payment's status is the first answer of `TrackPaymentV2` (no
//!   payment to that hash: [`PaymentStatus::Unknown`](super::PaymentStatus));
//! - invoicing is `AddInvoice`, whose invoice is decoded and checked
//!   (network, amount, hash) before it is handed out.
//!
//! Errors become sentences, sorted by what is certain: a payment is said
//! not to have been sent only when lnd's answer proves it (no connection,
//! a macaroon lnd refused, an expired invoice, a route that failed); any
//! other answer is [`PayError::Unknown`](super::PayError::Unknown), and the
//! client keeps the token pending and asks again later.
//!
//! The macaroon never reaches a log line: [`LndMacaroon`]'s `Debug` is
//! redacted and the gRPC header is marked sensitive; preimages are
//! redacted in the `Debug` of lnd's messages too.
//!
//! The gRPC client is generated at build time from a subset of lnd's own
//! .proto files (`src/lightning/lnd/proto`, from lnd v0.21.3-beta, MIT),
//! with protox, a protobuf compiler in Rust: building needs no protoc.
//!
//! ```no_run
//! use l402_mcp::lightning::lnd::{LndConfig, LndMacaroon, LndNode, TlsCert};
//! use l402_mcp::lightning::{Network, Payer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = LndConfig::new(
//!     "127.0.0.1:10009".parse()?,
//!     TlsCert::from_setting("~/.lnd/tls.cert")?,
//!     LndMacaroon::from_setting("~/pay.macaroon")?,
//!     Network::Regtest,
//! );
//! let node = LndNode::connect(config).await?; // GetInfo; refuses another network
//! let invoice = "lnbcrt...".parse()?;
//! let payment = node.pay(&invoice, 10_000).await?; // at most 10 sat in fees
//! # let _ = payment; Ok(()) }
//! ```

mod credentials;
mod errors;
mod node;
mod rpc;
mod tls;

pub use credentials::{
    CredentialError, DEFAULT_LND_GRPC_PORT, LndHost, LndMacaroon, SettingForm, TlsCert,
    setting_form,
};
pub use node::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PAYMENT_TIMEOUT, DEFAULT_RPC_TIMEOUT, LndConfig, LndError,
    LndNode, NodeInfo, PAYMENT_TIMEOUT_MARGIN,
};
