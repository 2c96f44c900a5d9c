//! The tokens a client holds in memory for each origin: which to present
//! where (accepted there before, or not yet refused there), what a refusal
//! means (stale, or only another service's), and the hold a just-bought
//! token is under until its buyer has presented it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use super::pay::paying_here;
use super::task::blocking;
use super::{FetchError, L402Client, Refusal};
use crate::l402::Credential;
use crate::l402::payment::PaymentChallenge;
use crate::lightning::PaymentHash;
use crate::store::{Origin, Store, Token, TokenScheme};

/// A usable token, with its `Authorization` value built once and the
/// paths it was presented at (true: accepted there).
#[derive(Debug)]
pub(super) struct Held {
    pub hash: PaymentHash,
    pub(super) header: HeaderValue,
    /// The scheme it answers.
    pub(super) scheme: TokenScheme,
    /// A `Payment` credential: presented only at this path, and only
    /// before `expires_at` (Unix seconds), once.
    bound_path: Option<String>,
    expires_at: Option<u64>,
    /// When its use was last written to the store (unix seconds).
    last_noted: AtomicU64,
    paths: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Just bought, and its buyer has not presented it yet: no other
    /// request of this process presents it meanwhile. A single-use token
    /// taken by another request would leave the buyer, who paid, with a
    /// refusal.
    for_buyer: std::sync::atomic::AtomicBool,
}

impl Held {
    /// `now` (Unix seconds) tells whether the token is still its buyer's.
    fn new(token: &Token, now: u64) -> Result<Self, FetchError> {
        Ok(Held {
            hash: token.info.payment_hash,
            header: credential_header(token)?,
            scheme: token.info.scheme,
            bound_path: token.info.bound_path.clone(),
            expires_at: token.info.expires_at,
            last_noted: AtomicU64::new(0),
            paths: std::sync::Mutex::default(),
            for_buyer: std::sync::atomic::AtomicBool::new(
                token.info.held_until.is_some_and(|t| t > now),
            ),
        })
    }

    fn lock_paths(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, bool>> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether it may be presented at `path` at `now` (Unix seconds): an
    /// L402 token anywhere on its origin; a `Payment` credential only at
    /// the path it was bought for, before its challenge expires.
    fn fits(&self, path: &str, now: u64) -> bool {
        match self.scheme {
            TokenScheme::L402 => true,
            TokenScheme::Payment => {
                self.bound_path.as_deref() == Some(path) && self.expires_at.is_none_or(|t| t > now)
            }
        }
    }
}

/// The buyer's first presentation of a token it just bought; when it ends
/// (or the fetch is dropped) the token is every request's again: in this
/// client at once, in the store (other sessions and processes) as soon as
/// the hold is written off. A crashed buyer's hold runs out by itself.
pub(super) struct BuyerHold {
    token: Arc<Held>,
    store: Arc<Store>,
    released: bool,
}

impl BuyerHold {
    /// The hold on `token`, which its buyer is about to present.
    pub(super) fn new(token: Arc<Held>, store: Arc<Store>) -> Self {
        BuyerHold {
            token,
            store,
            released: false,
        }
    }

    /// Ends the hold now, in the store too, before the origin's locks go.
    pub(super) async fn release(mut self) {
        self.released = true;
        self.token.for_buyer.store(false, Ordering::Release);
        let (store, hash) = (self.store.clone(), self.token.hash);
        match blocking(move || store.release_hold(&hash)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot release a token's buyer hold; it runs out");
            }
            Err(e) => tracing::debug!(error = %e, "cannot release a token's buyer hold"),
        }
    }
}

impl Drop for BuyerHold {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.token.for_buyer.store(false, Ordering::Release);
        let (store, hash) = (self.store.clone(), self.token.hash);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                if let Err(e) = store.release_hold(&hash) {
                    tracing::debug!(error = %e, "cannot release a token's buyer hold; it runs out");
                }
            });
        }
    }
}

/// Token use is written to the store at most this often per token: the
/// hot path of a reused token does no database write.
const NOTE_USE_EVERY_SECS: u64 = 60;

