//! The token store and the spend ledger: schema, file mode, token
//! lifecycle, and the budget invariant under threads and processes that
//! share one file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use l402_mcp::budget::{BudgetError, Ledger, Reservation, ReserveRequest, SpendTotals};
use l402_mcp::lightning::{PaymentHash, Preimage};
use l402_mcp::store::{
    ManualClock, NewToken, Origin, OriginError, PaymentState, SCHEMA_VERSION, Store, StoreError,
    TokenScheme, TokenStatus,
};

const T0: u64 = 1_750_000_000;

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    (dir, path)
}

fn origin(s: &str) -> Origin {
    s.parse().unwrap()
}

fn manual_store() -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (
        Store::open_in_memory_with_clock(clock.clone()).unwrap(),
        clock,
    )
}

/// A preimage and its hash, distinct per `n`.
fn pair(n: u8) -> (Preimage, PaymentHash) {
    let preimage = Preimage([n; 32]);
    let hash = preimage.payment_hash();
    (preimage, hash)
}

fn pending<'a>(origin: &'a Origin, hash: &'a PaymentHash, macaroon: &'a str) -> NewToken<'a> {
    NewToken {
        origin,
        payment_hash: hash,
        macaroon,
        invoice: "lnbcrt10u1ptest",
        amount_msat: 1_000_000,
        session: "s1",
        scheme: TokenScheme::L402,
        bound_path: None,
        expires_at: None,
    }
}

fn ask<'a>(
    session: &'a str,
    origin: &'a Origin,
    hash: &'a PaymentHash,
    amount: u64,
    fee_limit: u64,
) -> ReserveRequest<'a> {
    ReserveRequest {
        session,
        origin,
        url: "https://api.example.com:443/v1/thing",
        payment_hash: hash,
        amount_msat: amount,
        fee_limit_msat: fee_limit,
        scheme: TokenScheme::L402,
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- schema

#[test]
fn store_is_send_sync_and_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Ledger>();
    assert_send_sync::<Arc<Store>>();
}

#[test]
fn schema_is_created_and_reopened_at_the_current_version() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    assert_eq!(SCHEMA_VERSION, 5);
    assert_eq!(store.schema_version().unwrap(), 5);
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 5);
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "origin_schemes",
            "pauses",
            "payments",
            "sessions",
            "token_paths",
            "tokens"
        ]
    );
}

#[test]
fn store_from_a_newer_program_is_refused_untouched() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 7).unwrap();
    drop(conn);

    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path.display().to_string());
            assert_eq!((*found, *supported), (7, 5));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "the token store at {} has schema version 7, but this program knows only up to 5: \
             it was written by a newer l402-mcp; upgrade, or use another store",
            path.display()
        )
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_open_error() {
    let (_dir, path) = temp_db();
    std::fs::write(
        &path,
        b"this is not an SQLite database, just some bytes....",
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot open the token store at {}: ",
            path.display()
        )),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn store_file_and_new_directory_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh/nested/store.db");
    let store = Store::open(&path).unwrap();
    store
        .insert_pending(&pending(&origin("https://a.example"), &pair(1).1, "mac"))
        .unwrap();

    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("fresh")), 0o700);
    assert_eq!(mode(&dir.path().join("fresh/nested")), 0o700);
    for side in ["store.db-wal", "store.db-shm"] {
        let side = dir.path().join("fresh/nested").join(side);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
}

#[cfg(unix)]
#[test]
fn an_existing_store_readable_by_others_is_tightened_to_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(mode(&path), 0o644);

    drop(Store::open(&path).unwrap());
    assert_eq!(mode(&path), 0o600);
}

// ---------------------------------------------------------------- origins

#[test]
fn origins_are_normalized_to_scheme_host_port() {
    assert_eq!(
        origin("HTTPS://Api.Example.COM").as_str(),
        "https://api.example.com:443"
    );
    assert_eq!(
        origin("https://api.example.com:443/").as_str(),
        "https://api.example.com:443"
    );
    assert_eq!(
        origin("http://api.example.com").as_str(),
        "http://api.example.com:80"
    );
    assert_eq!(origin("http://[::1]:8080").as_str(), "http://[::1]:8080");
    let url = reqwest::Url::parse("https://user:pw@API.example.com:8443/a/b?c=d#e").unwrap();
    assert_eq!(
        Origin::from_url(&url).unwrap().as_str(),
        "https://api.example.com:8443"
    );

    assert_eq!(
        "https://api.example.com/v1".parse::<Origin>(),
        Err(OriginError::NotOrigin("https://api.example.com/v1".into()))
    );
    assert_eq!(
        "ftp://example.com".parse::<Origin>(),
        Err(OriginError::NotHttp("ftp://example.com/".into()))
    );
    assert!(matches!(
        "not a url".parse::<Origin>(),
        Err(OriginError::NotUrl { .. })
    ));
}

// ---------------------------------------------------------------- tokens

