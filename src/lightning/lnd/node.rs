//! [`LndNode`]: one connection to lnd, as a [`Payer`] and an [`Invoicer`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Streaming};

use super::credentials::{CredentialError, LndHost, LndMacaroon, TlsCert};
use super::errors::{self, SendError};
use super::rpc::lnrpc::{
    self, GetInfoRequest, lightning_client::LightningClient, payment::PaymentStatus as RpcStatus,
};
use super::rpc::routerrpc::{SendPaymentRequest, TrackPaymentRequest, router_client::RouterClient};
use super::tls::Connector;
use crate::lightning::{
    Invoice, Invoicer, InvoicerError, IssuedInvoice, Network, PayError, Payer, Payment,
    PaymentHash, PaymentStatus, Preimage,
};

/// How long connecting to lnd (TCP and TLS) may take: 10 s. Nothing has
/// been sent before the connection exists, so giving up is safe; a node
/// that does not accept in 10 s is down or unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call that moves no money may take (GetInfo, AddInvoice, the
/// first answer of TrackPaymentV2): 30 s. These are database reads and
/// writes on the node.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// lnd's payment timeout (SendPaymentV2's `timeout_seconds`): 60 s, lnd's
/// own default. Past it lnd starts no new attempt and fails the payment
/// once none is in flight. The CLI passes the client's payment timeout
/// less [`PAYMENT_TIMEOUT_MARGIN`], so that lnd's own answer arrives
/// before the client stops waiting.
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much sooner than the client lnd gives up trying routes: 5 s.
pub const PAYMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

const GET_INFO: &str = "/lnrpc.Lightning/GetInfo";
const ADD_INVOICE: &str = "/lnrpc.Lightning/AddInvoice";
const SEND_PAYMENT: &str = "/routerrpc.Router/SendPaymentV2";
const TRACK_PAYMENT: &str = "/routerrpc.Router/TrackPaymentV2";

/// How to reach an lnd node, and the network the operator says it is on.
///
/// | field | default |
/// |---|---|
/// | `connect_timeout` | [`DEFAULT_CONNECT_TIMEOUT`] (10 s) |
/// | `rpc_timeout` | [`DEFAULT_RPC_TIMEOUT`] (30 s) |
/// | `payment_timeout` | [`DEFAULT_PAYMENT_TIMEOUT`] (60 s) |
#[derive(Debug, Clone)]
pub struct LndConfig {
    /// The gRPC address.
    pub host: LndHost,
    /// The node's tls.cert, pinned.
    pub tls_cert: TlsCert,
    /// The macaroon sent with every call.
    pub macaroon: LndMacaroon,
    /// The network the node must be on; [`LndNode::connect`] refuses any
    /// other. `None` takes the node's own network as it is: for an
    /// invoicer, whose invoices say their network; a payer should always
    /// name one.
    pub network: Option<Network>,
    /// Connecting (TCP + TLS) may take this long.
    pub connect_timeout: Duration,
    /// A call that moves no money may take this long.
    pub rpc_timeout: Duration,
    /// lnd stops trying new routes for a payment after this long
    /// (whole seconds, at least 1).
    pub payment_timeout: Duration,
}

impl LndConfig {
    /// A configuration with the default timeouts, for a node that must be
    /// on `network`.
    pub fn new(host: LndHost, tls_cert: TlsCert, macaroon: LndMacaroon, network: Network) -> Self {
        LndConfig {
            network: Some(network),
            ..Self::any_network(host, tls_cert, macaroon)
        }
    }

    /// A configuration with the default timeouts that takes the node's own
    /// network (for an invoicer; a payer should name its network with
    /// [`LndConfig::new`]).
    pub fn any_network(host: LndHost, tls_cert: TlsCert, macaroon: LndMacaroon) -> Self {
        LndConfig {
            host,
            tls_cert,
            macaroon,
            network: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            payment_timeout: DEFAULT_PAYMENT_TIMEOUT,
        }
    }
}

/// Why [`LndNode::connect`] refused to start.
#[derive(Debug, thiserror::Error)]
pub enum LndError {
    /// A credential setting is unusable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The node could not be reached, or refused the call.
    #[error("{0}")]
    Unavailable(String),
    /// The node is on another network than the configured one.
    #[error(
        "the lnd node at {host} is on {node}, but the configured network is {configured}; \
         refusing to use it (if that node is the one you mean, set the network to {node}: \
         --network {node} or L402_NETWORK={node})"
    )]
    WrongNetwork {
        /// The node's address.
        host: String,
        /// What the node says (GetInfo's `chains[].network`).
        node: String,
        /// What the operator configured.
        configured: Network,
    },
    /// GetInfo's answer could not be understood.
    #[error("{0}")]
    BadAnswer(String),
}

