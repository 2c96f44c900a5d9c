//! The spent-set in Redis, shared by gateway replicas.
//!
//! Replicas behind a load balancer share the root key (so each verifies
//! the others' tokens) and, for single-use routes, this set: a token
//! claimed on one replica is claimed on all of them. The trait's three
//! primitives map onto one Redis command each:
//!
//! - claim: `SET l402-mcp:spent:<payment hash hex> <nonce> NX EX <secs>`,
//!   atomic in Redis, so of any number of presentations on any number of
//!   replicas exactly one gets `OK`. The expiry is relative (Redis's own
//!   clock counts it down, so a skew between a replica's clock and Redis's
//!   does not shorten it) and covers the token's validity plus
//!   [`REDIS_CLOCK_SKEW_MARGIN_SECS`], for replicas whose clocks differ.
//! - release: `DEL` of the key, once (a DEL retried after a lost answer
//!   could delete a claim another replica made in between).
//! - prune: nothing; Redis drops expired keys itself.
//!
//! The value is a random nonce per claim. When a claim's answer is lost
//! with the connection (Redis restarted, the link dropped), the claim is
//! tried once more on the reconnected connection, and a "taken" answer then
//! is checked against the nonce: it may be our own first attempt, which
//! landed. When a claim's outcome stays unknown (no answer in time), the
//! gateway answers 503 ("not used") and, in the background, deletes the
//! key only if it holds that nonce, so that a claim that landed unseen
//! does not burn the holder's token.
//!
//! One multiplexed connection ([`redis::aio::ConnectionManager`]), not a
//! pool: Redis runs commands one at a time anyway, the multiplexer
//! pipelines every request's command onto one socket with no checkout to
//! wait for, and the manager reconnects by itself after Redis restarts.
//! Nothing waits on Redis unbounded: a connection attempt gives up after
//! [`DEFAULT_REDIS_CONNECT_TIMEOUT`], a command after
//! [`DEFAULT_REDIS_RESPONSE_TIMEOUT`], and a whole claim or release, its
//! reconnection and retry included, after
//! [`DEFAULT_REDIS_OPERATION_TIMEOUT`]. A failure is a [`SpentSetError`],
//! and the gateway then refuses the single-use request with 503 (fail
//! closed); reusable tokens never reach the spent-set.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisError};

use super::spent::{SpentSet, SpentSetError, SpentSetParseError};
use crate::lightning::PaymentHash;

/// Every key this set writes starts with this, then the payment hash in
/// hex. Fixed: payment hashes are random 32-byte values, so gateways with
/// different root keys can share a Redis database without a clash, and
/// an operator can find (or delete) the set with `SCAN MATCH l402-mcp:spent:*`.
pub const REDIS_KEY_PREFIX: &str = "l402-mcp:spent:";

/// How long one connection attempt may take. Redis is a neighbour on the
/// same network: a connect that takes longer means it is down.
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one command may wait for its answer. A `SET NX` takes
/// microseconds; a second means Redis is stalled, and the request is
/// better refused than held.
pub const DEFAULT_REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a whole claim or release may take, reconnection and the one
/// retry included: the bound on what a dead Redis adds to a request.
pub const DEFAULT_REDIS_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

/// Seconds a claim is kept beyond the token's own expiry, for replicas
/// whose clocks run behind the one that claimed (each checks
/// `valid_until` by its own clock). Five minutes covers an unsynchronised
/// clock; NTP keeps them within milliseconds.
pub const REDIS_CLOCK_SKEW_MARGIN_SECS: u64 = 300;

/// Reconnection attempts after the first one fails (with backoff, 100 ms
/// then 200 ms): enough for a Redis restart, and short under the
/// operation timeout.
const RECONNECT_RETRIES: usize = 2;

/// The longest expiry a claim is given (about 136 years): Redis refuses an
/// `EX` whose milliseconds overflow, and no token lives that long.
const MAX_TTL_SECS: u64 = 1 << 32;