#[test]
fn token_lifecycle_pending_then_paid_then_stale() {
    let (store, clock) = manual_store();
    let api = origin("https://api.example.com");
    let (preimage, hash) = pair(1);

    let id = store
        .insert_pending(&pending(&api, &hash, "AgEEbHNhdA"))
        .unwrap();
    let token = store.get_by_hash(&hash).unwrap().unwrap();
    assert_eq!(token.info.id, id);
    assert_eq!(token.info.status, TokenStatus::Pending);
    assert_eq!(token.info.origin, api);
    assert_eq!(token.info.amount_msat, 1_000_000);
    assert_eq!(token.info.fee_msat, 0);
    assert_eq!(token.info.session, "s1");
    assert_eq!(token.info.created_at, T0);
    assert_eq!(token.info.paid_at, None);
    assert_eq!(token.macaroon(), "AgEEbHNhdA");
    assert_eq!(token.invoice(), "lnbcrt10u1ptest");
    assert!(token.preimage().is_none());
    assert_eq!(store.list_pending().unwrap().len(), 1);
    assert!(store.find_usable(&api).unwrap().is_none());

    // A preimage that is not this hash's changes nothing.
    let (wrong, _) = pair(2);
    assert!(matches!(
        store.mark_paid(&hash, &wrong, 0),
        Err(StoreError::PreimageMismatch(h)) if h == hash
    ));
    assert_eq!(
        store.get_by_hash(&hash).unwrap().unwrap().info.status,
        TokenStatus::Pending
    );

    clock.advance(5);
    store.mark_paid(&hash, &preimage, 1_234).unwrap();
    let token = store.find_usable(&api).unwrap().unwrap();
    assert_eq!(token.info.status, TokenStatus::Paid);
    assert_eq!(token.info.fee_msat, 1_234);
    assert_eq!(token.info.paid_at, Some(T0 + 5));
    assert_eq!(token.preimage(), Some(&preimage));
    assert!(store.list_pending().unwrap().is_empty());
    // Paying again is a no-op.
    store.mark_paid(&hash, &preimage, 1_234).unwrap();

    clock.advance(5);
    store.mark_used(&hash).unwrap();
    assert_eq!(
        store.get_by_hash(&hash).unwrap().unwrap().info.last_used_at,
        Some(T0 + 10)
    );

    store.mark_stale(&hash).unwrap();
    store.mark_stale(&hash).unwrap();
    assert_eq!(
        store.get_by_hash(&hash).unwrap().unwrap().info.status,
        TokenStatus::Stale
    );
    assert!(store.find_usable(&api).unwrap().is_none());
    assert!(matches!(
        store.mark_paid(&hash, &preimage, 0),
        Err(StoreError::InvalidTransition {
            from: TokenStatus::Stale,
            to: TokenStatus::Paid,
            ..
        })
    ));
}

#[test]
fn a_payment_hash_is_stored_once() {
    let (store, _) = manual_store();
    let api = origin("https://api.example.com");
    let (_, hash) = pair(1);
    store.insert_pending(&pending(&api, &hash, "mac")).unwrap();
    let err = store
        .insert_pending(&pending(&api, &hash, "mac2"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicatePaymentHash(h) if h == hash),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "a token for payment hash {hash} is already stored; its invoice must not be paid twice"
        )
    );
    assert_eq!(store.list_tokens().unwrap().len(), 1);
}

#[test]
fn failed_tokens_cannot_be_used_and_a_late_success_is_recorded() {
    let (store, _) = manual_store();
    let api = origin("https://api.example.com");
    let (preimage, hash) = pair(1);
    store.insert_pending(&pending(&api, &hash, "mac")).unwrap();

    assert!(matches!(
        store.mark_stale(&hash),
        Err(StoreError::InvalidTransition {
            from: TokenStatus::Pending,
            to: TokenStatus::Stale,
            ..
        })
    ));
    store.mark_failed(&hash).unwrap();
    assert!(store.find_usable(&api).unwrap().is_none());
    assert!(store.list_pending().unwrap().is_empty());

    // The backend said "failed", but the payment went through after all.
    store.mark_paid(&hash, &preimage, 0).unwrap();
    assert_eq!(
        store.find_usable(&api).unwrap().unwrap().info.payment_hash,
        hash
    );
    assert!(matches!(
        store.mark_failed(&hash),
        Err(StoreError::InvalidTransition {
            from: TokenStatus::Paid,
            to: TokenStatus::Failed,
            ..
        })
    ));
    let (_, unknown) = pair(9);
    assert!(
        matches!(store.mark_failed(&unknown), Err(StoreError::TokenNotFound(h)) if h == unknown)
    );
}

