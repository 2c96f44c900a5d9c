//! A paid fetch over Nostr Wallet Connect against the same paid fetch over
//! LND, on a regtest network (issue 11's benchmark).
//!
//! Both clients pay with alice's lnd the same aperture route (bob
//! invoices): one through our gRPC client ([`LndNode`]), one through
//! [`NwcPayer`] to Alby's wallet service (`tests/nwc-wallet/wallet.mjs`,
//! npm `@getalby/sdk`), which pays with alice's lnd over its REST API, on a
//! relay in this process (rust-nostr's relay builder on 127.0.0.1). Each
//! fetch starts without a token (the store's tokens are cleared), so each
//! one asks, is challenged, pays and retries. Rounds alternate LND / NWC,
//! who goes first alternating. A third series times the NWC round trip
//! alone: `get_balance`, which the wallet answers from memory (it was
//! started with a given balance), so it is relay + encryption both ways.
//!
//! Prints the medians, the ratio NWC/LND and the extra cost of NWC beside
//! the round trip's median.
//!
//! ```text
//! scripts/regtest/up.sh --aperture                 # prints the run dir
//! bash scripts/nwc-wallet.sh --install
//! L402_REGTEST_ENV=<run dir>/env.sh cargo bench --bench nwc
//! ```
//!
//! `L402_BENCH_RUNS` sets the rounds (default 15). Without
//! `L402_REGTEST_ENV` the bench says SKIPPED and does nothing.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l402_mcp::client::{ClientConfig, FetchRequest, L402Client};
use l402_mcp::lightning::lnd::{LndConfig, LndHost, LndMacaroon, LndNode, TlsCert};
use l402_mcp::lightning::nwc::{NwcPayer, NwcTimeouts};
use l402_mcp::lightning::{Network, Payer};
use l402_mcp::store::Store;

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

/// Alby's wallet service, stopped by its pid when dropped.
struct Wallet(Child);

impl Drop for Wallet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the wallet service on `relay`, paying with alice's lnd over
/// REST; returns it and its connection string.
fn start_wallet(env: &HashMap<String, String>, relay: &str) -> (Wallet, String) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/nwc-wallet.sh"))
        .arg("--path")
        .output()
        .unwrap();
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let node = dir.join("node_modules/node/bin/node");
    assert!(
        out.status.success() && node.exists(),
        "Alby's wallet service is not installed: run bash scripts/nwc-wallet.sh --install"
    );
    let mut child = Command::new(node)
        .arg(repo().join("tests/nwc-wallet/wallet.mjs"))
        .args(["--relay", relay, "--exit-on-eof"])
        .args([
            "--pay-via",
            &format!("lnd-rest=https://{}", env["L402_REGTEST_ALICE_REST_HOST"]),
        ])
        .args(["--lnd-macaroon", &env["L402_REGTEST_ALICE_ADMIN_MACAROON"]])
        .args(["--lnd-tls-cert", &env["L402_REGTEST_ALICE_TLS_CERT"]])
        .args(["--balance-msat", "100000000000"])
        .env("L402_NWC_WALLET_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let wallet = Wallet(child);
    let ready: serde_json::Value = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("the wallet did not come up ({e}): {first:?}"));
    (wallet, ready["uri"].as_str().unwrap().to_string())
}

/// One side of the comparison: a payer, its store, the origin allowed.
struct Side {
    payer: Arc<dyn Payer>,
    store: Arc<Store>,
    origin: String,
}

impl Side {
    fn new(payer: Arc<dyn Payer>, origin: &str, dir: &Path) -> Side {
        Side {
            payer,
            store: Arc::new(Store::open(dir.join("store.sqlite")).unwrap()),
            origin: origin.to_string(),
        }
    }

    /// A client with no token in memory (the store's are cleared), as a
    /// new process would start: each fetch then buys.
    fn fresh_client(&self) -> L402Client {
        self.store.clear_tokens().unwrap();
        let config = ClientConfig {
            allowed_origins: vec![self.origin.clone()],
            session_budget_msat: u64::MAX / 4,
            payments_per_minute: u32::MAX,
            ..Default::default()
        };
        L402Client::new(config, self.payer.clone(), self.store.clone()).unwrap()
    }
}

