//! The NWC wallet connection (lightning::nwc::Wallet) through a real local
//! Nostr relay (rust-nostr's relay builder, in process on 127.0.0.1), with a
//! wallet side simulated here (Alby's own wallet service is in alby.rs
//! and nwc_payer.rs).

use std::time::{Duration, Instant};

use l402_mcp::lightning::nwc::{
    BalanceResult, CallError, Encryption, NwcError, NwcUri, Request, Wallet,
};
use nostr::nips::{nip04, nip44};
use nostr::{Event, EventBuilder, Filter, Keys, Kind, Tag, TagKind};
use nostr_relay_pool::{RelayOptions, RelayPool};
use serde_json::{Value, json};

use crate::common::relay;

fn uri(wallet: &Keys, client: &Keys, relays: &[&str]) -> NwcUri {
    let relays: Vec<String> = relays
        .iter()
        .map(|r| format!("relay={}", r.replace(':', "%3A").replace('/', "%2F")))
        .collect();
    format!(
        "nostr+walletconnect://{}?{}&secret={}",
        wallet.public_key().to_hex(),
        relays.join("&"),
        client.secret_key().to_secret_hex()
    )
    .parse()
    .unwrap()
}

/// A wallet that publishes its info event (`encryption` tag) and answers
/// each request with `answer` (or never, with `None`).
async fn wallet_service(relay: &str, wallet: Keys, encryption: &str, answer: Option<Value>) {
    let pool = RelayPool::default();
    // Back within a second of a relay's restart.
    let opts = RelayOptions::default().retry_interval(Duration::from_secs(1));
    pool.add_relay(relay, opts).await.unwrap();
    pool.try_connect(Duration::from_secs(5)).await;
    let info = EventBuilder::new(Kind::WalletConnectInfo, "pay_invoice get_balance get_info")
        .tag(Tag::custom(TagKind::custom("encryption"), [encryption]))
        .sign_with_keys(&wallet)
        .unwrap();
    pool.send_event(&info).await.unwrap();
    // A lasting subscription (the pool makes it again after a reconnect;
    // a streamed one it would not).
    let mut notifications = pool.notifications();
    pool.subscribe(
        Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(wallet.public_key()),
        nostr_relay_pool::SubscribeOptions::default(),
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        use nostr_relay_pool::RelayPoolNotification;
        while let Ok(n) = notifications.recv().await {
            let RelayPoolNotification::Event { event: request, .. } = n else {
                continue;
            };
            let Some(answer) = answer.clone() else {
                continue;
            };
            let reply = answer_to(&wallet, &request, answer);
            let _ = pool.send_event(&reply).await;
        }
    });
}

