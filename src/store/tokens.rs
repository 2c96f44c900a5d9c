//! The tokens table: L402 tokens bought, from the moment before payment
//! (`pending`) to `paid`, and on to `stale` once a server refuses them.
//!
//! ```text
//! insert_pending ──> pending ──mark_paid──> paid ──mark_stale──> stale
//!                       │  ^
//!           mark_failed │  │ mark_paid (a "failed" payment that did go through)
//!                       v  │
//!                     failed
//! ```

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use zeroize::Zeroizing;

use super::{Origin, Store, StoreError, msat_from_sql, msat_to_sql, time_from_sql, time_to_sql};
use crate::lightning::{PaymentHash, Preimage};

/// Where a token is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// Written before its invoice was paid; the payment's outcome is not
    /// known yet. Its hash must never be paid again without first asking the
    /// payment backend what became of it.
    Pending,
    /// Paid: the preimage is known and the token can be presented.
    Paid,
    /// Paid, but the server no longer accepts it.
    Stale,
    /// The payment failed for good; nothing was spent.
    Failed,
}

impl TokenStatus {
    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenStatus::Pending => "pending",
            TokenStatus::Paid => "paid",
            TokenStatus::Stale => "stale",
            TokenStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(TokenStatus::Pending),
            "paid" => Ok(TokenStatus::Paid),
            "stale" => Ok(TokenStatus::Stale),
            "failed" => Ok(TokenStatus::Failed),
            other => Err(StoreError::Corrupt {
                what: "token status",
                detail: format!("{other:?}"),
            }),
        }
    }
}

/// Which HTTP scheme a token answers: an L402 token (reusable, as its
/// server allows) or a `Payment` charge credential (one request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScheme {
    /// `L402` (or `LSAT`): a macaroon and its preimage.
    #[default]
    L402,
    /// `Payment`, Lightning `charge`: the challenge echoed and the preimage.
    Payment,
}

impl TokenScheme {
    /// The name stored in the database (and shown).
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenScheme::L402 => "l402",
            TokenScheme::Payment => "payment",
        }
    }
}

impl fmt::Display for TokenScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScheme {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "l402" => Ok(TokenScheme::L402),
            "payment" => Ok(TokenScheme::Payment),
            other => Err(StoreError::Corrupt {
                what: "token scheme",
                detail: format!("{other:?}"),
            }),
        }
    }
}

/// What [`Store::insert_pending`] records before an invoice is paid. Its
/// `Debug` leaves out the macaroon.
#[derive(Clone, Copy)]
pub struct NewToken<'a> {
    /// The origin the token is for.
    pub origin: &'a Origin,
    /// The invoice's payment hash (equal to the macaroon identifier's).
    pub payment_hash: &'a PaymentHash,
    /// The macaroon, base64, as the server sent it (for a `Payment`
    /// credential, the challenge as JSON). Not secret on its own (useless
    /// without the preimage), but treated as such once paid.
    pub macaroon: &'a str,
    /// The BOLT11 invoice being paid.
    pub invoice: &'a str,
    /// The invoice amount.
    pub amount_msat: u64,
    /// The session paying.
    pub session: &'a str,
    /// The scheme it answers.
    pub scheme: TokenScheme,
    /// A `Payment` credential is presented only at this path.
    pub bound_path: Option<&'a str>,
    /// A `Payment` credential is refused after this time (Unix seconds).
    pub expires_at: Option<u64>,
}

impl fmt::Debug for NewToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("origin", self.origin)
            .field("payment_hash", self.payment_hash)
            .field("macaroon", &"<redacted>")
            .field("invoice", &self.invoice)
            .field("amount_msat", &self.amount_msat)
            .field("session", &self.session)
            .field("scheme", &self.scheme)
            .field("bound_path", &self.bound_path)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The paths a token was presented at, and whether it was accepted there.
pub type TokenPaths = Vec<(String, bool)>;