/// What lnd's GetInfo said at start. Public data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's public key, hex.
    pub identity_pubkey: String,
    /// Its alias.
    pub alias: String,
    /// lnd's version string.
    pub version: String,
    /// Its network.
    pub network: Network,
    /// Its best block.
    pub block_height: u32,
    /// Whether its wallet is synced to the chain.
    pub synced_to_chain: bool,
}

/// An lnd node over gRPC: pays invoices ([`Payer`]: SendPaymentV2 and
/// TrackPaymentV2) and creates them ([`Invoicer`]: AddInvoice).
///
/// Built by [`LndNode::connect`], which calls GetInfo and refuses a node on
/// another network than the configured one. Cheap to clone (one HTTP/2
/// connection, shared; it reconnects by itself). Its `Debug` shows the
/// host and network, never the macaroon.
#[derive(Clone)]
pub struct LndNode {
    inner: Arc<Inner>,
}

struct Inner {
    host: LndHost,
    channel: Channel,
    macaroon: AsciiMetadataValue,
    info: NodeInfo,
    rpc_timeout: Duration,
    payment_timeout_secs: i32,
}

impl fmt::Debug for LndNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndNode")
            .field("host", &self.inner.host)
            .field("network", &self.inner.info.network)
            .field("alias", &self.inner.info.alias)
            .finish_non_exhaustive()
    }
}

