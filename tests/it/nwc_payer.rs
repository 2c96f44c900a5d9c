//! The NWC payer (`lightning::nwc::NwcPayer`) end to end against Alby's
//! own wallet service (`common::alby`), through a relay in this process,
//! paying a gateway's dev node: the client's checks still come first, each
//! wallet error is a sentence and pays nothing, a lost answer is found by
//! `lookup_invoice` and paid once (also across a killed process), and
//! `serve --nwc` pays over MCP without the secret reaching a log.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use l402_mcp::client::{ClientConfig, FetchError, FetchRequest, L402Client, Refusal};
use l402_mcp::gateway::GatewayConfig;
use l402_mcp::lightning::Network;
use l402_mcp::lightning::nwc::{NwcPayer, NwcPayerError, NwcTimeouts};
use l402_mcp::store::Store;
use lightning_invoice::Currency;
use serde_json::{Value, json};

use crate::client::{challenge_header, challenge_server, demo_with_route, invoice, single_use_get};
use crate::common::TestGateway;
use crate::common::alby::AlbyWallet;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// A relay, a gateway and Alby's wallet service paying its dev node.
struct Rig {
    _relay: nostr_relay_builder::LocalRelay,
    relay: String,
    gw: TestGateway,
    alby: AlbyWallet,
}

async fn rig(gateway: GatewayConfig, args: &[&str]) -> Option<Rig> {
    let (relay_handle, relay) = crate::common::relay().await;
    let gw = TestGateway::start(gateway).await;
    let dev = format!("dev={}", gw.base);
    let mut all = vec!["--pay-via", dev.as_str()];
    all.extend_from_slice(args);
    let alby = AlbyWallet::start(&[&relay], &all).await?;
    Some(Rig {
        _relay: relay_handle,
        relay,
        gw,
        alby,
    })
}

fn timeouts() -> NwcTimeouts {
    NwcTimeouts {
        connect: Duration::from_secs(5),
        payment: Duration::from_secs(3),
        request: Duration::from_secs(3),
    }
}

async fn payer(rig: &Rig) -> Arc<NwcPayer> {
    let uri = rig.alby.uri.parse().unwrap();
    Arc::new(
        NwcPayer::connect(uri, Some(Network::Regtest), timeouts())
            .await
            .unwrap(),
    )
}

