//! The client's overhead over plain HTTP, measured in one process.
//!
//! - baseline: a plain reqwest GET of a paid gateway route with a valid
//!   credential attached by hand (the gateway does the same work);
//! - `L402Client::fetch` of the same route with its cached token: the
//!   goal is within 5 % of the baseline;
//! - `L402Client::fetch` of a single-use route: every call pays on the dev
//!   network (challenge, checks, reserve, pending token, pay, commit, retry).
//!
//! Run: `cargo bench --bench client`

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use l402_mcp::client::{ClientConfig, FetchRequest, L402Client};
use l402_mcp::gateway::{self, Gateway, GatewayConfig};
use l402_mcp::l402::RootKey;
use l402_mcp::lightning::dev::{self, DevNode, DevPayer};
use l402_mcp::store::{Origin, Store};

struct Setup {
    rt: tokio::runtime::Runtime,
    base: String,
    client: Arc<L402Client>,
    authorization: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (base, client, authorization) = rt.block_on(async {
        let mut config = GatewayConfig::from_toml(
            "[rate_limit]\nchallenges_per_minute = 1000000\nburst = 1000000\n\
             [[routes]]\npath = \"/v1/demo\"\nmethod = \"GET\"\nprice_sats = 21\ndemo = \"demo\"\n\
             [[routes]]\npath = \"/once\"\nmethod = \"GET\"\nprice_sats = 1\ndemo = \"demo\"\ntoken = \"single-use\"\n",
        )
        .unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let node = Arc::new(DevNode::new());
        let gw = Arc::new(Gateway::new(config, RootKey::random(), node.clone()).unwrap());
        let app = gw.clone().router().merge(dev::router(node));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(gateway::serve(listener, gw, app, std::future::pending()));

        let store = Arc::new(Store::open(dir.path().join("bench.sqlite")).unwrap());
        let config = ClientConfig {
            allowed_origins: vec![base.clone()],
            session_budget_msat: u64::MAX / 4,
            payments_per_minute: u32::MAX,
            ..Default::default()
        };
        let payer = Arc::new(DevPayer::new(&base).unwrap());
        let client = Arc::new(L402Client::new(config, payer, store.clone()).unwrap());
        let first = client.fetch(FetchRequest::get(format!("{base}/v1/demo"))).await.unwrap();
        assert_eq!(first.status, 200);
        let origin: Origin = base.parse().unwrap();
        let token = store.find_usable(&origin).unwrap().unwrap();
        let authorization =
            format!("L402 {}:{}", token.macaroon(), token.preimage().unwrap().to_hex());
        (base, client, authorization)
    });
    Setup {
        rt,
        base,
        client,
        authorization,
        _dir: dir,
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let url = format!("{}/v1/demo", s.base);
    let plain = reqwest::Client::new();

    let mut group = c.benchmark_group("fetch /v1/demo");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("plain reqwest GET (baseline)", |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let r = plain
                    .get(&url)
                    .header("authorization", &s.authorization)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap()
            })
        });
    });
    group.bench_function("L402Client::fetch, cached token", |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let r = s.client.fetch(FetchRequest::get(&url)).await.unwrap();
                assert_eq!(r.status, 200);
                r.body
            })
        });
    });
    group.finish();

    let once = format!("{}/once", s.base);
    let mut group = c.benchmark_group("paid fetch (dev network)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("L402Client::fetch, pays every call", |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let r = s.client.fetch(FetchRequest::get(&once)).await.unwrap();
                assert_eq!(r.status, 200);
                assert!(r.receipt.unwrap().paid || r.status == 200);
                r.body
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