impl LndNode {
    /// Connects, calls GetInfo, and checks the node's network against
    /// `config.network` (when it names one).
    pub async fn connect(config: LndConfig) -> Result<Self, LndError> {
        let host = config.host.clone();
        let unavailable = |reason: String| LndError::Unavailable(reason);

        // The connection: our connector pins the certificate.
        let connector = Connector::new(&host, &config.tls_cert, config.connect_timeout)
            .map_err(|e| unavailable(e.to_string()))?;
        let uri = format!("https://{host}");
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| unavailable(format!("{uri:?} is not a usable address: {e}")))?;
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let connector = connector.clone();
                async move { connector.connect().await }
            }))
            .await
            .map_err(|e| match super::tls::connect_error(&e) {
                Some(c) => unavailable(c.to_string()),
                None => unavailable(format!("cannot connect to lnd at {host}: {e}")),
            })?;

        let mut macaroon = AsciiMetadataValue::try_from(config.macaroon.header_value().as_str())
            .map_err(|_| unavailable("the lnd macaroon cannot be sent as a header".into()))?;
        // Never logged or indexed by HTTP/2 header compression.
        macaroon.set_sensitive(true);

        let payment_timeout_secs =
            i32::try_from(config.payment_timeout.as_secs().max(1)).unwrap_or(i32::MAX);

        // GetInfo: the node answers, the macaroon works, and the network is
        // the one the operator named.
        let mut client = LightningClient::new(channel.clone());
        let mut request = Request::new(GetInfoRequest {});
        request.metadata_mut().insert("macaroon", macaroon.clone());
        let info = tokio::time::timeout(config.rpc_timeout, client.get_info(request))
            .await
            .map_err(|_| {
                unavailable(format!(
                    "lnd at {host} did not answer GetInfo within {} s",
                    config.rpc_timeout.as_secs()
                ))
            })?
            .map_err(|status| {
                unavailable(
                    errors::not_run(&status, &host.to_string(), GET_INFO).unwrap_or_else(|| {
                        format!("lnd at {host} refused GetInfo: {}", status.message())
                    }),
                )
            })?
            .into_inner();
        let node_network = info
            .chains
            .first()
            .map(|c| c.network.clone())
            .ok_or_else(|| {
                LndError::BadAnswer(format!("lnd at {host} names no network in GetInfo"))
            })?;
        let parsed: Option<Network> = node_network.parse().ok();
        let network = match (parsed, config.network) {
            (Some(node), Some(configured)) if node == configured => node,
            (Some(node), None) => node,
            (_, Some(configured)) => {
                return Err(LndError::WrongNetwork {
                    host: host.to_string(),
                    node: node_network,
                    configured,
                });
            }
            (None, None) => {
                return Err(LndError::BadAnswer(format!(
                    "lnd at {host} is on a network l402-mcp does not know: {node_network:?}"
                )));
            }
        };
        let info = NodeInfo {
            identity_pubkey: info.identity_pubkey,
            alias: info.alias,
            version: info.version,
            network,
            block_height: info.block_height,
            synced_to_chain: info.synced_to_chain,
        };
        debug_assert_eq!(info.network, network);
        if !info.synced_to_chain {
            tracing::warn!(%host, "lnd is not synced to the chain yet; payments may fail until it is");
        }
        tracing::info!(
            %host,
            alias = %info.alias,
            pubkey = %info.identity_pubkey,
            version = %info.version,
            network = %info.network,
            "connected to lnd"
        );
        Ok(LndNode {
            inner: Arc::new(Inner {
                host,
                channel,
                macaroon,
                info,
                rpc_timeout: config.rpc_timeout,
                payment_timeout_secs,
            }),
        })
    }

    /// What GetInfo said at start.
    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// The node's address.
    pub fn host(&self) -> &LndHost {
        &self.inner.host
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("macaroon", self.inner.macaroon.clone());
        request
    }

    fn host_text(&self) -> String {
        self.inner.host.to_string()
    }

    /// Follows a payment's updates until it succeeds or fails. `seen` says
    /// whether lnd has already shown the payment exists (an update, or an
    /// "already exists" answer).
    async fn follow(
        &self,
        mut stream: Streaming<lnrpc::Payment>,
        expect: &Expected,
        rpc: &'static str,
        mut seen: bool,
    ) -> Result<Payment, SendError> {
        let pay = |e: PayError| SendError::Pay(e);
        loop {
            match stream.message().await {
                Ok(Some(update)) => {
                    if update.payment_hash != expect.hash.to_hex() {
                        return Err(pay(PayError::Unknown(format!(
                            "lnd answered {rpc} for payment {} with an update of payment {}",
                            expect.hash, update.payment_hash
                        ))));
                    }
                    seen = true;
                    match update.status() {
                        RpcStatus::Succeeded => {
                            return self.succeeded(&update, expect).map_err(pay);
                        }
                        RpcStatus::Failed => {
                            return Err(pay(PayError::Failed(errors::failure_sentence(
                                update.failure_reason(),
                                expect.amount_msat,
                                expect.fee_limit_msat,
                                u64::try_from(self.inner.payment_timeout_secs).ok(),
                            ))));
                        }
                        // Initiated, in flight (or a status this client
                        // does not know): keep waiting.
                        _ => continue,
                    }
                }
                Ok(None) => {
                    return Err(pay(PayError::Unknown(format!(
                        "lnd at {} ended {rpc} for payment {} before it succeeded or failed",
                        self.host_text(),
                        expect.hash
                    ))));
                }
                // Before lnd has shown the payment exists, an error may be
                // one of its refusals before sending (or "already exists").
                Err(status) if !seen && rpc == SEND_PAYMENT => {
                    return Err(errors::send_error(&status, &self.host_text()));
                }
                Err(status) => {
                    return Err(pay(errors::stream_error(&status, &self.host_text(), rpc)));
                }
            }
        }
    }

    /// Resolves a payment lnd already has (paid, or in flight) through
    /// TrackPaymentV2, following it until it succeeds or fails.
    async fn track(&self, expect: &Expected) -> Result<Payment, PayError> {
        tracing::info!(payment_hash = %expect.hash, "lnd already has this payment; following it");
        let mut router = RouterClient::new(self.inner.channel.clone());
        let request = self.request(TrackPaymentRequest {
            payment_hash: expect.hash.0.to_vec(),
            no_inflight_updates: false,
        });
        match router.track_payment_v2(request).await {
            Ok(stream) => self
                .follow(stream.into_inner(), expect, TRACK_PAYMENT, true)
                .await
                .map_err(|e| match e {
                    SendError::Pay(e) => e,
                    SendError::AlreadyExists => PayError::Unknown(format!(
                        "lnd answered TrackPaymentV2 for {} with \"already exists\"",
                        expect.hash
                    )),
                }),
            Err(status) if status.code() == Code::NotFound => Err(PayError::Unknown(format!(
                "lnd said it already has payment {} but then found no such payment",
                expect.hash
            ))),
            Err(status) => Err(errors::stream_error(
                &status,
                &self.host_text(),
                TRACK_PAYMENT,
            )),
        }
    }

    /// A SUCCEEDED update as a [`Payment`], once its preimage is checked.
    fn succeeded(&self, update: &lnrpc::Payment, expect: &Expected) -> Result<Payment, PayError> {
        let hash = &expect.hash;
        let preimage: Preimage = update.payment_preimage.parse().map_err(|_| {
            PayError::Unknown(format!(
                "lnd reports payment {hash} succeeded but its preimage is not 32 bytes of hex"
            ))
        })?;
        if !preimage.matches(hash) {
            return Err(PayError::Unknown(format!(
                "lnd reports payment {hash} succeeded but its preimage does not hash to the payment hash"
            )));
        }
        let (Ok(amount_msat), Ok(fee_msat)) = (
            u64::try_from(update.value_msat),
            u64::try_from(update.fee_msat),
        ) else {
            return Err(PayError::Unknown(format!(
                "lnd reports payment {hash} succeeded with a negative amount or fee"
            )));
        };
        // The money moved whatever these say: report what lnd paid, so that
        // the books hold the truth, and say so loudly if it is not what was
        // asked.
        if let Some(limit) = expect.fee_limit_msat
            && fee_msat > limit
        {
            tracing::warn!(payment_hash = %hash, fee_msat, fee_limit_msat = limit, "lnd paid a fee above the limit");
        }
        if let Some(asked) = expect.amount_msat
            && amount_msat != asked
        {
            tracing::warn!(payment_hash = %hash, amount_msat, invoice_msat = asked, "lnd paid another amount than the invoice's");
        }
        Ok(Payment {
            preimage,
            amount_msat,
            fee_msat,
        })
    }
}

