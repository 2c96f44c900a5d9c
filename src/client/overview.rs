//! What the dashboard shows, read from the store the clients write: every
//! session and server pool, spend over time per origin, the payment log
//! filtered, the tokens counted by origin and status, and a cheap way to
//! hear that the store changed. Read-only: nothing here writes (the pause
//! switch is the client's own, [`L402Client::pause`]).
//!
//! No secret leaves this module: payments carry none, and tokens are read
//! as [`TokenInfo`], which holds neither macaroon nor preimage.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{OpenFlags, types::Value};

use super::task::blocking;
use super::{FetchError, L402Client};
use crate::budget::{BudgetPool, Ledger, PoolSummary, SessionSummary, SpendTotals};
use crate::store::{
    PAYMENT_COLUMNS, PaymentRecord, PaymentState, Store, StoreError, TokenInfo, TokenScheme,
    TokenStatus, query_payments, time_to_sql,
};

/// The most payments one [`Overview::payments`] call returns.
pub const MAX_PAYMENTS_LISTED: usize = 1000;

/// The width of the spend chart's bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// One bar per hour, the last 24 hours (UTC hours).
    Hour,
    /// One bar per day, the last 30 days (UTC days).
    Day,
}

impl Bucket {
    /// Seconds per bar.
    pub fn secs(self) -> u64 {
        match self {
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    /// Bars in the series.
    pub fn count(self) -> u64 {
        match self {
            Bucket::Hour => 24,
            Bucket::Day => 30,
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Bucket {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Self, FetchError> {
        match s {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            other => Err(FetchError::BadRequest(format!(
                "{other:?} is not a bucket; use hour or day"
            ))),
        }
    }
}

/// One bar of the spend chart: what succeeded payments made in it cost,
/// per origin (amounts plus fees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendBucket {
    /// Its start, Unix seconds (a UTC hour or day).
    pub start: u64,
    /// Amounts plus fees, all origins.
    pub total_msat: u64,
    /// Payments in it.
    pub payments: u64,
    /// Per origin, in the order of [`SpendSeries::origins`]; origins with
    /// nothing in this bar are left out.
    pub by_origin: Vec<(String, u64)>,
}

/// Spend over time: the last 24 hours by hour, or the last 30 days by day,
/// oldest bar first, per origin. A payment counts in the bar of the time it
/// was made (`created_at`), once it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendSeries {
    /// The bars' width.
    pub bucket: Bucket,
    /// The first bar's start.
    pub start: u64,
    /// Where the last bar ends.
    pub end: u64,
    /// Every bar, empty ones included.
    pub buckets: Vec<SpendBucket>,
    /// The origins paid in the series, most spent first.
    pub origins: Vec<String>,
    /// Everything in the series.
    pub total_msat: u64,
}

/// A session, where it stands, and the server pool it draws on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOverview {
    /// Budget, spent, reserved, left.
    pub summary: SessionSummary,
    /// The server pool it shares, if any.
    pub pool: Option<String>,
}

/// Which payments to list: all filters together, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    /// Only this session's.
    pub session: Option<String>,
    /// Only this origin's (normalized text, as stored).
    pub origin: Option<String>,
    /// Only payments in this state.
    pub status: Option<PaymentState>,
    /// At most this many (capped at [`MAX_PAYMENTS_LISTED`]; 0 means the cap).
    pub limit: usize,
}

/// How many tokens one origin has in one status and scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCount {
    /// The origin.
    pub origin: String,
    /// The status.
    pub status: TokenStatus,
    /// The scheme.
    pub scheme: TokenScheme,
    /// Tokens.
    pub tokens: u64,
    /// What they cost, amounts plus fees.
    pub spent_msat: u64,
}

/// The store's read side for the dashboard. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Overview {
    store: Arc<Store>,
    ledger: Ledger,
}

impl L402Client {
    /// The dashboard's read side of this client's store.
    pub fn overview(&self) -> Overview {
        Overview::new(self.store.clone())
    }
}

