//! Nostr Wallet Connect (NIP-47): the protocol's nouns, the wallet reached
//! through its relays, and [`NwcPayer`].
//!
//! A wallet (Alby Hub, Coinos, Zeus, ...) hands out a connection string,
//! `nostr+walletconnect://<wallet pubkey>?relay=<url>&secret=<hex>`; the
//! client signs requests with the secret, encrypts them to the wallet
//! (NIP-44 v2 when the wallet's info event offers it, NIP-04 otherwise),
//! and sends them through the relays. This module holds what that needs
//! and can be tested without a relay: the connection string (whose secret
//! never reaches a log, an error or a `Debug`), the choice of encryption,
//! the requests, and the replies read into our own types. The parsing is
//! tolerant where wallets differ (unknown methods in `get_info`, unknown
//! error codes) and strict where money is at stake (a preimage must match
//! its payment hash: checked by the payer, as for every backend).
//!
//! See docs/NWC-NOTES.md for what the reference wallet service does.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nostr::nips::nip47::NostrWalletConnectURI;
use nostr::nips::{nip04, nip44};
use nostr::{Event, EventBuilder, Filter, Keys, Kind, Tag, TagKind, Timestamp};
use nostr_relay_pool::relay::options::ReqExitPolicy;
use nostr_relay_pool::{RelayOptions, RelayPool};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Network, PaymentHash};

mod payer;
pub use payer::{NwcPayer, NwcPayerError, NwcTimeouts};

/// Why a connection string or a reply could not be used. No variant ever
/// holds the connection string or its secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NwcError {
    /// The connection string does not parse.
    #[error(
        "the Nostr Wallet Connect URI is not valid ({0}); it looks like \
         nostr+walletconnect://<wallet pubkey>?relay=wss://...&secret=<64 hex digits>, \
         as the wallet shows it"
    )]
    BadUri(String),
    /// The wallet offers no encryption this client speaks.
    #[error(
        "the wallet offers only {offered} encryption; this client speaks nip44_v2 and nip04 \
         (UNSUPPORTED_ENCRYPTION)"
    )]
    UnsupportedEncryption {
        /// What the wallet's info event lists.
        offered: String,
    },
    /// A reply that is not NIP-47 JSON.
    #[error("the wallet's reply is not a NIP-47 response: {0}")]
    BadReply(String),
    /// A reply event that is not from the wallet, or not for this request,
    /// or whose signature does not verify: ignored, never believed.
    #[error("an event that claims to answer the wallet request is not from the wallet: {0}")]
    NotFromWallet(String),
    /// The request could not be encrypted or signed.
    #[error("cannot seal the wallet request: {0}")]
    Seal(String),
}

/// A wallet connection: the wallet's public key, the relays, and the
/// client's secret key. `Debug` and `Display` show the first two only.
#[derive(Clone)]
pub struct NwcUri {
    inner: NostrWalletConnectURI,
}

impl NwcUri {
    /// The wallet service's public key, hex.
    pub fn wallet_pubkey(&self) -> String {
        self.inner.public_key.to_hex()
    }

    /// The relays to reach the wallet through, as given.
    pub fn relays(&self) -> Vec<String> {
        self.inner.relays.iter().map(|r| r.to_string()).collect()
    }
}

impl FromStr for NwcUri {
    type Err = NwcError;

    fn from_str(s: &str) -> Result<Self, NwcError> {
        let s = s.trim();
        // Say what is wrong without echoing the text: it holds the secret.
        if !s.starts_with("nostr+walletconnect://") && !s.starts_with("nostrwalletconnect://") {
            return Err(NwcError::BadUri(
                "it does not start with nostr+walletconnect://".into(),
            ));
        }
        let inner = NostrWalletConnectURI::parse(s).map_err(|e| {
            // nostr's errors name the part that failed, never the value.
            NwcError::BadUri(e.to_string())
        })?;
        if inner.relays.is_empty() {
            return Err(NwcError::BadUri("it names no relay".into()));
        }
        Ok(NwcUri { inner })
    }
}

impl PartialEq for NwcUri {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}
impl Eq for NwcUri {}

impl fmt::Debug for NwcUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NwcUri")
            .field("wallet", &self.wallet_pubkey())
            .field("relays", &self.relays())
            .field("secret", &"<not shown>")
            .finish()
    }
}

impl fmt::Display for NwcUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wallet {} via {}",
            self.wallet_pubkey(),
            self.relays().join(", ")
        )
    }
}

