//! `l402-mcp dashboard`: its JSON API after real paid fetches (exact
//! numbers), its guard (Host, Origin, token, CSRF), that no secret reaches
//! any answer, that user data is escaped, and the page itself in headless
//! Chromium (tests/interop/dashboard_browser.py): rendered, live, and its
//! pause switch stopping an agent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use l402_mcp::budget::{Ledger, ReserveRequest};
use l402_mcp::client::{ClientConfig, FetchRequest, L402Client};
use l402_mcp::dashboard::{Dashboard, DashboardError, DashboardOptions};
use l402_mcp::lightning::PaymentHash;
use l402_mcp::lightning::dev::DevPayer;
use l402_mcp::store::{ManualClock, Origin, Store};

use crate::client::{demo_with_route, single_use_get};
use crate::common::{TestGateway, python, run_python};

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
const HOST: &str = "127.0.0.1:8404";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn bind() -> SocketAddr {
    HOST.parse().unwrap()
}

/// A store with a clock of its own, and a client paying the gateway's dev
/// node from `session` with `budget_sats`.
fn client(
    gw: &TestGateway,
    store: &Arc<Store>,
    session: &str,
    budget_sats: u64,
) -> Arc<L402Client> {
    let config = ClientConfig {
        session: session.into(),
        session_budget_msat: budget_sats * 1000,
        allowed_origins: vec![gw.base.clone()],
        ..ClientConfig::default()
    };
    let payer = Arc::new(DevPayer::new(&gw.base).unwrap());
    Arc::new(L402Client::new(config, payer, store.clone()).unwrap())
}

fn dashboard(store: &Arc<Store>, config: ClientConfig) -> Arc<Dashboard> {
    Arc::new(Dashboard::new(
        L402Client::for_reports(config, None, store.clone()).unwrap(),
    ))
}

fn router(d: &Arc<Dashboard>, options: &DashboardOptions) -> axum::Router {
    d.router(bind(), options, CancellationToken::new()).unwrap()
}

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap()
}