impl Overview {
    /// The read side of `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let ledger = Ledger::new(store.clone());
        Overview { store, ledger }
    }

    /// The store's idea of now, Unix seconds.
    pub fn now(&self) -> u64 {
        self.store.now()
    }

    /// Where the store lives, for messages.
    pub fn location(&self) -> &str {
        self.store.location()
    }

    /// Every session, by name, with the pool it draws on.
    pub async fn sessions(&self) -> Result<Vec<SessionOverview>, FetchError> {
        let (ledger, store) = (self.ledger.clone(), self.store.clone());
        blocking(move || {
            let pools: BTreeMap<String, Option<String>> = store.read(|conn| {
                conn.prepare("SELECT name, pool FROM sessions")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(StoreError::from)
            })?;
            let sessions = ledger.sessions()?;
            Ok::<_, FetchError>(
                sessions
                    .into_iter()
                    .map(|summary| SessionOverview {
                        pool: pools.get(&summary.session).cloned().flatten(),
                        summary,
                    })
                    .collect(),
            )
        })
        .await?
    }

    /// Every server pool named in the store, with `budget_msat` as its
    /// budget. The store does not keep a pool's budget (each `serve`
    /// process sets its own, from the same settings): the face passes the
    /// one its settings resolve.
    pub async fn pools(&self, budget_msat: u64) -> Result<Vec<PoolSummary>, FetchError> {
        let store = self.store.clone();
        blocking(move || {
            let names: Vec<String> = store.read(|conn| {
                conn.prepare(
                    "SELECT DISTINCT pool FROM sessions WHERE pool IS NOT NULL ORDER BY pool",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
                .map_err(StoreError::from)
            })?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let ledger =
                    Ledger::new(store.clone()).with_pool(Some(BudgetPool { name, budget_msat }));
                out.extend(ledger.pool_summary()?);
            }
            Ok::<_, FetchError>(out)
        })
        .await?
    }

    /// Everything spent, all sessions, all time, and per origin.
    pub async fn all_time(&self) -> Result<SpendTotals, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.all_time()).await??)
    }

    /// What the rolling 24-hour cap counts now, all sessions.
    pub async fn last_day_msat(&self) -> Result<u64, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.last_day_msat()).await??)
    }

    /// The payments `filter` selects, newest first.
    pub async fn payments(&self, filter: PaymentFilter) -> Result<Vec<PaymentRecord>, FetchError> {
        let store = self.store.clone();
        blocking(move || {
            let mut clauses = Vec::new();
            let mut params: Vec<Value> = Vec::new();
            if let Some(s) = filter.session {
                params.push(Value::Text(s));
                clauses.push(format!("session = ?{}", params.len()));
            }
            if let Some(o) = filter.origin {
                params.push(Value::Text(o));
                clauses.push(format!("origin = ?{}", params.len()));
            }
            if let Some(s) = filter.status {
                params.push(Value::Text(s.as_str().to_string()));
                clauses.push(format!("status = ?{}", params.len()));
            }
            let limit = match filter.limit {
                0 => MAX_PAYMENTS_LISTED,
                n => n.min(MAX_PAYMENTS_LISTED),
            };
            let filter = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let sql = format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments {filter} ORDER BY id DESC LIMIT {limit}"
            );
            store.read(|conn| query_payments(conn, &sql, rusqlite::params_from_iter(params)))
        })
        .await?
        .map_err(FetchError::from)
    }

    /// Spend over time per origin, bucketed by hour (the last 24 hours) or
    /// by day (the last 30 days), the last bar holding now.
    pub async fn spend(&self, bucket: Bucket) -> Result<SpendSeries, FetchError> {
        let store = self.store.clone();
        let now = self.store.now();
        let width = bucket.secs();
        let end = (now / width + 1) * width;
        let start = end.saturating_sub(width * bucket.count());
        let rows: Vec<(u64, String, u64, u64)> = blocking(move || {
            store.read(|conn| {
                conn.prepare(
                    "SELECT (created_at - ?1) / ?2, origin, SUM(amount_msat + fee_msat), COUNT(*)
                     FROM payments
                     WHERE status = 'succeeded' AND created_at >= ?1 AND created_at < ?3
                     GROUP BY 1, 2",
                )?
                .query_map(
                    rusqlite::params![time_to_sql(start), time_to_sql(width), time_to_sql(end)],
                    |r| {
                        Ok((
                            unsigned(r.get(0)?),
                            r.get(1)?,
                            unsigned(r.get(2)?),
                            unsigned(r.get(3)?),
                        ))
                    },
                )?
                .collect::<rusqlite::Result<_>>()
                .map_err(StoreError::from)
            })
        })
        .await??;

        // The origins, most spent first (then by name), and each bar.
        let mut per_origin: BTreeMap<String, u64> = BTreeMap::new();
        for (_, origin, msat, _) in &rows {
            *per_origin.entry(origin.clone()).or_default() += msat;
        }
        let mut origins: Vec<(String, u64)> = per_origin.into_iter().collect();
        origins.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let origins: Vec<String> = origins.into_iter().map(|(o, _)| o).collect();
        let mut buckets: Vec<SpendBucket> = (0..bucket.count())
            .map(|i| SpendBucket {
                start: start + i * width,
                total_msat: 0,
                payments: 0,
                by_origin: Vec::new(),
            })
            .collect();
        for (index, origin, msat, payments) in rows {
            let Some(b) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) else {
                continue;
            };
            b.total_msat += msat;
            b.payments += payments;
            b.by_origin.push((origin, msat));
        }
        let rank = |o: &str| origins.iter().position(|x| x == o).unwrap_or(usize::MAX);
        for b in &mut buckets {
            b.by_origin.sort_by_key(|(o, _)| rank(o));
        }
        let total_msat = buckets.iter().map(|b| b.total_msat).sum();
        Ok(SpendSeries {
            bucket,
            start,
            end,
            buckets,
            origins,
            total_msat,
        })
    }

    /// Every token, without its secrets, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, FetchError> {
        let store = self.store.clone();
        let mut tokens = blocking(move || store.list_tokens()).await??;
        tokens.reverse();
        Ok(tokens)
    }

    /// The tokens counted by origin, status and scheme, by origin.
    pub async fn token_counts(&self) -> Result<Vec<TokenCount>, FetchError> {
        let tokens = self.tokens().await?;
        let mut counts: BTreeMap<(String, &'static str, &'static str), TokenCount> =
            BTreeMap::new();
        for t in tokens {
            let key = (
                t.origin.as_str().to_string(),
                t.status.as_str(),
                t.scheme.as_str(),
            );
            let c = counts.entry(key).or_insert_with(|| TokenCount {
                origin: t.origin.as_str().to_string(),
                status: t.status,
                scheme: t.scheme,
                tokens: 0,
                spent_msat: 0,
            });
            c.tokens += 1;
            if matches!(t.status, TokenStatus::Paid | TokenStatus::Stale) {
                c.spent_msat += t.amount_msat.saturating_add(t.fee_msat);
            }
        }
        Ok(counts.into_values().collect())
    }

    /// A watcher that tells when the store changed, written by this
    /// process or any other.
    pub fn watch(&self) -> Result<ChangeWatch, FetchError> {
        ChangeWatch::open(self.store.clone())
    }
}

