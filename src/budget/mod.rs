//! The spend ledger: per-session budgets and an optional rolling 24-hour cap,
//! kept in the [`Store`]'s payments table.
//!
//! A payment goes `reserve -> mark_in_flight -> commit | fail | release`:
//!
//! 1. [`Ledger::reserve`] holds `amount + fee limit` against the session's
//!    budget (and the 24-hour cap), or refuses with a [`BudgetError`] one
//!    can match. The check and the hold are one `BEGIN IMMEDIATE`
//!    transaction, so the invariant `spent + reserved <= budget` holds for
//!    any number of threads and processes sharing the store file.
//! 2. [`Ledger::mark_in_flight`] just before the payment is sent: from then
//!    on only the payment backend knows whether money moved.
//! 3. [`Ledger::commit`] records the real amount and fee (the rest of the fee
//!    limit goes back); [`Ledger::fail`] or [`Ledger::release`] give it all
//!    back.
//!
//! A reservation left by a crashed process keeps holding its budget until
//! someone resolves it: [`Ledger::unresolved`] lists them for the client's
//! recovery, which asks the payment backend and then commits, fails or
//! releases each. Nothing here drops one silently.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use l402_mcp::budget::{BudgetError, Ledger, ReserveRequest};
//! use l402_mcp::lightning::PaymentHash;
//! use l402_mcp::store::{Origin, Store};
//!
//! let ledger = Ledger::new(Arc::new(Store::open_in_memory()?));
//! ledger.open_session("agent", 10_000_000)?; // 10 000 sats
//!
//! let origin: Origin = "https://api.example.com".parse()?;
//! let hash = PaymentHash([7; 32]);
//! let ask = ReserveRequest {
//!     session: "agent",
//!     origin: &origin,
//!     url: "https://api.example.com/v1/quote",
//!     payment_hash: &hash,
//!     amount_msat: 1_000_000,
//!     fee_limit_msat: 10_000,
//!     scheme: Default::default(),
//! };
//! let reservation = ledger.reserve(&ask)?;
//! ledger.mark_in_flight(&reservation)?;
//! // ... pay ...
//! ledger.commit(&reservation, 1_000_000, 2_000)?;
//! assert_eq!(ledger.summary("agent")?.left_msat, 8_998_000);
//!
//! let too_much = ReserveRequest { amount_msat: 9_000_000, ..ask };
//! assert!(matches!(ledger.reserve(&too_much), Err(BudgetError::OverBudget { .. })));
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::lightning::{Msat, PaymentHash};
use crate::store::{
    Origin, PAYMENT_COLUMNS, PaymentRecord, PaymentState, Store, StoreError, TokenScheme,
    msat_to_sql, query_payments, time_to_sql,
};
use crate::text::utc_rfc3339 as utc;

/// The length of the rolling window of the daily cap.
pub const DAY_SECS: u64 = 24 * 60 * 60;