/// A token's public facts: no macaroon, no preimage. Safe to display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Row id.
    pub id: i64,
    /// The origin it is for.
    pub origin: Origin,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// What the invoice cost.
    pub amount_msat: u64,
    /// The routing fee paid (0 until paid).
    pub fee_msat: u64,
    /// Where it is in its life.
    pub status: TokenStatus,
    /// The session that bought it.
    pub session: String,
    /// When it was written (pending), Unix seconds.
    pub created_at: u64,
    /// When it was marked paid.
    pub paid_at: Option<u64>,
    /// When it was last presented to a server.
    pub last_used_at: Option<u64>,
    /// Until when (Unix seconds) it is its buyer's: bought, and not yet
    /// presented by the request that paid for it (see
    /// [`Store::mark_paid_for_buyer`]).
    pub held_until: Option<u64>,
    /// The scheme it answers.
    pub scheme: TokenScheme,
    /// A `Payment` credential: the path it was bought for.
    pub bound_path: Option<String>,
    /// A `Payment` credential: when its challenge expires (Unix seconds).
    pub expires_at: Option<u64>,
    /// A `Payment` credential: the server's Payment-Receipt, as received.
    pub receipt: Option<String>,
}

/// A token with its secrets: the macaroon and, once paid, the preimage
/// (together, the L402 credential). Its `Debug` shows neither.
#[derive(Clone)]
pub struct Token {
    /// The public facts.
    pub info: TokenInfo,
    macaroon: Zeroizing<String>,
    invoice: String,
    preimage: Option<Preimage>,
}

impl Token {
    /// The macaroon, base64. Secret once paid: for the credential only.
    pub fn macaroon(&self) -> &str {
        &self.macaroon
    }

    /// The preimage, once paid. Secret: for the credential only.
    pub fn preimage(&self) -> Option<&Preimage> {
        self.preimage.as_ref()
    }