/// What a payment is expected to be, for checking lnd's answers.
struct Expected {
    hash: PaymentHash,
    amount_msat: Option<u64>,
    fee_limit_msat: Option<u64>,
}

#[async_trait]
impl Payer for LndNode {
    fn network(&self) -> Network {
        self.inner.info.network
    }

    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        // Checks that need no node, before anything is sent.
        let network = self.inner.info.network;
        if invoice.network() != network {
            return Err(PayError::Refused(format!(
                "the invoice is for {}, the lnd node is on {network}",
                invoice.network(),
            )));
        }
        let Some(amount_msat) = invoice.amount_msat() else {
            return Err(PayError::Refused(
                "the invoice has no amount; amountless invoices are not paid".into(),
            ));
        };
        let fee_limit_msat = i64::try_from(max_fee_msat).map_err(|_| {
            PayError::Refused(format!("the fee limit {max_fee_msat} msat is too large"))
        })?;
        let expect = Expected {
            hash: invoice.payment_hash(),
            amount_msat: Some(amount_msat),
            fee_limit_msat: Some(max_fee_msat),
        };

        // SendPaymentV2, not cancelable: once started, a payment runs to its
        // end in lnd whatever happens to this process, and the client
        // resolves it later with `status` if it stops listening.
        let mut router = RouterClient::new(self.inner.channel.clone());
        let request = self.request(SendPaymentRequest {
            payment_request: invoice.as_str().to_string(),
            timeout_seconds: self.inner.payment_timeout_secs,
            fee_limit_msat,
            no_inflight_updates: false,
            cancelable: false,
        });
        let sent = match router.send_payment_v2(request).await {
            Ok(stream) => {
                self.follow(stream.into_inner(), &expect, SEND_PAYMENT, false)
                    .await
            }
            Err(status) => Err(errors::send_error(&status, &self.host_text())),
        };
        // "Already paid" / "in flight": follow the payment lnd has.
        let result = match sent {
            Ok(p) => Ok(p),
            Err(SendError::AlreadyExists) => self.track(&expect).await,
            Err(SendError::Pay(e)) => Err(e),
        };
        if let Ok(p) = &result {
            tracing::info!(
                payment_hash = %expect.hash,
                amount_msat = p.amount_msat,
                fee_msat = p.fee_msat,
                "paid through lnd"
            );
        }
        result
    }

    async fn status(&self, payment_hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        // The first update of TrackPaymentV2 (with in-flight updates) is the
        // payment's state now.
        let mut router = RouterClient::new(self.inner.channel.clone());
        let request = self.request(TrackPaymentRequest {
            payment_hash: payment_hash.0.to_vec(),
            no_inflight_updates: false,
        });
        let first = async {
            let mut stream = router.track_payment_v2(request).await?.into_inner();
            stream.message().await
        };
        let answer = tokio::time::timeout(self.inner.rpc_timeout, first)
            .await
            .map_err(|_| {
                PayError::Unknown(format!(
                    "lnd at {} did not answer TrackPaymentV2 for {payment_hash} within {} s",
                    self.host_text(),
                    self.inner.rpc_timeout.as_secs()
                ))
            })?;
        let update = match answer {
            Ok(Some(update)) => update,
            Ok(None) => {
                return Err(PayError::Unknown(format!(
                    "lnd at {} ended TrackPaymentV2 for {payment_hash} without an answer",
                    self.host_text()
                )));
            }
            // lnd has no payment to this hash: nothing was ever sent.
            Err(status) if status.code() == Code::NotFound => return Ok(PaymentStatus::Unknown),
            Err(status) => {
                return Err(errors::stream_error(
                    &status,
                    &self.host_text(),
                    TRACK_PAYMENT,
                ));
            }
        };
        let expect = Expected {
            hash: *payment_hash,
            amount_msat: None,
            fee_limit_msat: None,
        };
        if update.payment_hash != payment_hash.to_hex() {
            return Err(PayError::Unknown(format!(
                "lnd answered TrackPaymentV2 for {payment_hash} with payment {}",
                update.payment_hash
            )));
        }
        Ok(match update.status() {
            RpcStatus::Succeeded => PaymentStatus::Succeeded(self.succeeded(&update, &expect)?),
            RpcStatus::Failed => PaymentStatus::Failed {
                reason: errors::failure_sentence(update.failure_reason(), None, None, None),
            },
            // Initiated or in flight: do not pay again.
            _ => PaymentStatus::InFlight,
        })
    }
}

