//! The dev payer: pays regtest invoices by asking a dev node to settle them.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};

use super::http::{ErrorBody, PaidBody, PayRequest, StatusBody};
use crate::lightning::{
    Invoice, Network, PayError, Payer, Payment, PaymentHash, PaymentStatus, Preimage,
};

/// How long the dev payer waits to connect to the dev node: 5 s. The node
/// is usually local; a node that does not accept in 5 s is not there, and
/// nothing has been sent yet, so giving up is safe.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request to the dev node may take in all: 30 s. Settling is
/// a map lookup; past this the outcome is reported unknown.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body the dev payer reads: the answers are a few
/// hundred bytes.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Why a [`DevPayer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DevPayerError {
    /// The dev node URL is not an http(s) URL.
    #[error("The dev node URL {url:?} is not usable: {reason}.")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("The HTTP client for the dev node could not be built: {0}.")]
    Client(String),
}

/// A [`Payer`] on the dev network: it pays regtest invoices by posting them
/// to a dev node's `POST /dev/pay` (the gateway's own listener), and refuses
/// every other network before sending anything, so a dev setup can never
/// touch real money.
#[derive(Debug, Clone)]
pub struct DevPayer {
    base: Url,
    http: reqwest::Client,
}

impl DevPayer {
    /// A payer for the dev node served at `base_url` (the gateway's base
    /// URL, e.g. `http://127.0.0.1:8402`).
    pub fn new(base_url: &str) -> Result<Self, DevPayerError> {
        Self::with_timeouts(base_url, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)
    }

