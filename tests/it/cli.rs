//! The `l402-mcp` binary's client commands against a real gateway over
//! sockets: each test starts a gateway (which doubles as the dev node) in
//! process and runs the binary with its own data dir and a config path that
//! does not exist, so the user's own settings never leak in.

use std::path::PathBuf;
use std::process::Command;

use l402_mcp::gateway::GatewayConfig;
use l402_mcp::store::{Origin, Store};
use serde_json::Value;

use crate::common::TestGateway;

/// One run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"))
    }
}

/// A gateway and a fresh client data dir.
struct Env {
    gw: TestGateway,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self::start_with(GatewayConfig::demo()).await
    }

    async fn start_with(config: GatewayConfig) -> Self {
        Env {
            gw: TestGateway::start(config).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.base)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        // No config file: nothing from the machine's own settings.
        PathBuf::from("/dev/null")
    }

    /// `--config`, `--data-dir`: what every client command takes.
    fn store_flags(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config().display().to_string(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
        ]
    }

    /// The store flags and `--dev-node`.
    fn client_flags(&self) -> Vec<String> {
        let mut flags = self.store_flags();
        flags.extend(["--dev-node".into(), self.gw.base.clone()]);
        flags
    }

    /// Runs `l402-mcp fetch <args> <client flags>`.
    async fn fetch(&self, args: &[&str]) -> Run {
        self.fetch_env(args, &[]).await
    }

    async fn fetch_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all: Vec<String> = vec!["fetch".into()];
        all.extend(args.iter().map(|s| s.to_string()));
        all.extend(self.client_flags());
        run(&all, env).await
    }

    /// Runs `l402-mcp <args>` followed by `flags`.
    async fn cmd(&self, args: &[&str], flags: Vec<String>) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(flags);
        run(&all, &[]).await
    }

    fn settlements(&self) -> u64 {
        self.gw.node.settlements()
    }

    fn store(&self) -> Store {
        Store::open(self.data_dir().join("l402-mcp.sqlite")).unwrap()
    }
}

/// Runs the binary off the async workers (the gateway serves meanwhile),
/// with no L402_* or RUST_LOG variables from the caller's environment.
async fn run(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l402-mcp"));
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("L402_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run l402-mcp"))
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; {run:#?}");
}

// ---------------------------------------------------------------------------
// fetch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_pays_once_and_the_next_invocation_reuses_the_token() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");

    let first = env.fetch(&[&url]).await;
    assert_code(&first, 0);
    assert!(
        first.stdout.contains("Hello from behind the paywall"),
        "{first:?}"
    );
    assert_eq!(
        first.stderr.trim(),
        format!("paid 21 sats (+0 fee) for {url}; 4979 sats left in session default")
    );
    assert_eq!(env.settlements(), 1);

    let second = env.fetch(&[&url]).await;
    assert_code(&second, 0);
    assert!(second.stdout.contains("Hello from behind the paywall"));
    assert_eq!(
        second.stderr.trim(),
        format!(
            "reused a token bought earlier for {url} (no payment); 4979 sats left in session default"
        )
    );
    assert_eq!(env.settlements(), 1, "no new settlement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_service_on_the_same_origin_pays_again() {
    // The demo's /v1/data is a different service from /v1/demo: the
    // gateway refuses the /v1/demo token there, so the client pays for
    // /v1/data.
    let env = Env::start().await;
    assert_code(&env.fetch(&[&env.url("/v1/demo")]).await, 0);
    assert_eq!(env.settlements(), 1);

    let data = env.fetch(&[&env.url("/v1/data")]).await;
    assert_code(&data, 0);
    assert!(data.stdout.contains("demo-sensor"), "{data:?}");
    assert!(data.stderr.starts_with("paid 100 sats"), "{data:?}");
    assert_eq!(env.settlements(), 2);
}

