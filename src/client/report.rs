//! What the faces show besides fetches: the tokens bought, and where the
//! money stands (this session, its server's pool, all time). The CLI and
//! the MCP tools render these; neither reads the store or the ledger
//! itself.

use super::task::blocking;
use super::{BudgetView, FetchError, L402Client};
use crate::budget::{BudgetError, Pause, PauseEvent, SpendTotals};
use crate::lightning::PaymentHash;
use crate::store::{PaymentRecord, TokenInfo, TokenStatus};

/// Where this client's session stands, and what was spent.
#[derive(Debug, Clone)]
pub struct SpendReport {
    /// The session's budget standing; `None` when the session was never
    /// opened in this store (a report does not open it).
    pub budget: Option<BudgetView>,
    /// The session's payments whose outcome is not known yet.
    pub unresolved: u64,
    /// The session's payment attempts, oldest first.
    pub payments: Vec<PaymentRecord>,
    /// Every session, all time.
    pub all_time: SpendTotals,
    /// The operator's pause, while it stands: nothing is paid.
    pub paused: Option<Pause>,
    /// What the payer's wallet holds, msat, where it says (a wallet over
    /// Nostr Wallet Connect that offers `get_balance`): the wallet's own
    /// figure, beside the operator's budget, which is what may be spent.
    pub wallet_balance_msat: Option<u64>,
}

/// How long a report waits for the wallet's balance: a slow wallet must
/// not hold up the report of what was spent.
const BALANCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A token named by the user: a row id, a payment hash, or a unique
/// prefix of one (at least 6 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// The token's row id.
    Id(i64),
    /// Its payment hash.
    Hash(PaymentHash),
    /// The start of its payment hash, lowercase hex.
    Prefix(String),
}

impl std::str::FromStr for TokenRef {
    type Err = FetchError;

    fn from_str(s: &str) -> Result<Self, FetchError> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Ok(TokenRef::Id(n));
        }
        if let Ok(h) = s.parse::<PaymentHash>() {
            return Ok(TokenRef::Hash(h));
        }
        let prefix = s.to_ascii_lowercase();
        if prefix.len() >= 6 && prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(TokenRef::Prefix(prefix));
        }
        Err(FetchError::BadRequest(format!(
            "{s:?} names no token: give its id, its payment hash, or 6 or more of its first hex digits"
        )))
    }
}

/// What clearing the tokens did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleared {
    /// Tokens deleted.
    pub removed: usize,
    /// Pending tokens kept (their payment's outcome is not known yet).
    pub kept_pending: usize,
}

