//! The spent-set of single-use tokens.
//!
//! Verification is stateless except here: a single-use token is good for
//! one answered request, so the gateway remembers which ones were used.
//! The gateway *claims* a token before it serves or forwards the request
//! (atomically: of two presentations at once, one wins), *keeps* the claim
//! once an answer exists, and *releases* it when the request never reached
//! one (the upstream could not be reached or did not answer in time), so
//! the holder can try again.
//!
//! The trait has the shape of a shared store's primitives (Redis `SET NX`
//! with an expiry, `DEL`). Three backends: [`SqliteSpentSet`], a small
//! file in the gateway's data directory that survives restarts (what
//! `l402-mcp gateway` uses by default); [`RedisSpentSet`](super::RedisSpentSet),
//! one Redis shared by replicas (`--spent-set redis://…`); and
//! [`MemorySpentSet`] for tests and embedders that accept losing the set on
//! restart. [`SpentSetBackend`] names the first two, as the gateway's
//! `--spent-set` and `spent_set` setting spell them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use super::spent_redis::{RedisSpentSet, RedisUrl};
use crate::lightning::PaymentHash;

/// Name of the spent-set file in the gateway's data directory.
pub const SPENT_SET_FILE: &str = "gateway-spent.sqlite";

/// The spent-set could not answer: the gateway then refuses the request
/// (fail closed) rather than risk serving a token twice.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the spent-set {store} failed: {message}")]
pub struct SpentSetError {
    /// Which store (a file path, a URL).
    pub store: String,
    /// What went wrong.
    pub message: String,
}

/// A spent-set setting that names no spent-set: the sentence says why (it
/// never shows a password the value held).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpentSetParseError(pub(crate) String);

/// Which spent-set the gateway keeps single-use tokens in: `local` (the
/// default: [`SqliteSpentSet`] in the data directory, for one gateway or
/// replicas sharing that directory on one machine) or a Redis URL
/// (`redis://host[:port][/db]`: [`RedisSpentSet`], shared by replicas on
/// any machine). `Display` shows the URL without its password.
#[derive(Debug, Clone, Default)]
pub enum SpentSetBackend {
    /// `<data_dir>/gateway-spent.sqlite`.
    #[default]
    Local,
    /// One Redis for every replica.
    Redis(RedisUrl),
}

impl FromStr for SpentSetBackend {
    type Err = SpentSetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "local" => Ok(SpentSetBackend::Local),
            other => other.parse().map(SpentSetBackend::Redis),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SpentSetBackend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SpentSetBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpentSetBackend::Local => f.write_str("local"),
            SpentSetBackend::Redis(url) => url.fmt(f),
        }
    }
}

impl SpentSetBackend {
    /// Opens the spent-set: the file in `data_dir`, or a connection to
    /// Redis (checked with `PING`; unreachable is an error, so that a typo
    /// in the URL is found at start, not on the first single-use request).
    pub async fn open(&self, data_dir: &Path) -> Result<Arc<dyn SpentSet>, SpentSetError> {
        Ok(match self {
            SpentSetBackend::Local => Arc::new(SqliteSpentSet::open_in(data_dir)?),
            SpentSetBackend::Redis(url) => Arc::new(RedisSpentSet::connect(url).await?),
        })
    }
}

/// Remembers claimed single-use tokens, by payment hash.
#[async_trait::async_trait]
pub trait SpentSet: Send + Sync + std::fmt::Debug {
    /// Claims the token for one request. `Ok(true)`: it was free and is now
    /// claimed (the request may go on); `Ok(false)`: it is claimed already
    /// (refuse). Atomic: of two concurrent calls for one token, at most one
    /// gets `Ok(true)`. A claim is final unless [`release`](Self::release)d,
    /// and durable before `Ok(true)` returns. `forget_after` (unix seconds)
    /// is when the token expires anyway, so the entry may be dropped then.
    async fn claim(&self, token: &PaymentHash, forget_after: u64) -> Result<bool, SpentSetError>;

    /// Gives back a claim whose request never reached an answer.
    async fn release(&self, token: &PaymentHash) -> Result<(), SpentSetError>;

    /// Drops entries whose token has expired by `now`.
    async fn prune(&self, now: u64) -> Result<(), SpentSetError>;
}

/// A spent-set in memory: lost on restart (while the tokens' `valid_until`
/// has not passed, a restart lets each be used once more); for tests and
/// embedders. The gateway command uses [`SqliteSpentSet`].
#[derive(Debug, Default)]
pub struct MemorySpentSet {
    spent: Mutex<HashMap<PaymentHash, u64>>,
}