/// How requests to the wallet are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// NIP-44 version 2: preferred.
    Nip44V2,
    /// NIP-04: the original, for wallets that offer nothing else.
    Nip04,
}

impl Encryption {
    /// The value of the request's `encryption` tag.
    pub fn as_tag(self) -> &'static str {
        match self {
            Encryption::Nip44V2 => "nip44_v2",
            Encryption::Nip04 => "nip04",
        }
    }

    /// The encryption to use with a wallet whose info event (kind 13194)
    /// has this `encryption` tag value (space-separated); NIP-47 says a
    /// wallet without the tag speaks NIP-04 only.
    pub fn choose(offered: Option<&str>) -> Result<Encryption, NwcError> {
        let Some(offered) = offered else {
            return Ok(Encryption::Nip04);
        };
        let names: Vec<&str> = offered.split_whitespace().collect();
        if names.contains(&"nip44_v2") {
            Ok(Encryption::Nip44V2)
        } else if names.contains(&"nip04") {
            Ok(Encryption::Nip04)
        } else {
            Err(NwcError::UnsupportedEncryption {
                offered: if offered.trim().is_empty() {
                    "no".into()
                } else {
                    offered.trim().to_string()
                },
            })
        }
    }
}

/// A request sealed for the wallet: the signed event to publish (kind
/// 23194, encrypted to the wallet, tagged with the encryption used and an
/// expiry after which the wallet must not carry it out).
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The event to publish.
    pub event: Event,
    /// The encryption used (the reply comes back in the same).
    pub encryption: Encryption,
}

impl NwcUri {
    /// Seals `request` for the wallet: encrypted with `encryption`, signed
    /// with the connection's secret, expiring at `expires_at` (unix
    /// seconds): a wallet that honours NIP-40 then never carries out a
    /// request the client has given up on.
    pub fn seal(
        &self,
        request: &Request,
        encryption: Encryption,
        expires_at: u64,
    ) -> Result<Sealed, NwcError> {
        let keys = Keys::new(self.inner.secret.clone());
        let wallet = self.inner.public_key;
        let plain = request.to_json();
        let content = match encryption {
            Encryption::Nip44V2 => {
                nip44::encrypt(keys.secret_key(), &wallet, &plain, nip44::Version::V2)
                    .map_err(|e| NwcError::Seal(e.to_string()))?
            }
            Encryption::Nip04 => nip04::encrypt(keys.secret_key(), &wallet, &plain)
                .map_err(|e| NwcError::Seal(e.to_string()))?,
        };
        let event = EventBuilder::new(Kind::WalletConnectRequest, content)
            .tag(Tag::public_key(wallet))
            .tag(Tag::custom(
                TagKind::custom("encryption"),
                [encryption.as_tag()],
            ))
            .tag(Tag::expiration(Timestamp::from(expires_at)))
            .sign_with_keys(&keys)
            .map_err(|e| NwcError::Seal(e.to_string()))?;
        Ok(Sealed { event, encryption })
    }

    /// Opens the wallet's answer to `sealed`: only an event signed by the
    /// wallet (signature checked), of the response kind, referring to the
    /// request, is read.
    pub fn open(&self, sealed: &Sealed, reply: &Event) -> Result<Reply, NwcError> {
        if reply.pubkey != self.inner.public_key {
            return Err(NwcError::NotFromWallet(format!(
                "signed by {}, not the wallet {}",
                reply.pubkey.to_hex(),
                self.wallet_pubkey()
            )));
        }
        if reply.kind != Kind::WalletConnectResponse {
            return Err(NwcError::NotFromWallet(format!(
                "kind {}, not a response",
                reply.kind.as_u16()
            )));
        }
        reply
            .verify()
            .map_err(|e| NwcError::NotFromWallet(format!("its signature does not verify ({e})")))?;
        let refers = reply.tags.iter().any(|t| {
            let v = t.as_slice();
            v.len() >= 2 && v[0] == "e" && v[1] == sealed.event.id.to_hex()
        });
        if !refers {
            return Err(NwcError::NotFromWallet(
                "it does not refer to the request".into(),
            ));
        }
        let keys = Keys::new(self.inner.secret.clone());
        let undecryptable = |e: String| NwcError::BadReply(format!("cannot decrypt it: {e}"));
        let plain = match sealed.encryption {
            Encryption::Nip44V2 => nip44::decrypt(keys.secret_key(), &reply.pubkey, &reply.content)
                .map_err(|e| undecryptable(e.to_string()))?,
            Encryption::Nip04 => nip04::decrypt(keys.secret_key(), &reply.pubkey, &reply.content)
                .map_err(|e| undecryptable(e.to_string()))?,
        };
        Reply::parse(&plain)
    }
}