#[async_trait]
impl Invoicer for LndNode {
    fn network(&self) -> Network {
        self.inner.info.network
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        memo: &str,
        expiry: Duration,
    ) -> Result<IssuedInvoice, InvoicerError> {
        if amount_msat == 0 {
            return Err(InvoicerError::Invalid(
                "the amount is zero; L402 invoices name their amount".into(),
            ));
        }
        let value_msat = i64::try_from(amount_msat)
            .map_err(|_| InvoicerError::Invalid(format!("{amount_msat} msat is too large")))?;
        let expiry_secs = i64::try_from(expiry.as_secs().max(1))
            .map_err(|_| InvoicerError::Invalid("the expiry is too long".into()))?;
        let mut client = LightningClient::new(self.inner.channel.clone());
        let request = self.request(lnrpc::Invoice {
            memo: memo.to_string(),
            value_msat,
            expiry: expiry_secs,
            ..Default::default()
        });
        let host = self.host_text();
        let added = tokio::time::timeout(self.inner.rpc_timeout, client.add_invoice(request))
            .await
            .map_err(|_| {
                InvoicerError::Backend(format!(
                    "lnd at {host} did not answer AddInvoice within {} s",
                    self.inner.rpc_timeout.as_secs()
                ))
            })?
            .map_err(|status| {
                InvoicerError::Backend(errors::not_run(&status, &host, ADD_INVOICE).unwrap_or_else(
                    || format!("lnd at {host} refused AddInvoice: {}", status.message()),
                ))
            })?
            .into_inner();

        // Check lnd's invoice says what was asked before handing it out.
        let bad = |why: String| InvoicerError::Backend(format!("lnd at {host} returned {why}"));
        let hash = <[u8; 32]>::try_from(added.r_hash.as_slice())
            .map(PaymentHash)
            .map_err(|_| bad(format!("a payment hash of {} bytes", added.r_hash.len())))?;
        let invoice: Invoice = added
            .payment_request
            .parse()
            .map_err(|e| bad(format!("an invoice that does not decode: {e}")))?;
        if invoice.payment_hash() != hash {
            return Err(bad(
                "an invoice whose payment hash is not the one it reported".into(),
            ));
        }
        if invoice.network() != self.inner.info.network {
            return Err(bad(format!("an invoice for {}", invoice.network())));
        }
        if invoice.amount_msat() != Some(amount_msat) {
            return Err(bad(format!(
                "an invoice for {:?} msat instead of {amount_msat}",
                invoice.amount_msat()
            )));
        }
        Ok(IssuedInvoice {
            bolt11: added.payment_request,
            payment_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightning::lnd::rpc::lnrpc::PaymentFailureReason;

    #[test]
    fn failure_reason_enum_matches_lnds_numbers() {
        // The vendored proto must keep lnd's numbers: a drift here would
        // misreport why a payment failed.
        assert_eq!(PaymentFailureReason::FailureReasonNoRoute as i32, 2);
        assert_eq!(
            PaymentFailureReason::FailureReasonInsufficientBalance as i32,
            5
        );
        assert_eq!(RpcStatus::Succeeded as i32, 2);
        assert_eq!(RpcStatus::Failed as i32, 3);
        assert_eq!(RpcStatus::Initiated as i32, 4);
    }
}