impl L402Client {
    /// Every token in the store, without its secrets, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, FetchError> {
        let store = self.store.clone();
        Ok(blocking(move || store.list_tokens()).await??)
    }

    /// The one token `which` names.
    pub async fn token(&self, which: &TokenRef) -> Result<TokenInfo, FetchError> {
        let tokens = self.tokens().await?;
        let not_found = || {
            FetchError::NotFound(format!(
                "no token {}; `l402-mcp tokens list` shows them",
                describe(which)
            ))
        };
        let found: Vec<&TokenInfo> = match which {
            TokenRef::Id(n) => tokens.iter().filter(|t| t.id == *n).collect(),
            TokenRef::Hash(h) => tokens.iter().filter(|t| t.payment_hash == *h).collect(),
            TokenRef::Prefix(p) => tokens
                .iter()
                .filter(|t| t.payment_hash.to_hex().starts_with(p.as_str()))
                .collect(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found()),
            many => Err(FetchError::BadRequest(format!(
                "{} is the start of {} tokens' payment hashes; give more of it",
                describe(which),
                many.len()
            ))),
        }
    }

    /// Deletes one token. A pending one is refused: its payment's outcome
    /// is not known yet, and the token is what stops its invoice being
    /// paid twice.
    pub async fn remove_token(&self, token: &TokenInfo) -> Result<(), FetchError> {
        if token.status == TokenStatus::Pending {
            return Err(FetchError::BadRequest(format!(
                "token {} is pending: its payment's outcome is not known yet, and the token is \
                 what stops its invoice being paid twice; `l402-mcp spend` resolves it with the \
                 payer",
                token.id
            )));
        }
        let (store, id) = (self.store.clone(), token.id);
        blocking(move || store.remove_token(id)).await??;
        self.forget_origin(&token.origin);
        Ok(())
    }

    /// Deletes every token but the pending ones.
    pub async fn clear_tokens(&self) -> Result<Cleared, FetchError> {
        let store = self.store.clone();
        let (removed, kept_pending) = blocking(move || {
            let pending = store
                .list_tokens()?
                .iter()
                .filter(|t| t.status == TokenStatus::Pending)
                .count();
            store.clear_tokens().map(|removed| (removed, pending))
        })
        .await??;
        self.forget_all_origins();
        Ok(Cleared {
            removed,
            kept_pending,
        })
    }

    /// The kill switch: pauses every payment of every process that shares
    /// this client's store (stdio and HTTP servers, CLI runs), before its
    /// next payment. Payments already sent complete and are recorded;
    /// tokens bought before keep working. `by` says who paused (shown to
    /// agents and on the dashboard). Already paused: the standing pause.
    pub async fn pause(&self, reason: Option<String>, by: String) -> Result<Pause, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.pause(reason.as_deref(), &by)).await??)
    }

    /// Lifts the pause; returns it, or `None` if payments were not paused.
    pub async fn resume(&self, by: String) -> Result<Option<Pause>, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.resume(&by)).await??)
    }

    /// The standing pause, if payments are paused.
    pub async fn paused(&self) -> Result<Option<Pause>, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.paused()).await??)
    }

    /// The last `limit` pauses, newest first.
    pub async fn pause_history(&self, limit: usize) -> Result<Vec<PauseEvent>, FetchError> {
        let ledger = self.ledger.clone();
        Ok(blocking(move || ledger.pause_history(limit)).await??)
    }

    /// Where this session stands and what was spent, after resolving the
    /// payments earlier runs left unresolved (when there is a payer).
    pub async fn spend_report(&self) -> Result<SpendReport, FetchError> {
        let unresolved = self.session_unresolved().await?;
        if unresolved > 0
            && self.can_pay()
            && let Err(e) = self.recover().await
        {
            tracing::warn!(error = %e, "cannot resolve pending payments now");
        }
        let budget = match self.budget() {
            Ok(b) => Some(b),
            Err(FetchError::UnknownSession(_)) => None,
            Err(e) => return Err(e),
        };
        let unresolved = self.session_unresolved().await?;
        let (ledger, store, session) = (
            self.ledger.clone(),
            self.store.clone(),
            self.config.session.clone(),
        );
        let (payments, all_time) = blocking(move || {
            Ok::<_, FetchError>((
                store.list_payments(Some(&session))?,
                ledger.all_time().map_err(FetchError::from)?,
            ))
        })
        .await??;
        let wallet_balance_msat = if self.can_pay() {
            match tokio::time::timeout(BALANCE_TIMEOUT, self.payer.balance()).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the wallet's balance");
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        "the wallet's balance did not come within {} s",
                        BALANCE_TIMEOUT.as_secs()
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(SpendReport {
            budget,
            unresolved,
            payments,
            all_time,
            paused: self.paused().await?,
            wallet_balance_msat,
        })
    }

    async fn session_unresolved(&self) -> Result<u64, FetchError> {
        let (ledger, session) = (self.ledger.clone(), self.config.session.clone());
        match blocking(move || ledger.summary(&session)).await? {
            Ok(s) => Ok(s.unresolved),
            Err(BudgetError::UnknownSession(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

fn describe(which: &TokenRef) -> String {
    match which {
        TokenRef::Id(n) => format!("#{n}"),
        TokenRef::Hash(h) => h.to_hex(),
        TokenRef::Prefix(p) => format!("{p:?}"),
    }
}
