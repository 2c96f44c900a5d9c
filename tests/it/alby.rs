//! Our NWC client (`lightning::nwc::Wallet`) against Alby's own wallet
//! service (`@getalby/sdk` `NWCWalletService`, see common::alby), through
//! a relay in this process, paying a gateway's dev node. Skipped loudly
//! when `scripts/nwc-wallet.sh --install` has not run (never under CI).

use std::time::{Duration, Instant};

use l402_mcp::gateway::GatewayConfig;
use l402_mcp::lightning::dev::DevInvoiceStatus;
use l402_mcp::lightning::nwc::{
    BalanceResult, CallError, Encryption, ErrorCode, InfoResult, LookupResult, LookupState,
    PayResult, ReplyError, Request, Wallet, WalletError,
};
use l402_mcp::lightning::{Invoice, Network, PaymentHash, Preimage};
use serde_json::json;

use crate::common::TestGateway;
use crate::common::alby::AlbyWallet;
use crate::common::relay;

const T: Duration = Duration::from_secs(10);

/// A relay, a gateway with its dev node, Alby's service paying that node
/// (with `args` too), and our client connected to it.
struct Setup {
    urls: Vec<String>,
    gw: TestGateway,
    alby: AlbyWallet,
    wallet: Wallet,
    _relays: Vec<nostr_relay_builder::LocalRelay>,
}

async fn setup(relays: usize, args: &[&str]) -> Option<Setup> {
    let mut running = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..relays {
        let (r, url) = relay().await;
        running.push(r);
        urls.push(url);
    }
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dev = format!("dev={}", gw.base);
    let mut all = vec!["--pay-via", &dev];
    all.extend_from_slice(args);
    let names: Vec<&str> = urls.iter().map(String::as_str).collect();
    let alby = AlbyWallet::start(&names, &all).await?;
    let wallet = Wallet::connect(alby.uri.parse().expect("the service's URI parses"), T)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", alby.stderr()));
    Some(Setup {
        urls,
        gw,
        alby,
        wallet,
        _relays: running,
    })
}

impl Setup {
    /// A fresh invoice of the gateway (a 402 challenge of /v1/demo).
    async fn invoice(&self) -> (String, Invoice) {
        let (challenge, _) = self.gw.challenge("/v1/demo").await;
        let decoded: Invoice = challenge.invoice.parse().expect("the invoice decodes");
        (challenge.invoice, decoded)
    }

    async fn pay(&self, invoice: &str, timeout: Duration) -> Result<PayResult, String> {
        let reply = self
            .wallet
            .call(
                &Request::PayInvoice {
                    invoice: invoice.to_string(),
                },
                timeout,
            )
            .await
            .map_err(|e| format!("call: {e}"))?;
        assert_eq!(reply.result_type, "pay_invoice");
        reply.into_result::<PayResult>().map_err(|e| match e {
            ReplyError::Wallet(w) => format!("wallet: {}", w.code),
            ReplyError::Bad(b) => format!("bad: {b}"),
        })
    }

    async fn lookup(&self, hash: PaymentHash) -> Result<LookupResult, ReplyError> {
        let reply = self
            .wallet
            .call(&Request::LookupInvoice { payment_hash: hash }, T)
            .await
            .unwrap_or_else(|e| panic!("lookup_invoice: {e}\n{}", self.alby.stderr()));
        assert_eq!(reply.result_type, "lookup_invoice");
        reply.into_result::<LookupResult>()
    }

    async fn balance(&self) -> u64 {
        let reply = self.wallet.call(&Request::GetBalance, T).await.unwrap();
        reply.into_result::<BalanceResult>().unwrap().balance
    }

    fn dev_settled(&self, hash: &PaymentHash) -> Option<String> {
        match self.gw.node.status(hash) {
            DevInvoiceStatus::Settled(p) => Some(p.preimage.to_hex()),
            _ => None,
        }
    }
}