    /// Like [`DevPayer::new`], with explicit timeouts: `connect_timeout`
    /// for reaching the node (nothing sent yet: the payment is
    /// [`PayError::Unreachable`]), `request_timeout` for the whole request
    /// (past it the outcome is [`PayError::Unknown`]).
    pub fn with_timeouts(
        base_url: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, DevPayerError> {
        let bad = |reason: &str| DevPayerError::BadUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(bad("it has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("it must not have a query or fragment"));
        }
        // Routes are joined under the base path: make it a directory.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            // A payment is never replayed to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DevPayerError::Client(e.to_string()))?;
        Ok(DevPayer { base, http })
    }

    /// The dev node's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, PayError> {
        self.base
            .join(path)
            .map_err(|e| PayError::Refused(format!("cannot build the dev node URL: {e}")))
    }
}

/// Maps a transport error. A connect error (refused, DNS, TLS handshake,
/// connect timeout) means nothing was sent; anything later may have
/// reached the node.
fn transport_error(e: reqwest::Error, what: &str) -> PayError {
    if e.is_connect() {
        PayError::Unreachable(format!("cannot connect to the dev node to {what}: {e}"))
    } else if e.is_timeout() {
        PayError::Unknown(format!(
            "the dev node did not answer in time to {what}: {e}"
        ))
    } else {
        PayError::Unknown(format!(
            "the connection to the dev node broke while trying to {what}: {e}"
        ))
    }
}

/// Reads at most [`MAX_RESPONSE_BODY`] bytes of the body.
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_RESPONSE_BODY {
            return Err(format!(
                "the answer is larger than {MAX_RESPONSE_BODY} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `error` sentence of an error body, or a description of the status.
fn error_sentence(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.error,
        Err(_) => format!("the dev node answered {status}"),
    }
}

/// Checks a claimed payment against the hash it is for.
fn checked_payment(paid: PaidBody, payment_hash: &PaymentHash) -> Result<Payment, PayError> {
    let preimage: Preimage = paid.preimage.parse().map_err(|e| {
        PayError::Unknown(format!(
            "the dev node claims invoice {payment_hash} is paid but sent an unreadable preimage: {e}"
        ))
    })?;
    if !preimage.matches(payment_hash) {
        return Err(PayError::Unknown(format!(
            "the dev node claims invoice {payment_hash} is paid but its preimage does not match the payment hash"
        )));
    }
    Ok(Payment {
        preimage,
        amount_msat: paid.amount_msat,
        fee_msat: paid.fee_msat,
    })
}

#[async_trait]
impl Payer for DevPayer {
    fn network(&self) -> Network {
        Network::Regtest
    }

    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        // Checks that need no network, before anything is sent.
        if invoice.network() != Network::Regtest {
            return Err(PayError::Refused(format!(
                "the invoice is for {}; the dev payer pays only regtest invoices",
                invoice.network()
            )));
        }
        let Some(amount_msat) = invoice.amount_msat() else {
            return Err(PayError::Refused(
                "the invoice has no amount; the dev payer does not pay amountless invoices".into(),
            ));
        };
        let payment_hash = invoice.payment_hash();
        let url = self.url("dev/pay")?;

        let resp = self
            .http
            .post(url)
            .json(&PayRequest {
                invoice: invoice.as_str().to_string(),
            })
            .send()
            .await
            .map_err(|e| transport_error(e, &format!("pay invoice {payment_hash}")))?;
        let status = resp.status();
        let body = read_body(resp).await;

        let payment = match status {
            StatusCode::OK => {
                let body = body.map_err(|e| {
                    PayError::Unknown(format!(
                        "the dev node accepted invoice {payment_hash} but its answer could not be read: {e}"
                    ))
                })?;
                let paid: PaidBody = serde_json::from_slice(&body).map_err(|e| {
                    PayError::Unknown(format!(
                        "the dev node accepted invoice {payment_hash} but its answer is not understood: {e}"
                    ))
                })?;
                checked_payment(paid, &payment_hash)?
            }
            // Paid before (by us, earlier, or anyone): not a failure. What
            // the node recorded decides.
            StatusCode::CONFLICT => match self.status(&payment_hash).await.map_err(|e| {
                PayError::Unknown(format!(
                    "the dev node says invoice {payment_hash} is already paid, but its status could not be read: {e}"
                ))
            })? {
                PaymentStatus::Succeeded(p) => p,
                other => {
                    return Err(PayError::Unknown(format!(
                        "the dev node says invoice {payment_hash} is already paid, but its status is {other:?}"
                    )));
                }
            },
            // The node refused the request: nothing was settled.
            s if s.is_client_error() => {
                let sentence = match &body {
                    Ok(b) => error_sentence(s, b),
                    Err(_) => format!("the dev node answered {s}"),
                };
                return Err(PayError::Failed(sentence));
            }
            s => {
                return Err(PayError::Unknown(format!(
                    "the dev node answered {s} to paying invoice {payment_hash}"
                )));
            }
        };

        // The node pays exactly the invoice at no fee; anything else is a
        // node that cannot be trusted with the books.
        if payment.amount_msat != amount_msat || payment.fee_msat > max_fee_msat {
            return Err(PayError::Unknown(format!(
                "the dev node reports paying {} msat with a {} msat fee for invoice {payment_hash} of {amount_msat} msat (fee limit {max_fee_msat} msat)",
                payment.amount_msat, payment.fee_msat
            )));
        }
        tracing::info!(%payment_hash, amount_msat, "paid through the dev node");
        Ok(payment)
    }

    async fn status(&self, payment_hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        let what = format!("look up payment {payment_hash}");
        let url = self.url(&format!("dev/payments/{payment_hash}"))?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| transport_error(e, &what))?;
        let status = resp.status();
        match status {
            StatusCode::OK => {
                let body = read_body(resp).await.map_err(|e| {
                    PayError::Unknown(format!(
                        "the dev node's answer to {what} could not be read: {e}"
                    ))
                })?;
                let parsed: StatusBody = serde_json::from_slice(&body).map_err(|e| {
                    PayError::Unknown(format!(
                        "the dev node's answer to {what} is not understood: {e}"
                    ))
                })?;
                match parsed {
                    StatusBody::Succeeded(paid) => {
                        checked_payment(paid, payment_hash).map(PaymentStatus::Succeeded)
                    }
                    StatusBody::Unpaid => Ok(PaymentStatus::Unknown),
                }
            }
            StatusCode::NOT_FOUND => Ok(PaymentStatus::Unknown),
            s => Err(PayError::Unknown(format!(
                "the dev node answered {s} to {what}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_http_with_a_host() {
        for bad in [
            "ftp://x",
            "not a url",
            "http://x/?q=1",
            "mailto:a@b",
            "unix:/tmp/s",
        ] {
            assert!(
                matches!(DevPayer::new(bad), Err(DevPayerError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn routes_join_under_the_base_path() {
        let p = DevPayer::new("http://127.0.0.1:8402").unwrap();
        assert_eq!(
            p.url("dev/pay").unwrap().as_str(),
            "http://127.0.0.1:8402/dev/pay"
        );
        let p = DevPayer::new("https://example.com/gw").unwrap();
        assert_eq!(
            p.url("dev/pay").unwrap().as_str(),
            "https://example.com/gw/dev/pay"
        );
    }
}