/// A client paying through `payer`, with a store of its own; `allowed`
/// is the origin the address policy lets through (127.0.0.1).
fn client(
    payer: Arc<NwcPayer>,
    allowed: &str,
    adjust: impl FnOnce(&mut ClientConfig),
) -> (L402Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store.sqlite")).unwrap());
    let mut config = ClientConfig {
        allowed_origins: vec![allowed.to_string()],
        payment_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    adjust(&mut config);
    (L402Client::new(config, payer, store).unwrap(), dir)
}

/// The connection string's secret, to look for where it must not be.
fn secret_of(uri: &str) -> String {
    uri.split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alby_pays_our_gateway_and_every_check_of_the_client_still_comes_first() {
    let Some(rig) = rig(GatewayConfig::demo(), &[]).await else {
        return;
    };
    let payer = payer(&rig).await;
    let (c, _d) = client(payer.clone(), &rig.gw.base, |_| {});
    let resp = c
        .fetch(FetchRequest::get(format!("{}/v1/demo", rig.gw.base)))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let receipt = resp.receipt.unwrap();
    assert!(receipt.paid);
    assert_eq!(receipt.amount_msat, 21_000);
    assert_eq!(receipt.note, None);
    assert_eq!(rig.gw.node.settlements(), 1);
    assert_eq!(rig.alby.stat("pay_invoice"), 1);

    // Refused before the wallet hears of it.
    let (capped, _d2) = client(payer.clone(), &rig.gw.base, |c| c.max_cost_msat = 50_000);
    let err = capped
        .fetch(FetchRequest::get(format!("{}/v1/data", rig.gw.base)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(Refusal::OverCap { .. })),
        "{err:?}"
    );
    let (poor, _d3) = client(payer.clone(), &rig.gw.base, |c| {
        c.session_budget_msat = 50_000;
    });
    let err = poor
        .fetch(FetchRequest::get(format!("{}/v1/data", rig.gw.base)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(Refusal::OverBudget { .. })),
        "{err:?}"
    );
    let now = SystemTime::now();
    let (h, other) = ([0xab; 32], [0xcd; 32]);
    let forged = [
        challenge_header(&invoice(Currency::Regtest, None, h, now), h),
        challenge_header(&invoice(Currency::Regtest, Some(21_000), h, now), other),
        challenge_header(&invoice(Currency::Bitcoin, Some(21_000), h, now), h),
    ];
    for header in forged {
        let server = challenge_server(header).await;
        let origin = server.url.trim_end_matches("/x").to_string();
        let (c, _d) = client(payer.clone(), &origin, |_| {});
        let err = c.fetch(FetchRequest::get(&server.url)).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Refused(
                    Refusal::Amountless
                        | Refusal::HashMismatch { .. }
                        | Refusal::WrongNetwork { .. }
                )
            ),
            "{err:?}"
        );
    }
    assert_eq!(
        rig.alby.stat("pay_invoice"),
        1,
        "nothing more reached the wallet"
    );
    assert_eq!(rig.gw.node.settlements(), 1);
    payer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wallet_error_is_a_sentence_and_what_it_leaves_is_right() {
    let Some(rig) = rig(demo_with_route(single_use_get("/v1/once", 21)), &[]).await else {
        return;
    };
    let payer = payer(&rig).await;
    let url = format!("{}/v1/once", rig.gw.base);
    // (code, words the sentence must hold, budget still held after)
    let cases = [
        ("INSUFFICIENT_BALANCE", "top it up", false),
        (
            "QUOTA_EXCEEDED",
            "own budget for this connection is spent",
            false,
        ),
        ("RATE_LIMITED", "retry in a minute", false),
        ("RESTRICTED", "grant pay_invoice", false),
        ("UNAUTHORIZED", "new connection string", false),
        ("UNSUPPORTED_ENCRYPTION", "may need an update", false),
        ("PAYMENT_FAILED", "nothing was spent", false),
        // The wallet failed, or said something that is no refusal: the
        // payment may be under way, so its budget stays held.
        ("INTERNAL", "the wallet failed", true),
        ("NOT_FOUND", "knows no such payment", true),
    ];
    for (code, words, held) in cases {
        rig.alby
            .set(json!({"fail_pay": code, "message": format!("{code} from the test")}));
        let (c, _d) = client(payer.clone(), &rig.gw.base, |_| {});
        let err = c.fetch(FetchRequest::get(&url)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(code), "{code}: {text}");
        assert!(text.contains(words), "{code}: {text}");
        assert!(
            text.contains(&format!("{code} from the test")),
            "{code}: {text}"
        );
        let budget = c.budget().unwrap();
        if held {
            assert!(
                matches!(err, FetchError::PaymentUnknown { .. }),
                "{code}: {err:?}"
            );
            assert_eq!(budget.reserved_msat, 31_000, "{code}");
        } else {
            assert!(
                matches!(err, FetchError::PaymentFailed(_)),
                "{code}: {err:?}"
            );
            assert!(
                text.contains("nothing was paid") || code == "PAYMENT_FAILED",
                "{text}"
            );
            assert_eq!((budget.reserved_msat, budget.spent_msat), (0, 0), "{code}");
        }
    }
    assert_eq!(rig.alby.stat("pay_invoice"), cases.len() as u64);
    assert_eq!(rig.gw.node.settlements(), 0, "no error paid anything");
    payer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_on_the_way_is_found_by_lookup_and_paid_once() {
    let Some(rig) = rig(GatewayConfig::demo(), &["--never-answer"]).await else {
        return;
    };
    let payer = payer(&rig).await;
    let (c, _d) = client(payer.clone(), &rig.gw.base, |_| {});
    let url = format!("{}/v1/demo", rig.gw.base);
    let err = c.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::PaymentUnknown { .. }), "{err:?}");
    assert_eq!(
        rig.gw.node.settlements(),
        1,
        "the wallet paid; its answer was lost"
    );
    assert_eq!(c.budget().unwrap().reserved_msat, 31_000);

    // The next fetch asks the wallet first, finds the payment, and uses
    // the token it bought.
    rig.alby.set(json!({"mode": "normal"}));
    let resp = c.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.receipt.unwrap().paid);
    assert_eq!(rig.alby.stat("pay_invoice"), 1);
    assert!(rig.alby.stat("lookup_invoice") >= 1);
    assert_eq!(rig.gw.node.settlements(), 1);
    let budget = c.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.reserved_msat), (21_000, 0));
    payer.close().await;
}