/// The longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Deletes the key only when it holds the nonce: the cleanup of a claim
/// whose outcome was not seen.
const DELETE_IF_OURS: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// A Redis server's address: `redis://[user:password@]host[:port][/db]`,
/// or a unix socket `redis+unix:///path/to/redis.sock[?db=N]` (also
/// `unix://`). `rediss://` (TLS) is refused: this build carries no TLS for
/// Redis (reach it over a private network, a unix socket or a tunnel).
/// [`Display`](fmt::Display) and `Debug` never show the password.
#[derive(Clone)]
pub struct RedisUrl {
    info: redis::ConnectionInfo,
    shown: String,
}

impl FromStr for RedisUrl {
    type Err = SpentSetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let neither = || {
            SpentSetParseError(
                "the spent-set is neither `local` nor a Redis URL; write it as \
                 redis://host[:port][/db], such as redis://127.0.0.1:6379/0 (or \
                 redis+unix:///path/to/redis.sock)"
                    .into(),
            )
        };
        // `host:port` alone would parse as a URL whose scheme is the host.
        if !s.contains("://") {
            return Err(neither());
        }
        let url = url::Url::parse(s).map_err(|_| neither())?;
        let shown = redacted(&url);
        match url.scheme() {
            "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => {}
            "rediss" | "valkeys" => {
                return Err(SpentSetParseError(format!(
                    "the spent-set {shown} asks for TLS, which this build does not speak to \
                     Redis; reach Redis over a private network or a unix socket \
                     (redis+unix:///path/to/redis.sock), or through a TLS tunnel listening \
                     on 127.0.0.1"
                )));
            }
            other => {
                return Err(SpentSetParseError(format!(
                    "the spent-set {shown} has the scheme {other:?}; use `local`, or a Redis \
                     URL such as redis://127.0.0.1:6379/0 (or redis+unix:///path/to/redis.sock)"
                )));
            }
        }
        let info = s.into_connection_info().map_err(|e| {
            SpentSetParseError(format!(
                "the spent-set {shown} is not a usable Redis URL: {}; write it as \
                 redis://host[:port][/db]",
                describe(&e)
            ))
        })?;
        Ok(RedisUrl { info, shown })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.shown).finish()
    }
}

/// The URL with its password, if any, replaced by `***`.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A Redis error as a short phrase (Redis never puts the password in
/// one). The crate's `"<description> - <KindName>: <detail>"` loses its
/// Rust kind name.
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let text = e.to_string();
    match text.split_once(" - ") {
        Some((what, rest)) => match rest.split_once(": ") {
            Some((_, detail)) => format!("{what}: {detail}"),
            None => what.to_string(),
        },
        None => text,
    }
}

/// The spent-set in Redis. Clones share one connection.
#[derive(Clone)]
pub struct RedisSpentSet {
    url: RedisUrl,
    conn: ConnectionManager,
}

