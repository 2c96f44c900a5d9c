//! Our client's `Payment` scheme (Lightning `charge`) against an
//! independent server: tests/interop/payment_server.py, written in Python
//! from the drafts, not from our code. It challenges the client with a real
//! regtest invoice it signed itself, plays the Lightning network through
//! `POST /pay` (the only way to learn a preimage), and verifies the
//! credential as the drafts say: the HMAC-bound echo, expiry, the preimage,
//! single use. The second test shows the peer refuses what it must, so the
//! first cannot pass against a verifier that accepts anything.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};

use l402_mcp::client::{
    ClientConfig, FetchRequest, FetchResponse, L402Client, PreferScheme, TokenScheme,
};
use l402_mcp::l402::parse_payment_challenges;
use l402_mcp::l402::payment::{
    PaymentChallenge, PaymentReceipt, challenge_id, format_time, verify_challenge_id,
};
use l402_mcp::lightning::{
    Invoice, Network, PayError, Payer, Payment, PaymentHash, PaymentStatus, Preimage,
};
use l402_mcp::store::Store;

use crate::common::python;

/// The challenge key handed to the Python server, so that we can check its
/// `id`s with our own HMAC and forge an expired challenge it must refuse.
const SECRET: [u8; 32] = [0x5c; 32];
const PROBLEMS: &str = "https://paymentauth.org/problems/";

/// The Python server, stopped (kill + wait) when dropped, also on panic.
struct PyServer {
    child: Child,
    base: String,
}

