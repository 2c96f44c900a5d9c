//! [`NwcPayer`]: a wallet reached over Nostr Wallet Connect, as a [`Payer`].
//!
//! The promises are those of every payer: nothing sent that the client's
//! checks refused (they run before [`Payer::pay`] is called), and an
//! outcome that is not known is reported as unknown, never as failed.
//! Two things differ from lnd, and both are answered here:
//!
//! - NIP-47 has no fee limit. The wallet chooses the route and reports
//!   what it cost; that is what the ledger records, even above the fee
//!   the client reserved (the client says so in the receipt, and the
//!   budget left shrinks by the truth).
//! - A wallet may carry out a request late: the reference wallet service
//!   ignores the request's `expiration`, and relays may store requests.
//!   So a `lookup_invoice` answering NOT_FOUND does not prove a payment
//!   will never happen ([`Payer::unknown_is_final`] is false): the client
//!   keeps such a payment pending until its invoice has expired.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    BalanceResult, CallError, ErrorCode, InfoResult, LookupResult, LookupState, NwcUri, PayResult,
    ReplyError, Request, Wallet, WalletError,
};
use crate::lightning::{
    Invoice, Network, PayError, Payer, Payment, PaymentHash, PaymentStatus, Preimage,
};

/// Why a wallet cannot be used as the payer. No variant holds the
/// connection string's secret.
#[derive(Debug, thiserror::Error)]
pub enum NwcPayerError {
    /// No relay reachable, or the wallet's info event missing or unusable.
    #[error("cannot reach the wallet: {0}")]
    Connect(CallError),
    /// The wallet, or this connection, may not pay invoices.
    #[error(
        "the wallet connection does not allow pay_invoice (it offers: {offered}); create a \
         connection that may pay, in the wallet's app"
    )]
    CannotPay {
        /// The methods it lists.
        offered: String,
    },
    /// The wallet is on another network than the one configured.
    #[error(
        "the wallet is on {wallet}, but the configured network is {configured}; use a \
         connection string of a {configured} wallet, or set the network to {wallet}"
    )]
    WrongNetwork {
        /// The wallet's network.
        wallet: Network,
        /// The configured one.
        configured: Network,
    },
    /// The wallet names no network, or one this client does not know, and
    /// none is configured.
    #[error(
        "the wallet does not say which network it is on ({0}); set the network (--network, \
         L402_NETWORK or network) to the one the wallet pays on"
    )]
    NetworkUnknown(String),
    /// The wallet's `get_info` failed.
    #[error("the wallet's get_info failed: {0}")]
    Info(String),
}

/// How long the payer waits, and on what.
#[derive(Debug, Clone, Copy)]
pub struct NwcTimeouts {
    /// Reaching a relay and reading the wallet's info event.
    pub connect: Duration,
    /// One payment: the wallet's answer to `pay_invoice`; the request
    /// expires when this wait does.
    pub payment: Duration,
    /// Any other request (`get_info`, `lookup_invoice`, `get_balance`).
    pub request: Duration,
}

impl Default for NwcTimeouts {
    fn default() -> Self {
        NwcTimeouts {
            connect: Duration::from_secs(10),
            payment: Duration::from_secs(60),
            request: Duration::from_secs(15),
        }
    }
}

/// A wallet over Nostr Wallet Connect, paying invoices.
#[derive(Debug)]
pub struct NwcPayer {
    wallet: Wallet,
    network: Network,
    timeouts: NwcTimeouts,
    alias: Option<String>,
    can_lookup: bool,
    can_balance: bool,
}

impl NwcPayer {
    /// Connects to the wallet `uri` names, reads its info event and its
    /// `get_info`, and checks that it may pay and is on `network` (when
    /// one is configured; otherwise the wallet's own is taken, and a
    /// wallet that names none is refused).
    pub async fn connect(
        uri: NwcUri,
        network: Option<Network>,
        timeouts: NwcTimeouts,
    ) -> Result<NwcPayer, NwcPayerError> {
        let wallet = Wallet::connect(uri, timeouts.connect)
            .await
            .map_err(NwcPayerError::Connect)?;
        match Self::check(wallet, network, timeouts).await {
            Ok(p) => Ok(p),
            Err((wallet, e)) => {
                wallet.close().await;
                Err(e)
            }
        }
    }