/// Why a call to the wallet did not come back with a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No relay took the request: it was never sent, so nothing can have
    /// been carried out.
    #[error("no relay took the wallet request ({0}); nothing was sent")]
    NotSent(String),
    /// The request was handed to a relay but none confirmed taking it (no
    /// `OK` in time, the connection dropped): it may have reached the
    /// wallet, so for a payment the outcome is unknown.
    #[error("no relay confirmed taking the wallet request ({0}); it may have reached the wallet")]
    Unconfirmed(String),
    /// The request went out and no answer came in time: the wallet may
    /// still carry it out (the reference wallet ignores the expiration), so
    /// for a payment the outcome is unknown.
    #[error("the wallet did not answer within {:.1} s", .0.as_secs_f64())]
    NoAnswer(Duration),
    /// The request or the reply could not be used.
    #[error(transparent)]
    Bad(#[from] NwcError),
}

/// A connection to a wallet through its relays: ready once
/// [`Wallet::connect`] has reached a relay and read the wallet's info
/// event (which decides the encryption).
#[derive(Debug)]
pub struct Wallet {
    uri: NwcUri,
    pool: RelayPool,
    encryption: Encryption,
    /// The methods the info event lists.
    methods: Vec<String>,
}

impl Wallet {
    /// Connects to the relays of `uri` within `timeout` and reads the
    /// wallet's info event. No relay reachable is an error naming each one
    /// and why (never a hang); relays that are down while others answer
    /// are logged and retried in the background.
    pub async fn connect(uri: NwcUri, timeout: Duration) -> Result<Wallet, CallError> {
        let pool = RelayPool::default();
        for relay in &uri.inner.relays {
            let opts = RelayOptions::default().retry_interval(Duration::from_secs(2));
            pool.add_relay(relay.clone(), opts)
                .await
                .map_err(|e| NwcError::BadUri(format!("relay {relay}: {e}")))?;
        }
        let connected = pool.try_connect(timeout).await;
        if connected.success.is_empty() {
            let why = failures(&connected.failed);
            pool.shutdown().await;
            return Err(CallError::NotSent(format!(
                "no relay of the wallet connection could be reached: {why}"
            )));
        }
        if !connected.failed.is_empty() {
            tracing::warn!(failed = %failures(&connected.failed), "some wallet relays are down; retrying them in the background");
        }
        // From the relays that answered only: one that is down never sends
        // its end of stored events, and would hold this for the whole
        // timeout.
        let up: Vec<nostr::RelayUrl> = connected.success.iter().cloned().collect();
        let info = pool
            .fetch_events_from(
                up,
                Filter::new()
                    .author(uri.inner.public_key)
                    .kind(Kind::WalletConnectInfo)
                    .limit(1),
                timeout,
                ReqExitPolicy::ExitOnEOSE,
            )
            .await
            .map_err(|e| CallError::NotSent(format!("cannot read the wallet's info event: {e}")))?;
        let Some(info) = info.first() else {
            pool.shutdown().await;
            return Err(CallError::Bad(NwcError::BadReply(
                "the wallet has published no info event (kind 13194) on its relays: is the \
                 connection string for a running wallet?"
                    .into(),
            )));
        };
        let offered = info.tags.iter().find_map(|t| match t.as_slice() {
            [name, value, ..] if name == "encryption" => Some(value.clone()),
            _ => None,
        });
        let encryption = Encryption::choose(offered.as_deref())?;
        let methods = info
            .content
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Wallet {
            uri,
            pool,
            encryption,
            methods,
        })
    }

    /// The encryption the requests use.
    pub fn encryption(&self) -> Encryption {
        self.encryption
    }

    /// The methods the wallet's info event lists.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// The connection string this wallet was reached with.
    pub fn uri(&self) -> &NwcUri {
        &self.uri
    }

    /// Whether the wallet's info event lists `method`.
    pub fn offers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// Sends `request` and waits about `timeout` for the wallet's answer.
    ///
    /// The request carries a NIP-40 expiration so that a wallet that
    /// honours it can start the request only while this call waits: the
    /// expiration is a whole second, and a wallet takes an event as
    /// expired only once that second has passed, so it is set a second
    /// before the end of the wait (and the wait is stretched to a second
    /// past it when `timeout` is too short for that).
    pub async fn call(&self, request: &Request, timeout: Duration) -> Result<Reply, CallError> {
        let (expires_at, wait) = expiry(std::time::SystemTime::now(), timeout);
        let deadline = tokio::time::Instant::now() + wait;
        let sealed = self.uri.seal(request, self.encryption, expires_at)?;
        let up = self.connected().await;
        if up.is_empty() {
            return Err(CallError::NotSent(self.down_relays().await));
        }
        // Listen before sending, so that a quick answer is not missed.
        let mut answers = self
            .pool
            .stream_events_from(
                up.clone(),
                Filter::new()
                    .author(self.uri.inner.public_key)
                    .kind(Kind::WalletConnectResponse)
                    .event(sealed.event.id),
                wait,
                ReqExitPolicy::WaitForEvents(1),
            )
            .await
            .map_err(|e| CallError::NotSent(format!("cannot listen for the answer: {e}")))?;
        self.send(&sealed.event, &up, deadline).await?;
        loop {
            use nostr_relay_pool::prelude::StreamExt;
            let next = tokio::time::timeout_at(deadline, answers.next()).await;
            match next {
                Ok(Some(event)) => match self.uri.open(&sealed, &event) {
                    Ok(reply) => return Ok(reply),
                    // Not the wallet's, or not for this request: ignored.
                    Err(NwcError::NotFromWallet(why)) => {
                        tracing::warn!(%why, "ignored an event that claimed to answer the wallet request");
                    }
                    Err(e) => return Err(e.into()),
                },
                Ok(None) | Err(_) => return Err(CallError::NoAnswer(wait)),
            }
        }
    }

    /// The relays connected now.
    async fn connected(&self) -> Vec<nostr::RelayUrl> {
        let mut up: Vec<_> = self
            .pool
            .relays()
            .await
            .into_iter()
            .filter(|(_, relay)| relay.is_connected())
            .map(|(url, _)| url)
            .collect();
        up.sort();
        up
    }

    /// Every relay, as "url: not connected", for an error.
    async fn down_relays(&self) -> String {
        let mut down: Vec<String> = self
            .pool
            .relays()
            .await
            .keys()
            .map(|url| format!("{url}: not connected"))
            .collect();
        down.sort();
        if down.is_empty() {
            "the connection names no relay".into()
        } else {
            down.join("; ")
        }
    }

    /// Publishes `event` to the relays `up` at once, and returns as soon
    /// as one has taken it (its `OK`), at the latest at `deadline`. When
    /// none did, the error tells whether it can have gone out:
    /// [`CallError::NotSent`] only when each refused it (its `OK` false,
    /// or writing disabled), [`CallError::Unconfirmed`] otherwise (no
    /// `OK` in time, a connection dropped after the write). A relay not
    /// connected is never tried: the event cannot go out through it, and
    /// its `send_event` answers `NotConnected` both then and when the
    /// connection drops after the write, so that error alone cannot tell.
    /// (The pool's own `send_event` cannot be used: it is Ok when no relay
    /// took the event, its errors are text, and it waits for the slowest
    /// relay.)
    async fn send(
        &self,
        event: &Event,
        up: &[nostr::RelayUrl],
        deadline: tokio::time::Instant,
    ) -> Result<(), CallError> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        use nostr_relay_pool::relay::Error as RelayError;
        let relays = self.pool.relays().await;
        let mut sends: FuturesUnordered<_> = up
            .iter()
            .filter_map(|url| relays.get(url).map(|relay| (url, relay)))
            .map(|(url, relay)| async move { (url.to_string(), relay.send_event(event).await) })
            .collect();
        let mut why = Vec::new();
        let mut maybe_sent = false;
        loop {
            match tokio::time::timeout_at(deadline, sends.next()).await {
                Ok(Some((_, Ok(_)))) => return Ok(()),
                Ok(Some((url, Err(e)))) => {
                    maybe_sent |=
                        !matches!(e, RelayError::WriteDisabled | RelayError::RelayMessage(_));
                    why.push(format!("{url}: {e}"));
                }
                Ok(None) => break,
                Err(_) => {
                    maybe_sent = true;
                    why.push("no relay confirmed it before the deadline".into());
                    break;
                }
            }
        }
        why.sort();
        let why = why.join("; ");
        Err(if maybe_sent {
            CallError::Unconfirmed(why)
        } else {
            CallError::NotSent(why)
        })
    }

    /// Closes the relay connections.
    pub async fn close(&self) {
        self.pool.shutdown().await;
    }
}

