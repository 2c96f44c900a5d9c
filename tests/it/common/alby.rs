//! Alby's NIP-47 wallet service (npm `@getalby/sdk` `NWCWalletService`)
//! as a test peer: `tests/nwc-wallet/wallet.mjs` under the Node 22 that
//! `scripts/nwc-wallet.sh --install` put in the cache, with fresh keys a
//! run, paying through a backend given in `args` (`--pay-via dev=<base>`).
//!
//! ```ignore
//! let (_relay, url) = common::relay().await;
//! let gw = TestGateway::start(GatewayConfig::demo()).await;
//! let dev = format!("dev={}", gw.base);
//! let Some(alby) = AlbyWallet::start(&[&url], &["--pay-via", &dev]).await else { return };
//! let wallet = Wallet::connect(alby.uri.parse().unwrap(), Duration::from_secs(5)).await.unwrap();
//! alby.send(json!({"fail_pay": "QUOTA_EXCEEDED"}));
//! assert_eq!(alby.stats()["paid"], json!(null));
//! ```
//!
//! Not installed: `None` and a loud `SKIPPED:` line outside CI; under CI
//! (`CI` set) a panic, as for [`super::python`].

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the service may take to publish its info event, subscribe and
/// answer its readiness probe.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stdin command may take to be acknowledged.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// A running wallet service; stopped (by its pid) and reaped on drop.
#[derive(Debug)]
pub struct AlbyWallet {
    /// The connection string for our client (holds the client's secret).
    pub uri: String,
    /// The wallet service's public key, hex.
    pub wallet_pubkey: String,
    /// The client key's public key, hex.
    pub client_pubkey: String,
    child: Child,
    control: Mutex<(ChildStdin, Receiver<String>)>,
    stderr: tempfile::NamedTempFile,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A line on the process's own stderr (the test harness captures only
/// `eprintln!`): a skip must be seen.
fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The install directory of `scripts/nwc-wallet.sh`, or `None` (said
/// loudly; a panic under CI) when it is not installed.
pub fn installed() -> Option<PathBuf> {
    let script = repo().join("scripts/nwc-wallet.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--path")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && dir.join("node_modules/node/bin/node").exists() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "Alby's wallet service is not installed: run bash scripts/nwc-wallet.sh --install \
             (CI must): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    loud(
        "SKIPPED: the NWC interop test needs Alby's wallet service: run \
         bash scripts/nwc-wallet.sh --install",
    );
    None
}

impl AlbyWallet {
    /// Starts the service on `relays` paying with alice's lnd on the
    /// regtest network `rt` (the `lnd-rest` backend, her admin macaroon).
    pub async fn on_alice(relays: &[&str], rt: &crate::lnd::Regtest) -> Option<AlbyWallet> {
        let rest = format!(
            "lnd-rest=https://{}",
            rt.var("L402_REGTEST_ALICE_REST_HOST")
        );
        let args = [
            "--pay-via",
            &rest,
            "--lnd-macaroon",
            rt.var("L402_REGTEST_ALICE_ADMIN_MACAROON"),
            "--lnd-tls-cert",
            rt.var("L402_REGTEST_ALICE_TLS_CERT"),
        ];
        Self::start(relays, &args).await
    }