/// Why the ledger refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The session's budget cannot cover the payment and its fee limit.
    #[error(
        "paying {needed} (amount plus fee limit) would exceed session {session:?}'s budget: \
         {left} left of {budget}",
        needed = Msat(*needed_msat), left = Msat(*left_msat), budget = Msat(*budget_msat)
    )]
    OverBudget {
        /// The session.
        session: String,
        /// What the payment needs held: amount plus fee limit.
        needed_msat: u64,
        /// What the session has left: budget less spent and reserved.
        left_msat: u64,
        /// The session's budget.
        budget_msat: u64,
    },
    /// The rolling 24-hour cap across all sessions cannot cover it.
    #[error(
        "paying {needed} (amount plus fee limit) would exceed the 24-hour spending cap: \
         {left} left of {cap}",
        needed = Msat(*needed_msat), left = Msat(*left_msat), cap = Msat(*cap_msat)
    )]
    OverDailyCap {
        /// What the payment needs held: amount plus fee limit.
        needed_msat: u64,
        /// What is left of the cap in the last 24 hours.
        left_msat: u64,
        /// The cap.
        cap_msat: u64,
    },
    /// The pool the session shares with the other sessions of its server
    /// cannot cover the payment and its fee limit.
    #[error(
        "paying {needed} (amount plus fee limit) would exceed what all sessions of this server \
         may spend together: {left} left of {budget}",
        needed = Msat(*needed_msat), left = Msat(*left_msat), budget = Msat(*budget_msat)
    )]
    OverPool {
        /// The pool.
        pool: String,
        /// What the payment needs held: amount plus fee limit.
        needed_msat: u64,
        /// What the pool has left.
        left_msat: u64,
        /// The pool's budget.
        budget_msat: u64,
    },
    /// The session made as many payments in the last minute as allowed.
    #[error(
        "the session made {per_minute} payments in the last minute, the limit; retry in a minute"
    )]
    RateLimited {
        /// The limit.
        per_minute: u32,
    },
    /// The operator paused every payment (`l402-mcp pause`, or the
    /// dashboard's switch): nothing is reserved or sent until they resume.
    #[error("payments are paused: {0}")]
    Paused(Pause),
    /// No session of that name was opened in this store.
    #[error("no session named {0:?} in the spend ledger; open it with its budget first")]
    UnknownSession(String),
    /// No reservation has this id.
    #[error("no payment reservation #{0} in the spend ledger")]
    UnknownReservation(i64),
    /// The reservation was settled already in a way that forbids the change.
    #[error("payment reservation #{id} is already {state}; it cannot be {action}")]
    Settled {
        /// The reservation.
        id: i64,
        /// Its state.
        state: PaymentState,
        /// What was asked: "sent", "released", "failed" or "committed again with other amounts".
        action: &'static str,
    },
    /// A pause's reason or author cannot be kept as given.
    #[error("the pause's {what} {problem}; give a shorter sentence on one line")]
    BadPauseText {
        /// "reason" or "author".
        what: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BudgetError {
    fn from(e: rusqlite::Error) -> Self {
        BudgetError::Store(StoreError::Query(e))
    }
}

/// What [`Ledger::reserve`] is asked to hold.
#[derive(Clone, Copy, Debug)]
pub struct ReserveRequest<'a> {
    /// The session paying; opened with [`Ledger::open_session`].
    pub session: &'a str,
    /// The origin being paid.
    pub origin: &'a Origin,
    /// The URL whose 402 asked for the payment.
    pub url: &'a str,
    /// The invoice's payment hash.
    pub payment_hash: &'a PaymentHash,
    /// The invoice amount.
    pub amount_msat: u64,
    /// The most the routing fee may be.
    pub fee_limit_msat: u64,
    /// The scheme of the challenge being paid.
    pub scheme: TokenScheme,
}

/// A pause standing: every payment of every process sharing the store
/// stops before it is reserved or sent, until the operator resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    /// Why, in the operator's words, if they gave a reason.
    pub reason: Option<String>,
    /// Who paused: the command or page and where it ran.
    pub by: String,
    /// When, Unix seconds.
    pub since: u64,
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "paused since {} by {}", utc(self.since), self.by)?;
        match &self.reason {
            Some(r) => write!(f, " (reason: {r:?})"),
            None => write!(f, " (no reason given)"),
        }
    }
}

/// One pause in the history, lifted or standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseEvent {
    /// When it was paused, Unix seconds.
    pub paused_at: u64,
    /// Who paused.
    pub paused_by: String,
    /// Why, if they said.
    pub reason: Option<String>,
    /// When it was resumed; `None` while it stands.
    pub resumed_at: Option<u64>,
    /// Who resumed.
    pub resumed_by: Option<String>,
}

/// The longest reason or name a pause keeps, in characters.
pub const PAUSE_TEXT_MAX: usize = 500;