/// The NIP-40 expiration (unix seconds) of a request sent at `now` by a
/// call that waits `timeout`, and how long the call then waits: the
/// request expires at least a second before the wait ends (a wallet takes
/// an event as expired only after its expiration second), and never in
/// less than a second from now.
fn expiry(now: std::time::SystemTime, timeout: Duration) -> (u64, Duration) {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let end = now + timeout;
    let expires_at = (end.as_secs().saturating_sub(1)).max(now.as_secs() + 1);
    // The wallet may start it until expires_at + 1 s.
    let last_start = Duration::from_secs(expires_at + 1);
    let wait = timeout.max(last_start.saturating_sub(now));
    (expires_at, wait)
}

fn failures(failed: &std::collections::HashMap<nostr::RelayUrl, String>) -> String {
    let mut v: Vec<String> = failed
        .iter()
        .map(|(url, why)| format!("{url}: {why}"))
        .collect();
    v.sort();
    if v.is_empty() {
        "no relay answered".into()
    } else {
        v.join("; ")
    }
}

/// The requests this client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Pay a BOLT11 invoice (the amount is the invoice's).
    PayInvoice {
        /// The invoice.
        invoice: String,
    },
    /// What became of a payment, by its payment hash.
    LookupInvoice {
        /// The payment hash.
        payment_hash: PaymentHash,
    },
    /// The wallet's methods and network.
    GetInfo,
    /// The wallet's balance.
    GetBalance,
}