impl fmt::Debug for RedisSpentSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSpentSet")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisSpentSet {
    /// Connects to Redis at `url` and checks that it answers (`PING`: a
    /// server that wants a password it was not given says so here, not on
    /// the first paid request). Warns when Redis keeps no append-only file:
    /// a restart of such a Redis forgets every claim.
    pub async fn connect(url: &RedisUrl) -> Result<Self, SpentSetError> {
        let fail = |message: String| SpentSetError {
            store: url.to_string(),
            message,
        };
        let client = redis::Client::open(url.info.clone())
            .map_err(|e| fail(format!("the URL is not usable: {}", describe(&e))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let unreachable = |why: String| {
            fail(format!(
                "cannot reach Redis ({why}); start it, or check --spent-set \
                 (L402_GATEWAY_SPENT_SET)"
            ))
        };
        let mut conn = tokio::time::timeout(
            DEFAULT_REDIS_OPERATION_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| unreachable("no connection in time".into()))?
        .map_err(|e| {
            if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code().is_some() {
                fail(format!(
                    "Redis refused the connection ({}); check the user and password in \
                     the URL (redis://user:password@host:port)",
                    describe(&e)
                ))
            } else {
                unreachable(describe(&e))
            }
        })?;
        let pong = tokio::time::timeout(
            DEFAULT_REDIS_OPERATION_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| unreachable("no answer to PING in time".into()))?;
        if let Err(e) = pong {
            return Err(fail(format!(
                "Redis refused PING ({}); if it wants a password, give it in the URL \
                 (redis://:password@host:port, best through L402_GATEWAY_SPENT_SET)",
                describe(&e)
            )));
        }
        let set = RedisSpentSet {
            url: url.clone(),
            conn,
        };
        set.check_persistence().await;
        Ok(set)
    }

    /// Warns when Redis would forget the claims on a restart. Best effort:
    /// a server that hides `INFO` (some hosted ones) is not refused.
    async fn check_persistence(&self) {
        let mut conn = self.conn.clone();
        let info = tokio::time::timeout(
            DEFAULT_REDIS_OPERATION_TIMEOUT,
            redis::cmd("INFO")
                .arg("persistence")
                .query_async::<String>(&mut conn),
        )
        .await;
        let Ok(Ok(info)) = info else {
            return;
        };
        if info.lines().any(|l| l.trim() == "aof_enabled:0") {
            tracing::warn!(
                spent_set = %self.url,
                "Redis keeps no append-only file (appendonly no): if it restarts, every \
                 single-use token claimed before can be used once more until it expires; \
                 run it with `appendonly yes` (see the README)"
            );
        }
    }

    fn fail(&self, message: String) -> SpentSetError {
        SpentSetError {
            store: self.url.to_string(),
            message,
        }
    }

    /// One `SET NX EX`: `true` when it set the key.
    async fn set_nx(
        conn: &mut ConnectionManager,
        key: &str,
        nonce: &str,
        ttl: u64,
    ) -> Result<bool, RedisError> {
        let answer: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(nonce)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(conn)
            .await?;
        Ok(answer.is_some())
    }

    /// The claim, retried once when the connection dropped under it.
    async fn claim_once_or_twice(
        &self,
        key: &str,
        nonce: &str,
        ttl: u64,
    ) -> Result<bool, RedisError> {
        let mut conn = self.conn.clone();
        match Self::set_nx(&mut conn, key, nonce, ttl).await {
            Err(e) if e.is_connection_dropped() || e.is_unrecoverable_error() => {
                tracing::debug!(error = %e, "the Redis connection dropped; claiming again");
            }
            done => return done,
        }
        if Self::set_nx(&mut conn, key, nonce, ttl).await? {
            return Ok(true);
        }
        // Taken: perhaps by our own first attempt, whose answer was lost.
        let holder: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        Ok(holder.as_deref() == Some(nonce))
    }

    /// Deletes `key` if it still holds `nonce`, in the background.
    fn forget_unseen_claim(&self, key: String, nonce: String) {
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let mut undo = redis::cmd("EVAL");
            undo.arg(DELETE_IF_OURS).arg(1).arg(&key).arg(&nonce);
            let undo = undo.query_async::<i64>(&mut conn);
            match tokio::time::timeout(DEFAULT_REDIS_OPERATION_TIMEOUT, undo).await {
                Ok(Ok(n)) => tracing::debug!(deleted = n, "an unseen claim was cleaned up"),
                Ok(Err(e)) => tracing::debug!(error = %e, "cannot clean up an unseen claim"),
                Err(_) => tracing::debug!("cannot clean up an unseen claim in time"),
            }
        });
    }
}

/// The key of a token's claim.
fn key(token: &PaymentHash) -> String {
    format!("{REDIS_KEY_PREFIX}{}", token.to_hex())
}