fn not_found(r: Result<LookupResult, ReplyError>) -> bool {
    matches!(
        r,
        Err(ReplyError::Wallet(WalletError {
            code: ErrorCode::NotFound,
            ..
        }))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn albys_service_answers_info_balance_pays_the_dev_node_and_looks_the_payment_up() {
    let Some(s) = setup(1, &["--balance-msat", "5000000"]).await else {
        return;
    };
    // The info event offers nip04 and nip44_v2: NIP-44 v2 is chosen.
    assert_eq!(s.wallet.encryption(), Encryption::Nip44V2);
    for m in ["get_info", "get_balance", "pay_invoice", "lookup_invoice"] {
        assert!(s.wallet.offers(m), "{m}");
    }
    assert!(!s.wallet.offers("make_invoice"));

    let info: InfoResult = s
        .wallet
        .call(&Request::GetInfo, T)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(info.network(), Some(Network::Regtest));
    assert_eq!(
        info.methods,
        ["get_info", "get_balance", "pay_invoice", "lookup_invoice"]
    );
    assert!(info.alias.unwrap_or_default().contains("Alby"));

    assert_eq!(s.balance().await, 5_000_000);

    let (text, invoice) = s.invoice().await;
    let hash = invoice.payment_hash();
    assert!(not_found(s.lookup(hash).await), "issued, not yet paid");
    assert_eq!(s.dev_settled(&hash), None);
    let paid = s.pay(&text, T).await.unwrap();
    let preimage: Preimage = paid.preimage.parse().expect("a 32-byte hex preimage");
    assert!(preimage.matches(&hash), "the preimage is the invoice's");
    assert_eq!(paid.fees_paid, Some(0), "the dev node charges no fee");
    assert_eq!(s.dev_settled(&hash), Some(paid.preimage.clone()));
    let amount = invoice.amount_msat().unwrap();
    assert_eq!(s.balance().await, 5_000_000 - amount);

    let looked = s.lookup(hash).await.unwrap();
    assert_eq!(
        looked.state(),
        LookupState::Settled {
            preimage: paid.preimage.clone(),
            fee_msat: 0
        }
    );
    assert_eq!(looked.amount, Some(amount));
    assert!(looked.settled_at.is_some_and(|t| t > 1_700_000_000));

    assert!(not_found(s.lookup(PaymentHash([7; 32])).await));

    // Paying it again: the dev node refuses a paid invoice (PAYMENT_FAILED),
    // and the lookup still says settled.
    assert_eq!(
        s.pay(&text, T).await,
        Err("wallet: PAYMENT_FAILED".to_string())
    );
    assert!(matches!(
        s.lookup(hash).await.unwrap().state(),
        LookupState::Settled { .. }
    ));

    let stats = s.alby.stats();
    assert_eq!(stats["pay_invoice"], 2, "{stats}");
    assert_eq!(stats["paid"], 1, "{stats}");
    assert_eq!(stats["lookup_invoice"], 4, "{stats}");
    assert_eq!(stats["get_info"], 1, "{stats}");
    assert_eq!(stats["get_balance"], 2, "{stats}");
    s.wallet.close().await;

    // The client's secret is on stdout (the URI) only, never in the logs;
    // SIGTERM ends the service cleanly.
    let secret = s.alby.uri.split("secret=").nth(1).unwrap().to_string();
    assert_eq!(secret.len(), 64);
    let log = s.alby.stderr();
    assert!(log.contains("paid") && !log.contains(&secret), "{log}");
    let status = s.alby.stop();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_of_a_refused_payment_reaches_our_client_and_nothing_is_paid() {
    let Some(s) = setup(1, &[]).await else { return };
    let (text, invoice) = s.invoice().await;
    let codes = [
        ("INSUFFICIENT_BALANCE", ErrorCode::InsufficientBalance),
        ("QUOTA_EXCEEDED", ErrorCode::QuotaExceeded),
        ("RATE_LIMITED", ErrorCode::RateLimited),
        ("RESTRICTED", ErrorCode::Restricted),
        ("UNAUTHORIZED", ErrorCode::Unauthorized),
        ("PAYMENT_FAILED", ErrorCode::PaymentFailed),
        ("NOT_FOUND", ErrorCode::NotFound),
        ("UNSUPPORTED_ENCRYPTION", ErrorCode::UnsupportedEncryption),
        ("INTERNAL", ErrorCode::Internal),
        ("WALLET_ON_FIRE", ErrorCode::Other("WALLET_ON_FIRE".into())),
    ];
    for (code, expected) in &codes {
        let message = format!("told to say {code}");
        s.alby.set(json!({"fail_pay": code, "message": message}));
        let reply = s
            .wallet
            .call(
                &Request::PayInvoice {
                    invoice: text.clone(),
                },
                T,
            )
            .await
            .unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(reply.result_type, "pay_invoice", "{code}");
        assert_eq!(
            reply.into_result::<PayResult>(),
            Err(ReplyError::Wallet(WalletError {
                code: expected.clone(),
                message
            })),
            "{code}"
        );
    }
    let stats = s.alby.stats();
    assert_eq!(stats["pay_invoice"], codes.len(), "{stats}");
    assert_eq!(stats["paid"], json!(null), "nothing paid: {stats}");
    assert_eq!(stats["backend_pay_calls"], json!(null), "{stats}");
    assert_eq!(s.dev_settled(&invoice.payment_hash()), None);

    // Back to normal, the same invoice pays.
    s.alby.set(json!({"mode": "normal"}));
    let paid = s.pay(&text, T).await.unwrap();
    assert_eq!(s.dev_settled(&invoice.payment_hash()), Some(paid.preimage));
    assert_eq!(s.alby.stat("paid"), 1);
    s.wallet.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_through_two_relays_is_paid_once() {
    let Some(s) = setup(2, &[]).await else { return };
    assert_eq!(s.wallet.encryption(), Encryption::Nip44V2);
    let (text, invoice) = s.invoice().await;
    let paid = s.pay(&text, T).await.unwrap();
    assert!(
        paid.preimage
            .parse::<Preimage>()
            .unwrap()
            .matches(&invoice.payment_hash())
    );
    // Give the second copy time to arrive: it is recognised, not paid.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = s.alby.stats();
    assert_eq!(stats["requests"], 1, "{stats}");
    assert_eq!(stats["paid"], 1, "{stats}");
    s.wallet.close().await;
}

/// The fault modes tests of the payer rely on, checked against our client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_modes_do_what_they_say() {
    let Some(s) = setup(1, &[]).await else { return };
    let short = Duration::from_secs(1);

    // never_answer: paid, no answer (an unknown outcome); a lookup finds it.
    s.alby.set(json!({"never_answer": true}));
    let (text, invoice) = s.invoice().await;
    // (A 1 s call waits up to 2 s: its request's expiration is a whole
    // second.)
    let lost = s.pay(&text, short).await.unwrap_err();
    assert!(
        lost.starts_with("call: the wallet did not answer within 1.")
            || lost == "call: the wallet did not answer within 2.0 s",
        "{lost}"
    );
    let settled = s.lookup(invoice.payment_hash()).await.unwrap().state();
    let Some(dev) = s.dev_settled(&invoice.payment_hash()) else {
        panic!("never_answer must still pay")
    };
    assert_eq!(
        settled,
        LookupState::Settled {
            preimage: dev,
            fee_msat: 0
        }
    );

    // answer_late_ms: too late for a short wait, in time for a longer one.
    s.alby
        .set(json!({"mode": "normal", "answer_late_ms": 2500}));
    let (text, _) = s.invoice().await;
    let late = s
        .wallet
        .call(&Request::PayInvoice { invoice: text }, short)
        .await;
    assert!(matches!(late, Err(CallError::NoAnswer(_))), "{late:?}");
    let (text, _) = s.invoice().await;
    assert!(s.pay(&text, Duration::from_secs(5)).await.is_ok());

    // hold_pay_ms: pending while held, settled after.
    s.alby.set(json!({"mode": "normal", "hold_pay_ms": 1000}));
    let (text, invoice) = s.invoice().await;
    let wallet_call = s.pay(&text, Duration::from_secs(5));
    let lookup_while_held = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.lookup(invoice.payment_hash()).await.unwrap().state()
    };
    let (paid, held) = tokio::join!(wallet_call, lookup_while_held);
    assert_eq!(held, LookupState::Pending);
    assert!(paid.is_ok(), "{paid:?}");

    // extra_fee_msat: the answer and the lookup report more than was paid.
    s.alby
        .set(json!({"mode": "normal", "extra_fee_msat": 2500}));
    let (text, invoice) = s.invoice().await;
    assert_eq!(s.pay(&text, T).await.unwrap().fees_paid, Some(2500));
    assert!(matches!(
        s.lookup(invoice.payment_hash()).await.unwrap().state(),
        LookupState::Settled { fee_msat: 2500, .. }
    ));

    // A request carried out after its expiration (a 1 s wait expires in
    // 1 to 2 s): Alby's service pays it (it ignores NIP-40); with
    // drop_expired it is dropped, never paid.
    s.alby.set(json!({"mode": "normal", "hold_pay_ms": 2100}));
    let (text, late) = s.invoice().await;
    assert!(s.pay(&text, short).await.is_err());
    s.alby
        .set(json!({"mode": "normal", "hold_pay_ms": 2100, "drop_expired": true}));
    let (text, dropped) = s.invoice().await;
    assert!(s.pay(&text, short).await.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.alby.stat("dropped_expired") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.alby.stat("dropped_expired"), 1);
    assert!(s.dev_settled(&late.payment_hash()).is_some(), "paid late");
    assert_eq!(s.dev_settled(&dropped.payment_hash()), None, "dropped");
    assert!(not_found(s.lookup(dropped.payment_hash()).await));

    // Unknown commands are refused, not ignored.
    assert_eq!(s.alby.send(json!({"fail_pya": "X"}))["ok"], false);
    assert_eq!(s.alby.stat("paid"), 6);
    s.wallet.close().await;
}

/// Alby's service paying with alice's lnd through its REST API (the
/// `lnd-rest` backend of wallet.mjs), our client on the other side: run by
/// `lnd::lnd_backend_on_regtest` on its network.
pub(crate) async fn nwc_steps_on_lnd(rt: &crate::lnd::Regtest) {
    let (_relay, url) = relay().await;
    let Some(alby) = AlbyWallet::on_alice(&[&url], rt).await else {
        return;
    };
    let wallet = Wallet::connect(alby.uri.parse().unwrap(), T).await.unwrap();
    let call = |request: Request| {
        let wallet = &wallet;
        let alby = &alby;
        async move {
            wallet
                .call(&request, Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", request.method(), alby.stderr()))
        }
    };

    // get_info names alice's node; get_balance is her channels' balance.
    let raw = call(Request::GetInfo).await.result.unwrap();
    assert_eq!(raw["pubkey"], rt.var("L402_REGTEST_ALICE_PUBKEY"), "{raw}");
    let info: InfoResult = serde_json::from_value(raw).unwrap();
    assert_eq!(info.network(), Some(Network::Regtest));
    let balance =
        |r: l402_mcp::lightning::nwc::Reply| r.into_result::<BalanceResult>().unwrap().balance;
    let before = balance(call(Request::GetBalance).await);
    let lnd_says = rt.lncli("ALICE", &["channelbalance"]);
    assert_eq!(
        before.to_string(),
        lnd_says["local_balance"]["msat"].as_str().unwrap()
    );

    // Paying one of bob's invoices: the preimage is the invoice's, lnd
    // knows the payment, the lookup says settled with the same preimage.
    let added = rt.lncli("BOB", &["addinvoice", "--amt", "1234", "--memo", "nwc"]);
    let text = added["payment_request"].as_str().unwrap().to_string();
    let invoice: Invoice = text.parse().unwrap();
    let paid: PayResult = call(Request::PayInvoice {
        invoice: text.clone(),
    })
    .await
    .into_result()
    .unwrap_or_else(|e| panic!("pay_invoice: {e}\n{}", alby.stderr()));
    let preimage: Preimage = paid.preimage.parse().unwrap();
    assert!(preimage.matches(&invoice.payment_hash()));
    assert_eq!(paid.fees_paid, Some(0), "a direct channel charges no fee");
    let looked: LookupResult = call(Request::LookupInvoice {
        payment_hash: invoice.payment_hash(),
    })
    .await
    .into_result()
    .unwrap();
    assert_eq!(
        looked.state(),
        LookupState::Settled {
            preimage: paid.preimage.clone(),
            fee_msat: 0
        }
    );
    assert_eq!(looked.amount, Some(1_234_000));
    assert_eq!(before - balance(call(Request::GetBalance).await), 1_234_000);

    // Paying it again: lnd refuses, PAYMENT_FAILED, nothing paid twice.
    let again = call(Request::PayInvoice { invoice: text }).await;
    assert!(
        matches!(
            &again.error,
            Some(WalletError {
                code: ErrorCode::PaymentFailed,
                ..
            })
        ),
        "{again:?}"
    );
    // More than alice has: lnd fails the payment (PAYMENT_FAILED), and the
    // lookup says failed.
    let added = rt.lncli("BOB", &["addinvoice", "--amt", "900000"]);
    let text = added["payment_request"].as_str().unwrap().to_string();
    let too_much: Invoice = text.parse().unwrap();
    let refused = call(Request::PayInvoice { invoice: text }).await;
    assert!(
        matches!(
            &refused.error,
            Some(WalletError {
                code: ErrorCode::PaymentFailed,
                message,
            }) if message.contains("INSUFFICIENT_BALANCE")
        ),
        "{refused:?}"
    );
    let looked: LookupResult = call(Request::LookupInvoice {
        payment_hash: too_much.payment_hash(),
    })
    .await
    .into_result()
    .unwrap();
    assert_eq!(looked.state(), LookupState::Failed);

    // A payment in flight (bob holds the HTLC of a hold invoice): another
    // wallet service on the same lnd, which has no record of its own,
    // reads lnd's IN_FLIGHT as pending; once bob settles, the first
    // answers with the preimage and the second sees it settled.
    let Some(other) = AlbyWallet::on_alice(&[&url], rt).await else {
        return;
    };
    let watcher = Wallet::connect(other.uri.parse().unwrap(), T)
        .await
        .unwrap();
    let look = |hash| {
        let watcher = &watcher;
        async move {
            watcher
                .call(&Request::LookupInvoice { payment_hash: hash }, T)
                .await
                .unwrap()
                .into_result::<LookupResult>()
                .map(|l| l.state())
        }
    };
    let held = Preimage::random();
    let hash = held.payment_hash();
    let added = rt.lncli("BOB", &["addholdinvoice", &hash.to_hex(), "--amt", "2000"]);
    let text = added["payment_request"].as_str().unwrap().to_string();
    let paying = call(Request::PayInvoice { invoice: text });
    let settle = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match look(hash).await {
                Ok(LookupState::Pending) => break,
                other => assert!(Instant::now() < deadline, "never pending: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Pending at alice does not mean bob holds the HTLC yet: settle
        // once his invoice is ACCEPTED ("invoice still open" otherwise).
        loop {
            let state = rt.lncli("BOB", &["lookupinvoice", &hash.to_hex()])["state"].clone();
            if state == "ACCEPTED" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bob never held the HTLC: {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rt.lncli("BOB", &["settleinvoice", &held.to_hex()]);
    };
    let (paid_held, ()) = tokio::join!(paying, settle);
    let paid_held: PayResult = paid_held.into_result().unwrap();
    assert_eq!(paid_held.preimage, held.to_hex());
    assert_eq!(
        look(hash).await.unwrap(),
        LookupState::Settled {
            preimage: held.to_hex(),
            fee_msat: 0
        }
    );
    assert_eq!(other.stat("paid"), 0, "the watcher paid nothing");
    watcher.close().await;
    drop(other);

    // A hash lnd never paid: NOT_FOUND.
    let unknown = call(Request::LookupInvoice {
        payment_hash: PaymentHash([9; 32]),
    })
    .await;
    assert!(
        matches!(
            &unknown.error,
            Some(WalletError {
                code: ErrorCode::NotFound,
                ..
            })
        ),
        "{unknown:?}"
    );
    let stats = alby.stats();
    assert_eq!(stats["paid"], 2, "{stats}");
    assert_eq!(stats["pay_invoice"], 4, "{stats}");
    wallet.close().await;
    assert!(alby.stop().success());
}

/// A connection string naming two relays, one of them down (a closed port:
/// refused at once), Alby's service on the other. Connecting and calling
/// should take about as long as through the live relay alone.
///
/// (It failed before: `Wallet::connect` waited its whole timeout in
/// `fetch_events(.., ExitOnEOSE)` for an EOSE the down relay never sends,
/// and each `Wallet::call` blocked about 10 s in `pool.send_event`, the
/// pool's own wait for the down relay's OK, whatever the call's timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_of_two_relays_down_connect_and_calls_keep_their_timeouts() {
    let Some(s) = setup(1, &[]).await else { return };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = s.alby.uri.replace(
        "&secret=",
        &format!("&relay=ws%3A%2F%2F127.0.0.1%3A{port}&secret="),
    );
    let started = Instant::now();
    let wallet = Wallet::connect(uri.parse().unwrap(), T).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "connect took {took:?}");
    let started = Instant::now();
    let reply = wallet
        .call(&Request::GetBalance, Duration::from_secs(3))
        .await;
    let took = started.elapsed();
    assert!(reply.is_ok(), "{reply:?}");
    assert!(
        took < Duration::from_secs(4),
        "a call with a 3 s timeout took {took:?}"
    );
    wallet.close().await;
}

/// The request's NIP-40 expiration lets a wallet that honours it start
/// the request only while the client waits: a wallet takes an event as
/// expired once its expiration second has passed, so the last moment it
/// may start is `expiration + 1`, which must fall within the wait (and not
/// long before its end). (It was `floor(now) + floor(timeout)`: started at
/// x.6 s with a 1.5 s wait, the request expired at x+1, 1.1 s before the
/// client stopped waiting.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_can_be_started_by_the_wallet_only_while_the_client_waits() {
    use nostr::{Filter, Kind, PublicKey};
    use nostr_relay_pool::prelude::StreamExt;
    use nostr_relay_pool::relay::options::ReqExitPolicy;
    use nostr_relay_pool::{RelayOptions, RelayPool};
    use std::time::{SystemTime, UNIX_EPOCH};

    let Some(s) = setup(1, &[]).await else { return };
    let spy = RelayPool::default();
    spy.add_relay(s.urls[0].as_str(), RelayOptions::default())
        .await
        .unwrap();
    spy.try_connect(T).await;
    let client: PublicKey = s.alby.client_pubkey.parse().unwrap();
    let mut requests = spy
        .stream_events(
            Filter::new()
                .kind(Kind::WalletConnectRequest)
                .author(client),
            T,
            ReqExitPolicy::WaitForEvents(1),
        )
        .await
        .unwrap();
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    // Start 0.6 to 0.7 s into a second (the rounding is then visible).
    while !(0.6..0.7).contains(&now().fract()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wait = Duration::from_millis(1500);
    let waits_until = now() + wait.as_secs_f64();
    s.wallet.call(&Request::GetBalance, wait).await.unwrap();
    let request = tokio::time::timeout(T, requests.next())
        .await
        .unwrap()
        .unwrap();
    let expiration = request
        .tags
        .iter()
        .find_map(|t| match t.as_slice() {
            [k, v, ..] if k == "expiration" => v.parse::<f64>().ok(),
            _ => None,
        })
        .expect("an expiration tag");
    let last_start = expiration + 1.0;
    assert!(
        last_start <= waits_until + 0.05 && last_start > waits_until - 1.0,
        "the request expires at {expiration} (a wallet may start it until {last_start}), the \
         client waits until {waits_until:.3}"
    );
    spy.shutdown().await;
}