impl Request {
    /// The NIP-47 method name.
    pub fn method(&self) -> &'static str {
        match self {
            Request::PayInvoice { .. } => "pay_invoice",
            Request::LookupInvoice { .. } => "lookup_invoice",
            Request::GetInfo => "get_info",
            Request::GetBalance => "get_balance",
        }
    }

    /// The request's plaintext content, before encryption.
    pub fn to_json(&self) -> String {
        let params = match self {
            Request::PayInvoice { invoice } => json!({ "invoice": invoice }),
            Request::LookupInvoice { payment_hash } => {
                json!({ "payment_hash": payment_hash.to_hex() })
            }
            Request::GetInfo | Request::GetBalance => json!({}),
        };
        json!({ "method": self.method(), "params": params }).to_string()
    }
}

/// A wallet's error code. Codes this client does not know are kept as
/// they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not enough funds for the amount and the fee reserve.
    InsufficientBalance,
    /// The wallet's own budget for this connection is spent.
    QuotaExceeded,
    /// Requests come too fast.
    RateLimited,
    /// This connection may not do that.
    Restricted,
    /// No wallet is connected to this key.
    Unauthorized,
    /// The payment failed (no route, timeout, ...).
    PaymentFailed,
    /// No such invoice or payment.
    NotFound,
    /// The wallet cannot decrypt what was sent.
    UnsupportedEncryption,
    /// The wallet does not offer the method.
    NotImplemented,
    /// The wallet failed.
    Internal,
    /// Another code.
    Other(String),
}