impl MemorySpentSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PaymentHash, u64>> {
        self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl SpentSet for MemorySpentSet {
    async fn claim(&self, token: &PaymentHash, forget_after: u64) -> Result<bool, SpentSetError> {
        Ok(self.lock().insert(*token, forget_after).is_none())
    }

    async fn release(&self, token: &PaymentHash) -> Result<(), SpentSetError> {
        self.lock().remove(token);
        Ok(())
    }

    async fn prune(&self, now: u64) -> Result<(), SpentSetError> {
        self.lock().retain(|_, until| *until > now);
        Ok(())
    }
}

/// A spent-set in a SQLite file (WAL, `synchronous = FULL`: a claim is on
/// disk, fsynced, before it is reported), so single-use holds across
/// restarts. Several processes may share the file: SQLite's locking makes
/// a claim atomic across them too.
#[derive(Debug, Clone)]
pub struct SqliteSpentSet {
    path: PathBuf,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteSpentSet {
    /// Opens (or creates) the spent-set file at `path`.
    pub fn open(path: &Path) -> Result<Self, SpentSetError> {
        let fail = |e: rusqlite::Error| SpentSetError {
            store: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = rusqlite::Connection::open(path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spent (
                 payment_hash BLOB PRIMARY KEY,
                 forget_after INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS spent_forget_after ON spent (forget_after);",
        )
        .map_err(fail)?;
        Ok(SqliteSpentSet {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens `<data_dir>/gateway-spent.sqlite`.
    pub fn open_in(data_dir: &Path) -> Result<Self, SpentSetError> {
        // The data dir is made here too: with the root key given as a file
        // or in the environment, nothing else has made it yet.
        std::fs::create_dir_all(data_dir).map_err(|e| SpentSetError {
            store: data_dir.join(SPENT_SET_FILE).display().to_string(),
            message: format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ),
        })?;
        Self::open(&data_dir.join(SPENT_SET_FILE))
    }

    /// Runs `f` on the connection off the async workers (a commit waits
    /// for fsync).
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, SpentSetError> {
        let conn = self.conn.clone();
        let store = self.path.display().to_string();
        let joined = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SpentSetError {
                store,
                message: e.to_string(),
            }),
            Err(e) => Err(SpentSetError {
                store,
                message: format!("the database task failed: {e}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl SpentSet for SqliteSpentSet {
    async fn claim(&self, token: &PaymentHash, forget_after: u64) -> Result<bool, SpentSetError> {
        let hash = token.0;
        let until = i64::try_from(forget_after).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO spent (payment_hash, forget_after) VALUES (?1, ?2)
                 ON CONFLICT (payment_hash) DO NOTHING",
                rusqlite::params![&hash[..], until],
            )
            .map(|inserted| inserted == 1)
        })
        .await
    }

    async fn release(&self, token: &PaymentHash) -> Result<(), SpentSetError> {
        let hash = token.0;
        self.with_conn(move |c| {
            c.execute(
                "DELETE FROM spent WHERE payment_hash = ?1",
                rusqlite::params![&hash[..]],
            )
            .map(drop)
        })
        .await
    }

    async fn prune(&self, now: u64) -> Result<(), SpentSetError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        self.with_conn(move |c| {
            c.execute(
                "DELETE FROM spent WHERE forget_after <= ?1",
                rusqlite::params![now],
            )
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spent_once(set: &dyn SpentSet) {
        let h = PaymentHash([7; 32]);
        assert!(set.claim(&h, 100).await.unwrap());
        assert!(!set.claim(&h, 100).await.unwrap());
        set.release(&h).await.unwrap();
        assert!(
            set.claim(&h, 100).await.unwrap(),
            "a released claim is free"
        );
        assert!(!set.claim(&h, 100).await.unwrap());
    }

    async fn prune_forgets_only_expired(set: &dyn SpentSet) {
        set.claim(&PaymentHash([1; 32]), 10).await.unwrap();
        set.claim(&PaymentHash([2; 32]), 30).await.unwrap();
        set.prune(20).await.unwrap();
        assert!(set.claim(&PaymentHash([1; 32]), 10).await.unwrap());
        assert!(!set.claim(&PaymentHash([2; 32]), 30).await.unwrap());
    }

    #[tokio::test]
    async fn a_token_is_claimed_once_until_released() {
        spent_once(&MemorySpentSet::default()).await;
        let dir = tempfile::tempdir().unwrap();
        spent_once(&SqliteSpentSet::open_in(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn prune_forgets_only_expired_tokens() {
        prune_forgets_only_expired(&MemorySpentSet::default()).await;
        let dir = tempfile::tempdir().unwrap();
        prune_forgets_only_expired(&SqliteSpentSet::open_in(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn the_file_spent_set_makes_its_data_dir() {
        // With --root-key-file nothing else creates the data dir first.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("not").join("yet");
        let set = SqliteSpentSet::open_in(&data).unwrap();
        spent_once(&set).await;
        assert!(data.join(SPENT_SET_FILE).exists());
    }

    #[tokio::test]
    async fn the_file_spent_set_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentHash([3; 32]);
        {
            let set = SqliteSpentSet::open_in(dir.path()).unwrap();
            assert!(set.claim(&h, u64::MAX).await.unwrap());
        }
        let set = SqliteSpentSet::open_in(dir.path()).unwrap();
        assert!(!set.claim(&h, u64::MAX).await.unwrap());
    }
}