/// `fetch` on the CLI with the wallet, a store in `data_dir`, JSON out.
fn cli_fetch(uri: &str, data_dir: &std::path::Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "fetch",
        url,
        "--json",
        "--allow-private",
        "--network",
        "regtest",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .args(["--config", "/dev/null"])
    .env("L402_NWC_URI", uri)
    .env("L402_PAYMENT_TIMEOUT_SECS", "20")
    .env_remove("RUST_LOG");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_killed_while_the_wallet_pays_late_is_resolved_by_lookup_and_paid_once() {
    let Some(rig) = rig(
        GatewayConfig::demo(),
        &["--hold-pay-ms", "3000", "--balance-msat", "10000000"],
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/v1/demo", rig.gw.base);
    let mut child = cli_fetch(&rig.alby.uri, dir.path(), &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the wallet has the request, before it pays.
    let started = Instant::now();
    while rig.alby.stat("pay_invoice") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the request never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(rig.gw.node.settlements(), 0);
    // The wallet carries the request out after the process is gone.
    let started = Instant::now();
    while rig.gw.node.settlements() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the wallet never paid"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.alby.set(json!({"mode": "normal"}));
    let out = cli_fetch(&rig.alby.uri, dir.path(), &url).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["receipt"]["paid"], false, "{v}");
    assert_eq!(rig.alby.stat("pay_invoice"), 1, "paid once");
    assert_eq!(rig.gw.node.settlements(), 1);

    // `spend` shows the one payment, and the wallet's balance beside it.
    let out = Command::new(BIN)
        .args([
            "spend",
            "--json",
            "--network",
            "regtest",
            "--config",
            "/dev/null",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("L402_NWC_URI", &rig.alby.uri)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["session"]["spent_msat"], 21_000, "{v}");
    assert_eq!(v["session"]["payments"], 1, "{v}");
    assert_eq!(v["wallet_balance_msat"], 10_000_000 - 21_000, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_on_another_network_or_unreachable_is_refused_at_start() {
    let Some(rig) = rig(GatewayConfig::demo(), &["--network", "mainnet"]).await else {
        return;
    };
    let uri = rig.alby.uri.parse().unwrap();
    let err = NwcPayer::connect(uri, Some(Network::Regtest), timeouts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NwcPayerError::WrongNetwork {
                wallet: Network::Mainnet,
                configured: Network::Regtest
            }
        ),
        "{err}"
    );
    // The CLI says so, with its own exit code and kind.
    let dir = tempfile::tempdir().unwrap();
    let out = cli_fetch(
        &rig.alby.uri,
        dir.path(),
        &format!("{}/v1/demo", rig.gw.base),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the wallet is on mainnet"), "{stderr}");
    assert_eq!(rig.alby.stat("pay_invoice"), 0);

    // No relay listening: a clear error naming it, at once, exit 4.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = rig.alby.uri.replace(
        &rig.relay.replace(':', "%3A").replace('/', "%2F"),
        &format!("ws%3A%2F%2F127.0.0.1%3A{port}"),
    );
    assert_ne!(down, rig.alby.uri, "the relay was replaced");
    let started = Instant::now();
    let out = cli_fetch(&down, dir.path(), &format!("{}/v1/demo", rig.gw.base))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!stderr.contains(&secret_of(&rig.alby.uri)), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_nwc_pays_over_mcp_and_the_secret_never_reaches_a_log() {
    let Some(rig) = rig(GatewayConfig::demo(), &["--balance-msat", "5000000"]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stderr_file = dir.path().join("stderr.log");
    let uri = rig.alby.uri.clone();
    let url = format!("{}/v1/demo", rig.gw.base);
    let data = dir.path().join("data");
    let stderr_path = stderr_file.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .arg("-vvv")
            .args([
                "serve",
                "--nwc",
                &uri,
                "--allow-private",
                "--network",
                "regtest",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args(["--config", "/dev/null"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let messages = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "l402_fetch", "arguments": {"url": url}}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "spend_summary", "arguments": {}}}),
        ];
        let mut lines = Vec::new();
        for m in &messages {
            writeln!(stdin, "{m}").unwrap();
            stdin.flush().unwrap();
            let Some(id) = m.get("id") else { continue };
            loop {
                let line = stdout.next().expect("an answer").unwrap();
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                let done = v.get("id") == Some(id);
                lines.push(v);
                if done {
                    break;
                }
            }
        }
        drop(stdin);
        assert!(child.wait().unwrap().success());
        lines
    })
    .await
    .unwrap();
    let answer = |id: i64| lines.iter().find(|v| v["id"] == id).unwrap().clone();
    let fetched = answer(2);
    assert_eq!(fetched["result"]["isError"], false, "{fetched}");
    assert_eq!(
        fetched["result"]["structuredContent"]["receipt"]["amount_msat"],
        21_000
    );
    let spend = answer(3);
    let summary = &spend["result"]["structuredContent"];
    assert_eq!(summary["session"]["spent_msat"], 21_000, "{spend}");
    assert_eq!(
        summary["wallet_balance_msat"],
        5_000_000 - 21_000,
        "{spend}"
    );
    assert_eq!(rig.alby.stat("pay_invoice"), 1);

    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(
        stderr.contains("Nostr Wallet Connect"),
        "the payer is logged:\n{stderr}"
    );
    assert!(
        stderr.len() > 2000,
        "-vvv logs plenty: {} bytes",
        stderr.len()
    );
    let secret = secret_of(&rig.alby.uri);
    assert!(!stderr.contains(&secret), "the secret is in the log");
    assert!(
        !stderr.contains(&secret[..16]),
        "part of the secret is in the log"
    );
    for v in &lines {
        assert!(
            !v.to_string().contains(&secret),
            "the secret is in an MCP message"
        );
    }
}

#[test]
fn a_wallet_file_others_can_read_is_warned_about_and_its_secret_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nwc.uri");
    let secret = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";
    std::fs::write(
        &file,
        format!(
            "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4\
             ?relay=wss%3A%2F%2Frelay.example.com&secret={secret}\n"
        ),
    )
    .unwrap();
    let show = |mode: u32| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = Command::new(BIN)
            .args(["config", "show", "--config", "/dev/null", "--nwc-file"])
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = show(0o644);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stdout.contains("b889ff5b1513b641"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(secret), "{text}");
    }
    let (_, stderr) = show(0o600);
    assert!(!stderr.contains("chmod"), "{stderr}");
}
