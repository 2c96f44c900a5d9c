//! The LND backend against real lnd on a regtest network (btcd, alice and
//! bob with a channel alice -> bob), as `scripts/regtest` brings it up.
//!
//! Which network:
//! - `L402_REGTEST_ENV=<run dir>/env.sh`: a running network (what
//!   `scripts/regtest/up.sh` printed); it is used and left running.
//! - otherwise, under CI (`CI` set) or with `L402_REGTEST_START=1`, when Go
//!   and `scripts/regtest/up.sh` are there: the test starts its own network
//!   in a temporary directory (binaries cached by `build.sh`; about 20 s
//!   once built) and stops it by process id at the end (`down.sh`).
//! - otherwise the test says `SKIPPED` loudly on stderr and passes. Under
//!   CI with Go present it never skips: a network that cannot be brought up
//!   fails it.
//!
//! One test runs every step in order on one network (the steps share its
//! channel and invoices); each step is a function named after what it shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use l402_mcp::lightning::dev::DevNode;
use l402_mcp::lightning::lnd::{LndConfig, LndError, LndMacaroon, LndNode, TlsCert};
use l402_mcp::lightning::{
    Invoice, Invoicer, Network, PayError, Payer, PaymentHash, PaymentStatus,
};

/// A regtest network's env.sh, parsed; stops the network on drop if this
/// test started it.
pub(crate) struct Regtest {
    env: HashMap<String, String>,
    owned: Option<PathBuf>,
}