/// One origin, two services: each token is presented where it works, and a
/// refusal on another service does not stale a good token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_back_to_the_first_service_reuses_its_token() {
    let env = Env::start().await;
    for path in ["/v1/demo", "/v1/data", "/v1/demo"] {
        assert_code(&env.fetch(&[&env.url(path)]).await, 0);
    }
    assert_eq!(env.settlements(), 2, "one payment per service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_data_is_preserved_through_the_paid_retry() {
    let env = Env::start().await;
    let url = env.url("/v1/generate");

    // -d without -X is a POST, as in curl.
    let text = env.fetch(&[&url, "-d", "pay per prompt"]).await;
    assert_code(&text, 0);
    let reply: Value = serde_json::from_str(&text.stdout).unwrap();
    assert_eq!(reply["prompt"], "pay per prompt", "{text:?}");

    // -X POST, a header, and @file.
    let body = env.dir.path().join("body.json");
    std::fs::write(&body, r#"{"prompt": "from a file"}"#).unwrap();
    let at_file = format!("@{}", body.display());
    let json = env
        .fetch(&[
            &url,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &at_file,
        ])
        .await;
    assert_code(&json, 0);
    let reply: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(reply["prompt"], "from a file", "{json:?}");
    // /v1/generate's tokens are single use: each call paid.
    assert_eq!(env.settlements(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_cost_below_the_price_exits_2_and_pays_nothing() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");
    let run = env.fetch(&[&url, "--max-cost", "10"]).await;
    assert_code(&run, 2);
    assert_eq!(
        run.stderr.trim(),
        format!("error: refused: {url} asks 21 sats; the per-request cap is 10 sats")
    );
    assert!(run.stdout.is_empty());
    assert_eq!(env.settlements(), 0);
    // And the cap cannot be raised from the command line.
    let config = env.dir.path().join("low-cap.toml");
    std::fs::write(&config, "max_cost_sats = 20\n").unwrap();
    let mut all: Vec<String> = vec![
        "fetch".into(),
        url.clone(),
        "--max-cost".into(),
        "50".into(),
    ];
    all.extend([
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        env.data_dir().display().to_string(),
        "--dev-node".into(),
        env.gw.base.clone(),
    ]);
    let run = run_args(&all).await;
    assert_code(&run, 2);
    assert!(
        run.stderr.contains("the per-request cap is 20 sats"),
        "{run:?}"
    );
    assert_eq!(env.settlements(), 0);
}

async fn run_args(args: &[String]) -> Run {
    run(args, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_session_budget_holds_across_invocations() {
    let env = Env::start().await;
    // 21 sats + a 5-sat fee limit fits 30; the default 10-sat fee limit
    // would not (the budget must cover amount + fee limit).
    let flags = ["--budget", "30", "--max-fee", "5", "--session", "s1"];
    let demo = env.url("/v1/demo");

    let first = env
        .fetch(&[&[demo.as_str()][..], &flags[..]].concat())
        .await;
    assert_code(&first, 0);
    assert!(first.stderr.contains("paid 21 sats"), "{first:?}");
    assert!(
        first.stderr.contains("9 sats left in session s1"),
        "{first:?}"
    );

    let second = env
        .fetch(&[&[demo.as_str()][..], &flags[..]].concat())
        .await;
    assert_code(&second, 0);
    assert!(second.stderr.contains("reused"), "{second:?}");

    let data = env.url("/v1/data");
    let third = env
        .fetch(&[&[data.as_str(), "--json"][..], &flags[..]].concat())
        .await;
    assert_code(&third, 2);
    let err = third.json();
    assert_eq!(err["error"]["kind"], "over_budget", "{third:?}");
    assert_eq!(err["error"]["exit_code"], 2);
    assert_eq!(
        third.stderr.trim(),
        format!(
            "error: refused: {data} asks 100 sats plus up to 5 sats in fees; the session \"s1\" has 9 sats left of 30 sats"
        )
    );
    assert_eq!(env.settlements(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_object_for_results_and_errors() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");
    let run = env.fetch(&[&url, "--json"]).await;
    assert_code(&run, 0);
    let v = run.json();
    assert_eq!(v["status"], 200);
    assert_eq!(v["url"], url);
    assert_eq!(v["content_type"], "application/json");
    assert_eq!(v["truncated"], false);
    assert_eq!(v["body_encoding"], "utf-8");
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["paid"], true);
    let r = &v["receipt"];
    assert_eq!(r["paid"], true);
    assert_eq!(r["amount_msat"], 21_000);
    assert_eq!(r["fee_msat"], 0);
    assert_eq!(r["budget_left_msat"], 4_979_000);
    assert_eq!(r["session"], "default");
    assert_eq!(r["payment_hash"].as_str().unwrap().len(), 64);

    // A final non-2xx: the response object, exit 1.
    let missing = env.fetch(&[&env.url("/nope"), "--json"]).await;
    assert_code(&missing, 1);
    assert_eq!(missing.json()["status"], 404);
    assert!(
        missing.stderr.contains("answered 404 Not Found"),
        "{missing:?}"
    );

    // An error before any response.
    let bad = env.fetch(&["not a url", "--json"]).await;
    assert_code(&bad, 1);
    assert_eq!(bad.json()["error"]["kind"], "bad_request");
}

/// Found when `fetch -o /dev/null`, run as root, replaced /dev/null with a
/// regular file (the body was written beside it and renamed over it). A
/// target that is not a file is written in place, as curl does; a link is
/// written through. A FIFO stands in for the device here.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_a_device_or_fifo_writes_in_place_and_a_link_is_kept() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::start().await;
    let fifo = env.dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(&reader));
    });
    let fifo_arg = fifo.display().to_string();
    let run = env
        .fetch(&[&env.url("/v1/data"), "-o", &fifo_arg, "-q"])
        .await;
    assert_code(&run, 0);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced by a file"
    );
    let read = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("nothing was written to the FIFO")
        .unwrap();
    let saved: Value = serde_json::from_slice(&read).unwrap();
    assert_eq!(saved["dataset"], "demo-sensor");

    // A link to a file elsewhere: the file gets the body, the link stays.
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("real.json");
    std::fs::write(&real, b"old").unwrap();
    let link = env.dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let link_arg = link.display().to_string();
    let run = env
        .fetch(&[&env.url("/v1/data"), "-o", &link_arg, "-q"])
        .await;
    assert_code(&run, 0);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    assert_eq!(saved["dataset"], "demo-sensor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_file_gets_the_body_and_quiet_prints_nothing_else() {
    let env = Env::start().await;
    let file = env.dir.path().join("out.json");
    let file_arg = file.display().to_string();
    let run = env
        .fetch(&[&env.url("/v1/data"), "-o", &file_arg, "-q"])
        .await;
    assert_code(&run, 0);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["dataset"], "demo-sensor");

    // A non-2xx answer leaves the file alone and exits 1.
    let missing = env.dir.path().join("missing.json");
    let missing_arg = missing.display().to_string();
    let run = env.fetch(&[&env.url("/nope"), "-o", &missing_arg]).await;
    assert_code(&run, 1);
    assert!(!missing.exists());
    assert!(run.stdout.contains("No route"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_path_that_cannot_be_written_is_refused_before_paying() {
    let env = Env::start().await;
    let missing_dir = env.dir.path().join("no-such-dir").join("out.json");
    let as_dir = env.dir.path().to_path_buf();
    for target in [&missing_dir, &as_dir] {
        let arg = target.display().to_string();
        let run = env.fetch(&[&env.url("/v1/data"), "-o", &arg]).await;
        assert_code(&run, 1);
        // The sentence names the user's path, not a temporary file.
        assert!(
            run.stderr.contains(&format!("cannot write to {arg}")),
            "{run:?}"
        );
        assert!(!run.stderr.contains(".part"), "{run:?}");
        assert!(
            run.stderr.contains("nothing was fetched or paid"),
            "{run:?}"
        );
    }
    assert_eq!(env.settlements(), 0, "paid for a file it could not write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_download_leaves_no_partial_file() {
    let env = Env::start().await;
    // A body that starts at once and never ends.
    let app = axum::Router::new().fallback(|| async {
        let chunks = futures_util::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1024])),
                n + 1,
            ))
        });
        axum::body::Body::from_stream(chunks)
    });
    let (site, _stop) = crate::common::serve_local(app).await;
    let file = env.dir.path().join("big.bin");
    let mut args: Vec<String> = vec![
        "fetch".into(),
        format!("{site}/big"),
        "-o".into(),
        file.display().to_string(),
        "--allow-private".into(),
    ];
    args.extend(env.client_flags());
    let child = Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let part = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    // Wait until the download has written something.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let written = part(env.dir.path())
            .iter()
            .any(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false));
        if written {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the download never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        part(env.dir.path()).is_empty(),
        "a .part file was left behind"
    );
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_exits_4() {
    let env = Env::start().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/v1/demo");
    let run = env.fetch(&[&url, "--allow-private", "--json"]).await;
    assert_code(&run, 4);
    assert_eq!(run.json()["error"]["kind"], "network");
    assert!(
        run.stderr
            .starts_with("error: network error: cannot connect"),
        "{run:?}"
    );

    // Without --allow-private, loopback (other than the dev node) is refused.
    let run = env.fetch(&[&url]).await;
    assert_code(&run, 2);
    assert!(run.stderr.contains("--allow-private"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_1_and_no_payer_is_a_sentence() {
    let env = Env::start().await;
    let run = env.cmd(&["fetch"], vec![]).await;
    assert_code(&run, 1);
    let run = env
        .cmd(&["fetch", &env.url("/v1/demo")], env.store_flags())
        .await;
    assert_code(&run, 1);
    assert!(
        run.stderr
            .starts_with("error: no payer is configured; pass --dev-node URL"),
        "{run:?}"
    );
    assert_eq!(env.settlements(), 0);
}

// ---------------------------------------------------------------------------
// preview, tokens, spend

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_shows_price_and_checks_and_pays_nothing() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");
    let run = env
        .cmd(&["preview", &url, "--json"], env.client_flags())
        .await;
    assert_code(&run, 0);
    let p = run.json();
    assert_eq!(p["status"], 402);
    assert_eq!(p["payment_required"], true);
    assert_eq!(p["price_msat"], 21_000);
    assert_eq!(p["would_pay"], true);
    let checks = p["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for name in [
        "challenge",
        "invoice",
        "amount",
        "expiry",
        "network",
        "payment_hash",
        "cap",
        "budget",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");

    let human = env.cmd(&["preview", &url], env.client_flags()).await;
    assert_code(&human, 0);
    assert!(human.stdout.contains("asks 21 sats"), "{human:?}");
    assert!(human.stdout.contains("would pay: yes"), "{human:?}");

    // A check that fails: exit 2, still nothing paid.
    let capped = env
        .cmd(&["preview", &url, "--max-cost", "10"], env.client_flags())
        .await;
    assert_code(&capped, 2);
    assert!(capped.stdout.contains("FAIL  cap"), "{capped:?}");
    assert_eq!(env.settlements(), 0);
    assert!(env.store().list_payments(None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_list_and_show_never_print_secrets() {
    let env = Env::start().await;
    assert_code(&env.fetch(&[&env.url("/v1/demo")]).await, 0);
    let token = env
        .store()
        .find_usable(&env.gw.base.parse::<Origin>().unwrap())
        .unwrap()
        .expect("a usable token");
    let macaroon = token.macaroon().to_string();
    let preimage = token.preimage().unwrap().to_hex();

    let list = env.cmd(&["tokens", "list"], env.store_flags()).await;
    let list_json = env
        .cmd(&["tokens", "list", "--json"], env.store_flags())
        .await;
    let show = env.cmd(&["tokens", "show", "1"], env.store_flags()).await;
    let hash = token.info.payment_hash.to_hex();
    let show_json = env
        .cmd(
            &["tokens", "show", &hash[..10], "--json"],
            env.store_flags(),
        )
        .await;
    for run in [&list, &list_json, &show, &show_json] {
        assert_code(run, 0);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.contains(&macaroon), "macaroon printed: {run:?}");
        assert!(!all.contains(&macaroon[..20]), "macaroon printed: {run:?}");
        assert!(!all.contains(&preimage), "preimage printed: {run:?}");
    }
    assert!(list.stdout.contains("paid"), "{list:?}");
    assert!(list.stdout.contains(&env.gw.base), "{list:?}");
    let tokens = list_json.json()["tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["status"], "paid");
    assert_eq!(tokens[0]["amount_msat"], 21_000);
    assert_eq!(show_json.json()["payment_hash"], hash);
    assert!(show.stdout.contains(&hash), "{show:?}");

    let missing = env.cmd(&["tokens", "show", "99"], env.store_flags()).await;
    assert_code(&missing, 1);

    // A usable token was bought with money: without a terminal, removing
    // or clearing it needs --force, and nothing is deleted without it.
    for args in [&["tokens", "remove", "1"][..], &["tokens", "clear"][..]] {
        let refused = env.cmd(args, env.store_flags()).await;
        assert_code(&refused, 1);
        assert!(refused.stderr.contains("Pass --force"), "{refused:?}");
        assert_eq!(env.store().list_tokens().unwrap().len(), 1, "{args:?}");
    }
    let removed = env
        .cmd(
            &["tokens", "remove", "1", "--force", "--json"],
            env.store_flags(),
        )
        .await;
    assert_code(&removed, 0);
    assert_eq!(removed.json()["removed"]["payment_hash"], hash);
    assert!(env.store().list_tokens().unwrap().is_empty());
    let cleared = env
        .cmd(&["tokens", "clear", "--json"], env.store_flags())
        .await;
    assert_code(&cleared, 0);
    assert_eq!(cleared.json()["removed"], 0, "{cleared:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reports_the_session_and_all_time_per_origin() {
    let env = Env::start().await;
    let session = ["--session", "sp", "--budget", "1000"];
    assert_code(
        &env.fetch(&[&[env.url("/v1/demo").as_str()][..], &session[..]].concat())
            .await,
        0,
    );
    assert_code(&env.fetch(&[&env.url("/v1/demo")]).await, 0); // session default: reuses

    let mut flags = env.client_flags();
    flags.extend(["--session".into(), "sp".into(), "--json".into()]);
    let run = env.cmd(&["spend"], flags).await;
    assert_code(&run, 0);
    let v = run.json();
    let s = &v["session"];
    assert_eq!(s["session"], "sp");
    assert_eq!(s["budget_msat"], 1_000_000);
    assert_eq!(s["spent_msat"], 21_000);
    assert_eq!(s["reserved_msat"], 0);
    assert_eq!(s["left_msat"], 979_000);
    assert_eq!(s["payments"], 1);
    assert_eq!(v["payments"].as_array().unwrap().len(), 1);
    assert_eq!(v["payments"][0]["state"], "succeeded");
    let all = &v["all_time"];
    assert_eq!(all["spent_msat"], 21_000);
    assert_eq!(all["payments"], 1);
    let origin = Origin::from_url(&env.gw.base.parse().unwrap()).unwrap();
    assert_eq!(all["by_origin"][0]["origin"], origin.as_str());
    assert_eq!(all["by_origin"][0]["spent_msat"], 21_000);

    // A report does not reset the session's budget to the default.
    let human = env
        .cmd(&["spend", "--session", "sp"], env.client_flags())
        .await;
    assert_code(&human, 0);
    assert!(
        human
            .stdout
            .contains("session sp: budget 1000 sats, spent 21 sats"),
        "{human:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_paying_is_resolved_by_spend_and_tokens_clear_keeps_pending() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");
    // The process dies right after the payment: the token stays pending.
    let crashed = env
        .fetch_env(&[&url], &[("L402_MCP_ABORT_AT", "after_pay")])
        .await;
    assert_ne!(crashed.code, 0, "{crashed:?}");
    assert_eq!(env.settlements(), 1);

    let clear = env.cmd(&["tokens", "clear"], env.store_flags()).await;
    assert_code(&clear, 0);
    assert_eq!(
        clear.stderr.trim(),
        "removed 0 tokens; kept 1 pending (their payments' outcome is not known yet)"
    );

    // spend resolves it with the dev node before reporting.
    let mut flags = env.client_flags();
    flags.push("--json".into());
    let spend = env.cmd(&["spend"], flags).await;
    assert_code(&spend, 0);
    let v = spend.json();
    assert_eq!(v["session"]["spent_msat"], 21_000, "{spend:?}");
    assert_eq!(v["session"]["reserved_msat"], 0);

    // The token bought before the crash is used; nothing is paid twice.
    let again = env.fetch(&[&url]).await;
    assert_code(&again, 0);
    assert!(again.stderr.contains("reused"), "{again:?}");
    assert_eq!(env.settlements(), 1);
}

// ---------------------------------------------------------------------------
// config

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_init_then_show_reports_each_value_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conf").join("config.toml");
    let file_arg = file.display().to_string();

    let path = run(&strings(&["config", "path", "--config", &file_arg]), &[]).await;
    assert_eq!(path.stdout.trim(), file_arg);
    let path = run(&strings(&["config", "path"]), &[("L402_CONFIG", &file_arg)]).await;
    assert_eq!(path.stdout.trim(), file_arg);

    let init = run(&strings(&["config", "init", "--config", &file_arg]), &[]).await;
    assert_code(&init, 0);
    assert!(file.exists());
    let again = run(&strings(&["config", "init", "--config", &file_arg]), &[]).await;
    assert_code(&again, 1);
    assert!(again.stderr.contains("--force"), "{again:?}");

    // The file sets three values; env overrides two; a flag overrides one.
    let mut text = std::fs::read_to_string(&file).unwrap();
    let first_line = text.lines().count() + 1;
    text.push_str("max_fee_sats = 7\nbudget_sats = 100\nsession = \"from-file\"\n");
    std::fs::write(&file, &text).unwrap();
    let show = run(
        &strings(&[
            "config",
            "show",
            "--json",
            "--config",
            &file_arg,
            "--session",
            "from-flag",
        ]),
        &[
            ("L402_BUDGET_SATS", "200"),
            ("L402_SESSION", "from-env"),
            ("L402_DEV_NODE", "http://127.0.0.1:8402"),
        ],
    )
    .await;
    assert_code(&show, 0);
    let v = show.json();
    assert_eq!(v["config_file"]["exists"], true);
    let s = &v["settings"];
    assert_eq!(s["session"]["value"], "from-flag");
    assert_eq!(s["session"]["source"]["kind"], "flag");
    assert_eq!(s["budget_sats"]["value"], "200");
    assert_eq!(s["budget_sats"]["source"]["name"], "L402_BUDGET_SATS");
    assert_eq!(s["max_fee_sats"]["value"], "7");
    assert_eq!(s["max_fee_sats"]["source"]["kind"], "file");
    assert_eq!(s["max_fee_sats"]["source"]["line"], first_line);
    assert_eq!(s["max_cost_sats"]["value"], "1000");
    assert_eq!(s["max_cost_sats"]["source"]["kind"], "default");
    assert_eq!(v["payer"]["kind"], "dev");

    let human = run(
        &strings(&["config", "show", "--config", &file_arg, "--budget", "300"]),
        &[("L402_BUDGET_SATS", "200")],
    )
    .await;
    assert_code(&human, 0);
    let budget_line = human
        .stdout
        .lines()
        .find(|l| l.starts_with("budget_sats"))
        .unwrap();
    assert!(budget_line.contains("300"), "{budget_line}");
    assert!(budget_line.ends_with("flag --budget"), "{budget_line}");

    // An unknown key is an error naming its line.
    text.push_str("budget = 5\n");
    std::fs::write(&file, &text).unwrap();
    let bad = run(&strings(&["config", "show", "--config", &file_arg]), &[]).await;
    assert_code(&bad, 1);
    assert!(
        bad.stderr.starts_with(&format!(
            "error: the config file {file_arg}, line {}: unknown field `budget`",
            first_line + 3
        )),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_init_and_show_list_the_same_settings_and_a_bad_flag_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let file_arg = file.display().to_string();
    let init = run(&strings(&["config", "init", "--config", &file_arg]), &[]).await;
    assert_code(&init, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    // The settings, before the example [agents.NAME] table at the end.
    let settings_part = text.split("\n# Agents of").next().unwrap();
    assert!(text.contains("# [agents.research]"), "{text}");
    let commented: Vec<&str> = settings_part
        .lines()
        .filter_map(|l| l.strip_prefix("# ")?.split_once(" = ").map(|(k, _)| k))
        .collect();
    let show = run(
        &strings(&["config", "show", "--json", "--config", &file_arg]),
        &[],
    )
    .await;
    assert_code(&show, 0);
    let v = show.json();
    let shown: Vec<&str> = v["settings"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = commented.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, shown, "{text}");
    assert!(commented.contains(&"server_budget_sats"), "{text}");
    assert!(
        v["settings"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s["source"]["kind"] == "default"),
        "{v}"
    );

    // A flag's value is parsed by the resolver: its sentence names the
    // setting and the flag; the environment's names the variable.
    let bad = run(
        &strings(&["config", "show", "--config", &file_arg, "--budget", "ten"]),
        &[],
    )
    .await;
    assert_code(&bad, 1);
    assert_eq!(
        bad.stderr.trim(),
        "error: budget_sats is not a whole number of sats (flag --budget)"
    );
    let bad = run(
        &strings(&["serve", "--config", &file_arg, "--server-budget", "five"]),
        &[("L402_DEV_NODE", "http://127.0.0.1:8402")],
    )
    .await;
    assert_code(&bad, 1);
    assert_eq!(
        bad.stderr.trim(),
        "error: server_budget_sats is not a whole number of sats (flag --server-budget)"
    );
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Crash safety: the process killed at every step between reserve and retry.

/// For each step of a paid fetch, a process aborted there (SIGABRT, as
/// abrupt as `kill -9`: no destructors, no flush) and a second run: exactly
/// one payment, one usable token, nothing left pending, and the ledger
/// equal to what was really paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_never_pays_twice_nor_loses_the_token() {
    let runs = l402_mcp::client::ABORT_STEPS.iter().map(|step| async move {
        let env = Env::start().await;
        let url = env.url("/v1/demo");
        // A short payment timeout makes the recovery grace short (1.5x).
        let timeout = ("L402_PAYMENT_TIMEOUT_SECS", "2");
        let crashed = env
            .fetch_env(&[&url], &[("L402_MCP_ABORT_AT", step), timeout])
            .await;
        assert_eq!(
            crashed.code, -1,
            "{step}: the process should die by signal: {crashed:#?}"
        );
        let paid_before_crash = matches!(*step, "after_pay" | "after_mark_paid");
        assert_eq!(env.settlements(), u64::from(paid_before_crash), "{step}");

        // Payments left reserved or in flight, never sent, are released
        // only once they are old enough that no live process can be
        // sending them.
        if !paid_before_crash {
            tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        }
        let second = env.fetch_env(&[&url], &[timeout]).await;
        assert_code(&second, 0);
        assert!(
            second.stdout.contains("\"paid\":true"),
            "{step}: {second:#?}"
        );
        assert_eq!(env.settlements(), 1, "{step}: paid exactly once");

        let store = env.store();
        let tokens = store.list_tokens().unwrap();
        let statuses: Vec<String> = tokens.iter().map(|t| t.status.to_string()).collect();
        assert_eq!(
            statuses.iter().filter(|s| *s == "paid").count(),
            1,
            "{step}: {statuses:?}"
        );
        assert!(
            !statuses.contains(&"pending".to_string()),
            "{step}: {statuses:?}"
        );
        let summary = l402_mcp::budget::Ledger::new(std::sync::Arc::new(store))
            .summary("default")
            .unwrap();
        assert_eq!(
            (summary.spent_msat, summary.reserved_msat, summary.payments),
            (21_000, 0, 1),
            "{step}: the ledger matches the one real payment"
        );
        // And a third run reuses the token without paying.
        let third = env.fetch_env(&[&url], &[timeout]).await;
        assert_code(&third, 0);
        assert!(third.stderr.contains("reused"), "{step}: {third:#?}");
        assert_eq!(env.settlements(), 1, "{step}");
    });
    futures_util::future::join_all(runs).await;
}

/// At the most verbose level, with every library logging, no preimage or
/// macaroon of the token bought reaches stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_even_at_trace() {
    let env = Env::start().await;
    let url = env.url("/v1/demo");
    let first = env.fetch(&[&url, "-vvv"]).await;
    assert_code(&first, 0);
    let second = env.fetch_env(&[&url], &[("RUST_LOG", "trace")]).await;
    assert_code(&second, 0);
    assert!(
        first.stderr.contains("INFO paying invoice"),
        "verbose logging is on: {first:#?}"
    );
    let store = env.store();
    let origin: Origin = env.gw.base.parse().unwrap();
    let token = store.find_usable(&origin).unwrap().unwrap();
    let preimage = token.preimage().unwrap().to_hex();
    let macaroon = token.macaroon().to_string();
    for run in [&first, &second] {
        for secret in [&preimage, &macaroon] {
            // Any 24-character window of the secret, in case it is split.
            for start in (0..secret.len().saturating_sub(24)).step_by(8) {
                let window = &secret[start..start + 24];
                assert!(
                    !run.stderr.contains(window),
                    "a secret reached the log: {window}"
                );
            }
        }
    }
}

/// The payment rate limit is counted in the store, so it holds across
/// invocations: a shell agent calling the CLI in a loop is stopped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_rate_limit_holds_across_invocations() {
    let env = Env::start().await;
    let url = env.url("/v1/generate"); // single use: every call pays
    let limit = [("L402_PAYMENTS_PER_MINUTE", "2")];
    for _ in 0..2 {
        assert_code(&env.fetch_env(&[&url, "-d", "again"], &limit).await, 0);
    }
    let third = env.fetch_env(&[&url, "-d", "again"], &limit).await;
    assert_code(&third, 2);
    assert!(
        third.stderr.contains("rate limit of 2 per minute"),
        "{third:#?}"
    );
    assert_eq!(env.settlements(), 2);
}

/// Two processes sharing a store fetch one paid resource at the same
/// moment: the origin lock holds across processes, so one pays and the
/// other uses its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_at_once_buy_one_origin_token_once() {
    for round in 0..3 {
        let env = Env::start().await;
        let url = env.url("/v1/demo");
        let args = [url.as_str()];
        let (a, b) = tokio::join!(env.fetch(&args), env.fetch(&args));
        assert_code(&a, 0);
        assert_code(&b, 0);
        assert_eq!(env.settlements(), 1, "round {round}: {a:#?} {b:#?}");
    }
}

#[tokio::test]
async fn proxy_variables_never_carry_a_fetch_past_the_address_checks() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = Env::start().await;
    // A "proxy" that counts the connections it gets.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let accept = tokio::spawn(async move {
        while let Ok((conn, _)) = proxy.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let vars = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("https_proxy", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    for url in [
        "http://localhost:9/secret",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://internal-only.invalid/admin",
    ] {
        let run = env.fetch_env(&[url], &vars).await;
        assert_ne!(run.code, 0, "{url}: {run:?}");
    }
    // A loopback name is refused by the address policy, as without a proxy.
    let run = env.fetch_env(&["http://localhost:9/secret"], &vars).await;
    assert_code(&run, 2);
    assert!(run.stderr.contains("loopback"), "{run:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a fetch went through the proxy"
    );
    accept.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_config_file_that_does_not_exist_is_an_error() {
    let env = Env::start().await;
    let missing = env.dir.path().join("typo.toml");
    let missing_arg = missing.display().to_string();
    for args in [
        vec![
            "fetch".to_string(),
            env.url("/v1/demo"),
            "--dev-node".into(),
            env.gw.base.clone(),
        ],
        vec!["spend".to_string()],
        vec!["config".to_string(), "show".into()],
    ] {
        let mut all = args.clone();
        all.extend(["--config".into(), missing_arg.clone()]);
        all.extend(["--data-dir".into(), env.data_dir().display().to_string()]);
        let run = run(&all, &[]).await;
        assert_code(&run, 1);
        assert!(
            run.stderr.contains(&format!(
                "the config file {missing_arg} (from flag --config) does not exist"
            )),
            "{args:?}: {run:?}"
        );
    }
    // The same named by L402_CONFIG.
    let all = strings(&["spend", "--data-dir", &env.data_dir().display().to_string()]);
    let run = run(&all, &[("L402_CONFIG", &missing_arg)]).await;
    assert_code(&run, 1);
    assert!(
        run.stderr.contains("(from env L402_CONFIG) does not exist"),
        "{run:?}"
    );
    assert_eq!(env.settlements(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_runs_without_a_payer_and_says_what_a_payment_would_need() {
    let env = Env::start().await;
    // The gateway's origin is loopback: allowed here only with
    // --allow-private, since no dev node is named.
    let mut flags = env.store_flags();
    flags.push("--allow-private".into());
    let run = env
        .cmd(&["preview", &env.url("/v1/demo")], flags.clone())
        .await;
    assert_code(&run, 2);
    assert!(run.stdout.contains("asks 21 sats"), "{run:?}");
    assert!(
        run.stdout.contains("FAIL  payer") && run.stdout.contains("no payer is configured"),
        "{run:?}"
    );
    assert!(run.stderr.contains("pass --dev-node URL"), "{run:?}");
    flags.push("--json".into());
    let json = env.cmd(&["preview", &env.url("/v1/demo")], flags).await;
    assert_code(&json, 2);
    let v = json.json();
    assert_eq!(v["price_msat"], 21_000);
    assert_eq!(v["would_pay"], false);
    assert_eq!(env.settlements(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_v_shows_more_of_the_exchange_as_curl_does_and_never_a_secret() {
    let env = Env::start().await;
    let mut seen = Vec::new();
    for (i, v) in ["-v", "-vv", "-vvv"].into_iter().enumerate() {
        let mut flags = env.client_flags();
        // Each level buys afresh: a data dir of its own.
        let dir = env.dir.path().join(format!("level{i}"));
        let at = flags.iter().position(|f| f == "--data-dir").unwrap();
        flags[at + 1] = dir.display().to_string();
        let mut args = strings(&[
            v,
            "fetch",
            &env.url("/v1/demo"),
            "-H",
            "Authorization: Bearer user-secret-77",
        ]);
        args.extend(flags);
        let run = run(&args, &[]).await;
        assert_code(&run, 0);
        let preimage_like = run
            .stderr
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|w| w.len() == 64)
            .count();
        // Payment hashes are 64 hex digits too: never more of those than
        // lines naming a payment hash.
        assert!(
            preimage_like
                <= run.stderr.matches("payment_hash").count()
                    + run.stderr.matches("payment hash").count(),
            "{run:?}"
        );
        assert!(!run.stderr.contains("user-secret-77"), "{v}: {run:?}");
        assert!(!run.stderr.contains("macaroon=\""), "{v}: {run:?}");
        seen.push(run.stderr);
    }
    let (v1, v2, v3) = (&seen[0], &seen[1], &seen[2]);
    assert!(v1.contains("asks 21 sats") && !v1.contains("> GET"), "{v1}");
    assert!(
        v2.contains("> GET") && v2.contains("< 402 Payment Required"),
        "{v2}"
    );
    assert!(
        v2.contains("check ok   payment_hash") && v2.contains("< 200 OK"),
        "{v2}"
    );
    assert!(!v2.contains("< www-authenticate"), "{v2}");
    assert!(
        v3.contains("< www-authenticate: L402 <") && v3.contains("bytes redacted>"),
        "{v3}"
    );
    assert!(v3.contains("> authorization: Bearer <"), "{v3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_never_serves_its_dev_node_off_loopback() {
    let run = run(
        &strings(&["demo", "--listen", "0.0.0.0:0", "--no-wait"]),
        &[],
    )
    .await;
    assert_code(&run, 1);
    assert!(run.stderr.contains("listens on loopback only"), "{run:?}");
}

// ---------------------------------------------------------------------------
// the kill switch

/// Ids of the payments that were sent (in flight or succeeded).
fn sent_payments(store: &Store) -> std::collections::BTreeSet<i64> {
    use l402_mcp::store::PaymentState;
    store
        .list_payments(None)
        .unwrap()
        .into_iter()
        .filter(|p| matches!(p.state, PaymentState::InFlight | PaymentState::Succeeded))
        .map(|p| p.id)
        .collect()
}

/// 20 agents, each a loop of `l402-mcp fetch` processes paying a
/// single-use route (every call pays) from its own session. `pause` stops
/// all of them: not one payment is sent after it is committed, by the
/// store's record or by the gateway's node; they are refused with the
/// reason; `resume` lets them pay again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_twenty_agents_in_other_processes_and_resume_lets_them_go_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    // Twenty agents on one address ask for more challenges than the demo's
    // per-address limit allows.
    let mut config = GatewayConfig::demo();
    config.rate_limit.challenges_per_minute = 100_000;
    config.rate_limit.burst = 10_000;
    let env = Arc::new(Env::start_with(config).await);
    let stop = Arc::new(AtomicBool::new(false));
    let refused_paused = Arc::new(AtomicU64::new(0));
    let other_failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut agents = Vec::new();
    for i in 0..20 {
        let (env, stop) = (env.clone(), stop.clone());
        let (refused, others) = (refused_paused.clone(), other_failures.clone());
        agents.push(tokio::spawn(async move {
            let session = format!("agent-{i}");
            let limits = [
                ("L402_SESSION", session.as_str()),
                ("L402_BUDGET_SATS", "10000000"),
                ("L402_MAX_COST_SATS", "1000"),
                ("L402_PAYMENTS_PER_MINUTE", "100000"),
            ];
            let url = env.url("/v1/generate");
            while !stop.load(Ordering::SeqCst) {
                let run = env
                    .fetch_env(&[&url, "-d", "hello", "--json"], &limits)
                    .await;
                match run.code {
                    0 => {}
                    2 if run.stdout.contains("\"paused\"") => {
                        assert!(run.stdout.contains("drill: stop everything"), "{run:#?}");
                        refused.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => others.lock().unwrap().push(format!("{run:#?}")),
                }
            }
        }));
    }
    let wait_for = |what: &str, n: u64, deadline: Duration| {
        let started = Instant::now();
        let env = env.clone();
        let what = what.to_string();
        async move {
            while env.settlements() < n {
                assert!(
                    started.elapsed() < deadline,
                    "{what}: {} settlements after {deadline:?}, wanted {n}",
                    env.settlements()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for("before the pause", 20, Duration::from_secs(120)).await;

    let paused = env
        .cmd(
            &["pause", "--reason", "drill: stop everything"],
            env.store_flags(),
        )
        .await;
    assert_code(&paused, 0);
    // Committed: from here on, nothing may be sent.
    let sent_at_pause = sent_payments(&env.store());
    tokio::time::sleep(Duration::from_secs(2)).await; // those in flight settle
    let settled_after_drain = env.settlements();
    let refused_before = refused_paused.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent_later = sent_payments(&env.store());
    assert!(
        sent_later.is_subset(&sent_at_pause),
        "payments sent after the pause: {:?}",
        sent_later.difference(&sent_at_pause).collect::<Vec<_>>()
    );
    assert_eq!(
        env.settlements(),
        settled_after_drain,
        "the gateway's node was paid while payments were paused"
    );
    assert!(
        refused_paused.load(Ordering::SeqCst) > refused_before,
        "the agents were not refused while paused"
    );
    // Every payment sent was recorded, and the node was paid for each.
    assert_eq!(sent_later.len() as u64, settled_after_drain);

    assert_code(&env.cmd(&["resume"], env.store_flags()).await, 0);
    wait_for(
        "after resuming",
        settled_after_drain + 20,
        Duration::from_secs(120),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for a in agents {
        a.await.unwrap();
    }
    let others = other_failures.lock().unwrap();
    assert!(others.is_empty(), "agents failed otherwise: {others:#?}");
    // After the loops stop, the store and the node agree again.
    assert_eq!(sent_payments(&env.store()).len() as u64, env.settlements());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_paused_a_cached_token_still_serves_and_preview_says_paused() {
    let env = Env::start().await;
    let demo = env.url("/v1/demo"); // reusable: bought once, then cached
    assert_code(&env.fetch(&[&demo]).await, 0);
    assert_code(
        &env.cmd(&["pause", "--reason", "audit"], env.store_flags())
            .await,
        0,
    );
    let status = env
        .cmd(&["pause", "--status", "--json"], env.store_flags())
        .await;
    assert_eq!(status.json()["paused"], true, "{status:#?}");
    assert_eq!(status.json()["pause"]["reason"], "audit");

    // The token bought before the pause still works: nothing to pay.
    assert_code(&env.fetch(&[&demo]).await, 0);
    // A new purchase is refused, naming the pause and its reason.
    let data = env.fetch(&[&env.url("/v1/data"), "--json"]).await;
    assert_code(&data, 2);
    let e = &data.json()["error"];
    assert_eq!(e["kind"], "paused", "{data:#?}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("paused") && msg.contains("audit"), "{msg}");
    assert_eq!(env.settlements(), 1);
    // The preview says so.
    let preview = env
        .cmd(
            &["preview", &env.url("/v1/data"), "--json"],
            env.client_flags(),
        )
        .await;
    assert_code(&preview, 2); // a check refuses
    let p = preview.json();
    assert_eq!(p["would_pay"], false, "{p}");
    let pause_check = p["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pause")
        .unwrap_or_else(|| panic!("no pause check: {p}"));
    assert_eq!(pause_check["ok"], false);
    // spend says so too.
    let spend = env.cmd(&["spend"], env.client_flags()).await;
    assert!(
        spend.stdout.contains("PAUSED") && spend.stdout.contains("audit"),
        "{spend:#?}"
    );

    assert_code(&env.cmd(&["resume"], env.store_flags()).await, 0);
    assert_code(&env.fetch(&[&env.url("/v1/data")]).await, 0);
    assert_eq!(env.settlements(), 2);
}

/// An MCP Bundle host (and many a shell script) passes a setting left
/// blank as an empty variable: for the gateway too, empty means unset,
/// and a value that does not parse is named.
#[test]
fn gateway_variables_set_to_empty_are_unset_and_a_bad_one_is_named() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        "L402_GATEWAY_LISTEN",
        "L402_GATEWAY_METRICS",
        "L402_GATEWAY_CONFIG",
        "L402_DATA_DIR",
        "L402_GATEWAY_ROOT_KEY_FILE",
        "L402_GATEWAY_SPENT_SET",
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l402-mcp"));
    cmd.args(["gateway", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for v in vars {
        cmd.env(v, "");
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let up = line.contains("listening on http://127.0.0.1:");
        seen.push(line);
        if up {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("listening on")),
        "the gateway did not start: {seen:#?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("L402_GATEWAY_METRICS", "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("L402_GATEWAY_METRICS is unusable"), "{err}");
}