async fn get_json(app: &axum::Router, path: &str) -> Value {
    let (status, _, body) = call(app, get(path)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The known sequence: two hours ago alpha buys /v1/demo (21 sats, L402)
/// and beta /v1/charge (5 sats, Payment); now beta buys the single-use
/// /v1/once twice (7 sats each). Returns the store, its clock's two times
/// and the gateway.
async fn known_fetches() -> (TestGateway, Arc<Store>, tempfile::TempDir, u64, u64) {
    let gw = TestGateway::start(demo_with_route(single_use_get("/v1/once", 7))).await;
    let dir = tempfile::tempdir().unwrap();
    let (later, earlier) = (now(), now() - 7200);
    let clock = Arc::new(ManualClock::new(earlier));
    let store =
        Arc::new(Store::open_with_clock(dir.path().join("store.sqlite"), clock.clone()).unwrap());
    let alpha = client(&gw, &store, "alpha", 1000);
    let beta = client(&gw, &store, "beta", 2000);
    let paid =
        |r: &l402_mcp::client::FetchResponse| r.receipt.as_ref().map(|r| (r.paid, r.amount_msat));
    let r = alpha
        .fetch(FetchRequest::get(format!("{}/v1/demo", gw.base)))
        .await
        .unwrap();
    assert_eq!((r.status, paid(&r)), (200, Some((true, 21_000))));
    let r = beta
        .fetch(FetchRequest::get(format!("{}/v1/charge", gw.base)))
        .await
        .unwrap();
    assert_eq!((r.status, paid(&r)), (200, Some((true, 5_000))));
    clock.set(later);
    for _ in 0..2 {
        let r = beta
            .fetch(FetchRequest::get(format!("{}/v1/once", gw.base)))
            .await
            .unwrap();
        assert_eq!((r.status, paid(&r)), (200, Some((true, 7_000))));
    }
    // alpha again: its token is reused, nothing paid.
    let r = alpha
        .fetch(FetchRequest::get(format!("{}/v1/demo", gw.base)))
        .await
        .unwrap();
    assert_eq!((r.status, paid(&r)), (200, Some((false, 0))));
    (gw, store, dir, earlier, later)
}

fn limits() -> ClientConfig {
    ClientConfig {
        max_cost_msat: 300_000,
        fee_limit_msat: 2_000,
        session_budget_msat: 4_000_000,
        server_budget_msat: Some(9_000_000),
        approve_above_msat: Some(50_000),
        payments_per_minute: 7,
        daily_cap_msat: Some(20_000_000),
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_after_real_fetches_says_exactly_what_was_spent() {
    let (gw, store, _dir, earlier, later) = known_fetches().await;
    let d = dashboard(&store, limits());
    let app = router(&d, &DashboardOptions::default());

    // Sessions and totals.
    let s = get_json(&app, "/api/summary").await;
    let sessions = s["sessions"].as_array().unwrap();
    let row = |name: &str| {
        sessions
            .iter()
            .find(|x| x["session"] == name)
            .unwrap()
            .clone()
    };
    let alpha = row("alpha");
    assert_eq!(
        (
            &alpha["budget_msat"],
            &alpha["spent_msat"],
            &alpha["reserved_msat"],
            &alpha["left_msat"],
            &alpha["payments"]
        ),
        (
            &json!(1_000_000),
            &json!(21_000),
            &json!(0),
            &json!(979_000),
            &json!(1)
        )
    );
    let beta = row("beta");
    assert_eq!(
        (
            &beta["budget_msat"],
            &beta["spent_msat"],
            &beta["reserved_msat"],
            &beta["left_msat"],
            &beta["payments"]
        ),
        (
            &json!(2_000_000),
            &json!(19_000),
            &json!(0),
            &json!(1_981_000),
            &json!(3)
        )
    );
    assert_eq!(s["all_time"]["spent_msat"], 40_000);
    assert_eq!(s["all_time"]["payments"], 4);
    assert_eq!(s["all_time"]["by_origin"][0]["origin"], gw.base);
    assert_eq!(s["last_day_msat"], 40_000);
    assert_eq!(s["daily_cap_msat"], 20_000_000);
    assert_eq!(s["pause"], Value::Null);
    assert_eq!(s["now"], later);

    // Payments: newest first, filterable.
    let p = get_json(&app, "/api/payments").await;
    let listed: Vec<(String, String, u64, String, String)> = p["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["session"].as_str().unwrap().to_string(),
                x["url"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&gw.base)
                    .to_string(),
                x["amount_msat"].as_u64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
                x["scheme"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |s: &str, u: &str, a, sc: &str| {
        (
            s.to_string(),
            u.to_string(),
            a,
            "succeeded".to_string(),
            sc.to_string(),
        )
    };
    assert_eq!(
        listed,
        vec![
            row("beta", "/v1/once", 7_000, "l402"),
            row("beta", "/v1/once", 7_000, "l402"),
            row("beta", "/v1/charge", 5_000, "payment"),
            row("alpha", "/v1/demo", 21_000, "l402"),
        ]
    );
    assert_eq!(p["payments"][3]["time"], earlier);
    assert_eq!(p["payments"][0]["time"], later);
    let count = |v: Value| v["payments"].as_array().unwrap().len();
    assert_eq!(count(get_json(&app, "/api/payments?session=beta").await), 3);
    assert_eq!(
        count(get_json(&app, "/api/payments?session=alpha&status=succeeded").await),
        1
    );
    assert_eq!(
        count(get_json(&app, "/api/payments?status=failed").await),
        0
    );
    assert_eq!(count(get_json(&app, "/api/payments?limit=2").await), 2);
    let origin: String = url::form_urlencoded::byte_serialize(gw.base.as_bytes()).collect();
    assert_eq!(
        count(get_json(&app, &format!("/api/payments?origin={origin}")).await),
        4
    );
    assert_eq!(
        count(get_json(&app, "/api/payments?origin=https%3A%2F%2Felsewhere.example").await),
        0
    );
    let (status, _, body) = call(&app, get("/api/payments?status=lost")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Spend per hour: 26 sats two bars before the last, 14 in the last.
    let h = get_json(&app, "/api/spend?bucket=hour").await;
    let bars = h["buckets"].as_array().unwrap();
    assert_eq!(bars.len(), 24);
    let totals: Vec<u64> = bars
        .iter()
        .map(|b| b["total_msat"].as_u64().unwrap())
        .collect();
    let mut want = vec![0; 24];
    want[21] = 26_000;
    want[23] = 14_000;
    assert_eq!(totals, want);
    assert_eq!(h["end"].as_u64().unwrap(), (later / 3600 + 1) * 3600);
    assert_eq!(
        bars[21]["by_origin"],
        json!([{"origin": gw.base, "msat": 26_000}])
    );
    assert_eq!(h["total_msat"], 40_000);
    // Per day: both in today's bar, or 26 yesterday and 14 today.
    let dd = get_json(&app, "/api/spend?bucket=day").await;
    let days: Vec<u64> = dd["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total_msat"].as_u64().unwrap())
        .collect();
    assert_eq!(days.len(), 30);
    if earlier / 86_400 == later / 86_400 {
        assert_eq!(&days[28..], &[0, 40_000]);
    } else {
        assert_eq!(&days[28..], &[26_000, 14_000]);
    }
    let (status, _, _) = call(&app, get("/api/spend?bucket=week")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Tokens: four bought, each counted once by origin and status.
    let t = get_json(&app, "/api/tokens").await;
    assert_eq!(t["tokens"].as_array().unwrap().len(), 4);
    let counted: u64 = t["by_origin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tokens"].as_u64().unwrap())
        .sum();
    let paid: u64 = t["by_origin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["spent_msat"].as_u64().unwrap())
        .sum();
    assert_eq!((counted, paid), (4, 40_000));
    assert!(
        t["by_origin"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["origin"] == gw.base)
    );

    // Limits: the settings given.
    let l = get_json(&app, "/api/limits").await;
    assert_eq!(
        l,
        json!({
            "session": "default", "max_cost_msat": 300_000, "fee_limit_msat": 2_000,
            "session_budget_msat": 4_000_000, "server_budget_msat": 9_000_000,
            "approve_above_msat": 50_000, "payments_per_minute": 7,
            "daily_cap_msat": 20_000_000, "prefer_scheme": "l402",
        })
    );

    // The page shows the same, without JavaScript.
    let (status, headers, page) = call(&app, get("/?session=beta")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    for text in [
        "979 sats",
        "1,981 sats",
        "19 sats",
        "40 sats",
        "3 payments, newest first.",
        "<svg",
        "class=\"bar\"",
        "Per-request cap",
        "300 sats",
    ] {
        assert!(page.contains(text), "page lacks {text:?}");
    }
    let svg = call(&app, get("/chart.svg?bucket=hour")).await;
    assert_eq!(svg.1[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(svg.2.matches("class=\"bar\"").count(), 2);

    // The switch, as the script presses it (JSON): the next payment of a
    // running agent is refused, paused; the page says so; resume lifts it.
    let press = |path: &str, body: &str| {
        Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, "http://127.0.0.1:8404")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _, body) = call(
        &app,
        press("/api/pause", r#"{"reason": "too much on /v1/once"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["paused"], true);
    assert_eq!(state["pause"]["reason"], "too much on /v1/once");
    assert_eq!(state["pause"]["by"], "dashboard");
    assert_eq!(state["pause"]["since"], later);
    assert_eq!(
        get_json(&app, "/api/summary").await["pause"]["by"],
        "dashboard"
    );
    let beta = client(&gw, &store, "beta", 2000);
    let refused = beta
        .fetch(FetchRequest::get(format!("{}/v1/once", gw.base)))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "paused", "{refused}");
    let (_, _, page) = call(&app, get("/")).await;
    assert!(page.contains("class=\"pause paused\"") && page.contains("too much on /v1/once"));
    assert!(page.contains("id=\"resume\""));
    let (status, _, body) = call(&app, press("/api/resume", "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["paused"], false);
    let history = state["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (&history[0]["paused_by"], &history[0]["resumed_by"]),
        (&json!("dashboard"), &json!("dashboard"))
    );
    let r = beta
        .fetch(FetchRequest::get(format!("{}/v1/once", gw.base)))
        .await
        .unwrap();
    assert_eq!(
        r.receipt.map(|r| r.amount_msat),
        Some(7_000),
        "paying again after resume"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_refuses_strangers_rebinding_and_cross_site_posts() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let d = dashboard(&store, ClientConfig::default());

    // Off loopback, a token is required.
    let public: SocketAddr = "0.0.0.0:8404".parse().unwrap();
    assert!(matches!(
        d.router(
            public,
            &DashboardOptions::default(),
            CancellationToken::new()
        ),
        Err(DashboardError::TokenRequired(_))
    ));
    let options = DashboardOptions {
        auth_token: Some(TOKEN.into()),
        ..Default::default()
    };
    let app = d
        .router(public, &options, CancellationToken::new())
        .unwrap();
    let req = |path: &str, extra: &[(&str, &str)]| {
        let mut b = Request::get(path).header(header::HOST, "dash.example:8404");
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    };
    let (status, headers, _) = call(&app, req("/api/summary", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    let (status, _, page) = call(&app, req("/", &[("accept", "text/html")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("?token="), "{page}");
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        call(&app, req("/api/summary", &[("authorization", &bearer)]))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &app,
            req(
                "/api/summary",
                &[("authorization", "Bearer wrong-wrong-wrong-wrong-wrong-wr")]
            )
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // A browser brings the token once; it becomes a cookie and leaves the address.
    let (status, headers, _) =
        call(&app, req(&format!("/?status=succeeded&token={TOKEN}"), &[])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/?status=succeeded");
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "the cookie is not the token itself");
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(
        call(&app, req("/", &[("cookie", &cookie)])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, req("/?token=not-the-token", &[])).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Loopback: Host names that are not ours (DNS rebinding) and foreign
    // origins are refused.
    let app = router(&d, &DashboardOptions::default());
    let with = |host: &str, origin: Option<&str>| {
        let mut b = Request::get("/api/summary").header(header::HOST, host);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(call(&app, with(HOST, None)).await.0, StatusCode::OK);
    assert_eq!(
        call(&app, with("localhost:8404", None)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, with("evil.example:8404", None)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, with(HOST, Some("https://evil.example"))).await.0,
        StatusCode::FORBIDDEN
    );

    // A state change: POST only, from the dashboard's own page.
    let post = |path: &str, origin: Option<&str>| {
        let mut b = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html,application/xhtml+xml");
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::from("reason=test")).unwrap()
    };
    assert_eq!(
        call(&app, post("/api/pause", None)).await.0,
        StatusCode::FORBIDDEN,
        "no Origin"
    );
    assert_eq!(
        call(&app, post("/api/pause", Some("https://evil.example")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, post("/api/pause", Some("http://localhost:3000")))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "another loopback page"
    );
    assert_eq!(
        call(&app, post("/api/resume", Some("http://127.0.0.1:9")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) = call(
        &app,
        Request::get("/api/resume")
            .header(header::HOST, HOST)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(
        d_paused(&app).await.is_null(),
        "nothing refused paused anything"
    );
    // From its own page, a plain form (JavaScript off): paused, and back to the page.
    let (status, headers, body) =
        call(&app, post("/api/pause", Some("http://127.0.0.1:8404"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/");
    let p = d_paused(&app).await;
    assert_eq!(
        (&p["reason"], &p["by"]),
        (&json!("test"), &json!("dashboard"))
    );
    // The origin must be the page's own exactly (the Host it was served as).
    let (status, _, _) = call(&app, post("/api/resume", Some("http://localhost:8404"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&app, post("/api/resume", Some("http://127.0.0.1:8404"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(d_paused(&app).await.is_null());
}

async fn d_paused(app: &axum::Router) -> Value {
    get_json(app, "/api/pause").await["pause"].clone()
}

/// Every page and API answer of `app`.
async fn every_answer(app: &axum::Router) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in [
        "/",
        "/?status=succeeded",
        "/chart.svg?bucket=hour",
        "/chart.svg?bucket=day",
        "/api/summary",
        "/api/payments",
        "/api/payments?limit=1000",
        "/api/spend?bucket=hour",
        "/api/spend?bucket=day",
        "/api/tokens",
        "/api/limits",
        "/api/pause",
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/nowhere",
    ] {
        let (_, _, body) = call(app, get(path)).await;
        out.push((path.to_string(), body));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_macaroon_preimage_or_invoice_reaches_any_answer() {
    let (_gw, store, _dir, _, _) = known_fetches().await;
    let mut secrets = Vec::new();
    for info in store.list_tokens().unwrap() {
        let token = store.get_by_hash(&info.payment_hash).unwrap().unwrap();
        secrets.push(token.macaroon().to_string());
        secrets.push(token.invoice().to_string());
        if let Some(p) = token.preimage() {
            secrets.push(p.to_hex());
        }
    }
    assert_eq!(secrets.len(), 12, "four paid tokens, three secrets each");
    let d = dashboard(&store, ClientConfig::default());
    let app = router(&d, &DashboardOptions::default());
    for (path, body) in every_answer(&app).await {
        for s in &secrets {
            // The long ones whole, and any 24-character piece of them.
            assert!(!body.contains(s.as_str()), "{path} shows a secret");
            assert!(!body.contains(&s[..24]), "{path} shows part of a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_names_urls_and_reasons_are_escaped_everywhere() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let ledger = Ledger::new(store.clone());
    let evil = "<script>alert('s')</script>";
    ledger.open_session(evil, 10_000_000).unwrap();
    let origin: Origin = "https://api.example".parse().unwrap();
    let url = "https://api.example/q?x=\"><script>alert('u')</script>";
    let hash = PaymentHash([9; 32]);
    let r = ledger
        .reserve(&ReserveRequest {
            session: evil,
            origin: &origin,
            url,
            payment_hash: &hash,
            amount_msat: 3_000,
            fee_limit_msat: 1_000,
            scheme: Default::default(),
        })
        .unwrap();
    ledger.mark_in_flight(&r).unwrap();
    ledger.commit(&r, 3_000, 0).unwrap();
    let d = dashboard(&store, ClientConfig::default());
    let app = router(&d, &DashboardOptions::default());
    for (path, body) in every_answer(&app).await {
        assert!(
            !body.contains("<script>alert"),
            "{path} carries markup from user data"
        );
    }
    let (_, _, page) = call(&app, get("/")).await;
    assert!(
        page.contains("&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;"),
        "the session, escaped"
    );
    assert!(
        page.contains("x=&quot;&gt;&lt;script&gt;"),
        "the URL, escaped"
    );
    let (_, _, svg) = call(&app, get("/chart.svg?bucket=day")).await;
    assert!(svg.contains("https://api.example"));
    // The JSON API carries the text as text (JSON-escaped by serde).
    let p = get_json(&app, "/api/payments").await;
    assert_eq!(p["payments"][0]["url"], url);
    assert_eq!(p["payments"][0]["session"], evil);
}

// ---------------------------------------------------------------------------
// the page in headless Chromium

/// Debian's Chromium and its driver, which CI installs; elsewhere the test
/// says SKIPPED.
fn chromium() -> bool {
    let present =
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !present && std::env::var_os("CI").is_some() {
        panic!(
            "the dashboard browser test needs /usr/bin/chromium and /usr/bin/chromedriver (apt packages chromium, chromium-driver; .ci/run installs them)"
        );
    }
    if !present {
        eprintln!(
            "SKIPPED: the dashboard browser test needs Debian's chromium and chromium-driver"
        );
    }
    present
}

/// `l402-mcp dashboard` on a free loopback port, killed when dropped.
struct DashboardProcess {
    child: Child,
    addr: String,
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_flags(dir: &Path) -> Vec<String> {
    let config = dir.join("client.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    vec![
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
    ]
}

fn start_dashboard(dir: &Path) -> DashboardProcess {
    let mut child = Command::new(BIN)
        .arg("dashboard")
        .args(store_flags(dir))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-cost",
            "300",
            "--daily-cap",
            "5000",
        ])
        .env_remove("L402_DASHBOARD_AUTH_TOKEN")
        .env_remove("L402_DASHBOARD_AUTH_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dashboard");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("dashboard exited before listening")
            .unwrap();
        if let Some(rest) = line.split("dashboard at http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    DashboardProcess { child, addr }
}

/// `l402-mcp fetch --json` of `url` from `session`, paying the gateway's
/// dev node: the argument list (the browser script runs some itself).
fn fetch_argv(dir: &Path, base: &str, session: &str, url: &str) -> Vec<String> {
    let mut v = vec![
        BIN.to_string(),
        "-q".into(),
        "fetch".into(),
        "--json".into(),
    ];
    v.extend(store_flags(dir));
    v.extend([
        "--dev-node".into(),
        base.into(),
        "--session".into(),
        session.into(),
        "--budget".into(),
        "1000".into(),
        url.into(),
    ]);
    v
}

fn run_fetch(argv: &[String]) -> Value {
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_in_headless_chromium_renders_updates_live_and_pauses_an_agent() {
    if !chromium() {
        return;
    }
    let Some(py) = python() else {
        return;
    };
    let gw = TestGateway::start(demo_with_route(single_use_get("/v1/once", 7))).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();

    // Real `l402-mcp fetch` runs fill the store: 21 + 7 sats by "research",
    // 5 by "writer".
    let base = gw.base.clone();
    let fills = [
        ("research", "/v1/demo"),
        ("research", "/v1/once"),
        ("writer", "/v1/charge"),
    ];
    for (session, path) in fills {
        let argv = fetch_argv(&d, &base, session, &format!("{base}{path}"));
        let out = tokio::task::spawn_blocking(move || run_fetch(&argv))
            .await
            .unwrap();
        assert_eq!(out["status"], 200, "{out}");
    }
    let dash = start_dashboard(&d);

    let expect = json!({
        "sessions": {"research": {"spent": "28 sats", "left": "972 sats", "payments": "2"},
                     "writer": {"spent": "5 sats", "left": "995 sats", "payments": "1"}},
        "total_spent": "33 sats",
        "payments": 3,
        "max_cost": "300 sats",
        "live_session": "live-agent",
        "live_spent": "7 sats",
    });
    let live = fetch_argv(&d, &base, "live-agent", &format!("{base}/v1/once"));
    let paused = fetch_argv(&d, &base, "live-agent", &format!("{base}/v1/once"));
    let shot = artifacts().join("dashboard.png");
    let args = vec![
        "--url".to_string(),
        format!("http://{}/", dash.addr),
        "--expect".into(),
        expect.to_string(),
        "--live-fetch".into(),
        serde_json::to_string(&live).unwrap(),
        "--paused-fetch".into(),
        serde_json::to_string(&paused).unwrap(),
        "--screenshot".into(),
        shot.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(&py, "dashboard_browser.py", &args)
    })
    .await
    .unwrap();
    assert!(out.contains("\"ok\": true"), "{out}");
    assert!(shot.exists(), "the screenshot");
    drop(dash);
}