/// `text` trimmed, `None` if empty; refused if too long or with control
/// characters (it is shown to agents and on pages).
fn pause_text(what: &'static str, text: Option<&str>) -> Result<Option<String>, BudgetError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().count() > PAUSE_TEXT_MAX {
        return Err(BudgetError::BadPauseText {
            what,
            problem: format!("is longer than {PAUSE_TEXT_MAX} characters"),
        });
    }
    if t.chars().any(char::is_control) {
        return Err(BudgetError::BadPauseText {
            what,
            problem: "has control characters (a line break or tab, say)".into(),
        });
    }
    Ok(Some(t.to_string()))
}

/// The pause standing in the store, if any.
fn standing_pause(conn: &Connection) -> Result<Option<Pause>, BudgetError> {
    Ok(conn
        .query_row(
            "SELECT reason, paused_by, paused_at FROM pauses WHERE resumed_at IS NULL",
            [],
            |r| {
                Ok(Pause {
                    reason: r.get(0)?,
                    by: r.get(1)?,
                    since: unsigned(r.get(2)?),
                })
            },
        )
        .optional()?)
}

/// Budget held for one payment attempt, until committed, failed or released.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a reservation holds budget until it is committed, failed or released"]
pub struct Reservation {
    id: i64,
    held_msat: u64,
}

impl Reservation {
    /// The payment row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Amount plus fee limit, as held.
    pub fn held_msat(&self) -> u64 {
        self.held_msat
    }
}

impl From<&PaymentRecord> for Reservation {
    /// The reservation behind a payment row, for recovery to settle.
    fn from(p: &PaymentRecord) -> Self {
        Reservation {
            id: p.id,
            held_msat: p.amount_msat.saturating_add(p.fee_limit_msat),
        }
    }
}

/// Where a session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's name.
    pub session: String,
    /// Its budget.
    pub budget_msat: u64,
    /// Amounts plus fees of its succeeded payments.
    pub spent_msat: u64,
    /// Amounts plus fee limits of its unresolved payments.
    pub reserved_msat: u64,
    /// `budget - spent - reserved`, or 0.
    pub left_msat: u64,
    /// How many payments succeeded.
    pub payments: u64,
    /// How many payments are unresolved (reserved or in flight).
    pub unresolved: u64,
    /// When the session was first opened, Unix seconds.
    pub created_at: u64,
    /// When it was last opened or paid from.
    pub last_seen_at: u64,
}

/// What was spent on one origin, all sessions, all time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OriginSpend {
    /// The origin (normalized text).
    pub origin: String,
    /// Amounts plus fees.
    pub spent_msat: u64,
    /// Amounts.
    pub amount_msat: u64,
    /// Fees.
    pub fee_msat: u64,
    /// Succeeded payments.
    pub payments: u64,
}

/// Everything spent, all sessions, all time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpendTotals {
    /// Amounts plus fees.
    pub spent_msat: u64,
    /// Amounts.
    pub amount_msat: u64,
    /// Fees.
    pub fee_msat: u64,
    /// Succeeded payments.
    pub payments: u64,
    /// Per origin, most spent first.
    pub by_origin: Vec<OriginSpend>,
}

/// A budget shared by several sessions (all the MCP sessions of one server
/// process): each session has its own budget, and together they also stay
/// within the pool's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetPool {
    /// The pool's name, unique per server process.
    pub name: String,
    /// What the pool's sessions may spend together (amounts plus fees).
    pub budget_msat: u64,
}

/// Where a pool stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSummary {
    /// The pool's name.
    pub pool: String,
    /// Its budget.
    pub budget_msat: u64,
    /// Spent by its sessions (amounts plus fees).
    pub spent_msat: u64,
    /// Held by its sessions' unresolved payments.
    pub reserved_msat: u64,
    /// `budget - spent - reserved`, or 0.
    pub left_msat: u64,
    /// Sessions in the pool.
    pub sessions: u64,
}

/// The spend ledger over a [`Store`]. Cheap to clone; every method is one
/// short transaction.
#[derive(Clone, Debug)]
pub struct Ledger {
    store: Arc<Store>,
    daily_cap_msat: Option<u64>,
    per_minute: Option<u32>,
    pool: Option<BudgetPool>,
}

fn msat(what: &'static str, v: u64) -> Result<i64, BudgetError> {
    Ok(msat_to_sql(what, v)?)
}

