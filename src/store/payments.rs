//! The payments table: one row per payment attempt, the spend log. The
//! ledger in [`crate::budget`] writes it; budgets, the 24-hour cap and every
//! spend summary are sums over it.

use std::fmt;
use std::str::FromStr;

use rusqlite::Row;

use super::{Store, StoreError, msat_from_sql, time_from_sql};
use crate::lightning::PaymentHash;

/// Where a payment attempt is.
///
/// `reserved` and `in_flight` hold `amount + fee limit` against the budget;
/// `succeeded` counts `amount + fee`; `failed` and `released` count nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentState {
    /// Budget reserved; the payment has not been sent.
    Reserved,
    /// Handed to the payment backend; the outcome is not known yet.
    InFlight,
    /// Paid; the real amount and fee are recorded.
    Succeeded,
    /// Tried and failed for good; nothing spent.
    Failed,
    /// Given back unused; nothing spent.
    Released,
}

impl PaymentState {
    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentState::Reserved => "reserved",
            PaymentState::InFlight => "in_flight",
            PaymentState::Succeeded => "succeeded",
            PaymentState::Failed => "failed",
            PaymentState::Released => "released",
        }
    }

    /// True for the states that still hold budget and await an outcome.
    pub fn is_unresolved(&self) -> bool {
        matches!(self, PaymentState::Reserved | PaymentState::InFlight)
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reserved" => Ok(PaymentState::Reserved),
            "in_flight" => Ok(PaymentState::InFlight),
            "succeeded" => Ok(PaymentState::Succeeded),
            "failed" => Ok(PaymentState::Failed),
            "released" => Ok(PaymentState::Released),
            other => Err(StoreError::Corrupt {
                what: "payment status",
                detail: format!("{other:?}"),
            }),
        }
    }
}

/// One payment attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Row id; also the reservation's id.
    pub id: i64,
    /// The session that paid.
    pub session: String,
    /// The origin paid (normalized text).
    pub origin: String,
    /// The URL whose 402 asked for the payment.
    pub url: String,
    /// The invoice's payment hash.
    pub payment_hash: PaymentHash,
    /// The invoice amount; once succeeded, the amount actually paid.
    pub amount_msat: u64,
    /// The routing fee paid (0 until succeeded).
    pub fee_msat: u64,
    /// The most the routing fee was allowed to be.
    pub fee_limit_msat: u64,
    /// Where the attempt is.
    pub state: PaymentState,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When the budget was reserved, Unix seconds.
    pub created_at: u64,
    /// When the state last changed.
    pub updated_at: u64,
    /// The scheme of the challenge paid: `l402` or `payment`.
    pub scheme: super::TokenScheme,
}

impl PaymentRecord {
    /// What the attempt holds against a budget now: `amount + fee limit`
    /// while unresolved, `amount + fee` once succeeded, else 0.
    pub fn held_msat(&self) -> u64 {
        match self.state {
            PaymentState::Reserved | PaymentState::InFlight => {
                self.amount_msat.saturating_add(self.fee_limit_msat)
            }
            PaymentState::Succeeded => self.amount_msat.saturating_add(self.fee_msat),
            PaymentState::Failed | PaymentState::Released => 0,
        }
    }
}

/// The columns [`payment_from_row`] reads, in order.
pub(crate) const PAYMENT_COLUMNS: &str = "id, session, origin, url, payment_hash, amount_msat, \
     fee_msat, fee_limit_msat, status, error, created_at, updated_at, scheme";

/// Reads a row selected with [`PAYMENT_COLUMNS`]. The outer error is
/// SQLite's, the inner one a value this program cannot read.
pub(crate) fn payment_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<Result<PaymentRecord, StoreError>> {
    let hash: String = row.get(4)?;
    let status: String = row.get(8)?;
    let (amount, fee, fee_limit): (i64, i64, i64) = (row.get(5)?, row.get(6)?, row.get(7)?);
    let (id, session, origin, url): (i64, String, String, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let error: Option<String> = row.get(9)?;
    let (created_at, updated_at): (i64, i64) = (row.get(10)?, row.get(11)?);
    let scheme: String = row.get(12)?;
    Ok((|| {
        Ok(PaymentRecord {
            id,
            session,
            origin,
            url,
            payment_hash: hash.parse().map_err(|e| StoreError::Corrupt {
                what: "payment hash",
                detail: format!("{e}"),
            })?,
            amount_msat: msat_from_sql("payment amount", amount)?,
            fee_msat: msat_from_sql("payment fee", fee)?,
            fee_limit_msat: msat_from_sql("payment fee limit", fee_limit)?,
            state: status.parse()?,
            error,
            created_at: time_from_sql(created_at),
            updated_at: time_from_sql(updated_at),
            scheme: scheme.parse()?,
        })
    })())
}

/// Runs a payments query and reads every row.
pub(crate) fn query_payments(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PaymentRecord>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, payment_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

impl Store {
    /// Every attempt to pay this hash, oldest first. Before paying a hash,
    /// one that is unresolved or succeeded means: do not pay.
    pub fn payments_for_hash(&self, hash: &PaymentHash) -> Result<Vec<PaymentRecord>, StoreError> {
        let sql =
            format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_hash = ?1 ORDER BY id");
        self.read(|conn| query_payments(conn, &sql, [hash.to_hex()]))
    }

    /// The payment log, oldest first; only `session`'s when given.
    pub fn list_payments(&self, session: Option<&str>) -> Result<Vec<PaymentRecord>, StoreError> {
        match session {
            Some(name) => {
                let sql = format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE session = ?1 ORDER BY id"
                );
                self.read(|conn| query_payments(conn, &sql, [name]))
            }
            None => {
                let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments ORDER BY id");
                self.read(|conn| query_payments(conn, &sql, []))
            }
        }
    }
}