impl PyServer {
    fn start(py: &std::path::Path) -> PyServer {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/payment_server.py"
        );
        let child = Command::new(py)
            .args([script, "--secret-hex", &hex::encode(SECRET)])
            // The server exits when its stdin closes: if this process dies
            // without running Drop, it does not outlive us.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        // From here on a panic still stops the child.
        let mut server = PyServer {
            child,
            base: String::new(),
        };
        let stdout = server.child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first).expect("read the port");
        let port: u16 = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("payment_server.py printed {first:?}, not its port"));
        // Drain whatever else it prints, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        server.base = format!("http://127.0.0.1:{port}");
        server
    }

    fn url(&self) -> String {
        format!("{}/paid", self.base)
    }

    async fn stats(&self) -> serde_json::Value {
        let resp = reqwest::get(format!("{}/stats", self.base))
            .await
            .expect("stats");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.expect("stats JSON")
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pays through the Python server's `POST /pay`: the preimage of an
/// invoice it issued, once.
#[derive(Debug)]
struct PythonPayer {
    base: String,
    http: reqwest::Client,
    calls: AtomicUsize,
}

impl PythonPayer {
    fn new(base: &str) -> Self {
        PythonPayer {
            base: base.to_string(),
            http: reqwest::Client::new(),
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Payer for PythonPayer {
    fn network(&self) -> Network {
        Network::Regtest
    }

    async fn pay(&self, invoice: &Invoice, _max_fee_msat: u64) -> Result<Payment, PayError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let preimage = pay_python(&self.http, &self.base, invoice.as_str())
            .await
            .map_err(PayError::Failed)?;
        if !preimage.matches(&invoice.payment_hash()) {
            return Err(PayError::Failed("the preimage is not the invoice's".into()));
        }
        Ok(Payment {
            preimage,
            amount_msat: invoice.amount_msat().unwrap_or(0),
            fee_msat: 0,
        })
    }

    async fn status(&self, _hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        Ok(PaymentStatus::Unknown)
    }
}

async fn pay_python(http: &reqwest::Client, base: &str, bolt11: &str) -> Result<Preimage, String> {
    let resp = http
        .post(format!("{base}/pay"))
        .body(bolt11.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("{status}: {text}"));
    }
    text.trim().parse().map_err(|e| format!("{e}"))
}

fn client_for(server: &PyServer, payer: Arc<PythonPayer>) -> (L402Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store.sqlite")).unwrap());
    let config = ClientConfig {
        allowed_origins: vec![server.base.clone()],
        prefer_scheme: PreferScheme::Payment,
        ..Default::default()
    };
    (L402Client::new(config, payer, store).unwrap(), dir)
}

fn counter(stats: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = stats;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}

#[tokio::test]
async fn our_client_pays_a_python_payment_server_once_per_request() {
    let Some(py) = python() else { return };
    let server = PyServer::start(&py);
    let payer = Arc::new(PythonPayer::new(&server.base));
    let (client, _dir) = client_for(&server, payer.clone());

    let mut seen = Vec::new();
    for round in 1..=2u64 {
        let resp = client.fetch(FetchRequest::get(server.url())).await.unwrap();
        assert_eq!(resp.status, 200, "round {round}: {:?}", resp.problem());
        assert_eq!(&resp.body[..], b"paid content: 21 sat well spent\n");
        let receipt = resp.receipt.expect("a receipt");
        assert!(
            receipt.paid,
            "round {round}: a charge credential is one request"
        );
        assert_eq!(receipt.scheme, TokenScheme::Payment);
        assert_eq!(receipt.amount_msat, 21_000);
        assert_eq!(receipt.note, None, "round {round}");
        let pr = receipt
            .payment_receipt
            .expect("the Payment-Receipt, decoded");
        assert_eq!(pr.status, "success");
        assert_eq!(pr.method, "lightning");
        assert_eq!(pr.reference, receipt.payment_hash.to_hex());
        let challenge = pr.challenge_id.expect("challengeId");
        assert!(!challenge.is_empty());
        seen.push((receipt.payment_hash, challenge));

        let stats = server.stats().await;
        assert_eq!(counter(&stats, &["payments"]), round, "{stats}");
        assert_eq!(counter(&stats, &["accepted"]), round, "{stats}");
        // One challenge per request: the client paid the 402 it got.
        assert_eq!(counter(&stats, &["challenges"]), round, "{stats}");
        assert_eq!(stats["refused"], serde_json::json!({}), "{stats}");
        assert_eq!(counter(&stats, &["pay_refused"]), 0, "{stats}");
        // The draft writes base64url without padding.
        assert_eq!(counter(&stats, &["padded_credentials"]), 0, "{stats}");
    }
    assert_eq!(payer.calls.load(Ordering::SeqCst), 2);
    assert_ne!(seen[0].0, seen[1].0, "two invoices");
    assert_ne!(seen[0].1, seen[1].1, "two challenges");
}

/// A bare 402 from the server: the response and its one charge challenge.
async fn challenge(http: &reqwest::Client, server: &PyServer) -> PaymentChallenge {
    let resp = http.get(server.url()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let (headers, _, problem) = read_402(resp).await;
    assert_eq!(problem["type"], format!("{PROBLEMS}payment-required"));
    one_challenge(&headers)
}

fn one_challenge(headers: &reqwest::header::HeaderMap) -> PaymentChallenge {
    let values: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let mut found = parse_payment_challenges(values.iter().copied());
    assert_eq!(found.len(), 1, "{values:?}");
    let c = found.pop().unwrap().expect("a well-formed challenge");
    assert!(c.is_lightning_charge(), "{c:?}");
    c
}

/// Headers, body and problem document of a 402, which must carry a fresh
/// challenge, `no-store` and problem+json.
async fn read_402(
    resp: reqwest::Response,
) -> (reqwest::header::HeaderMap, Bytes, serde_json::Value) {
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let headers = resp.headers().clone();
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
    let body = resp.bytes().await.unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 402, "{problem}");
    (headers, body, problem)
}

async fn present(
    http: &reqwest::Client,
    server: &PyServer,
    authorization: &str,
) -> reqwest::Response {
    http.get(server.url())
        .header(AUTHORIZATION, authorization)
        .send()
        .await
        .unwrap()
}

/// Presents a credential the server must refuse with `kind`; returns our
/// client's view of that answer.
async fn refused(
    http: &reqwest::Client,
    server: &PyServer,
    authorization: &str,
    kind: &str,
) -> FetchResponse {
    let resp = present(http, server, authorization).await;
    let url = resp.url().clone();
    let (headers, body, problem) = read_402(resp).await;
    assert_eq!(problem["type"], format!("{PROBLEMS}{kind}"), "{problem}");
    // A fresh challenge comes with every refusal.
    let fresh = one_challenge(&headers);
    assert!(verify_challenge_id(&SECRET, &fresh));
    FetchResponse {
        url,
        status: 402,
        headers,
        body,
        truncated: false,
        receipt: None,
    }
}

#[tokio::test]
async fn the_python_verifier_refuses_replays_wrong_preimages_and_tampering() {
    let Some(py) = python() else { return };
    let server = PyServer::start(&py);
    let http = reqwest::Client::new();

    // What Python puts on the wire reads as the draft says, and its id is
    // our HMAC over the seven slots.
    let c = challenge(&http, &server).await;
    assert!(verify_challenge_id(&SECRET, &c), "{c:?}");
    assert_eq!(c.realm, "interop.l402-mcp.test");
    let expires = c.expires_at().unwrap().expect("expires");
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(500) && left <= Duration::from_secs(600));
    let charge = c.charge().unwrap();
    assert_eq!(
        (charge.amount.as_str(), charge.currency.as_str()),
        ("21", "sat")
    );
    let invoice: Invoice = charge.method_details.invoice.parse().unwrap();
    assert_eq!(invoice.amount_msat(), Some(21_000));
    assert_eq!(invoice.network(), Network::Regtest);
    assert_eq!(
        charge.method_details.payment_hash.as_deref(),
        Some(invoice.payment_hash().to_hex().as_str())
    );
    assert_eq!(charge.method_details.network.as_deref(), Some("regtest"));

    // Paid once; the network will not pay the same invoice again.
    let preimage = pay_python(&http, &server.base, invoice.as_str())
        .await
        .unwrap();
    assert!(preimage.matches(&invoice.payment_hash()));
    let again = pay_python(&http, &server.base, invoice.as_str()).await;
    assert!(again.unwrap_err().starts_with("409"));

    // The credential is good for one request.
    let credential = c.credential(&preimage);
    let ok = present(&http, &server, &credential).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()[CACHE_CONTROL], "private");
    let receipt =
        PaymentReceipt::decode(ok.headers()["payment-receipt"].to_str().unwrap()).unwrap();
    assert_eq!(receipt.reference, invoice.payment_hash().to_hex());
    assert_eq!(receipt.challenge_id.as_deref(), Some(c.id.as_str()));
    let replay = refused(&http, &server, &credential, "invalid-challenge").await;
    let sentence = replay.problem().expect("our sentence for the replay");
    assert!(
        sentence.contains("no longer accepts the challenge"),
        "{sentence}"
    );

    // A preimage that is not the invoice's; the challenge stays usable
    // for the real one.
    let c = challenge(&http, &server).await;
    let wrong = refused(
        &http,
        &server,
        &c.credential(&Preimage::random()),
        "verification-failed",
    )
    .await;
    let sentence = wrong.problem().expect("our sentence for a bad preimage");
    assert!(sentence.contains("could not verify"), "{sentence}");
    let bolt11 = c.charge().unwrap().method_details.invoice;
    let preimage = pay_python(&http, &server.base, &bolt11).await.unwrap();
    // Padded base64url is accepted too (the draft: with or without).
    let mut padded = c.credential(&preimage);
    while !(padded.len() - "Payment ".len()).is_multiple_of(4) {
        padded.push('=');
    }
    // The lengths are fixed (one invoice layout), so this always pads.
    assert!(padded.ends_with('='), "the token needed no padding");
    let accepted = present(&http, &server, &padded).await;
    assert_eq!(accepted.status(), StatusCode::OK);

    // Tampering with what the HMAC covers: a cheaper request.
    let c = challenge(&http, &server).await;
    let bolt11 = c.charge().unwrap().method_details.invoice;
    let preimage = pay_python(&http, &server.base, &bolt11).await.unwrap();
    let mut cheaper = c.clone();
    let mut req = cheaper.charge().unwrap();
    req.amount = "1".into();
    cheaper.request = req.encode();
    refused(
        &http,
        &server,
        &cheaper.credential(&preimage),
        "invalid-challenge",
    )
    .await;
    // An expired challenge, correctly bound (we hold the key).
    let mut stale = c.clone();
    stale.expires = Some(format_time(SystemTime::now() - Duration::from_secs(5)));
    stale.id = challenge_id(&SECRET, &stale);
    refused(
        &http,
        &server,
        &stale.credential(&preimage),
        "invalid-challenge",
    )
    .await;
    // Not a credential at all.
    let garbled = refused(
        &http,
        &server,
        "Payment !!not-base64url!!",
        "malformed-credential",
    )
    .await;
    assert!(garbled.problem().is_some());
    // After all that, the untouched credential still works, once.
    assert_eq!(
        present(&http, &server, &c.credential(&preimage))
            .await
            .status(),
        StatusCode::OK
    );

    let stats = server.stats().await;
    assert_eq!(counter(&stats, &["accepted"]), 3, "{stats}");
    assert_eq!(counter(&stats, &["payments"]), 3, "{stats}");
    assert_eq!(counter(&stats, &["pay_refused"]), 1, "{stats}");
    assert_eq!(counter(&stats, &["padded_credentials"]), 1, "{stats}");
    assert_eq!(
        stats["refused"],
        serde_json::json!({
            "invalid-challenge": 3,
            "verification-failed": 1,
            "malformed-credential": 1,
        }),
        "{stats}"
    );
    assert_eq!(
        stats["reasons"],
        serde_json::json!({
            "used": 1,
            "wrong-preimage": 1,
            "bad-id": 1,
            "expired": 1,
            "undecodable": 1,
        }),
        "{stats}"
    );
}