#[test]
fn find_usable_returns_the_newest_paid_token_for_exactly_that_origin() {
    let (store, clock) = manual_store();
    let api = origin("https://api.example.com");
    let other_port = origin("https://api.example.com:8443");
    let plain = origin("http://api.example.com");
    let other = origin("https://other.example.com");

    let pay = |n: u8, o: &Origin, mac: &str| {
        let (preimage, hash) = pair(n);
        store.insert_pending(&pending(o, &hash, mac)).unwrap();
        store.mark_paid(&hash, &preimage, 0).unwrap();
        clock.advance(1);
        hash
    };
    let older = pay(1, &api, "older");
    let newest = pay(2, &api, "newest");
    let stale = pay(3, &api, "stale");
    store.mark_stale(&stale).unwrap();
    pay(4, &other_port, "other-port");
    pay(5, &plain, "plain-http");
    pay(6, &other, "other-host");
    let (_, in_flight) = pair(7);
    store
        .insert_pending(&pending(&api, &in_flight, "pending"))
        .unwrap();

    let found = store
        .find_usable(&origin("HTTPS://API.EXAMPLE.COM:443/"))
        .unwrap()
        .unwrap();
    assert_eq!(found.info.payment_hash, newest);
    assert_eq!(found.macaroon(), "newest");

    store.mark_stale(&newest).unwrap();
    assert_eq!(
        store.find_usable(&api).unwrap().unwrap().info.payment_hash,
        older
    );
    store.mark_stale(&older).unwrap();
    assert!(store.find_usable(&api).unwrap().is_none());

    assert_eq!(
        store.find_usable(&other_port).unwrap().unwrap().macaroon(),
        "other-port"
    );
    assert_eq!(
        store.find_usable(&plain).unwrap().unwrap().macaroon(),
        "plain-http"
    );
    assert!(
        store
            .find_usable(&origin("https://unknown.example.com"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn token_debug_never_shows_the_preimage_or_macaroon() {
    let (store, _) = manual_store();
    let api = origin("https://api.example.com");
    let (preimage, hash) = pair(0xab);
    let macaroon = "AgEEbHNhdAJCAADXSECRETMACAROON";
    store
        .insert_pending(&pending(&api, &hash, macaroon))
        .unwrap();

    let new_debug = format!("{:?}", pending(&api, &hash, macaroon));
    assert!(!new_debug.contains(macaroon), "{new_debug}");
    let pending_debug = format!(
        "{:?} {:#?}",
        store.list_pending().unwrap(),
        store.get_by_hash(&hash).unwrap()
    );
    assert!(!pending_debug.contains(macaroon), "{pending_debug}");
    assert!(pending_debug.contains("<redacted>"));

    store.mark_paid(&hash, &preimage, 0).unwrap();
    let token = store.find_usable(&api).unwrap().unwrap();
    let debug = format!("{token:?} {token:#?} {:?}", store.list_tokens().unwrap());
    assert!(!debug.contains(macaroon), "{debug}");
    assert!(!debug.contains(&preimage.to_hex()), "{debug}");
    assert!(!debug.to_lowercase().contains(&"ab".repeat(32)), "{debug}");
    assert!(
        debug.contains(&hash.to_hex()),
        "the hash is public: {debug}"
    );
}

#[test]
fn tokens_are_removed_by_id_or_hash_and_clear_keeps_pending_ones() {
    let (store, _) = manual_store();
    let api = origin("https://api.example.com");
    let mut ids = Vec::new();
    for n in 1..=4 {
        let (preimage, hash) = pair(n);
        ids.push(store.insert_pending(&pending(&api, &hash, "mac")).unwrap());
        if n != 4 {
            store.mark_paid(&hash, &preimage, 0).unwrap();
        }
    }
    assert!(store.remove_token(ids[0]).unwrap());
    assert!(!store.remove_token(ids[0]).unwrap());
    assert!(store.remove_token_by_hash(&pair(2).1).unwrap());
    assert!(!store.remove_token_by_hash(&pair(2).1).unwrap());

    assert_eq!(store.clear_tokens().unwrap(), 1);
    let left = store.list_tokens().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payment_hash, pair(4).1);
    assert_eq!(left[0].status, TokenStatus::Pending);
}

// ---------------------------------------------------------------- ledger

#[test]
fn reserve_holds_amount_plus_fee_limit_and_commit_releases_the_unused_fee_limit() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let api = origin("https://api.example.com");
    let (_, hash) = pair(1);
    ledger.open_session("s1", 1_000_000).unwrap();

    let r = ledger
        .reserve(&ask("s1", &api, &hash, 500_000, 50_000))
        .unwrap();
    assert_eq!(r.held_msat(), 550_000);
    let s = ledger.summary("s1").unwrap();
    assert_eq!(
        (s.budget_msat, s.spent_msat, s.reserved_msat, s.left_msat),
        (1_000_000, 0, 550_000, 450_000)
    );
    assert_eq!((s.payments, s.unresolved), (0, 1));

    ledger.mark_in_flight(&r).unwrap();
    assert_eq!(ledger.summary("s1").unwrap().reserved_msat, 550_000);

    ledger.commit(&r, 500_000, 1_234).unwrap();
    let s = ledger.summary("s1").unwrap();
    assert_eq!(
        (s.spent_msat, s.reserved_msat, s.left_msat),
        (501_234, 0, 498_766)
    );
    assert_eq!((s.payments, s.unresolved), (1, 0));

    // Committing again with the same amounts is a no-op; with others, refused.
    ledger.commit(&r, 500_000, 1_234).unwrap();
    assert!(matches!(
        ledger.commit(&r, 500_000, 9),
        Err(BudgetError::Settled {
            state: PaymentState::Succeeded,
            ..
        })
    ));
    assert!(matches!(
        ledger.release(&r),
        Err(BudgetError::Settled {
            state: PaymentState::Succeeded,
            action: "released",
            ..
        })
    ));
    assert_eq!(ledger.summary("s1").unwrap().spent_msat, 501_234);

    let log = ledger.store().list_payments(Some("s1")).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].state, PaymentState::Succeeded);
    assert_eq!(
        (log[0].amount_msat, log[0].fee_msat, log[0].fee_limit_msat),
        (500_000, 1_234, 50_000)
    );
    assert_eq!(log[0].payment_hash, hash);
    assert_eq!(log[0].origin, "https://api.example.com:443");
}