/// Tells that the store changed, cheaply: SQLite's `PRAGMA data_version`
/// on a connection of its own, which moves whenever another connection
/// (this process's store, or another process) commits. An in-memory store
/// has no second connection: its own change counter stands in.
pub struct ChangeWatch {
    store: Arc<Store>,
    conn: Option<rusqlite::Connection>,
}

impl std::fmt::Debug for ChangeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeWatch")
            .field("store", &self.store.location())
            .finish_non_exhaustive()
    }
}

impl ChangeWatch {
    fn open(store: Arc<Store>) -> Result<Self, FetchError> {
        let conn = if store.location() == ":memory:" {
            None
        } else {
            let conn = rusqlite::Connection::open_with_flags(
                store.location(),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(StoreError::from)?;
            conn.busy_timeout(crate::store::DEFAULT_BUSY_TIMEOUT)
                .map_err(StoreError::from)?;
            Some(conn)
        };
        Ok(ChangeWatch { store, conn })
    }

    /// A number that differs from the last one read when the store was
    /// written since. Blocking (a few microseconds): call it off the async
    /// workers.
    pub fn version(&self) -> Result<u64, FetchError> {
        let v: i64 = match &self.conn {
            Some(conn) => conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .map_err(StoreError::from)?,
            None => self.store.read(|conn| {
                conn.query_row("SELECT total_changes()", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })?,
        };
        Ok(unsigned(v))
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
