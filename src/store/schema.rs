//! The schema, as a list of migrations. `PRAGMA user_version` holds how many
//! have been applied; a store opens by applying the rest in one `BEGIN
//! IMMEDIATE` transaction, so two processes opening a fresh file at once
//! cannot both migrate it. Migrations are append-only: never edit one that
//! has shipped, add the next.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema migrations, oldest first; entry `i` takes the store from
/// version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: sessions, tokens, payments.
    r#"
    CREATE TABLE sessions (
        name         TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
        budget_msat  INTEGER NOT NULL CHECK (budget_msat >= 0),
        created_at   INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE tokens (
        id           INTEGER PRIMARY KEY,
        origin       TEXT NOT NULL,
        payment_hash TEXT NOT NULL UNIQUE CHECK (length(payment_hash) = 64),
        macaroon     TEXT NOT NULL CHECK (macaroon <> ''),
        invoice      TEXT NOT NULL,
        preimage     TEXT CHECK (preimage IS NULL OR length(preimage) = 64),
        amount_msat  INTEGER NOT NULL CHECK (amount_msat >= 0),
        fee_msat     INTEGER NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
        status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'stale', 'failed')),
        session      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        paid_at      INTEGER,
        last_used_at INTEGER,
        -- a paid or stale token has its preimage; a pending or failed one has none
        CHECK ((status IN ('paid', 'stale')) = (preimage IS NOT NULL))
    ) STRICT;
    CREATE INDEX tokens_by_origin ON tokens (origin, status);

    CREATE TABLE payments (
        id             INTEGER PRIMARY KEY,
        session        TEXT NOT NULL REFERENCES sessions (name),
        origin         TEXT NOT NULL,
        url            TEXT NOT NULL,
        payment_hash   TEXT NOT NULL CHECK (length(payment_hash) = 64),
        amount_msat    INTEGER NOT NULL CHECK (amount_msat >= 0),
        fee_msat       INTEGER NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
        fee_limit_msat INTEGER NOT NULL CHECK (fee_limit_msat >= 0),
        status         TEXT NOT NULL
                       CHECK (status IN ('reserved', 'in_flight', 'succeeded', 'failed', 'released')),
        error          TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX payments_by_session ON payments (session, status);
    CREATE INDEX payments_by_hash ON payments (payment_hash);
    CREATE INDEX payments_by_status ON payments (status, updated_at);
    "#,
    // 2: where each token was presented and whether it was accepted there,
    // so that several tokens of one origin (one per service) are each
    // presented where they work, and a token refused where it used to work
    // is known to be stale.
    r#"
    CREATE TABLE token_paths (
        token_id INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
        path     TEXT NOT NULL,
        accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)),
        seen_at  INTEGER NOT NULL,
        PRIMARY KEY (token_id, path)
    ) STRICT;
    "#,
    // 3: the budget pool a session draws on besides its own budget (every
    // MCP session of one server process shares one), so that opening more
    // sessions does not open more money.
    r#"
    ALTER TABLE sessions ADD COLUMN pool TEXT CHECK (pool IS NULL OR pool <> '');
    CREATE INDEX sessions_by_pool ON sessions (pool);
    -- A token just bought is its buyer's until this time (unix seconds), or
    -- until the buyer has presented it: no other session or process takes
    -- a single-use token from under the request that paid for it.
    ALTER TABLE tokens ADD COLUMN held_until INTEGER;
    "#,
    // 4: the `Payment` HTTP scheme beside L402. A Payment credential pays
    // for one request: it is kept like a token (pending before paying,
    // paid after), but presented only at the path it was bought for,
    // before its challenge expires, and once (then `stale`). For such a
    // row `macaroon` holds the challenge as JSON (what the credential
    // echoes), and `receipt` the server's Payment-Receipt. And per origin
    // the scheme a server refused after it was paid, so that the client
    // pays the other one there from then on.
    r#"
    ALTER TABLE tokens ADD COLUMN scheme TEXT NOT NULL DEFAULT 'l402'
        CHECK (scheme IN ('l402', 'payment'));
    ALTER TABLE tokens ADD COLUMN bound_path TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
    ALTER TABLE tokens ADD COLUMN receipt TEXT;
    ALTER TABLE payments ADD COLUMN scheme TEXT NOT NULL DEFAULT 'l402'
        CHECK (scheme IN ('l402', 'payment'));
    CREATE TABLE origin_schemes (
        origin     TEXT PRIMARY KEY NOT NULL,
        refused    TEXT NOT NULL CHECK (refused IN ('l402', 'payment')),
        paid_hash  TEXT NOT NULL CHECK (length(paid_hash) = 64),
        at         INTEGER NOT NULL
    ) STRICT;
    "#,
    // 5: the kill switch. A standing pause (a row not resumed yet) stops
    // every payment of every process sharing the store: the ledger reads
    // it inside the transaction that reserves, and again in the one that
    // marks a payment as sent. At most one pause stands at a time; the
    // rows are kept, as the history of who paused and resumed, when, why.
    // A binary older than this schema refuses the store (newer schema)
    // instead of paying past a pause it cannot see.
    r#"
    CREATE TABLE pauses (
        id         INTEGER PRIMARY KEY,
        paused_at  INTEGER NOT NULL,
        paused_by  TEXT NOT NULL CHECK (paused_by <> ''),
        reason     TEXT CHECK (reason IS NULL OR reason <> ''),
        resumed_at INTEGER,
        resumed_by TEXT CHECK (resumed_by IS NULL OR resumed_by <> ''),
        CHECK ((resumed_at IS NULL) = (resumed_by IS NULL))
    ) STRICT;
    CREATE UNIQUE INDEX pauses_one_standing ON pauses ((resumed_at IS NULL))
        WHERE resumed_at IS NULL;
    "#,
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn refuse_newer(path: &str, found: i64) -> Result<(), StoreError> {
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::NewerSchema {
            path: path.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the store at `path` (already open as `conn`) to
/// [`SCHEMA_VERSION`], or refuses one from a newer program untouched.
pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_string(),
        source,
    };
    // The common case, up to date, takes no write lock.
    let found = user_version(conn).map_err(open_err)?;
    refuse_newer(path, found)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    // Look again under the write lock: another process may have migrated
    // meanwhile.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let found = user_version(&tx).map_err(open_err)?;
    refuse_newer(path, found)?;
    for (version, sql) in (found + 1..).zip(MIGRATIONS.iter().skip(found as usize)) {
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .map_err(|source| StoreError::Migrate {
                path: path.to_string(),
                version,
                source,
            })?;
    }
    tx.commit().map_err(open_err)
}