#[test]
fn release_and_fail_give_back_everything() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let api = origin("https://api.example.com");
    ledger.open_session("s1", 1_000_000).unwrap();

    let r1 = ledger
        .reserve(&ask("s1", &api, &pair(1).1, 400_000, 10_000))
        .unwrap();
    let r2 = ledger
        .reserve(&ask("s1", &api, &pair(2).1, 400_000, 10_000))
        .unwrap();
    assert_eq!(ledger.summary("s1").unwrap().left_msat, 180_000);

    ledger.release(&r1).unwrap();
    ledger.release(&r1).unwrap();
    ledger.mark_in_flight(&r2).unwrap();
    ledger.fail(&r2, "no route to the payee").unwrap();
    let s = ledger.summary("s1").unwrap();
    assert_eq!(
        (s.spent_msat, s.reserved_msat, s.left_msat, s.payments),
        (0, 0, 1_000_000, 0)
    );

    let log = ledger.store().list_payments(None).unwrap();
    assert_eq!(log[0].state, PaymentState::Released);
    assert_eq!(log[1].state, PaymentState::Failed);
    assert_eq!(log[1].error.as_deref(), Some("no route to the payee"));

    // A released reservation must not be paid.
    assert!(matches!(
        ledger.mark_in_flight(&r1),
        Err(BudgetError::Settled {
            state: PaymentState::Released,
            action: "sent",
            ..
        })
    ));
}

#[test]
fn a_payment_that_succeeds_after_its_release_is_still_recorded() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let api = origin("https://api.example.com");
    ledger.open_session("s1", 1_000_000).unwrap();
    let r = ledger
        .reserve(&ask("s1", &api, &pair(1).1, 300_000, 0))
        .unwrap();
    ledger.release(&r).unwrap();
    ledger.commit(&r, 300_000, 0).unwrap();
    let s = ledger.summary("s1").unwrap();
    assert_eq!(
        (s.spent_msat, s.left_msat, s.payments),
        (300_000, 700_000, 1)
    );
}

#[test]
fn over_budget_is_a_variant_with_exact_amounts_and_a_sentence() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let api = origin("https://api.example.com");
    ledger.open_session("agent", 1_000_000).unwrap();
    let _held = ledger
        .reserve(&ask("agent", &api, &pair(1).1, 199_500, 500))
        .unwrap();

    let err = ledger
        .reserve(&ask("agent", &api, &pair(2).1, 800_000, 500))
        .unwrap_err();
    match &err {
        BudgetError::OverBudget {
            session,
            needed_msat,
            left_msat,
            budget_msat,
        } => assert_eq!(
            (session.as_str(), *needed_msat, *left_msat, *budget_msat),
            ("agent", 800_500, 800_000, 1_000_000)
        ),
        other => panic!("expected OverBudget, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "paying 800.5 sats (amount plus fee limit) would exceed session \"agent\"'s budget: \
         800 sats left of 1000 sats"
    );
    // Exactly what is left still fits.
    let _rest = ledger
        .reserve(&ask("agent", &api, &pair(3).1, 800_000, 0))
        .unwrap();
    assert_eq!(ledger.summary("agent").unwrap().left_msat, 0);

    assert!(matches!(
        ledger.reserve(&ask("nobody", &api, &pair(4).1, 1, 0)),
        Err(BudgetError::UnknownSession(s)) if s == "nobody"
    ));
    assert!(matches!(
        ledger.reserve(&ask("agent", &api, &pair(5).1, u64::MAX, 0)),
        Err(BudgetError::Store(StoreError::AmountTooLarge { .. }))
    ));
    assert!(matches!(
        ledger.reserve(&ask("agent", &api, &pair(5).1, i64::MAX as u64, 1)),
        Err(BudgetError::Store(StoreError::AmountTooLarge { .. }))
    ));
}