impl L402Client {
    /// The origin's usable tokens, newest first: from memory, else loaded
    /// from the store with the paths each was presented at.
    pub(super) async fn origin_tokens(
        &self,
        origin: &Origin,
    ) -> Result<Vec<Arc<Held>>, FetchError> {
        if let Some(list) = self.lock_tokens().get(origin) {
            return Ok(list.clone());
        }
        let store = self.store.clone();
        let o = origin.clone();
        let rows = blocking(move || store.usable_tokens(&o)).await??;
        let mut list = Vec::with_capacity(rows.len());
        for (token, paths) in rows {
            let held = Held::new(&token, self.store.now())?;
            held.lock_paths().extend(paths);
            list.push(Arc::new(held));
        }
        let mut tokens = self.lock_tokens();
        Ok(tokens.entry(origin.clone()).or_insert(list).clone())
    }

    /// Up to three tokens to present at `path`, best first: those accepted
    /// there before, then those not refused there, newest first; none of
    /// `tried`. Tokens still held for their buyer only when `locked` (the
    /// caller holds the origin's locks, which the buyer keeps until it has
    /// presented its token).
    pub(super) async fn candidates(
        &self,
        origin: &Origin,
        path: &str,
        tried: &[PaymentHash],
        locked: bool,
    ) -> Result<Vec<Arc<Held>>, FetchError> {
        const MAX_CANDIDATES: usize = 3;
        let list = self.origin_tokens(origin).await?;
        let now = self.store.now();
        let verdict = |t: &Held| t.lock_paths().get(path).copied();
        let fresh = list.iter().filter(|t| {
            !tried.contains(&t.hash)
                && (locked || !t.for_buyer.load(Ordering::Acquire))
                && t.fits(path, now)
        });
        let accepted = fresh.clone().filter(|t| verdict(t) == Some(true));
        let unknown = fresh.filter(|t| verdict(t).is_none());
        Ok(accepted
            .chain(unknown)
            .take(MAX_CANDIDATES)
            .cloned()
            .collect())
    }

    /// Whether any usable token for `origin` is known (for preview).
    pub(super) async fn has_token(&self, origin: &Origin) -> Result<bool, FetchError> {
        Ok(!self.origin_tokens(origin).await?.is_empty())
    }

    /// Resolves this origin's pending tokens with the payment backend.
    /// True when one turned out paid (the origin's tokens are reloaded);
    /// refuses while one is still in flight (paying again could pay twice
    /// for one resource).
    pub(super) async fn resolve_pending(&self, origin: &Origin) -> Result<bool, FetchError> {
        let store = self.store.clone();
        let o = origin.clone();
        let pending = blocking(move || {
            store.list_pending().map(|all| {
                all.into_iter()
                    .filter(|t| t.info.origin == o && !paying_here(&t.info.payment_hash))
                    .count()
            })
        })
        .await??;
        if pending == 0 {
            return Ok(false);
        }
        self.recover().await?;
        let store = self.store.clone();
        let o = origin.clone();
        let still = blocking(move || {
            store.list_pending().map(|all| {
                all.into_iter()
                    .find(|t| t.info.origin == o && !paying_here(&t.info.payment_hash))
            })
        })
        .await??;
        if let Some(t) = still {
            return Err(FetchError::Refused(Refusal::PaymentInFlight(
                t.info.payment_hash,
            )));
        }
        self.lock_tokens().remove(origin);
        Ok(true)
    }

    /// A token was refused at `path`. Refused where it used to be accepted,
    /// it is stale (expired or revoked); otherwise it is only not valid
    /// here (another service's token), and stays usable elsewhere.
    pub(super) async fn refused(
        &self,
        origin: &Origin,
        token: &Held,
        path: &str,
    ) -> Result<(), FetchError> {
        // A Payment credential pays for one request: presented, it is done.
        if token.lock_paths().get(path) == Some(&true) || token.scheme == TokenScheme::Payment {
            return self.forget_token(origin, &token.hash).await;
        }
        token.lock_paths().insert(path.to_string(), false);
        let (store, h, p) = (self.store.clone(), token.hash, path.to_string());
        blocking(move || store.record_path(&h, &p, false)).await??;
        Ok(())
    }

    /// Marks a token stale, here and in the store.
    pub(super) async fn forget_token(
        &self,
        origin: &Origin,
        hash: &PaymentHash,
    ) -> Result<(), FetchError> {
        if let Some(list) = self.lock_tokens().get_mut(origin) {
            list.retain(|t| t.hash != *hash);
        }
        let store = self.store.clone();
        let h = *hash;
        tracing::info!(%origin, payment_hash = %h, "server refused a token where it used to work; marking it stale");
        blocking(move || store.mark_stale(&h)).await??;
        Ok(())
    }