    /// Starts the service on `relays` with `args` (wallet.mjs's flags, at
    /// least `--pay-via`), waiting up to 10 s for its first line; `None`
    /// when not installed (see the module). A service that does not come
    /// up panics with its stderr.
    pub async fn start(relays: &[&str], args: &[&str]) -> Option<AlbyWallet> {
        let dir = installed()?;
        let mut cmd = Command::new(dir.join("node_modules/node/bin/node"));
        cmd.arg(repo().join("tests/nwc-wallet/wallet.mjs"));
        for relay in relays {
            cmd.arg("--relay").arg(relay);
        }
        cmd.arg("--exit-on-eof").args(args);
        let stderr = tempfile::Builder::new()
            .prefix("nwc-wallet-stderr.")
            .tempfile()
            .expect("temp file");
        cmd.env("L402_NWC_WALLET_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen temp file"));
        let mut child = cmd.spawn().expect("node starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wallet = AlbyWallet {
            uri: String::new(),
            wallet_pubkey: String::new(),
            client_pubkey: String::new(),
            child,
            control: Mutex::new((stdin, lines)),
            stderr,
        };
        // The wait blocks a thread, not the runtime that serves the relay.
        let started = Instant::now();
        let (first, mut wallet) = tokio::task::spawn_blocking(move || {
            let first = wallet.next_line(START_TIMEOUT);
            (first, wallet)
        })
        .await
        .expect("join");
        let ready: Value = match first {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!(
                    "the wallet's first line is not JSON ({e}): {line}\n{}",
                    wallet.stderr()
                )
            }),
            Err(why) => {
                let state = match wallet.child.try_wait() {
                    Ok(Some(status)) => format!("it exited, {status}"),
                    _ => "it is still running: a loaded machine?".to_string(),
                };
                panic!(
                    "Alby's wallet service did not come up after {:?} ({why}; {state}); its \
                     stderr:\n{}",
                    started.elapsed(),
                    wallet.stderr()
                )
            }
        };
        let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        wallet.uri = field("uri");
        wallet.wallet_pubkey = field("wallet_pubkey");
        wallet.client_pubkey = field("client_pubkey");
        assert!(
            wallet.uri.starts_with("nostr+walletconnect://") && wallet.wallet_pubkey.len() == 64,
            "unexpected first line {ready}"
        );
        Some(wallet)
    }

    fn next_line(&self, timeout: Duration) -> Result<String, String> {
        let control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        match control.1.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(format!("no line on stdout within {timeout:?}")),
            Err(RecvTimeoutError::Disconnected) => Err("it closed stdout (exited?)".into()),
        }
    }

    /// Sends one stdin command and returns the wallet's answer: `{"ok":true}`,
    /// `{"ok":false,"error":...}`, or the counters for `{"stats":true}`.
    /// Panics (with the wallet's stderr) when no answer comes in 5 s.
    pub fn send(&self, command: Value) -> Value {
        let started = Instant::now();
        let line = {
            let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
            let (stdin, lines) = &mut *control;
            writeln!(stdin, "{command}")
                .and_then(|()| stdin.flush())
                .unwrap_or_else(|e| panic!("cannot write to the wallet ({e}):\n{}", self.stderr()));
            lines.recv_timeout(CONTROL_TIMEOUT)
        };
        let line = line.unwrap_or_else(|e| {
            panic!(
                "the wallet did not answer {command} within {:?} ({e}); its stderr:\n{}",
                started.elapsed(),
                self.stderr()
            )
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends `command` and asserts it was accepted.
    pub fn set(&self, command: Value) {
        let answer = self.send(command.clone());
        assert_eq!(answer, serde_json::json!({"ok": true}), "{command}");
    }

    /// The counters: requests by method (`get_info`, `pay_invoice`, ...),
    /// `requests` (every request event), `paid` (payments the backend
    /// made), `backend_pay_calls`, `dropped_expired`. A counter never
    /// bumped is absent.
    pub fn stats(&self) -> Value {
        self.send(serde_json::json!({"stats": true}))
    }

    /// A counter of [`Self::stats`], 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// What the service wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl AlbyWallet {
    /// Stops the service: SIGTERM to its pid (it closes its relays and
    /// exits 0), SIGKILL if it is still there after 3 s; returns how it
    /// ended.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().expect("the wallet process is reaped")
    }
}

impl Drop for AlbyWallet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            loud(&format!(
                "---- stderr of Alby's wallet service (pid {}):\n{}",
                self.pid(),
                self.stderr()
            ));
        }
        self.terminate();
    }
}