fn unsigned(v: i64) -> u64 {
    // Sums of CHECK (>= 0) columns; never negative.
    u64::try_from(v).unwrap_or(0)
}

const SESSION_SUMMARY_SQL: &str = "
    SELECT s.budget_msat, s.created_at, s.last_seen_at,
           COALESCE(SUM(CASE WHEN p.status = 'succeeded' THEN p.amount_msat + p.fee_msat END), 0),
           COALESCE(SUM(CASE WHEN p.status IN ('reserved', 'in_flight')
                             THEN p.amount_msat + p.fee_limit_msat END), 0),
           COUNT(CASE WHEN p.status = 'succeeded' THEN 1 END),
           COUNT(CASE WHEN p.status IN ('reserved', 'in_flight') THEN 1 END)
    FROM sessions s LEFT JOIN payments p ON p.session = s.name
    WHERE s.name = ?1
    GROUP BY s.name";

fn session_summary(
    conn: &Connection,
    session: &str,
) -> Result<Option<SessionSummary>, BudgetError> {
    let row = conn
        .query_row(SESSION_SUMMARY_SQL, [session], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    Ok(row.map(
        |(budget, created_at, last_seen_at, spent, reserved, payments, unresolved)| {
            let (budget, spent, reserved) = (unsigned(budget), unsigned(spent), unsigned(reserved));
            SessionSummary {
                session: session.to_string(),
                budget_msat: budget,
                spent_msat: spent,
                reserved_msat: reserved,
                left_msat: budget.saturating_sub(spent.saturating_add(reserved)),
                payments: unsigned(payments),
                unresolved: unsigned(unresolved),
                created_at: unsigned(created_at),
                last_seen_at: unsigned(last_seen_at),
            }
        },
    ))
}

/// Spent and held by the sessions of `pool`.
fn pool_summary(conn: &Connection, pool: &BudgetPool) -> Result<PoolSummary, BudgetError> {
    let (spent, reserved, sessions): (i64, i64, i64) = conn.query_row(
        "SELECT
           COALESCE((SELECT SUM(CASE WHEN p.status = 'succeeded' THEN p.amount_msat + p.fee_msat END)
                     FROM payments p JOIN sessions s ON p.session = s.name WHERE s.pool = ?1), 0),
           COALESCE((SELECT SUM(CASE WHEN p.status IN ('reserved', 'in_flight')
                                     THEN p.amount_msat + p.fee_limit_msat END)
                     FROM payments p JOIN sessions s ON p.session = s.name WHERE s.pool = ?1), 0),
           (SELECT COUNT(*) FROM sessions WHERE pool = ?1)",
        [&pool.name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (spent, reserved) = (unsigned(spent), unsigned(reserved));
    Ok(PoolSummary {
        pool: pool.name.clone(),
        budget_msat: pool.budget_msat,
        spent_msat: spent,
        reserved_msat: reserved,
        left_msat: pool
            .budget_msat
            .saturating_sub(spent.saturating_add(reserved)),
        sessions: unsigned(sessions),
    })
}

/// What the last 24 hours hold against the daily cap, all sessions:
/// unresolved payments (whatever their age: they may still complete) and
/// payments that succeeded less than [`DAY_SECS`] ago.
fn last_day_msat(conn: &Connection, now: u64) -> Result<u64, BudgetError> {
    let since = time_to_sql(now.saturating_sub(DAY_SECS));
    let held: i64 = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN status = 'succeeded' THEN amount_msat + fee_msat
                                  ELSE amount_msat + fee_limit_msat END), 0)
         FROM payments
         WHERE status IN ('reserved', 'in_flight')
            OR (status = 'succeeded' AND updated_at > ?1)",
        [since],
        |r| r.get(0),
    )?;
    Ok(unsigned(held))
}