    async fn check(
        wallet: Wallet,
        configured: Option<Network>,
        timeouts: NwcTimeouts,
    ) -> Result<NwcPayer, (Wallet, NwcPayerError)> {
        // The info event says what the wallet can do; get_info, where it
        // is offered, what this connection may do, and the network.
        let info = if wallet.offers("get_info") {
            let reply = match wallet.call(&Request::GetInfo, timeouts.request).await {
                Ok(r) => r,
                Err(e) => return Err((wallet, NwcPayerError::Info(e.to_string()))),
            };
            match reply.into_result::<InfoResult>() {
                Ok(info) => Some(info),
                Err(ReplyError::Wallet(WalletError {
                    code: ErrorCode::NotImplemented,
                    ..
                })) => None,
                Err(e) => return Err((wallet, NwcPayerError::Info(e.to_string()))),
            }
        } else {
            None
        };
        let may = |method: &str| match &info {
            Some(i) if !i.methods.is_empty() => i.offers(method),
            _ => wallet.offers(method),
        };
        if !may("pay_invoice") {
            let offered = match &info {
                Some(i) if !i.methods.is_empty() => i.methods.join(" "),
                _ => wallet.methods().join(" "),
            };
            return Err((wallet, NwcPayerError::CannotPay { offered }));
        }
        let (can_lookup, can_balance) = (may("lookup_invoice"), may("get_balance"));
        let said = info.as_ref().and_then(|i| i.network.clone());
        let network = match (configured, info.as_ref().and_then(InfoResult::network)) {
            (Some(configured), Some(wallet_net)) if configured != wallet_net => {
                return Err((
                    wallet,
                    NwcPayerError::WrongNetwork {
                        wallet: wallet_net,
                        configured,
                    },
                ));
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                let why = match said {
                    Some(n) => format!("it says {n:?}"),
                    None => "its get_info names none".to_string(),
                };
                return Err((wallet, NwcPayerError::NetworkUnknown(why)));
            }
        };
        if !can_lookup {
            tracing::warn!(
                "the wallet does not offer lookup_invoice: a payment whose answer is lost stays \
                 pending, its budget held, until its invoice expires"
            );
        }
        Ok(NwcPayer {
            alias: info.and_then(|i| i.alias),
            wallet,
            network,
            timeouts,
            can_lookup,
            can_balance,
        })
    }

    /// The wallet's name, if it gives one.
    pub fn alias(&self) -> Option<&str> {
        self.alias.as_deref()
    }

    /// The wallet's public key (hex).
    pub fn wallet_pubkey(&self) -> String {
        self.wallet.uri().wallet_pubkey()
    }

    /// Closes the relay connections.
    pub async fn close(&self) {
        self.wallet.close().await;
    }
}

/// The sentence for a wallet's refusal, which is also a promise that
/// nothing was paid.
fn refused(e: &WalletError) -> PayError {
    PayError::Refused(format!("{e}; nothing was paid"))
}

/// A preimage from the wallet, hex.
fn preimage(hex: &str) -> Option<Preimage> {
    hex.trim().parse().ok()
}