impl ErrorCode {
    /// The code as NIP-47 spells it.
    pub fn parse(code: &str) -> Self {
        match code {
            "INSUFFICIENT_BALANCE" => ErrorCode::InsufficientBalance,
            "QUOTA_EXCEEDED" => ErrorCode::QuotaExceeded,
            "RATE_LIMITED" => ErrorCode::RateLimited,
            "RESTRICTED" => ErrorCode::Restricted,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "PAYMENT_FAILED" => ErrorCode::PaymentFailed,
            "NOT_FOUND" => ErrorCode::NotFound,
            "UNSUPPORTED_ENCRYPTION" => ErrorCode::UnsupportedEncryption,
            "NOT_IMPLEMENTED" => ErrorCode::NotImplemented,
            "INTERNAL" => ErrorCode::Internal,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// What an agent (or its operator) can do about it.
    pub fn what_to_do(&self) -> &'static str {
        match self {
            ErrorCode::InsufficientBalance => {
                "the wallet has too little for the amount and its fee reserve: the operator can \
                 top it up"
            }
            ErrorCode::QuotaExceeded => {
                "the wallet's own budget for this connection is spent: the operator can raise it \
                 in the wallet"
            }
            ErrorCode::RateLimited => "the wallet refuses requests this fast: retry in a minute",
            ErrorCode::Restricted => {
                "this connection may not pay invoices: the operator can grant pay_invoice in the \
                 wallet"
            }
            ErrorCode::Unauthorized => {
                "the wallet knows no connection for this key: the operator must create a new \
                 connection string"
            }
            ErrorCode::PaymentFailed => "the payment failed: nothing was spent; retry later",
            ErrorCode::NotFound => "the wallet knows no such payment",
            ErrorCode::UnsupportedEncryption => {
                "the wallet cannot read this client's encryption: the wallet may need an update"
            }
            ErrorCode::NotImplemented => "the wallet does not offer this method",
            ErrorCode::Internal | ErrorCode::Other(_) => "the wallet failed; retry later",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorCode::InsufficientBalance => "INSUFFICIENT_BALANCE",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Restricted => "RESTRICTED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::PaymentFailed => "PAYMENT_FAILED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::UnsupportedEncryption => "UNSUPPORTED_ENCRYPTION",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Other(code) => code,
        };
        f.write_str(s)
    }
}

/// A wallet's error: its code and its own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletError {
    /// The code.
    pub code: ErrorCode,
    /// The wallet's sentence (remote text: shown fenced, never obeyed).
    pub message: String,
}

impl fmt::Display for WalletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the wallet answered {}: {} (its message: {:?})",
            self.code,
            self.code.what_to_do(),
            self.message
        )
    }
}

/// A reply, decrypted: the method it answers, and its result or error.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The method it answers.
    pub result_type: String,
    /// The wallet's error, if it refused or failed.
    pub error: Option<WalletError>,
    /// The result, when there is no error.
    pub result: Option<Value>,
}

#[derive(Deserialize)]
struct RawReply {
    result_type: String,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    result: Option<Value>,
}

#[derive(Deserialize)]
struct RawError {
    code: String,
    #[serde(default)]
    message: String,
}

impl Reply {
    /// Reads a decrypted reply; unknown codes and extra fields are kept or
    /// ignored, never a reason to drop the reply.
    pub fn parse(text: &str) -> Result<Reply, NwcError> {
        let raw: RawReply =
            serde_json::from_str(text).map_err(|e| NwcError::BadReply(e.to_string()))?;
        Ok(Reply {
            result_type: raw.result_type,
            error: raw.error.map(|e| WalletError {
                code: ErrorCode::parse(&e.code),
                message: e.message,
            }),
            result: raw.result.filter(|v| !v.is_null()),
        })
    }

    /// The result read as `T`, or the wallet's error.
    pub fn into_result<T: for<'de> Deserialize<'de>>(self) -> Result<T, ReplyError> {
        if let Some(e) = self.error {
            return Err(ReplyError::Wallet(e));
        }
        let value = self
            .result
            .ok_or_else(|| ReplyError::Bad(NwcError::BadReply("no result and no error".into())))?;
        serde_json::from_value(value)
            .map_err(|e| ReplyError::Bad(NwcError::BadReply(e.to_string())))
    }
}

/// Why a reply gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The wallet answered with an error.
    #[error("{0}")]
    Wallet(WalletError),
    /// The reply could not be read.
    #[error(transparent)]
    Bad(NwcError),
}

/// `pay_invoice`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PayResult {
    /// The preimage, hex.
    pub preimage: String,
    /// The routing fee the wallet paid, msat (some wallets leave it out).
    #[serde(default)]
    pub fees_paid: Option<u64>,
}

/// `lookup_invoice`'s result, the fields a payment's outcome needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LookupResult {
    /// `settled`, `pending`, `failed` or `expired` (newer wallets).
    #[serde(default)]
    pub state: Option<String>,
    /// Set once settled (older wallets say settled only through this).
    #[serde(default)]
    pub settled_at: Option<u64>,
    /// The preimage, once settled.
    #[serde(default)]
    pub preimage: Option<String>,
    /// The amount, msat.
    #[serde(default)]
    pub amount: Option<u64>,
    /// The routing fee, msat.
    #[serde(default)]
    pub fees_paid: Option<u64>,
}