#[test]
fn daily_cap_spans_sessions_and_rolls_off_after_24_hours() {
    let (store, clock) = manual_store();
    let ledger = Ledger::new(Arc::new(store)).with_daily_cap(Some(1_000_000));
    let api = origin("https://api.example.com");
    ledger.open_session("a", 10_000_000).unwrap();
    ledger.open_session("b", 10_000_000).unwrap();

    // Session a spends 600 sats at T0.
    let r = ledger
        .reserve(&ask("a", &api, &pair(1).1, 590_000, 20_000))
        .unwrap();
    ledger.commit(&r, 590_000, 10_000).unwrap();
    assert_eq!(ledger.last_day_msat().unwrap(), 600_000);

    // An hour later, session b may only have the 400 sats left of the cap.
    clock.advance(3_600);
    let err = ledger
        .reserve(&ask("b", &api, &pair(2).1, 500_000, 0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            BudgetError::OverDailyCap {
                needed_msat: 500_000,
                left_msat: 400_000,
                cap_msat: 1_000_000
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "paying 500 sats (amount plus fee limit) would exceed the 24-hour spending cap: \
         400 sats left of 1000 sats"
    );
    let held = ledger
        .reserve(&ask("b", &api, &pair(3).1, 400_000, 0))
        .unwrap();
    assert!(matches!(
        ledger.reserve(&ask("a", &api, &pair(4).1, 1, 0)),
        Err(BudgetError::OverDailyCap { left_msat: 0, .. })
    ));
    ledger.release(&held).unwrap();

    // One second before a's payment is 24 hours old it still counts.
    clock.set(T0 + 86_399);
    assert!(matches!(
        ledger.reserve(&ask("b", &api, &pair(5).1, 500_000, 0)),
        Err(BudgetError::OverDailyCap {
            left_msat: 400_000,
            ..
        })
    ));
    // At 24 hours it rolls off.
    clock.set(T0 + 86_400);
    assert_eq!(ledger.last_day_msat().unwrap(), 0);
    let r = ledger
        .reserve(&ask("b", &api, &pair(6).1, 1_000_000, 0))
        .unwrap();

    // An unresolved payment holds the cap however old it gets.
    ledger.mark_in_flight(&r).unwrap();
    clock.advance(3 * 86_400);
    assert_eq!(ledger.last_day_msat().unwrap(), 1_000_000);
    assert!(matches!(
        ledger.reserve(&ask("a", &api, &pair(7).1, 1, 0)),
        Err(BudgetError::OverDailyCap { left_msat: 0, .. })
    ));
    // Session budgets were never the limit here.
    assert_eq!(ledger.summary("a").unwrap().left_msat, 9_400_000);
}

#[test]
fn a_named_session_budget_holds_across_reopenings_of_the_file() {
    let (_dir, path) = temp_db();
    let api = origin("https://api.example.com");
    {
        let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
        ledger.open_session("cli", 1_000_000).unwrap();
        let r = ledger
            .reserve(&ask("cli", &api, &pair(1).1, 700_000, 10_000))
            .unwrap();
        ledger.commit(&r, 700_000, 0).unwrap();
    }
    {
        let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
        let s = ledger.open_session("cli", 1_000_000).unwrap();
        assert_eq!(
            (s.spent_msat, s.left_msat, s.payments),
            (700_000, 300_000, 1)
        );
        assert!(matches!(
            ledger.reserve(&ask("cli", &api, &pair(2).1, 400_000, 0)),
            Err(BudgetError::OverBudget {
                left_msat: 300_000,
                budget_msat: 1_000_000,
                ..
            })
        ));
        // Another session in the same file has its own budget.
        ledger.open_session("other", 1_000_000).unwrap();
        let _r = ledger
            .reserve(&ask("other", &api, &pair(3).1, 400_000, 0))
            .unwrap();
    }
    {
        // The operator lowers the budget: what was spent still counts.
        let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
        let s = ledger.open_session("cli", 500_000).unwrap();
        assert_eq!(
            (s.budget_msat, s.spent_msat, s.left_msat),
            (500_000, 700_000, 0)
        );
        let names: Vec<_> = ledger
            .sessions()
            .unwrap()
            .into_iter()
            .map(|s| s.session)
            .collect();
        assert_eq!(names, ["cli", "other"]);
    }
}

#[test]
fn unresolved_reservations_survive_a_crash_and_keep_holding_budget() {
    let (_dir, path) = temp_db();
    let clock = Arc::new(ManualClock::new(T0));
    let api = origin("https://api.example.com");
    let (_, hash) = pair(1);
    {
        // A process reserves, writes the pending token, starts paying... and dies.
        let store = Arc::new(Store::open_with_clock(&path, clock.clone()).unwrap());
        let ledger = Ledger::new(store.clone());
        ledger.open_session("s1", 1_000_000).unwrap();
        let r = ledger
            .reserve(&ask("s1", &api, &hash, 600_000, 6_000))
            .unwrap();
        store.insert_pending(&pending(&api, &hash, "mac")).unwrap();
        ledger.mark_in_flight(&r).unwrap();
        let _ = ledger
            .reserve(&ask("s1", &api, &pair(2).1, 100_000, 0))
            .unwrap();
    }

    let store = Arc::new(Store::open_with_clock(&path, clock.clone()).unwrap());
    let ledger = Ledger::new(store.clone());
    let s = ledger.open_session("s1", 1_000_000).unwrap();
    assert_eq!(
        (s.reserved_msat, s.left_msat, s.unresolved),
        (706_000, 294_000, 2)
    );

    // Too young to be anyone's leftovers yet...
    assert!(
        ledger
            .unresolved(Duration::from_secs(60))
            .unwrap()
            .is_empty()
    );
    clock.advance(60);
    let stuck = ledger.unresolved(Duration::from_secs(60)).unwrap();
    assert_eq!(stuck.len(), 2);
    assert_eq!(stuck[0].payment_hash, hash);
    assert_eq!(stuck[0].state, PaymentState::InFlight);
    assert_eq!(stuck[0].held_msat(), 606_000);
    assert_eq!(stuck[1].state, PaymentState::Reserved);
    assert_eq!(store.list_pending().unwrap()[0].info.payment_hash, hash);
    assert_eq!(store.payments_for_hash(&hash).unwrap(), stuck[..1].to_vec());

    // Recovery: the backend says the first went through, the second was never sent.
    ledger
        .commit(&Reservation::from(&stuck[0]), 600_000, 3_000)
        .unwrap();
    store.mark_paid(&hash, &pair(1).0, 3_000).unwrap();
    ledger.release(&Reservation::from(&stuck[1])).unwrap();
    assert!(ledger.unresolved(Duration::ZERO).unwrap().is_empty());
    let s = ledger.summary("s1").unwrap();
    assert_eq!(
        (s.spent_msat, s.reserved_msat, s.left_msat),
        (603_000, 0, 397_000)
    );
}

#[test]
fn all_time_totals_are_summed_per_origin_across_sessions() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let a = origin("https://a.example.com");
    let b = origin("https://b.example.com");
    ledger.open_session("s1", 10_000_000).unwrap();
    ledger.open_session("s2", 10_000_000).unwrap();
    let mut n = 0;
    let mut spend = |session: &str, o: &Origin, amount: u64, fee: u64| {
        n += 1;
        let r = ledger
            .reserve(&ask(session, o, &pair(n).1, amount, 1_000))
            .unwrap();
        ledger.commit(&r, amount, fee).unwrap();
    };
    spend("s1", &a, 100_000, 10);
    spend("s2", &a, 200_000, 20);
    spend("s1", &b, 1_000_000, 0);
    let r = ledger
        .reserve(&ask("s2", &b, &pair(99).1, 5_000, 0))
        .unwrap();
    ledger.release(&r).unwrap();

    let totals = ledger.all_time().unwrap();
    assert_eq!(
        (
            totals.spent_msat,
            totals.amount_msat,
            totals.fee_msat,
            totals.payments
        ),
        (1_300_030, 1_300_000, 30, 3)
    );
    let rows: Vec<_> = totals
        .by_origin
        .iter()
        .map(|o| {
            (
                o.origin.as_str(),
                o.spent_msat,
                o.amount_msat,
                o.fee_msat,
                o.payments,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("https://b.example.com:443", 1_000_000, 1_000_000, 0, 1),
            ("https://a.example.com:443", 300_030, 300_000, 30, 2),
        ]
    );
    assert_eq!(ledger.summary("s1").unwrap().spent_msat, 1_100_010);
    assert_eq!(ledger.summary("s2").unwrap().spent_msat, 200_020);

    let empty = Ledger::new(Arc::new(Store::open_in_memory().unwrap()));
    assert_eq!(empty.all_time().unwrap(), SpendTotals::default());
}

// ---------------------------------------------------------------- concurrency

const BUDGET: u64 = 1_000_000;

/// 100 threads, each with its own `Store` (its own SQLite connection, as a
/// separate process would have), race to reserve a tenth of the budget.
fn race_hundred_threads(path: &Path) {
    let setup = Ledger::new(Arc::new(Store::open(path).unwrap()));
    setup.open_session("shared", BUDGET).unwrap();
    drop(setup);

    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100u8)
        .map(|i| {
            let path = path.to_path_buf();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
                let api = origin("https://api.example.com");
                let hash = pair(i).1;
                barrier.wait();
                ledger
                    .reserve(&ask("shared", &api, &hash, BUDGET / 10 - 1_000, 1_000))
                    .map(|r| r.held_msat())
            })
        })
        .collect();

    let mut granted = 0;
    for h in handles {
        match h.join().unwrap() {
            Ok(held) => {
                assert_eq!(held, BUDGET / 10);
                granted += 1;
            }
            Err(BudgetError::OverBudget {
                needed_msat,
                left_msat,
                budget_msat,
                ..
            }) => assert_eq!(
                (needed_msat, left_msat, budget_msat),
                (BUDGET / 10, 0, BUDGET)
            ),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(granted, 10);

    let ledger = Ledger::new(Arc::new(Store::open(path).unwrap()));
    let s = ledger.summary("shared").unwrap();
    assert_eq!(
        (s.spent_msat, s.reserved_msat, s.left_msat, s.unresolved),
        (0, BUDGET, 0, 10)
    );
    assert_eq!(ledger.store().list_payments(None).unwrap().len(), 10);
}

#[test]
fn hundred_threads_with_their_own_connections_get_exactly_ten_reservations_twenty_times() {
    for _ in 0..20 {
        let (_dir, path) = temp_db();
        race_hundred_threads(&path);
    }
}

#[test]
fn concurrent_commits_and_reserves_never_exceed_the_budget() {
    // Threads reserve, then commit below the reservation or release, in a
    // loop; after every step, spent + reserved <= budget.
    let (_dir, path) = temp_db();
    Ledger::new(Arc::new(Store::open(&path).unwrap()))
        .open_session("shared", BUDGET)
        .unwrap();
    let handles: Vec<_> = (0..8u8)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
                let api = origin("https://api.example.com");
                let mut spent = 0;
                for i in 0..25u8 {
                    let hash = pair(t.wrapping_mul(25).wrapping_add(i)).1;
                    match ledger.reserve(&ask("shared", &api, &hash, 30_000, 3_000)) {
                        Ok(r) if i % 3 == 0 => ledger.release(&r).unwrap(),
                        Ok(r) => {
                            ledger.commit(&r, 30_000, 1_000).unwrap();
                            spent += 31_000;
                        }
                        Err(BudgetError::OverBudget { .. }) => {}
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                    let s = ledger.summary("shared").unwrap();
                    assert!(s.spent_msat + s.reserved_msat <= BUDGET, "{s:?}");
                }
                spent
            })
        })
        .collect();
    let spent: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
    let s = ledger.summary("shared").unwrap();
    assert_eq!((s.spent_msat, s.reserved_msat), (spent, 0));
    assert!(spent <= BUDGET);
    assert_eq!(s.payments * 31_000, spent);
}