    /// The BOLT11 invoice that was (or is being) paid.
    pub fn invoice(&self) -> &str {
        &self.invoice
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("info", &self.info)
            .field("invoice", &self.invoice)
            .field("macaroon", &"<redacted>")
            .field("preimage", &self.preimage.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The columns [`token_from_row`] reads, in order.
const TOKEN_COLUMNS: &str = "id, origin, payment_hash, amount_msat, fee_msat, status, session, \
     created_at, paid_at, last_used_at, macaroon, invoice, preimage, held_until, scheme, \
     bound_path, expires_at, receipt";

/// A row as SQLite hands it over, before the checks that make it a [`Token`].
struct RawToken {
    id: i64,
    origin: String,
    payment_hash: String,
    amount_msat: i64,
    fee_msat: i64,
    status: String,
    session: String,
    created_at: i64,
    paid_at: Option<i64>,
    last_used_at: Option<i64>,
    macaroon: Zeroizing<String>,
    invoice: String,
    preimage: Option<Zeroizing<String>>,
    held_until: Option<i64>,
    scheme: String,
    bound_path: Option<String>,
    expires_at: Option<i64>,
    receipt: Option<String>,
}

fn raw_token(row: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok(RawToken {
        id: row.get(0)?,
        origin: row.get(1)?,
        payment_hash: row.get(2)?,
        amount_msat: row.get(3)?,
        fee_msat: row.get(4)?,
        status: row.get(5)?,
        session: row.get(6)?,
        created_at: row.get(7)?,
        paid_at: row.get(8)?,
        last_used_at: row.get(9)?,
        macaroon: Zeroizing::new(row.get(10)?),
        invoice: row.get(11)?,
        preimage: row.get::<_, Option<String>>(12)?.map(Zeroizing::new),
        held_until: row.get(13)?,
        scheme: row.get(14)?,
        bound_path: row.get(15)?,
        expires_at: row.get(16)?,
        receipt: row.get(17)?,
    })
}

impl TryFrom<RawToken> for Token {
    type Error = StoreError;
    fn try_from(raw: RawToken) -> Result<Self, StoreError> {
        let corrupt = |what: &'static str, detail: String| StoreError::Corrupt { what, detail };
        let info = TokenInfo {
            id: raw.id,
            origin: raw
                .origin
                .parse()
                .map_err(|e| corrupt("token origin", format!("{e}")))?,
            payment_hash: raw
                .payment_hash
                .parse()
                .map_err(|e| corrupt("token payment hash", format!("{e}")))?,
            amount_msat: msat_from_sql("token amount", raw.amount_msat)?,
            fee_msat: msat_from_sql("token fee", raw.fee_msat)?,
            status: raw.status.parse()?,
            session: raw.session,
            created_at: time_from_sql(raw.created_at),
            paid_at: raw.paid_at.map(time_from_sql),
            last_used_at: raw.last_used_at.map(time_from_sql),
            held_until: raw.held_until.map(time_from_sql),
            scheme: raw.scheme.parse()?,
            bound_path: raw.bound_path,
            expires_at: raw.expires_at.map(time_from_sql),
            receipt: raw.receipt,
        };
        let preimage = match raw.preimage {
            None => None,
            Some(hex) => Some(
                hex.parse::<Preimage>()
                    .map_err(|e| corrupt("token preimage", format!("{e}")))?,
            ),
        };
        Ok(Token {
            info,
            macaroon: raw.macaroon,
            invoice: raw.invoice,
            preimage,
        })
    }
}

fn status_of(
    tx: &rusqlite::Transaction<'_>,
    hash: &PaymentHash,
) -> Result<TokenStatus, StoreError> {
    let status: Option<String> = tx
        .query_row(
            "SELECT status FROM tokens WHERE payment_hash = ?1",
            [hash.to_hex()],
            |r| r.get(0),
        )
        .optional()?;
    status.ok_or(StoreError::TokenNotFound(*hash))?.parse()
}

impl Store {
    /// Records a token as `pending`, BEFORE its invoice is paid, and returns
    /// its id. Refuses with [`StoreError::DuplicatePaymentHash`] if any token
    /// already has this payment hash: whoever inserted it first (this
    /// process or another) owns the payment, and nobody else may pay it.
    pub fn insert_pending(&self, token: &NewToken<'_>) -> Result<i64, StoreError> {
        if token.macaroon.is_empty() {
            return Err(StoreError::Empty("a token's macaroon"));
        }
        if token.session.is_empty() {
            return Err(StoreError::Empty("a session name"));
        }
        let amount = msat_to_sql("token amount", token.amount_msat)?;
        let hash = token.payment_hash.to_hex();
        self.write(|tx, now| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE payment_hash = ?1)",
                [&hash],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StoreError::DuplicatePaymentHash(*token.payment_hash));
            }
            tx.execute(
                "INSERT INTO tokens (origin, payment_hash, macaroon, invoice, amount_msat, \
                 status, session, created_at, scheme, bound_path, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9, ?10)",
                params![
                    token.origin.as_str(),
                    hash,
                    token.macaroon,
                    token.invoice,
                    amount,
                    token.session,
                    time_to_sql(now),
                    token.scheme.as_str(),
                    token.bound_path,
                    token.expires_at.map(time_to_sql)
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Marks the token paid with its `preimage` and the routing fee. The
    /// preimage must hash to the payment hash. Allowed from `pending`, and
    /// from `failed` (a payment reported failed that went through after
    /// all); a no-op on a token already paid.
    pub fn mark_paid(
        &self,
        hash: &PaymentHash,
        preimage: &Preimage,
        fee_msat: u64,
    ) -> Result<(), StoreError> {
        self.mark_paid_for_buyer(hash, preimage, fee_msat, 0)
    }

    /// [`Store::mark_paid`], and the token is its buyer's for `hold_secs`
    /// (or until [`Store::release_hold`]): [`TokenInfo::held_until`] says
    /// so, and the client presents a held token only under the origin's
    /// lock, which the buyer holds until it has presented it. So no other
    /// session or process takes a single-use token from under the request
    /// that paid for it, and a crashed buyer (whose lock the system
    /// released) leaves a token the next run uses.
    pub fn mark_paid_for_buyer(
        &self,
        hash: &PaymentHash,
        preimage: &Preimage,
        fee_msat: u64,
        hold_secs: u64,
    ) -> Result<(), StoreError> {
        if !preimage.matches(hash) {
            return Err(StoreError::PreimageMismatch(*hash));
        }
        let fee = msat_to_sql("token fee", fee_msat)?;
        let preimage_hex = Zeroizing::new(preimage.to_hex());
        self.write(|tx, now| match status_of(tx, hash)? {
            TokenStatus::Pending | TokenStatus::Failed => {
                let held_until =
                    (hold_secs > 0).then(|| time_to_sql(now.saturating_add(hold_secs)));
                tx.execute(
                    "UPDATE tokens SET status = 'paid', preimage = ?2, fee_msat = ?3, \
                     paid_at = ?4, held_until = ?5 WHERE payment_hash = ?1",
                    params![
                        hash.to_hex(),
                        preimage_hex.as_str(),
                        fee,
                        time_to_sql(now),
                        held_until
                    ],
                )?;
                Ok(())
            }
            TokenStatus::Paid => Ok(()),
            from @ TokenStatus::Stale => Err(StoreError::InvalidTransition {
                hash: *hash,
                from,
                to: TokenStatus::Paid,
            }),
        })
    }

    /// Ends the buyer's hold on a token (it has presented it): every
    /// session may use it now.
    pub fn release_hold(&self, hash: &PaymentHash) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.execute(
                "UPDATE tokens SET held_until = NULL WHERE payment_hash = ?1",
                [hash.to_hex()],
            )?;
            Ok(())
        })
    }

    /// Marks a paid token stale: a server answered it with a new 402. It is
    /// kept (it records a payment) but never offered again. A no-op on a
    /// token already stale.
    pub fn mark_stale(&self, hash: &PaymentHash) -> Result<(), StoreError> {
        self.transition(hash, TokenStatus::Stale, &[TokenStatus::Paid])
    }

    /// Marks a pending token failed: its payment failed for good and
    /// nothing was spent. A no-op on a token already failed.
    pub fn mark_failed(&self, hash: &PaymentHash) -> Result<(), StoreError> {
        self.transition(hash, TokenStatus::Failed, &[TokenStatus::Pending])
    }

    fn transition(
        &self,
        hash: &PaymentHash,
        to: TokenStatus,
        allowed_from: &[TokenStatus],
    ) -> Result<(), StoreError> {
        self.write(|tx, _now| {
            let from = status_of(tx, hash)?;
            if from == to {
                return Ok(());
            }
            if !allowed_from.contains(&from) {
                return Err(StoreError::InvalidTransition {
                    hash: *hash,
                    from,
                    to,
                });
            }
            tx.execute(
                "UPDATE tokens SET status = ?2 WHERE payment_hash = ?1",
                params![hash.to_hex(), to.as_str()],
            )?;
            Ok(())
        })
    }

    /// Records that a token was just presented to its server.
    pub fn mark_used(&self, hash: &PaymentHash) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let n = tx.execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE payment_hash = ?1",
                params![hash.to_hex(), time_to_sql(now)],
            )?;
            if n == 0 {
                return Err(StoreError::TokenNotFound(*hash));
            }
            Ok(())
        })
    }

    /// The newest paid (not stale) token for exactly this origin, with its
    /// secrets, ready to present.
    pub fn find_usable(&self, origin: &Origin) -> Result<Option<Token>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE origin = ?1 AND status = 'paid' \
             ORDER BY paid_at DESC, id DESC LIMIT 1"
        );
        let raw = self.read(|conn| {
            conn.query_row(&sql, [origin.as_str()], raw_token)
                .optional()
        })?;
        raw.map(Token::try_from).transpose()
    }

    /// Every paid (not stale) token for exactly this origin, newest first,
    /// each with the paths it was presented at: `(path, accepted)`.
    pub fn usable_tokens(&self, origin: &Origin) -> Result<Vec<(Token, TokenPaths)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE origin = ?1 AND status = 'paid' \
             ORDER BY paid_at DESC, id DESC"
        );
        let rows = self.read(|conn| {
            let raws = conn
                .prepare(&sql)?
                .query_map([origin.as_str()], raw_token)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut stmt = conn.prepare(
                "SELECT path, accepted FROM token_paths WHERE token_id = ?1 ORDER BY path",
            )?;
            let mut out = Vec::with_capacity(raws.len());
            for raw in raws {
                let paths = stmt
                    .query_map([raw.id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push((raw, paths));
            }
            Ok::<_, rusqlite::Error>(out)
        })?;
        rows.into_iter()
            .map(|(raw, paths)| Ok((Token::try_from(raw)?, paths)))
            .collect()
    }

    /// Records that the token was presented at `path` and whether the
    /// server accepted it there.
    pub fn record_path(
        &self,
        hash: &PaymentHash,
        path: &str,
        accepted: bool,
    ) -> Result<(), StoreError> {
        self.write(|tx, now| {
            let n = tx.execute(
                "INSERT INTO token_paths (token_id, path, accepted, seen_at) \
                 SELECT id, ?2, ?3, ?4 FROM tokens WHERE payment_hash = ?1 \
                 ON CONFLICT (token_id, path) DO UPDATE SET accepted = excluded.accepted, \
                 seen_at = excluded.seen_at",
                params![hash.to_hex(), path, i64::from(accepted), time_to_sql(now)],
            )?;
            if n == 0 {
                return Err(StoreError::TokenNotFound(*hash));
            }
            Ok(())
        })
    }

    /// The token with this payment hash, in any status, with its secrets.
    /// Look here before paying a hash: a pending token means an earlier
    /// attempt's outcome must be asked of the backend first.
    pub fn get_by_hash(&self, hash: &PaymentHash) -> Result<Option<Token>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE payment_hash = ?1");
        let raw = self.read(|conn| conn.query_row(&sql, [hash.to_hex()], raw_token).optional())?;
        raw.map(Token::try_from).transpose()
    }

    /// Every pending token, oldest first: the payments whose outcome must be
    /// resolved (at start, and before paying the same hash).
    pub fn list_pending(&self) -> Result<Vec<Token>, StoreError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE status = 'pending' ORDER BY id");
        let raws = self.read(|conn| {
            conn.prepare(&sql)?
                .query_map([], raw_token)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raws.into_iter().map(Token::try_from).collect()
    }

    /// Every token's public facts, oldest first: for display.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id");
        let raws = self.read(|conn| {
            conn.prepare(&sql)?
                .query_map([], raw_token)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raws.into_iter()
            .map(|raw| Token::try_from(raw).map(|t| t.info))
            .collect()
    }

    /// Deletes the token with this row id, in any status; false if there was
    /// none. The payments log keeps the record of what it cost. Deleting a
    /// pending token drops the guard against paying its invoice again: do
    /// it only once that payment is known to have failed.
    pub fn remove_token(&self, id: i64) -> Result<bool, StoreError> {
        self.write(|tx, _| Ok(tx.execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0))
    }

    /// Deletes the token with this payment hash, in any status; false if
    /// there was none. See [`Store::remove_token`].
    pub fn remove_token_by_hash(&self, hash: &PaymentHash) -> Result<bool, StoreError> {
        self.write(|tx, _| {
            Ok(tx.execute(
                "DELETE FROM tokens WHERE payment_hash = ?1",
                [hash.to_hex()],
            )? > 0)
        })
    }

    /// Keeps the `Payment-Receipt` a server answered a credential with.
    pub fn set_receipt(&self, hash: &PaymentHash, receipt: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let n = tx.execute(
                "UPDATE tokens SET receipt = ?2 WHERE payment_hash = ?1",
                params![hash.to_hex(), receipt],
            )?;
            if n == 0 {
                return Err(StoreError::TokenNotFound(*hash));
            }
            Ok(())
        })
    }

    /// The scheme `origin` refused after it was paid, if any (see
    /// [`Store::note_refused_scheme`]).
    pub fn refused_scheme(&self, origin: &Origin) -> Result<Option<TokenScheme>, StoreError> {
        let found: Option<String> = self.read(|conn| {
            conn.query_row(
                "SELECT refused FROM origin_schemes WHERE origin = ?1",
                [origin.as_str()],
                |r| r.get(0),
            )
            .optional()
        })?;
        found.map(|s| s.parse()).transpose()
    }

    /// Records that `origin` answered a credential of `scheme`, paid with
    /// `hash`, with a new challenge: from then on the client pays the
    /// other scheme there when both are offered.
    pub fn note_refused_scheme(
        &self,
        origin: &Origin,
        scheme: TokenScheme,
        hash: &PaymentHash,
    ) -> Result<(), StoreError> {
        self.write(|tx, now| {
            tx.execute(
                "INSERT INTO origin_schemes (origin, refused, paid_hash, at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (origin) DO UPDATE SET refused = excluded.refused, \
                 paid_hash = excluded.paid_hash, at = excluded.at",
                params![origin.as_str(), scheme.as_str(), hash.to_hex(), time_to_sql(now)],
            )?;
            Ok(())
        })
    }

    /// Forgets what [`Store::note_refused_scheme`] recorded for `origin`
    /// (a credential of that scheme was accepted there since).
    pub fn clear_refused_scheme(&self, origin: &Origin) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.execute(
                "DELETE FROM origin_schemes WHERE origin = ?1",
                [origin.as_str()],
            )?;
            Ok(())
        })
    }

    /// Deletes every token that is not pending, and returns how many. Pending
    /// tokens stay: each marks a payment whose outcome is not yet known, and
    /// is what stops its invoice being paid twice.
    pub fn clear_tokens(&self) -> Result<usize, StoreError> {
        self.write(|tx, _| Ok(tx.execute("DELETE FROM tokens WHERE status <> 'pending'", [])?))
    }
}