    /// A token was presented at `path` and answered (not with a new
    /// challenge). A `Payment` credential is then spent: forgotten here and
    /// marked used in the store before the fetch returns, so that no other
    /// request or process presents it again. Any other token: see
    /// [`presented`](Self::presented).
    pub(super) async fn answered(&self, token: &Held, path: &str, status: StatusCode) {
        if token.scheme != TokenScheme::Payment {
            return self.presented(token, path, status);
        }
        for list in self.lock_tokens().values_mut() {
            list.retain(|t| t.hash != token.hash);
        }
        let (store, h, p) = (self.store.clone(), token.hash, path.to_string());
        let accepted = status.as_u16() < 400;
        let spent = blocking(move || {
            store
                .record_path(&h, &p, accepted)
                .and_then(|()| store.mark_used(&h))
                .and_then(|()| store.mark_stale(&h))
        })
        .await;
        if !matches!(spent, Ok(Ok(()))) {
            tracing::warn!(payment_hash = %token.hash, "cannot record a spent Payment credential");
        }
    }

    /// A token was presented at `path` and not refused: remember where it
    /// works (a new path is written to the store, off the request path),
    /// and note its use at most once a minute.
    pub(super) fn presented(&self, token: &Held, path: &str, status: StatusCode) {
        let newly_accepted = status.as_u16() < 400 && {
            let mut paths = token.lock_paths();
            // The hot path (accepted here before) allocates nothing.
            paths.get(path) != Some(&true) && paths.insert(path.to_string(), true) != Some(true)
        };
        let now = self.store.now();
        let last = token.last_noted.load(Ordering::Relaxed);
        let note_use = now.saturating_sub(last) >= NOTE_USE_EVERY_SECS
            && token
                .last_noted
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !newly_accepted && !note_use {
            return;
        }
        let (store, h, p) = (self.store.clone(), token.hash, path.to_string());
        tokio::task::spawn_blocking(move || {
            let result = if newly_accepted {
                store.record_path(&h, &p, true)
            } else {
                Ok(())
            };
            let result = result.and_then(|()| {
                if note_use {
                    store.mark_used(&h)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot record token use");
            }
        });
    }

    /// Keeps a newly paid `token` as the origin's newest.
    pub(super) async fn remember_token(
        &self,
        origin: &Origin,
        token: &Token,
    ) -> Result<Arc<Held>, FetchError> {
        let list = self.origin_tokens(origin).await?;
        // Its buyer presents it first (see `BuyerHold`).
        if let Some(held) = list.iter().find(|t| t.hash == token.info.payment_hash) {
            held.for_buyer.store(true, Ordering::Release);
            return Ok(held.clone());
        }
        let held = Arc::new(Held::new(token, self.store.now())?);
        held.for_buyer.store(true, Ordering::Release);
        self.lock_tokens()
            .entry(origin.clone())
            .or_default()
            .insert(0, held.clone());
        Ok(held)
    }

    pub(super) fn lock_tokens(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Origin, Vec<Arc<Held>>>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn origin_lock(&self, origin: &Origin) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(origin.clone()).or_default().clone()
    }
}

pub(super) fn credential_header(token: &Token) -> Result<HeaderValue, FetchError> {
    let corrupt = |reason: String| FetchError::CorruptToken {
        payment_hash: token.info.payment_hash,
        reason,
    };
    let preimage = token
        .preimage()
        .ok_or_else(|| corrupt("a paid token without its preimage".into()))?;
    let text = match token.info.scheme {
        TokenScheme::L402 => {
            let macaroon = token
                .macaroon()
                .parse()
                .map_err(|e| corrupt(format!("its macaroon is invalid: {e}")))?;
            Credential::new(macaroon, preimage.clone()).to_string()
        }
        TokenScheme::Payment => {
            let challenge: PaymentChallenge = serde_json::from_str(token.macaroon())
                .map_err(|e| corrupt(format!("its Payment challenge is unreadable: {e}")))?;
            challenge.credential(preimage)
        }
    };
    sensitive_header(&text).ok_or_else(|| corrupt("its credential is not a valid header".into()))
}

/// A header value marked sensitive (kept out of logs and HTTP/2 tables).
pub(super) fn sensitive_header(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}