/// The child half of the cross-process test: run by
/// `ledger_invariant_holds_across_processes` in separate processes; a no-op
/// when run any other way.
#[test]
#[ignore = "run as a child process by ledger_invariant_holds_across_processes"]
fn child_process_reserves() {
    let Some(path) = std::env::var_os("L402_STORE_TEST_CHILD_DB") else {
        return;
    };
    let first: u8 = std::env::var("L402_STORE_TEST_CHILD_FIRST")
        .unwrap()
        .parse()
        .unwrap();
    let ledger = Ledger::new(Arc::new(Store::open(PathBuf::from(path)).unwrap()));
    let api = origin("https://api.example.com");
    let mut granted = 0;
    for i in 0..20u8 {
        match ledger.reserve(&ask("shared", &api, &pair(first + i).1, BUDGET / 20, 0)) {
            Ok(_) => granted += 1,
            Err(BudgetError::OverBudget { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    println!("\ngranted={granted}");
}

#[test]
fn ledger_invariant_holds_across_processes() {
    let (_dir, path) = temp_db();
    Ledger::new(Arc::new(Store::open(&path).unwrap()))
        .open_session("shared", BUDGET)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4u8)
        .map(|c| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::child_process_reserves",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("L402_STORE_TEST_CHILD_DB", &path)
                .env("L402_STORE_TEST_CHILD_FIRST", (c * 20).to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut granted = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("granted=").map(|(_, n)| n))
            .unwrap_or_else(|| panic!("child ran no reservations:\n{stdout}"));
        granted += line.trim().parse::<u32>().unwrap();
    }
    assert_eq!(granted, 20);
    let ledger = Ledger::new(Arc::new(Store::open(&path).unwrap()));
    let s = ledger.summary("shared").unwrap();
    assert_eq!(
        (s.reserved_msat, s.left_msat, s.unresolved),
        (BUDGET, 0, 20)
    );
}

/// Switching a fresh file to WAL is a step SQLite does not retry on its own.
#[test]
fn many_connections_opening_a_fresh_file_at_once_all_succeed() {
    for _ in 0..20 {
        let (_dir, path) = temp_db();
        let barrier = Arc::new(Barrier::new(32));
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|s| s.schema_version().unwrap())
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), SCHEMA_VERSION);
        }
    }
}