/// One paid fetch from scratch, in ms (the client is made before the
/// clock starts).
async fn paid_fetch(side: &Side, url: &str) -> f64 {
    let client = side.fresh_client();
    let t0 = Instant::now();
    let r = client.fetch(FetchRequest::get(url)).await.unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(r.status, 200, "the paid fetch failed: {r:?}");
    assert!(
        r.receipt.is_some_and(|receipt| receipt.paid),
        "no payment was made"
    );
    ms
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument would be ignored.
    let Some(env_sh) = std::env::var_os("L402_REGTEST_ENV") else {
        eprintln!(
            "SKIPPED: benches/nwc.rs needs a running regtest network with aperture: \
             scripts/regtest/up.sh --aperture, then L402_REGTEST_ENV=<run dir>/env.sh"
        );
        return;
    };
    let env = parse_env_sh(Path::new(&env_sh));
    let Some(paid) = env.get("L402_REGTEST_APERTURE_PAID_URL") else {
        panic!("this network has no aperture: start it with scripts/regtest/up.sh --aperture");
    };
    let url = format!("{paid}/bench");
    let origin = {
        let u = reqwest::Url::parse(&url).unwrap();
        format!(
            "{}://{}",
            u.scheme(),
            u.host_str()
                .zip(u.port())
                .map(|(h, p)| format!("{h}:{p}"))
                .unwrap()
        )
    };
    let runs: usize = std::env::var("L402_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let relay = nostr_relay_builder::LocalRelay::new(
            nostr_relay_builder::builder::RelayBuilder::default()
                .addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                .rate_limit(nostr_relay_builder::builder::RateLimit {
                    max_reqs: 1000,
                    notes_per_minute: 100_000,
                }),
        );
        relay.run().await.unwrap();
        let relay_url = relay.url().await.to_string();
        let (_wallet, uri) = start_wallet(&env, &relay_url);

        let lnd = LndNode::connect(LndConfig::new(
            env["L402_REGTEST_ALICE_GRPC_HOST"]
                .parse::<LndHost>()
                .unwrap(),
            TlsCert::from_setting(&env["L402_REGTEST_ALICE_TLS_CERT"]).unwrap(),
            LndMacaroon::from_setting(&env["L402_REGTEST_ALICE_ADMIN_MACAROON"]).unwrap(),
            Network::Regtest,
        ))
        .await
        .unwrap();
        let nwc = Arc::new(
            NwcPayer::connect(
                uri.parse().unwrap(),
                Some(Network::Regtest),
                NwcTimeouts::default(),
            )
            .await
            .unwrap(),
        );
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let by_lnd = Side::new(Arc::new(lnd), &origin, dirs.0.path());
        let by_nwc = Side::new(nwc.clone(), &origin, dirs.1.path());

        // A warm-up of each (connections, routes, the wallet's first pay).
        paid_fetch(&by_lnd, &url).await;
        paid_fetch(&by_nwc, &url).await;
        nwc.balance().await.unwrap();

        let (mut lnd_ms, mut nwc_ms, mut trip_ms) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..runs {
            if round % 2 == 0 {
                lnd_ms.push(paid_fetch(&by_lnd, &url).await);
                nwc_ms.push(paid_fetch(&by_nwc, &url).await);
            } else {
                nwc_ms.push(paid_fetch(&by_nwc, &url).await);
                lnd_ms.push(paid_fetch(&by_lnd, &url).await);
            }
            let t0 = Instant::now();
            let balance = nwc.balance().await.unwrap();
            trip_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            assert!(balance.is_some(), "the wallet did not report a balance");
        }
        nwc.close().await;
        tokio::time::sleep(Duration::from_millis(50)).await;

        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("paid fetch over LND (gRPC, ms): {}", show(&lnd_ms));
        println!(
            "paid fetch over NWC (Alby -> lnd REST, ms): {}",
            show(&nwc_ms)
        );
        println!("NWC round trip (get_balance, ms): {}", show(&trip_ms));
        let (l, n, t) = (
            median(&mut lnd_ms),
            median(&mut nwc_ms),
            median(&mut trip_ms),
        );
        println!(
            "medians over {runs} rounds: LND {l:.1} ms, NWC {n:.1} ms, NWC round trip {t:.1} ms"
        );
        println!("ratio NWC/LND: {:.2}", n / l);
        println!(
            "NWC extra: {:.1} ms ({:.1} round trips)",
            n - l,
            (n - l) / t
        );
    });
}