/// Seconds from now until `forget_after`, plus the skew margin; at least 1,
/// at most [`MAX_TTL_SECS`].
fn ttl_secs(forget_after: u64, now: u64) -> u64 {
    forget_after
        .saturating_sub(now)
        .saturating_add(REDIS_CLOCK_SKEW_MARGIN_SECS)
        .clamp(1, MAX_TTL_SECS)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl SpentSet for RedisSpentSet {
    async fn claim(&self, token: &PaymentHash, forget_after: u64) -> Result<bool, SpentSetError> {
        let key = key(token);
        let nonce = {
            let mut b = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
            hex::encode(b)
        };
        let ttl = ttl_secs(forget_after, unix_now());
        let attempt = self.claim_once_or_twice(&key, &nonce, ttl);
        match tokio::time::timeout(DEFAULT_REDIS_OPERATION_TIMEOUT, attempt).await {
            Ok(Ok(claimed)) => Ok(claimed),
            Ok(Err(e)) => {
                // A refused connection sent nothing; anything else may have
                // landed unseen.
                if !e.is_connection_refusal() {
                    self.forget_unseen_claim(key, nonce);
                }
                Err(self.fail(format!("the claim failed: {}", describe(&e))))
            }
            Err(_) => {
                self.forget_unseen_claim(key, nonce);
                Err(self.fail(format!(
                    "the claim got no answer within {} s",
                    DEFAULT_REDIS_OPERATION_TIMEOUT.as_secs()
                )))
            }
        }
    }

    async fn release(&self, token: &PaymentHash) -> Result<(), SpentSetError> {
        let mut conn = self.conn.clone();
        let mut del = redis::cmd("DEL");
        del.arg(key(token));
        let del = del.query_async::<i64>(&mut conn);
        match tokio::time::timeout(DEFAULT_REDIS_OPERATION_TIMEOUT, del).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.fail(format!("the release failed: {}", describe(&e)))),
            Err(_) => Err(self.fail(format!(
                "the release got no answer within {} s",
                DEFAULT_REDIS_OPERATION_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn prune(&self, _now: u64) -> Result<(), SpentSetError> {
        // Every key carries its expiry; Redis drops it then.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_parse_and_never_show_the_password() {
        let url: RedisUrl = "redis://:s3cret@127.0.0.1:6380/2".parse().unwrap();
        assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.info.redis_settings().db(), 2);
        assert_eq!(url.info.redis_settings().password(), Some("s3cret"));
        let url: RedisUrl = "redis://user:pw@redis.internal".parse().unwrap();
        assert_eq!(url.to_string(), "redis://user:***@redis.internal");
        let url: RedisUrl = "redis://127.0.0.1:6379".parse().unwrap();
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379");
        assert_eq!(url.info.redis_settings().db(), 0);
        "redis+unix:///run/redis/redis.sock"
            .parse::<RedisUrl>()
            .unwrap();
    }

    #[test]
    fn unusable_redis_urls_are_sentences_without_the_password() {
        for (text, want) in [
            ("rediss://:pw@h:6380", "asks for TLS"),
            ("http://:pw@h:6380", "has the scheme \"http\""),
            ("redis://:pw@h:6380/x", "is not a usable Redis URL"),
            ("redis://:pw@0.0.0.0:6380", "is not a usable Redis URL"),
            ("127.0.0.1:6379", "neither `local` nor a Redis URL"),
            ("localhost:6379", "neither `local` nor a Redis URL"),
            ("not a url", "neither `local` nor a Redis URL"),
            ("redis://", "is not a usable Redis URL"),
        ] {
            let err = text.parse::<RedisUrl>().unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains(":pw@"), "{text}: {err}");
        }
    }

    #[test]
    fn a_claim_outlives_the_token_by_the_skew_margin() {
        assert_eq!(ttl_secs(1_000 + 86_400, 1_000), 86_400 + 300);
        // Already past (a clock ahead): still the margin, never 0 or negative.
        assert_eq!(ttl_secs(1_000, 5_000), 300);
        assert_eq!(ttl_secs(u64::MAX, 0), MAX_TTL_SECS);
        assert_eq!(
            key(&PaymentHash([0xab; 32])),
            format!("l402-mcp:spent:{}", "ab".repeat(32))
        );
    }
}