#[test]
fn a_version_1_store_is_migrated_keeping_its_tokens() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let origin: Origin = "http://a.example:80".parse().unwrap();
    let preimage = Preimage([9; 32]);
    let hash = preimage.payment_hash();
    store
        .insert_pending(&NewToken {
            origin: &origin,
            payment_hash: &hash,
            macaroon: "AgEEbHNhdA==",
            invoice: "lnbcrt1",
            amount_msat: 1000,
            session: "s",
            scheme: TokenScheme::L402,
            bound_path: None,
            expires_at: None,
        })
        .unwrap();
    store.mark_paid(&hash, &preimage, 0).unwrap();
    drop(store);
    // Roll the file back to version 1, as an older release left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE pauses; DROP TABLE origin_schemes; ALTER TABLE payments DROP COLUMN scheme; \
         ALTER TABLE tokens DROP COLUMN scheme; ALTER TABLE tokens DROP COLUMN bound_path; \
         ALTER TABLE tokens DROP COLUMN expires_at; ALTER TABLE tokens DROP COLUMN receipt; \
         DROP TABLE token_paths; DROP INDEX sessions_by_pool; \
         ALTER TABLE sessions DROP COLUMN pool; ALTER TABLE tokens DROP COLUMN held_until; \
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let usable = store.usable_tokens(&origin).unwrap();
    assert_eq!(usable.len(), 1);
    assert!(usable[0].1.is_empty());
    store.record_path(&hash, "/v1/x", true).unwrap();
    store.record_path(&hash, "/v1/y", false).unwrap();
    store.record_path(&hash, "/v1/y", true).unwrap();
    let usable = store.usable_tokens(&origin).unwrap();
    assert_eq!(
        usable[0].1,
        vec![("/v1/x".to_string(), true), ("/v1/y".to_string(), true)]
    );
}