fn state_of(tx: &Transaction<'_>, id: i64) -> Result<(PaymentState, u64, u64, u64), BudgetError> {
    let row: Option<(String, i64, i64, i64)> = tx
        .query_row(
            "SELECT status, amount_msat, fee_msat, fee_limit_msat FROM payments WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (status, amount, fee, fee_limit) = row.ok_or(BudgetError::UnknownReservation(id))?;
    Ok((
        status.parse()?,
        unsigned(amount),
        unsigned(fee),
        unsigned(fee_limit),
    ))
}

impl Ledger {
    /// A ledger over `store`, with no daily cap.
    pub fn new(store: Arc<Store>) -> Self {
        Ledger {
            store,
            daily_cap_msat: None,
            per_minute: None,
            pool: None,
        }
    }

    /// Sessions opened through this ledger join `pool` (or none): a payment
    /// must then fit the pool's budget as well as the session's.
    pub fn with_pool(mut self, pool: Option<BudgetPool>) -> Self {
        self.pool = pool;
        self
    }

    /// Where this ledger's pool stands, if it has one.
    pub fn pool_summary(&self) -> Result<Option<PoolSummary>, BudgetError> {
        match &self.pool {
            None => Ok(None),
            Some(pool) => self.store.read(|conn| pool_summary(conn, pool)).map(Some),
        }
    }

    /// Sets (or removes) a limit on payments per session per rolling
    /// minute, counted in the store, so that it holds across processes (a
    /// shell agent calling the CLI in a loop); an in-process limiter cannot.
    pub fn with_rate_limit(mut self, per_minute: Option<u32>) -> Self {
        self.per_minute = per_minute;
        self
    }

    /// Sets (or, with `None`, removes) the rolling 24-hour cap across all
    /// sessions of the store.
    pub fn with_daily_cap(mut self, cap_msat: Option<u64>) -> Self {
        self.daily_cap_msat = cap_msat;
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Opens the named session with `budget_msat`, creating it on first
    /// use. A session's spending accumulates across processes and runs; its
    /// budget is the operator's latest word, so this sets it each time.
    pub fn open_session(
        &self,
        name: &str,
        budget_msat: u64,
    ) -> Result<SessionSummary, BudgetError> {
        if name.is_empty() {
            return Err(StoreError::Empty("a session name").into());
        }
        let budget = msat("session budget", budget_msat)?;
        let pool = self.pool.as_ref().map(|p| p.name.as_str());
        if pool == Some("") {
            return Err(StoreError::Empty("a budget pool name").into());
        }
        self.store.write(|tx, now| {
            // A session in no pool stays out of one (a CLI run of a session
            // an MCP server once used does not join that server's pool).
            tx.execute(
                "INSERT INTO sessions (name, budget_msat, created_at, last_seen_at, pool)
                 VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                 SET budget_msat = excluded.budget_msat, last_seen_at = excluded.last_seen_at,
                     pool = COALESCE(excluded.pool, pool)",
                params![name, budget, time_to_sql(now), pool],
            )?;
            session_summary(tx, name)?.ok_or_else(|| BudgetError::UnknownSession(name.to_string()))
        })
    }

    /// Holds `amount + fee limit` for one payment, or refuses. The check
    /// against the session's budget and the daily cap, and the hold itself,
    /// are one transaction under the store's write lock.
    pub fn reserve(&self, req: &ReserveRequest<'_>) -> Result<Reservation, BudgetError> {
        let amount = msat("payment amount", req.amount_msat)?;
        let fee_limit = msat("payment fee limit", req.fee_limit_msat)?;
        let asked = req
            .amount_msat
            .checked_add(req.fee_limit_msat)
            .filter(|a| i64::try_from(*a).is_ok())
            .ok_or(StoreError::AmountTooLarge {
                what: "payment amount plus fee limit",
                msat: req.amount_msat.saturating_add(req.fee_limit_msat),
            })?;

        self.store.write(|tx, now| {
            // The kill switch, first: read in this transaction, under the
            // store's write lock, so no payment slips between a pause and
            // its reservation.
            if let Some(pause) = standing_pause(tx)? {
                return Err(BudgetError::Paused(pause));
            }

            // The session's budget.
            let summary = session_summary(tx, req.session)?
                .ok_or_else(|| BudgetError::UnknownSession(req.session.to_string()))?;
            if asked > summary.left_msat {
                return Err(BudgetError::OverBudget {
                    session: req.session.to_string(),
                    needed_msat: asked,
                    left_msat: summary.left_msat,
                    budget_msat: summary.budget_msat,
                });
            }

            // The pool the session shares with its server's other sessions.
            if let Some(pool) = &self.pool {
                let standing = pool_summary(tx, pool)?;
                if asked > standing.left_msat {
                    return Err(BudgetError::OverPool {
                        pool: pool.name.clone(),
                        needed_msat: asked,
                        left_msat: standing.left_msat,
                        budget_msat: pool.budget_msat,
                    });
                }
            }

            // Payments per rolling minute, this session, every process.
            if let Some(limit) = self.per_minute {
                let recent: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM payments WHERE session = ?1 AND created_at > ?2 \
                     AND status IN ('reserved', 'in_flight', 'succeeded')",
                    params![req.session, time_to_sql(now.saturating_sub(60))],
                    |r| r.get(0),
                )?;
                if recent >= i64::from(limit) {
                    return Err(BudgetError::RateLimited { per_minute: limit });
                }
            }

            // The rolling 24-hour cap, across sessions.
            if let Some(cap) = self.daily_cap_msat {
                let left = cap.saturating_sub(last_day_msat(tx, now)?);
                if asked > left {
                    return Err(BudgetError::OverDailyCap {
                        needed_msat: asked,
                        left_msat: left,
                        cap_msat: cap,
                    });
                }
            }

            // The hold.
            tx.execute(
                "INSERT INTO payments (session, origin, url, payment_hash, amount_msat,
                                       fee_limit_msat, status, created_at, updated_at, scheme)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'reserved', ?7, ?7, ?8)",
                params![
                    req.session,
                    req.origin.as_str(),
                    req.url,
                    req.payment_hash.to_hex(),
                    amount,
                    fee_limit,
                    time_to_sql(now),
                    req.scheme.as_str()
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE name = ?1",
                params![req.session, time_to_sql(now)],
            )?;
            Ok(Reservation {
                id,
                held_msat: asked,
            })
        })
    }

    /// Records that the payment is about to be sent. Call it right before
    /// paying, and do not pay if it fails: an error means the reservation
    /// was settled meanwhile (e.g. released by recovery).
    pub fn mark_in_flight(&self, r: &Reservation) -> Result<(), BudgetError> {
        // The outer result commits (the pause's release must stick); the
        // inner one is the answer.
        self.store
            .write(|tx, now| match state_of(tx, r.id)?.0 {
                PaymentState::Reserved => {
                    // Paused since the reservation: it goes back unsent. A
                    // payment starts only while no pause stands.
                    if let Some(pause) = standing_pause(tx)? {
                        tx.execute(
                            "UPDATE payments SET status = 'released', error = ?2, updated_at = ?3
                             WHERE id = ?1",
                            params![r.id, format!("payments are {pause}"), time_to_sql(now)],
                        )?;
                        return Ok(Err(BudgetError::Paused(pause)));
                    }
                    tx.execute(
                        "UPDATE payments SET status = 'in_flight', updated_at = ?2 WHERE id = ?1",
                        params![r.id, time_to_sql(now)],
                    )?;
                    Ok(Ok(()))
                }
                PaymentState::InFlight => Ok(Ok(())),
                state => Err(BudgetError::Settled {
                    id: r.id,
                    state,
                    action: "sent",
                }),
            })
            .and_then(|answer| answer)
    }

    /// Records that the payment succeeded with these real amounts; the
    /// unused part of the fee limit goes back to the budget. A payment that
    /// succeeded is recorded whatever the reservation's state (money moved:
    /// the log must say so), with a warning if it had been released or
    /// failed, or costs more than was held. Committing twice with the same
    /// amounts is a no-op.
    pub fn commit(
        &self,
        r: &Reservation,
        amount_msat: u64,
        fee_msat: u64,
    ) -> Result<(), BudgetError> {
        let amount = msat("payment amount", amount_msat)?;
        let fee = msat("payment fee", fee_msat)?;
        self.store.write(|tx, now| {
            let (state, old_amount, old_fee, fee_limit) = state_of(tx, r.id)?;
            if state == PaymentState::Succeeded {
                if (old_amount, old_fee) == (amount_msat, fee_msat) {
                    return Ok(());
                }
                return Err(BudgetError::Settled {
                    id: r.id,
                    state,
                    action: "committed again with other amounts",
                });
            }
            if !state.is_unresolved() {
                tracing::warn!(
                    reservation = r.id,
                    %state,
                    "recording a payment that succeeded after its reservation was {state}"
                );
            }
            let held = old_amount.saturating_add(fee_limit);
            if amount_msat.saturating_add(fee_msat) > held {
                tracing::warn!(
                    reservation = r.id,
                    amount_msat,
                    fee_msat,
                    held_msat = held,
                    "payment cost more than its reservation held"
                );
            }
            tx.execute(
                "UPDATE payments SET status = 'succeeded', amount_msat = ?2, fee_msat = ?3,
                        error = NULL, updated_at = ?4
                 WHERE id = ?1",
                params![r.id, amount, fee, time_to_sql(now)],
            )?;
            Ok(())
        })
    }

    /// Records that the payment failed for good (nothing spent), with why;
    /// its budget goes back. A no-op on one already failed or released.
    pub fn fail(&self, r: &Reservation, reason: &str) -> Result<(), BudgetError> {
        self.settle_unspent(r, PaymentState::Failed, Some(reason), "failed")
    }

    /// Gives the reservation back unused (nothing was spent). A no-op on one
    /// already released or failed.
    pub fn release(&self, r: &Reservation) -> Result<(), BudgetError> {
        self.settle_unspent(r, PaymentState::Released, None, "released")
    }

    fn settle_unspent(
        &self,
        r: &Reservation,
        to: PaymentState,
        reason: Option<&str>,
        action: &'static str,
    ) -> Result<(), BudgetError> {
        self.store.write(|tx, now| match state_of(tx, r.id)?.0 {
            PaymentState::Reserved | PaymentState::InFlight => {
                tx.execute(
                    "UPDATE payments SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
                    params![r.id, to.as_str(), reason, time_to_sql(now)],
                )?;
                Ok(())
            }
            PaymentState::Failed | PaymentState::Released => Ok(()),
            state @ PaymentState::Succeeded => Err(BudgetError::Settled {
                id: r.id,
                state,
                action,
            }),
        })
    }

    /// Unresolved payments (reserved or in flight) untouched for at least
    /// `min_age`, oldest first, across all sessions. Each still holds its
    /// budget; recovery asks the payment backend what became of it and then
    /// commits, fails or releases it. A `min_age` longer than the payment
    /// timeout keeps recovery off payments another live process is making.
    pub fn unresolved(&self, min_age: Duration) -> Result<Vec<PaymentRecord>, BudgetError> {
        let before = time_to_sql(self.store.now().saturating_sub(min_age.as_secs()));
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments
             WHERE status IN ('reserved', 'in_flight') AND updated_at <= ?1
             ORDER BY id"
        );
        Ok(self
            .store
            .read(|conn| query_payments(conn, &sql, [before]))?)
    }

    /// Where `session` stands.
    pub fn summary(&self, session: &str) -> Result<SessionSummary, BudgetError> {
        self.store
            .read(|conn| session_summary(conn, session))?
            .ok_or_else(|| BudgetError::UnknownSession(session.to_string()))
    }

    /// Every session, by name.
    pub fn sessions(&self) -> Result<Vec<SessionSummary>, BudgetError> {
        self.store.read(|conn| {
            let names = conn
                .prepare("SELECT name FROM sessions ORDER BY name")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.extend(session_summary(conn, &name)?);
            }
            Ok(out)
        })
    }

    /// What the rolling 24-hour cap counts now, across all sessions:
    /// payments that succeeded in the last [`DAY_SECS`] seconds, plus every
    /// unresolved one.
    pub fn last_day_msat(&self) -> Result<u64, BudgetError> {
        let now = self.store.now();
        self.store.read(|conn| last_day_msat(conn, now))
    }

    /// Pauses every payment of every process that shares the store, until
    /// [`resume`](Self::resume). Payments already sent complete and are
    /// recorded; none is reserved or sent after this commits. Already
    /// paused: the standing pause is kept (its reason and author too) and
    /// returned.
    pub fn pause(&self, reason: Option<&str>, by: &str) -> Result<Pause, BudgetError> {
        let reason = pause_text("reason", reason)?;
        let by = pause_text("author", Some(by))?.ok_or(BudgetError::BadPauseText {
            what: "author",
            problem: "is empty".into(),
        })?;
        self.store.write(|tx, now| {
            if let Some(standing) = standing_pause(tx)? {
                return Ok(standing);
            }
            tx.execute(
                "INSERT INTO pauses (paused_at, paused_by, reason) VALUES (?1, ?2, ?3)",
                params![time_to_sql(now), by, reason],
            )?;
            Ok(Pause {
                reason,
                by,
                since: now,
            })
        })
    }

    /// Lifts the standing pause; returns it, or `None` if there was none.
    pub fn resume(&self, by: &str) -> Result<Option<Pause>, BudgetError> {
        let by = pause_text("author", Some(by))?.ok_or(BudgetError::BadPauseText {
            what: "author",
            problem: "is empty".into(),
        })?;
        self.store.write(|tx, now| {
            let standing = standing_pause(tx)?;
            if standing.is_some() {
                tx.execute(
                    "UPDATE pauses SET resumed_at = ?1, resumed_by = ?2 WHERE resumed_at IS NULL",
                    params![time_to_sql(now), by],
                )?;
            }
            Ok(standing)
        })
    }

    /// The standing pause, if payments are paused.
    pub fn paused(&self) -> Result<Option<Pause>, BudgetError> {
        self.store.read(standing_pause)
    }

    /// The last `limit` pauses, newest first, standing or lifted.
    pub fn pause_history(&self, limit: usize) -> Result<Vec<PauseEvent>, BudgetError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.store.read(|conn| {
            Ok(conn
                .prepare(
                    "SELECT paused_at, paused_by, reason, resumed_at, resumed_by FROM pauses
                     ORDER BY id DESC LIMIT ?1",
                )?
                .query_map([limit], |r| {
                    Ok(PauseEvent {
                        paused_at: unsigned(r.get(0)?),
                        paused_by: r.get(1)?,
                        reason: r.get(2)?,
                        resumed_at: r.get::<_, Option<i64>>(3)?.map(unsigned),
                        resumed_by: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Everything spent, all sessions, all time, and per origin.
    pub fn all_time(&self) -> Result<SpendTotals, BudgetError> {
        let by_origin = self.store.read(|conn| {
            conn.prepare(
                "SELECT origin, SUM(amount_msat), SUM(fee_msat), COUNT(*)
                 FROM payments WHERE status = 'succeeded'
                 GROUP BY origin
                 ORDER BY SUM(amount_msat + fee_msat) DESC, origin",
            )?
            .query_map([], |r| {
                let (amount, fee) = (unsigned(r.get(1)?), unsigned(r.get(2)?));
                Ok(OriginSpend {
                    origin: r.get(0)?,
                    spent_msat: amount.saturating_add(fee),
                    amount_msat: amount,
                    fee_msat: fee,
                    payments: unsigned(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut totals = SpendTotals::default();
        for o in &by_origin {
            totals.spent_msat = totals.spent_msat.saturating_add(o.spent_msat);
            totals.amount_msat = totals.amount_msat.saturating_add(o.amount_msat);
            totals.fee_msat = totals.fee_msat.saturating_add(o.fee_msat);
            totals.payments = totals.payments.saturating_add(o.payments);
        }
        totals.by_origin = by_origin;
        Ok(totals)
    }
}