#[async_trait]
impl Payer for NwcPayer {
    fn network(&self) -> Network {
        self.network
    }

    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        if invoice.network() != self.network {
            return Err(PayError::Refused(format!(
                "the invoice is for {}, the wallet is on {}",
                invoice.network(),
                self.network
            )));
        }
        let Some(amount_msat) = invoice.amount_msat() else {
            return Err(PayError::Refused(
                "the invoice has no amount; amountless invoices are not paid".into(),
            ));
        };
        let request = Request::PayInvoice {
            invoice: invoice.as_str().to_string(),
        };
        let reply = match self.wallet.call(&request, self.timeouts.payment).await {
            Ok(reply) => reply,
            Err(CallError::NotSent(why)) => return Err(PayError::Unreachable(why)),
            // It may have reached the wallet: only a lookup can tell.
            Err(e @ (CallError::Unconfirmed(_) | CallError::NoAnswer(_) | CallError::Bad(_))) => {
                return Err(PayError::Unknown(e.to_string()));
            }
        };
        let result = match reply.into_result::<PayResult>() {
            Ok(r) => r,
            Err(ReplyError::Wallet(e)) => {
                return Err(match e.code {
                    // Refusals: the wallet did not try.
                    ErrorCode::InsufficientBalance
                    | ErrorCode::QuotaExceeded
                    | ErrorCode::RateLimited
                    | ErrorCode::Restricted
                    | ErrorCode::Unauthorized
                    | ErrorCode::UnsupportedEncryption
                    | ErrorCode::NotImplemented => refused(&e),
                    // Tried, and failed for good.
                    ErrorCode::PaymentFailed => PayError::Failed(e.to_string()),
                    // The wallet failed, or said something this client
                    // cannot read as a refusal: the payment may be under
                    // way.
                    ErrorCode::Internal | ErrorCode::NotFound | ErrorCode::Other(_) => {
                        PayError::Unknown(e.to_string())
                    }
                });
            }
            Err(ReplyError::Bad(e)) => return Err(PayError::Unknown(e.to_string())),
        };
        let Some(preimage) = preimage(&result.preimage) else {
            return Err(PayError::Unknown(
                "the wallet said paid but its preimage is not 64 hex digits".into(),
            ));
        };
        let fee_msat = result.fees_paid.unwrap_or(0);
        if fee_msat > max_fee_msat {
            tracing::warn!(
                payment_hash = %invoice.payment_hash(),
                fee_msat,
                reserved_msat = max_fee_msat,
                "the wallet charged more routing fee than was reserved; the ledger records what it charged"
            );
        }
        tracing::info!(
            payment_hash = %invoice.payment_hash(),
            amount_msat,
            fee_msat,
            "paid through the NWC wallet"
        );
        Ok(Payment {
            preimage,
            amount_msat,
            fee_msat,
        })
    }

    async fn status(&self, payment_hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        if !self.can_lookup {
            return Ok(PaymentStatus::Unknown);
        }
        let request = Request::LookupInvoice {
            payment_hash: *payment_hash,
        };
        let reply = self
            .wallet
            .call(&request, self.timeouts.request)
            .await
            .map_err(|e| PayError::Unreachable(e.to_string()))?;
        let found = match reply.into_result::<LookupResult>() {
            Ok(found) => found,
            Err(ReplyError::Wallet(WalletError {
                code: ErrorCode::NotFound,
                ..
            })) => return Ok(PaymentStatus::Unknown),
            Err(e) => return Err(PayError::Unreachable(e.to_string())),
        };
        Ok(match found.state() {
            LookupState::Settled {
                preimage: p,
                fee_msat,
            } => match preimage(&p) {
                Some(preimage) => PaymentStatus::Succeeded(Payment {
                    preimage,
                    // 0 when the wallet does not say: the client then
                    // records the amount it reserved for the invoice.
                    amount_msat: found.amount.unwrap_or(0),
                    fee_msat,
                }),
                None => {
                    return Err(PayError::Unknown(
                        "the wallet says settled but its preimage is not 64 hex digits".into(),
                    ));
                }
            },
            LookupState::Pending => PaymentStatus::InFlight,
            LookupState::Failed => PaymentStatus::Failed {
                reason: "the wallet says the payment failed or expired".into(),
            },
        })
    }

    fn unknown_is_final(&self) -> bool {
        false
    }

    async fn balance(&self) -> Result<Option<u64>, PayError> {
        if !self.can_balance {
            return Ok(None);
        }
        let reply = self
            .wallet
            .call(&Request::GetBalance, self.timeouts.request)
            .await
            .map_err(|e| PayError::Unreachable(e.to_string()))?;
        match reply.into_result::<BalanceResult>() {
            Ok(b) => Ok(Some(b.balance)),
            Err(e) => Err(PayError::Unreachable(e.to_string())),
        }
    }
}
