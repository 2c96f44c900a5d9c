//! Why a store operation failed.

use crate::lightning::PaymentHash;

use super::TokenStatus;

/// Why the token store could not do what was asked.
///
/// Each message is a sentence that names the store or the token, so it can
/// go to an operator as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory that should hold the store could not be created.
    #[error("cannot create the directory {dir} for the token store: {source}")]
    CreateDir {
        /// The directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store file could not be created, or its permissions not tightened.
    #[error("cannot open the token store at {path}: {source}")]
    File {
        /// The store's path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused to open or set up the store.
    #[error("cannot open the token store at {path}: {source}")]
    Open {
        /// The store's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store was written by a newer version of this program; nothing in
    /// it was changed.
    #[error(
        "the token store at {path} has schema version {found}, but this program knows only up \
         to {supported}: it was written by a newer l402-mcp; upgrade, or use another store"
    )]
    NewerSchema {
        /// The store's path.
        path: String,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this program knows.
        supported: i64,
    },
    /// A schema migration failed; the store was left at its old version.
    #[error("cannot upgrade the token store at {path} to schema version {version}: {source}")]
    Migrate {
        /// The store's path.
        path: String,
        /// The version the failed migration leads to.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another process held the store's write lock for longer than the busy
    /// timeout.
    #[error("the token store at {path} stayed locked by another process for too long; try again")]
    Busy {
        /// The store's path.
        path: String,
    },
    /// A query failed.
    #[error("token store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// A token for this payment hash is already stored: its invoice is being
    /// or has been paid, and must not be paid again.
    #[error("a token for payment hash {0} is already stored; its invoice must not be paid twice")]
    DuplicatePaymentHash(PaymentHash),
    /// No token has this payment hash.
    #[error("no token with payment hash {0} in the token store")]
    TokenNotFound(PaymentHash),
    /// The token is in a state from which the asked change is not allowed.
    #[error("token {hash} is {from}; it cannot be marked {to}")]
    InvalidTransition {
        /// The token's payment hash.
        hash: PaymentHash,
        /// Its current status.
        from: TokenStatus,
        /// The status asked for.
        to: TokenStatus,
    },
    /// A token was to be marked paid with a preimage that is not the
    /// payment hash's.
    #[error(
        "the preimage given for payment hash {0} does not hash to it; the token was not changed"
    )]
    PreimageMismatch(PaymentHash),
    /// An amount does not fit the store's signed 64-bit integers.
    #[error("{what} of {msat} msat is too large to store (at most {max} msat)", max = i64::MAX)]
    AmountTooLarge {
        /// Which amount.
        what: &'static str,
        /// The amount.
        msat: u64,
    },
    /// A value that must not be empty was.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A row holds a value this program cannot read.
    #[error("the token store holds an invalid {what}: {detail}")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    /// True when the error is SQLite's "database is busy/locked".
    pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