fn answer_to(wallet: &Keys, request: &Event, answer: Value) -> Event {
    let nip44_used = request
        .tags
        .iter()
        .any(|t| t.as_slice() == ["encryption", "nip44_v2"]);
    let plain = if nip44_used {
        nip44::decrypt(wallet.secret_key(), &request.pubkey, &request.content).unwrap()
    } else {
        nip04::decrypt(wallet.secret_key(), &request.pubkey, &request.content).unwrap()
    };
    let asked: Value = serde_json::from_str(&plain).unwrap();
    let body = json!({"result_type": asked["method"], "result": answer}).to_string();
    let content = if nip44_used {
        nip44::encrypt(
            wallet.secret_key(),
            &request.pubkey,
            &body,
            nip44::Version::V2,
        )
        .unwrap()
    } else {
        nip04::encrypt(wallet.secret_key(), &request.pubkey, &body).unwrap()
    };
    EventBuilder::new(Kind::WalletConnectResponse, content)
        .tag(Tag::public_key(request.pubkey))
        .tag(Tag::event(request.id))
        .sign_with_keys(wallet)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_call_goes_through_a_real_relay_in_the_encryption_its_info_event_offers() {
    let (_relay, url) = relay().await;
    for (offered, expected) in [
        ("nip04 nip44_v2", Encryption::Nip44V2),
        ("nip04", Encryption::Nip04),
    ] {
        let (wallet, client) = (Keys::generate(), Keys::generate());
        wallet_service(
            &url,
            wallet.clone(),
            offered,
            Some(json!({"balance": 21_000})),
        )
        .await;
        let w = Wallet::connect(uri(&wallet, &client, &[&url]), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(w.encryption(), expected, "{offered}");
        assert!(w.offers("pay_invoice"));
        let reply = w
            .call(&Request::GetBalance, Duration::from_secs(5))
            .await
            .unwrap();
        let balance: BalanceResult = reply.into_result().unwrap();
        assert_eq!(balance.balance, 21_000);
        w.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_is_down_at_start_is_a_clear_error_not_a_hang() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("ws://127.0.0.1:{port}");
    let started = Instant::now();
    let err = Wallet::connect(
        uri(&Keys::generate(), &Keys::generate(), &[&down]),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::NotSent(_)), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_that_never_answers_is_an_unknown_outcome_within_the_timeout() {
    let (_relay, url) = relay().await;
    let (wallet, client) = (Keys::generate(), Keys::generate());
    wallet_service(&url, wallet.clone(), "nip44_v2", None).await;
    let w = Wallet::connect(uri(&wallet, &client, &[&url]), Duration::from_secs(5))
        .await
        .unwrap();
    let started = Instant::now();
    let err = w
        .call(&Request::GetBalance, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err, CallError::NoAnswer(Duration::from_secs(2)));
    assert!(started.elapsed() < Duration::from_secs(4));
    w.close().await;
}

#[test]
fn a_sealed_request_is_encrypted_tagged_and_only_the_wallets_answer_is_believed() {
    let (wallet, client) = (Keys::generate(), Keys::generate());
    let uri = uri(&wallet, &client, &["ws://127.0.0.1:7777"]);
    for encryption in [Encryption::Nip44V2, Encryption::Nip04] {
        let sealed = uri
            .seal(&Request::GetBalance, encryption, 1_900_000_000)
            .unwrap();
        let tags: Vec<Vec<String>> = sealed
            .event
            .tags
            .iter()
            .map(|t| t.as_slice().to_vec())
            .collect();
        assert!(
            tags.contains(&vec!["expiration".into(), "1900000000".into()]),
            "{tags:?}"
        );
        assert!(tags.contains(&vec!["encryption".into(), encryption.as_tag().into()]));
        assert!(
            !sealed.event.content.contains("get_balance"),
            "not encrypted"
        );
        let reply = answer_to(&wallet, &sealed.event, json!({"balance": 21_000}));
        let balance: BalanceResult = uri.open(&sealed, &reply).unwrap().into_result().unwrap();
        assert_eq!(balance.balance, 21_000);
        // The same answer signed by another key, referring to the request.
        let impostor = EventBuilder::new(Kind::WalletConnectResponse, reply.content.clone())
            .tag(Tag::public_key(sealed.event.pubkey))
            .tag(Tag::event(sealed.event.id))
            .sign_with_keys(&Keys::generate())
            .unwrap();
        assert!(matches!(
            uri.open(&sealed, &impostor),
            Err(NwcError::NotFromWallet(_))
        ));
    }
    // The wallet's answer to another request is not this one's.
    let a = uri
        .seal(&Request::GetInfo, Encryption::Nip44V2, 1_900_000_000)
        .unwrap();
    let b = uri
        .seal(&Request::GetInfo, Encryption::Nip44V2, 1_900_000_000)
        .unwrap();
    let to_b = answer_to(&wallet, &b.event, json!({"methods": []}));
    assert!(matches!(
        uri.open(&a, &to_b),
        Err(NwcError::NotFromWallet(_))
    ));
}

/// A relay on `port`, so that it can be stopped and started again there.
async fn relay_on(port: u16) -> nostr_relay_builder::LocalRelay {
    use nostr_relay_builder::builder::{RateLimit, RelayBuilder};
    let relay = nostr_relay_builder::LocalRelay::new(
        RelayBuilder::default()
            .addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            .port(port)
            .rate_limit(RateLimit {
                max_reqs: 1000,
                notes_per_minute: 100_000,
            }),
    );
    relay.run().await.unwrap();
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_goes_away_is_not_sent_to_and_is_used_again_once_back() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}");
    let relay = relay_on(port).await;
    let (wallet, client) = (Keys::generate(), Keys::generate());
    wallet_service(
        &url,
        wallet.clone(),
        "nip44_v2",
        Some(json!({"balance": 5})),
    )
    .await;
    let w = Wallet::connect(uri(&wallet, &client, &[&url]), Duration::from_secs(5))
        .await
        .unwrap();
    w.call(&Request::GetBalance, Duration::from_secs(5))
        .await
        .unwrap();

    // Down: once the client has seen it go, a request is not sent at all
    // (safe to retry; for a payment, nothing can have been paid).
    relay.shutdown();
    let started = Instant::now();
    let err = loop {
        let err = w
            .call(&Request::GetBalance, Duration::from_secs(1))
            .await
            .unwrap_err();
        if matches!(err, CallError::NotSent(_)) || started.elapsed() > Duration::from_secs(10) {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(matches!(err, CallError::NotSent(_)), "{err}");
    assert!(err.to_string().contains("not connected"), "{err}");

    // Back on the same port: the client reconnects with its backoff and
    // the wallet answers again. (The wallet side is started afresh on it:
    // the relay builder's shutdown can leave the old wallet connection
    // attached to the stopped relay, which says nothing of our client.)
    let _relay = relay_on(port).await;
    wallet_service(
        &url,
        wallet.clone(),
        "nip44_v2",
        Some(json!({"balance": 5})),
    )
    .await;
    let started = Instant::now();
    loop {
        match w.call(&Request::GetBalance, Duration::from_secs(2)).await {
            Ok(reply) => {
                assert_eq!(reply.into_result::<BalanceResult>().unwrap().balance, 5);
                break;
            }
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "not back after {:?}: {e}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    w.close().await;
}