impl Regtest {
    pub(crate) fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("env.sh has no {name}"))
    }

    /// A variable env.sh may lack (aperture, lnget).
    pub(crate) fn env_var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    pub(crate) fn dir(&self) -> PathBuf {
        PathBuf::from(self.var("L402_REGTEST_DIR"))
    }

    /// Runs the lncli wrapper of `node` ("ALICE" or "BOB"), returning JSON.
    pub(crate) fn lncli(&self, node: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new(self.var(&format!("L402_REGTEST_{node}_LNCLI")))
            .args(args)
            .output()
            .expect("lncli runs");
        assert!(
            out.status.success(),
            "lncli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Bakes a macaroon on `node` allowing exactly `uris`, into the run dir.
    pub(crate) fn bake(&self, node: &str, name: &str, uris: &[&str]) -> PathBuf {
        let path = self.dir().join(format!("{name}.macaroon"));
        let _ = std::fs::remove_file(&path);
        let mut args = vec!["bakemacaroon", "--save_to"];
        let p = path.to_str().expect("utf-8 path").to_string();
        args.push(&p);
        let perms: Vec<String> = uris.iter().map(|u| format!("uri:{u}")).collect();
        args.extend(perms.iter().map(String::as_str));
        let out = Command::new(self.var(&format!("L402_REGTEST_{node}_LNCLI")))
            .args(&args)
            .output()
            .expect("lncli runs");
        assert!(
            out.status.success(),
            "bakemacaroon {uris:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    fn config(&self, node: &str, macaroon: &Path, network: Network) -> LndConfig {
        LndConfig::new(
            self.var(&format!("L402_REGTEST_{node}_GRPC_HOST"))
                .parse()
                .expect("host"),
            TlsCert::from_setting(self.var(&format!("L402_REGTEST_{node}_TLS_CERT")))
                .expect("tls.cert"),
            LndMacaroon::from_setting(macaroon.to_str().expect("utf-8")).expect("macaroon"),
            network,
        )
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned {
            let down = repo().join("scripts/regtest/down.sh");
            let _ = Command::new(down).arg("--dir").arg(dir).status();
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse_env_sh(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// A line on the process's stderr itself, past the test harness's capture
/// (which takes only `eprintln!`): a skip must be seen.
pub(crate) fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True under CI (`CI` set, not empty, not `false`): there a missing peer
/// fails a test instead of skipping it.
pub(crate) fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

fn go_present() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The network to test on, or `None` (said loudly) when there is none.
fn regtest() -> Option<Regtest> {
    if let Some(path) = std::env::var_os("L402_REGTEST_ENV") {
        return Some(Regtest {
            env: parse_env_sh(Path::new(&path)),
            owned: None,
        });
    }
    let ci = under_ci();
    let asked = std::env::var_os("L402_REGTEST_START").is_some_and(|v| v == "1");
    let up = repo().join("scripts/regtest/up.sh");
    if !(ci || asked) {
        loud(
            "SKIPPED: the LND tests need a regtest network: set L402_REGTEST_ENV to a running \
             network's env.sh (scripts/regtest/up.sh prints it), or L402_REGTEST_START=1 to start one",
        );
        return None;
    }
    if !go_present() || !up.exists() {
        loud(&format!(
            "SKIPPED: the LND tests need Go and {} to start a regtest network; neither \
             L402_REGTEST_ENV nor both of those are there",
            up.display()
        ));
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("l402-lnd-test.")
        .tempdir()
        .expect("temp dir")
        .keep();
    eprintln!("starting a regtest network in {}", dir.display());
    // With aperture: the interop steps (crate::regtest) pay it.
    let status = Command::new(&up)
        .arg("--aperture")
        .arg("--dir")
        .arg(&dir)
        .status()
        .expect("up.sh runs");
    let mut network = Regtest {
        env: HashMap::new(),
        owned: Some(dir.clone()),
    };
    assert!(
        status.success(),
        "scripts/regtest/up.sh failed: see {}/logs",
        dir.display()
    );
    network.env = parse_env_sh(&dir.join("env.sh"));
    Some(network)
}

#[tokio::test(flavor = "multi_thread")]
async fn lnd_backend_on_regtest() {
    let Some(rt) = regtest() else { return };
    eprintln!("LND tests on the regtest network in {}", rt.dir().display());

    // The least each role needs, baked on the nodes: the README's lists.
    let pay_macaroon = rt.bake(
        "ALICE",
        "l402-pay",
        &[
            "/lnrpc.Lightning/GetInfo",
            "/routerrpc.Router/SendPaymentV2",
            "/routerrpc.Router/TrackPaymentV2",
        ],
    );
    let invoice_macaroon = rt.bake(
        "BOB",
        "l402-invoice",
        &["/lnrpc.Lightning/GetInfo", "/lnrpc.Lightning/AddInvoice"],
    );

    a_node_on_another_network_is_refused(&rt, &pay_macaroon).await;
    let alice = LndNode::connect(rt.config("ALICE", &pay_macaroon, Network::Regtest))
        .await
        .expect("alice with the pay-only macaroon");
    let bob = LndNode::connect(rt.config("BOB", &invoice_macaroon, Network::Regtest))
        .await
        .expect("bob with the invoice-only macaroon");
    assert_eq!(Payer::network(&alice), Network::Regtest);
    assert_eq!(
        alice.info().identity_pubkey,
        rt.var("L402_REGTEST_ALICE_PUBKEY")
    );

    let invoice = bob_invoices_decode_as_regtest_with_the_amount(&bob).await;
    let hash = alice_pays_bob_and_the_preimage_matches(&alice, &invoice).await;
    status_of_the_paid_hash_is_succeeded(&alice, &hash).await;
    status_of_an_unknown_hash_is_unknown(&alice).await;
    paying_again_resolves_as_already_paid_without_a_second_payment(&rt, &alice, &invoice).await;
    a_payment_in_flight_is_in_flight_and_paying_it_again_follows_it(&rt, &alice).await;
    an_expired_invoice_is_failed_with_a_sentence(&alice, &bob).await;
    an_unroutable_invoice_is_failed_with_a_sentence(&alice).await;
    more_than_the_balance_is_failed_with_a_sentence(&alice, &bob).await;
    a_canceled_invoice_is_failed_as_incorrect_details(&rt, &alice, &bob).await;
    the_invoice_macaroon_cannot_pay(&rt, &invoice_macaroon, &bob).await;
    a_node_that_is_not_there_is_unavailable(&rt, &pay_macaroon).await;
    a_node_that_went_away_is_unreachable_not_unknown(&rt, &pay_macaroon, &bob).await;
    the_cli_pays_our_gateway_on_lnd_and_logs_no_secret(&rt, &pay_macaroon, &invoice_macaroon).await;
    // The product end to end, and against Lightning Labs' aperture and
    // lnget, on the same network.
    crate::regtest::interop_steps(&rt, &pay_macaroon, &invoice_macaroon).await;
    // Alby's NWC wallet service paying with alice's lnd, our client on the
    // other side.
    crate::alby::nwc_steps_on_lnd(&rt).await;
}

async fn a_node_on_another_network_is_refused(rt: &Regtest, macaroon: &Path) {
    let e = LndNode::connect(rt.config("ALICE", macaroon, Network::Mainnet))
        .await
        .expect_err("a regtest node is refused as mainnet");
    match &e {
        LndError::WrongNetwork {
            node, configured, ..
        } => {
            assert_eq!(node, "regtest");
            assert_eq!(*configured, Network::Mainnet);
        }
        other => panic!("{other:?}"),
    }
    let sentence = e.to_string();
    assert!(
        sentence
            .contains("is on regtest, but the configured network is mainnet; refusing to use it"),
        "{sentence}"
    );
}

async fn bob_invoices_decode_as_regtest_with_the_amount(bob: &LndNode) -> Invoice {
    let issued = bob
        .create_invoice(21_000, "l402-mcp lnd test", Duration::from_secs(600))
        .await
        .expect("AddInvoice");
    let invoice: Invoice = issued.bolt11.parse().expect("a BOLT11 invoice");
    assert_eq!(invoice.network(), Network::Regtest);
    assert_eq!(invoice.amount_msat(), Some(21_000));
    assert_eq!(invoice.payment_hash(), issued.payment_hash);
    assert_eq!(invoice.description().as_deref(), Some("l402-mcp lnd test"));
    assert_eq!(invoice.expiry(), Duration::from_secs(600));
    invoice
}

async fn alice_pays_bob_and_the_preimage_matches(
    alice: &LndNode,
    invoice: &Invoice,
) -> PaymentHash {
    let fee_limit_msat = 10_000;
    let payment = alice.pay(invoice, fee_limit_msat).await.expect("paid");
    let hash = invoice.payment_hash();
    assert!(payment.preimage.matches(&hash));
    assert_eq!(payment.amount_msat, 21_000);
    assert!(
        payment.fee_msat <= fee_limit_msat,
        "fee {}",
        payment.fee_msat
    );
    hash
}

async fn status_of_the_paid_hash_is_succeeded(alice: &LndNode, hash: &PaymentHash) {
    match alice.status(hash).await.expect("status") {
        PaymentStatus::Succeeded(p) => {
            assert!(p.preimage.matches(hash));
            assert_eq!(p.amount_msat, 21_000);
        }
        other => panic!("{other:?}"),
    }
}

async fn status_of_an_unknown_hash_is_unknown(alice: &LndNode) {
    let unknown = PaymentHash([0x42; 32]);
    assert_eq!(
        alice.status(&unknown).await.expect("status"),
        PaymentStatus::Unknown
    );
}

async fn paying_again_resolves_as_already_paid_without_a_second_payment(
    rt: &Regtest,
    alice: &LndNode,
    invoice: &Invoice,
) {
    let hash = invoice.payment_hash();
    let first = match alice.status(&hash).await.expect("status") {
        PaymentStatus::Succeeded(p) => p,
        other => panic!("{other:?}"),
    };
    let again = alice
        .pay(invoice, 10_000)
        .await
        .expect("already paid resolves");
    assert_eq!(again, first, "the same payment, not a new one");

    // Bob was paid once: the invoice is settled for its amount, not twice.
    let looked_up = rt.lncli("BOB", &["lookupinvoice", &hash.to_hex()]);
    assert_eq!(looked_up["state"], "SETTLED", "{looked_up}");
    assert_eq!(looked_up["amt_paid_msat"], "21000", "{looked_up}");
    // Alice has one payment to that hash, with one successful HTLC.
    let payments = rt.lncli("ALICE", &["listpayments"]);
    let ours: Vec<_> = payments["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .filter(|p| p["payment_hash"] == hash.to_hex())
        .collect();
    assert_eq!(ours.len(), 1, "{payments}");
    let settled = ours[0]["htlcs"]
        .as_array()
        .expect("htlcs")
        .iter()
        .filter(|h| h["status"] == "SUCCEEDED")
        .count();
    assert_eq!(settled, 1, "{}", ours[0]);
}

async fn a_payment_in_flight_is_in_flight_and_paying_it_again_follows_it(
    rt: &Regtest,
    alice: &LndNode,
) {
    // A hold invoice: bob accepts the HTLC and holds it until told to
    // settle, so alice's payment stays in flight meanwhile.
    let preimage = l402_mcp::lightning::Preimage::random();
    let hash = preimage.payment_hash();
    let added = rt.lncli("BOB", &["addholdinvoice", &hash.to_hex(), "--amt", "2000"]);
    let invoice: Invoice = added["payment_request"]
        .as_str()
        .expect("payment_request")
        .parse()
        .expect("invoice");
    let first = tokio::spawn({
        let (alice, invoice) = (alice.clone(), invoice.clone());
        async move { alice.pay(&invoice, 1_000).await }
    });
    let mut in_flight = false;
    for _ in 0..100 {
        if alice.status(&hash).await.expect("status") == PaymentStatus::InFlight {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_flight, "the held payment never showed as in flight");
    // Paying it again is lnd's "payment is in transition": followed, not
    // failed and not sent twice.
    let second = tokio::spawn({
        let (alice, invoice) = (alice.clone(), invoice.clone());
        async move { alice.pay(&invoice, 1_000).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "paying an in-flight payment again returned early"
    );
    rt.lncli("BOB", &["settleinvoice", &preimage.to_hex()]);
    let within = |t| tokio::time::timeout(Duration::from_secs(60), t);
    let first = within(first)
        .await
        .expect("the held payment ends once settled")
        .expect("task")
        .expect("the held payment succeeds");
    let second = within(second)
        .await
        .expect("the second call ends once settled")
        .expect("task")
        .expect("the second call follows it");
    assert_eq!(first.preimage, preimage);
    assert_eq!(second, first);
    let looked_up = rt.lncli("BOB", &["lookupinvoice", &hash.to_hex()]);
    assert_eq!(looked_up["amt_paid_msat"], "2000000", "{looked_up}");
}

async fn an_expired_invoice_is_failed_with_a_sentence(alice: &LndNode, bob: &LndNode) {
    let issued = bob
        .create_invoice(1_000, "expires at once", Duration::from_secs(1))
        .await
        .expect("AddInvoice");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match alice.pay(&invoice, 1_000).await {
        Err(PayError::Failed(sentence)) => {
            assert!(
                sentence.starts_with(
                    "the invoice has expired: lnd refused to pay it (invoice expired."
                ),
                "{sentence}"
            );
            assert!(sentence.ends_with("; nothing was paid"), "{sentence}");
        }
        other => panic!("{other:?}"),
    }
    // And lnd has no payment to it.
    assert_eq!(
        alice.status(&invoice.payment_hash()).await.expect("status"),
        PaymentStatus::Unknown
    );
}

async fn an_unroutable_invoice_is_failed_with_a_sentence(alice: &LndNode) {
    // A real regtest invoice from a node nobody has a channel to.
    let stranger = DevNode::new();
    let issued = stranger
        .create_invoice(5_000, "nobody routes here", Duration::from_secs(600))
        .await
        .expect("dev invoice");
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match alice.pay(&invoice, 1_000).await {
        Err(PayError::Failed(sentence)) => assert_eq!(
            sentence,
            "lnd found no route to the payee that could carry the payment within the 1 sat fee limit; nothing was paid"
        ),
        other => panic!("{other:?}"),
    }
    match alice.status(&invoice.payment_hash()).await.expect("status") {
        PaymentStatus::Failed { reason } => assert!(reason.contains("no route"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

async fn more_than_the_balance_is_failed_with_a_sentence(alice: &LndNode, bob: &LndNode) {
    // The channel holds 1,000,000 sat; alice has less than 700,000.
    let issued = bob
        .create_invoice(900_000_000, "too much", Duration::from_secs(600))
        .await
        .expect("AddInvoice");
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match alice.pay(&invoice, 10_000).await {
        Err(PayError::Failed(sentence)) => assert_eq!(
            sentence,
            "the node's channels do not have enough outbound balance to pay 900000 sat plus fees; nothing was paid"
        ),
        other => panic!("{other:?}"),
    }
}

async fn a_canceled_invoice_is_failed_as_incorrect_details(
    rt: &Regtest,
    alice: &LndNode,
    bob: &LndNode,
) {
    // Bob cancels the invoice before alice pays: bob's node refuses the
    // HTLC, and lnd reports the payment details as incorrect.
    let issued = bob
        .create_invoice(3_000, "canceled", Duration::from_secs(600))
        .await
        .expect("AddInvoice");
    rt.lncli("BOB", &["cancelinvoice", &issued.payment_hash.to_hex()]);
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match alice.pay(&invoice, 1_000).await {
        Err(PayError::Failed(sentence)) => assert_eq!(
            sentence,
            "the payee rejected the payment details (an unknown, canceled or already settled \
             invoice, a wrong amount, or an expired invoice); nothing was paid"
        ),
        other => panic!("{other:?}"),
    }
}

async fn the_invoice_macaroon_cannot_pay(rt: &Regtest, invoice_macaroon: &Path, bob: &LndNode) {
    // Bob's invoice-only macaroon on bob: GetInfo works, paying does not.
    let bob_as_payer = LndNode::connect(rt.config("BOB", invoice_macaroon, Network::Regtest))
        .await
        .expect("GetInfo is allowed");
    let issued = bob
        .create_invoice(1_000, "self", Duration::from_secs(600))
        .await
        .expect("AddInvoice");
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match bob_as_payer.pay(&invoice, 1_000).await {
        Err(PayError::Unreachable(sentence)) => assert!(
            sentence.contains("refused the macaroon for /routerrpc.Router/SendPaymentV2")
                && sentence.ends_with("nothing was paid"),
            "{sentence}"
        ),
        other => panic!("{other:?}"),
    }
}

async fn a_node_that_is_not_there_is_unavailable(rt: &Regtest, macaroon: &Path) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut config = rt.config("ALICE", macaroon, Network::Regtest);
    config.host = format!("127.0.0.1:{port}").parse().expect("host");
    match LndNode::connect(config).await {
        Err(LndError::Unavailable(sentence)) => assert!(
            sentence.starts_with(&format!("cannot connect to lnd at 127.0.0.1:{port}: ")),
            "{sentence}"
        ),
        other => panic!("{other:?}"),
    }
}

/// The binary end to end: `gateway` invoicing through bob's lnd (flags),
/// `fetch` paying through alice's lnd (environment, inline macaroon).
async fn the_cli_pays_our_gateway_on_lnd_and_logs_no_secret(
    rt: &Regtest,
    pay_macaroon: &Path,
    invoice_macaroon: &Path,
) {
    const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut gateway = Command::new(BIN)
        .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("gateway"))
        .args(["--lnd-host", rt.var("L402_REGTEST_BOB_GRPC_HOST")])
        .args(["--lnd-tls-cert", rt.var("L402_REGTEST_BOB_TLS_CERT")])
        .arg("--lnd-macaroon")
        .arg(invoice_macaroon)
        // No --network: the gateway takes the node's own.
        .env_remove("L402_LND_HOST")
        .env_remove("L402_LND_TLS_CERT")
        .env_remove("L402_LND_MACAROON")
        .env_remove("L402_NETWORK")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gateway starts");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the gateway on lnd did not come up");
    // With lnd, the dev node's settlement routes are not served.
    let dev_pay = http
        .post(format!("{base}/dev/pay"))
        .json(&serde_json::json!({"invoice": "lnbcrt1"}))
        .send()
        .await
        .expect("request");
    assert_eq!(dev_pay.status(), reqwest::StatusCode::NOT_FOUND);

    let macaroon_hex = hex::encode(std::fs::read(pay_macaroon).expect("macaroon"));
    let settled_before = settled_invoices(rt);
    let fetch = tokio::task::spawn_blocking({
        let url = format!("{base}/v1/demo");
        let data = dir.path().join("client");
        let (host, cert, mac) = (
            rt.var("L402_REGTEST_ALICE_GRPC_HOST").to_string(),
            rt.var("L402_REGTEST_ALICE_TLS_CERT").to_string(),
            macaroon_hex.clone(),
        );
        move || {
            Command::new(BIN)
                .args(["-vvv", "fetch", "--allow-private", &url])
                .env("L402_CONFIG", "/dev/null")
                .env("L402_DATA_DIR", &data)
                .env("L402_LND_HOST", host)
                .env("L402_LND_TLS_CERT", cert)
                .env("L402_LND_MACAROON", mac)
                .env("L402_NETWORK", "regtest")
                .env_remove("L402_DEV_NODE")
                .env_remove("RUST_LOG")
                .output()
                .expect("fetch runs")
        }
    })
    .await
    .expect("fetch task");
    let _ = gateway.kill();
    let _ = gateway.wait();
    let stdout = String::from_utf8_lossy(&fetch.stdout);
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(fetch.status.success(), "{stderr}");
    assert!(stdout.contains("\"paid\":true"), "{stdout}");
    assert!(stderr.contains("paid 21 sats"), "{stderr}");
    assert!(stderr.contains("connected to lnd"), "{stderr}");
    assert!(
        !stderr.contains(&macaroon_hex[..32]),
        "the macaroon reached the log"
    );
    assert!(
        !stderr.to_ascii_lowercase().contains("preimage"),
        "{stderr}"
    );
    assert_eq!(settled_invoices(rt), settled_before + 1);
}

/// How many of bob's invoices are settled (a non-zero settle date).
pub(crate) fn settled_invoices(rt: &Regtest) -> usize {
    let invoices = rt.lncli("BOB", &["listinvoices", "--max_invoices", "10000"]);
    invoices["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .filter(|i| i["settle_date"] != "0")
        .count()
}

/// A TCP forwarder to `target` on 127.0.0.1, which can be cut: the
/// listener closes and every connection through it is dropped.
struct Forwarder {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                t.lock().expect("lock").push(conn);
            }
        });
        Forwarder {
            port,
            tasks,
            accept,
        }
    }

    fn cut(&self) {
        self.accept.abort();
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

async fn a_node_that_went_away_is_unreachable_not_unknown(
    rt: &Regtest,
    macaroon: &Path,
    bob: &LndNode,
) {
    // Connected (GetInfo) through the forwarder, which is then cut: the
    // next calls find no node, and must say nothing was sent.
    let forwarder = Forwarder::start(rt.var("L402_REGTEST_ALICE_GRPC_HOST").to_string()).await;
    let mut config = rt.config("ALICE", macaroon, Network::Regtest);
    config.host = format!("127.0.0.1:{}", forwarder.port)
        .parse()
        .expect("host");
    let alice = LndNode::connect(config)
        .await
        .expect("through the forwarder");
    forwarder.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let issued = bob
        .create_invoice(2_000, "never sent", Duration::from_secs(600))
        .await
        .expect("AddInvoice");
    let invoice: Invoice = issued.bolt11.parse().expect("invoice");
    match alice.pay(&invoice, 1_000).await {
        Err(PayError::Unreachable(sentence)) => assert!(
            sentence.starts_with(&format!(
                "cannot connect to lnd at 127.0.0.1:{}",
                forwarder.port
            )) && sentence.ends_with("nothing was paid"),
            "{sentence}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(
            alice.status(&invoice.payment_hash()).await,
            Err(PayError::Unreachable(_))
        ),
        "status without a node"
    );
}