/// What a lookup says of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupState {
    /// Paid, with this preimage (hex) and fee.
    Settled {
        /// The preimage, hex.
        preimage: String,
        /// The fee, msat (0 when the wallet does not say).
        fee_msat: u64,
    },
    /// Still under way.
    Pending,
    /// Failed or expired: nothing was spent.
    Failed,
}

impl LookupResult {
    /// The payment's state: settled needs a preimage; a state the wallet
    /// does not spell out is still pending (never taken as failed: paying
    /// again could pay twice).
    pub fn state(&self) -> LookupState {
        let state = self.state.as_deref().unwrap_or("");
        let settled = state == "settled" || (state.is_empty() && self.settled_at.is_some());
        match (&self.preimage, state) {
            (Some(p), _) if settled && !p.is_empty() => LookupState::Settled {
                preimage: p.clone(),
                fee_msat: self.fees_paid.unwrap_or(0),
            },
            (_, "failed" | "expired") => LookupState::Failed,
            _ => LookupState::Pending,
        }
    }
}

/// `get_info`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InfoResult {
    /// The methods the wallet offers (any names: unknown ones are kept).
    #[serde(default)]
    pub methods: Vec<String>,
    /// The wallet's network (`mainnet`, `testnet`, `signet`, `regtest`).
    #[serde(default)]
    pub network: Option<String>,
    /// Its name, if it gives one.
    #[serde(default)]
    pub alias: Option<String>,
}

impl InfoResult {
    /// The wallet's network, when it names one this client knows.
    pub fn network(&self) -> Option<Network> {
        self.network.as_deref().and_then(|n| n.parse().ok())
    }

    /// Whether the wallet offers `method`.
    pub fn offers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// `get_balance`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BalanceResult {
    /// The balance, msat.
    pub balance: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4";
    const SECRET: &str = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";

    fn uri() -> String {
        format!(
            "nostr+walletconnect://{WALLET}?relay=wss%3A%2F%2Frelay.example.com&relay=ws%3A%2F%2F127.0.0.1%3A7777&secret={SECRET}"
        )
    }

    #[test]
    fn a_request_expires_so_that_a_wallet_can_start_it_only_while_the_call_waits() {
        use std::time::UNIX_EPOCH;
        for start_ms in [1_000_000u64, 1_000_400, 1_000_650, 1_000_999] {
            for timeout_ms in [100u64, 500, 999, 1_000, 1_500, 2_000, 15_000, 55_000] {
                let now = UNIX_EPOCH + Duration::from_millis(start_ms);
                let timeout = Duration::from_millis(timeout_ms);
                let (expires_at, wait) = expiry(now, timeout);
                let (start, end) = (
                    start_ms as f64 / 1e3,
                    (start_ms as f64 + wait.as_millis() as f64) / 1e3,
                );
                let case = format!(
                    "start {start}, timeout {timeout:?}: expires {expires_at}, waits {wait:?}"
                );
                // Not already expired when sent.
                assert!(expires_at as f64 > start, "{case}");
                // A wallet may start it until expires_at + 1: within the wait.
                assert!((expires_at + 1) as f64 <= end + 1e-9, "{case}");
                // The wait is the one asked for, stretched at most to 2 s.
                assert!(
                    wait >= timeout && wait <= timeout.max(Duration::from_secs(2)),
                    "{case}"
                );
                // And the request does not expire long before the wait ends.
                assert!((expires_at + 1) as f64 > end - 1.0 - 1e-9, "{case}");
            }
        }
    }