// ---------------------------------------------------------------------------
// The kill switch

#[test]
fn a_pause_refuses_every_reservation_until_resumed() {
    let (store, clock) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    ledger.open_session("s1", 10_000_000).unwrap();
    let o = origin("https://api.example.com");
    let (_, h1) = pair(1);
    let (_, h2) = pair(2);
    assert_eq!(ledger.paused().unwrap(), None);

    let pause = ledger
        .pause(Some("  runaway agent  "), "l402-mcp pause (test)")
        .unwrap();
    assert_eq!(pause.reason.as_deref(), Some("runaway agent"));
    assert_eq!(pause.since, T0);
    match ledger.reserve(&ask("s1", &o, &h1, 1_000, 10)) {
        Err(BudgetError::Paused(p)) => assert_eq!(p, pause),
        other => panic!("expected Paused, got {other:?}"),
    }
    let msg = ledger
        .reserve(&ask("s1", &o, &h1, 1_000, 10))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("runaway agent") && msg.contains("l402-mcp pause (test)"),
        "{msg}"
    );
    // Nothing was held by the refusals.
    assert_eq!(ledger.summary("s1").unwrap().reserved_msat, 0);

    // Pausing again keeps the first pause, its reason and its author.
    clock.advance(10);
    assert_eq!(ledger.pause(Some("other"), "someone else").unwrap(), pause);

    clock.advance(5);
    assert_eq!(
        ledger.resume("l402-mcp resume (test)").unwrap(),
        Some(pause)
    );
    assert_eq!(ledger.paused().unwrap(), None);
    assert_eq!(ledger.resume("again").unwrap(), None);
    let r = ledger.reserve(&ask("s1", &o, &h2, 1_000, 10)).unwrap();
    ledger.mark_in_flight(&r).unwrap();

    let history = ledger.pause_history(10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].paused_at, T0);
    assert_eq!(history[0].resumed_at, Some(T0 + 15));
    assert_eq!(
        history[0].resumed_by.as_deref(),
        Some("l402-mcp resume (test)")
    );
}

#[test]
fn a_pause_between_reserve_and_send_gives_the_reservation_back_unsent() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    ledger.open_session("s1", 10_000_000).unwrap();
    let o = origin("https://api.example.com");
    let (_, h1) = pair(1);
    let (_, h2) = pair(2);
    // One payment sent before the pause, one only reserved.
    let sent = ledger.reserve(&ask("s1", &o, &h1, 1_000, 10)).unwrap();
    ledger.mark_in_flight(&sent).unwrap();
    let held = ledger.reserve(&ask("s1", &o, &h2, 2_000, 10)).unwrap();

    ledger.pause(None, "test").unwrap();
    assert!(matches!(
        ledger.mark_in_flight(&held),
        Err(BudgetError::Paused(_))
    ));
    // The one only reserved is released, for good: resuming does not send it.
    let rows = ledger.store().list_payments(Some("s1")).unwrap();
    let by_hash = |h: &PaymentHash| rows.iter().find(|p| p.payment_hash == *h).unwrap();
    assert_eq!(by_hash(&h2).state, PaymentState::Released);
    assert!(by_hash(&h2).error.as_deref().unwrap().contains("paused"));
    ledger.resume("test").unwrap();
    assert!(matches!(
        ledger.mark_in_flight(&held),
        Err(BudgetError::Settled { .. })
    ));
    // The one in flight completes and is recorded, pause or not.
    ledger.pause(None, "test").unwrap();
    ledger.mark_in_flight(&sent).unwrap();
    ledger.commit(&sent, 1_000, 1).unwrap();
    let s = ledger.summary("s1").unwrap();
    assert_eq!((s.spent_msat, s.reserved_msat, s.payments), (1_001, 0, 1));
}

#[test]
fn a_pause_reason_that_cannot_be_shown_is_refused_with_a_sentence() {
    let (store, _) = manual_store();
    let ledger = Ledger::new(Arc::new(store));
    let long = "x".repeat(501);
    for (reason, says) in [
        (long.as_str(), "longer than 500"),
        ("line one\nline two", "control characters"),
    ] {
        let e = ledger.pause(Some(reason), "test").unwrap_err();
        assert!(matches!(e, BudgetError::BadPauseText { .. }), "{e:?}");
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(ledger.pause(None, "  ").is_err());
    assert_eq!(ledger.paused().unwrap(), None);
    // An empty reason is no reason.
    assert_eq!(ledger.pause(Some(" "), "test").unwrap().reason, None);
}

#[test]
fn one_pause_stands_at_a_time_even_written_by_hand() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let ledger = Ledger::new(Arc::new(store));
    ledger.pause(None, "a").unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let second = conn.execute(
        "INSERT INTO pauses (paused_at, paused_by) VALUES (1, 'b')",
        [],
    );
    assert!(second.is_err(), "a second standing pause was stored");
}