    #[test]
    fn a_connection_string_parses_and_never_shows_its_secret() {
        let u: NwcUri = uri().parse().unwrap();
        assert_eq!(u.wallet_pubkey(), WALLET);
        assert_eq!(u.relays().len(), 2);
        for shown in [format!("{u:?}"), u.to_string()] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains(WALLET), "{shown}");
        }
    }

    #[test]
    fn a_bad_connection_string_is_a_sentence_without_the_secret() {
        for bad in [
            format!("https://{WALLET}?secret={SECRET}"),
            format!("nostr+walletconnect://{WALLET}?relay=wss%3A%2F%2Fr.example&secret=zz{SECRET}"),
            format!("nostr+walletconnect://{WALLET}?secret={SECRET}"),
        ] {
            let err = bad.parse::<NwcUri>().unwrap_err().to_string();
            assert!(
                !err.contains(SECRET) && !err.contains(&SECRET[4..]),
                "{err}"
            );
            assert!(err.contains("nostr+walletconnect://"), "{err}");
        }
    }

    #[test]
    fn nip44_v2_is_chosen_when_offered_and_nip04_is_the_fallback() {
        assert_eq!(
            Encryption::choose(Some("nip04 nip44_v2")).unwrap(),
            Encryption::Nip44V2
        );
        assert_eq!(
            Encryption::choose(Some("nip04")).unwrap(),
            Encryption::Nip04
        );
        assert_eq!(Encryption::choose(None).unwrap(), Encryption::Nip04);
        let err = Encryption::choose(Some("nip99")).unwrap_err();
        assert!(err.to_string().contains("UNSUPPORTED_ENCRYPTION"), "{err}");
    }

    #[test]
    fn requests_are_nip47_json() {
        let hash = PaymentHash([0xab; 32]);
        let v: Value =
            serde_json::from_str(&Request::LookupInvoice { payment_hash: hash }.to_json()).unwrap();
        assert_eq!(v["method"], "lookup_invoice");
        assert_eq!(v["params"]["payment_hash"], hash.to_hex());
        let v: Value = serde_json::from_str(
            &Request::PayInvoice {
                invoice: "lnbcrt1".into(),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"method": "pay_invoice", "params": {"invoice": "lnbcrt1"}})
        );
    }

    #[test]
    fn every_error_code_of_the_issue_is_known_and_unknown_ones_are_kept() {
        for code in [
            "INSUFFICIENT_BALANCE",
            "QUOTA_EXCEEDED",
            "RATE_LIMITED",
            "RESTRICTED",
            "UNAUTHORIZED",
            "PAYMENT_FAILED",
            "NOT_FOUND",
            "UNSUPPORTED_ENCRYPTION",
            "INTERNAL",
        ] {
            let c = ErrorCode::parse(code);
            assert!(!matches!(c, ErrorCode::Other(_)), "{code}");
            assert_eq!(c.to_string(), code);
        }
        let reply = Reply::parse(
            r#"{"result_type":"pay_invoice","error":{"code":"WALLET_ON_FIRE","message":"x"},"result":null}"#,
        )
        .unwrap();
        let err = reply.into_result::<PayResult>().unwrap_err();
        assert!(err.to_string().contains("WALLET_ON_FIRE"), "{err}");
    }

    #[test]
    fn replies_read_into_results() {
        let pay = Reply::parse(
            r#"{"result_type":"pay_invoice","result":{"preimage":"00ff","fees_paid":1000}}"#,
        )
        .unwrap()
        .into_result::<PayResult>()
        .unwrap();
        assert_eq!(pay.fees_paid, Some(1000));
        let info = Reply::parse(
            r#"{"result_type":"get_info","result":{"methods":["pay_invoice","sign_message","get_budget"],"network":"regtest"}}"#,
        )
        .unwrap()
        .into_result::<InfoResult>()
        .unwrap();
        assert!(info.offers("pay_invoice") && info.offers("get_budget"));
        assert_eq!(info.network(), Some(Network::Regtest));
        let err = Reply::parse(r#"{"result_type":"pay_invoice","error":{"code":"INSUFFICIENT_BALANCE","message":"low"}}"#)
            .unwrap()
            .into_result::<PayResult>()
            .unwrap_err();
        assert!(matches!(
            err,
            ReplyError::Wallet(WalletError {
                code: ErrorCode::InsufficientBalance,
                ..
            })
        ));
    }

    #[test]
    fn a_lookup_is_settled_only_with_a_preimage_and_never_guessed_failed() {
        let read =
            |j: &str| -> LookupState { serde_json::from_str::<LookupResult>(j).unwrap().state() };
        assert_eq!(
            read(r#"{"state":"settled","preimage":"aa","fees_paid":5}"#),
            LookupState::Settled {
                preimage: "aa".into(),
                fee_msat: 5
            }
        );
        assert_eq!(
            read(r#"{"settled_at":1700000000,"preimage":"aa"}"#),
            LookupState::Settled {
                preimage: "aa".into(),
                fee_msat: 0
            }
        );
        assert_eq!(read(r#"{"state":"settled"}"#), LookupState::Pending);
        assert_eq!(read(r#"{"state":"failed"}"#), LookupState::Failed);
        assert_eq!(read(r#"{"state":"expired"}"#), LookupState::Failed);
        assert_eq!(read(r#"{}"#), LookupState::Pending);
        assert_eq!(read(r#"{"state":"mystery"}"#), LookupState::Pending);
    }
}
