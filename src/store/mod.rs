//! The token store: one SQLite file that holds what the L402 client must not
//! forget across calls, processes and crashes.
//!
//! - **tokens**: each L402 token bought, by origin and payment hash. A token
//!   is written `pending` *before* its invoice is paid and `paid` (with its
//!   preimage) after, so a crash mid-payment leaves a record that says "this
//!   hash may have been paid: ask the backend, never pay it again". The
//!   payment hash is unique, which makes [`Store::insert_pending`] the
//!   cross-process guard against paying one invoice twice.
//! - **payments**: every payment attempt, the spend log that budgets and
//!   summaries are computed from (see [`crate::budget`]).
//! - **sessions**: named budgets that hold across processes.
//!
//! Many processes may share one file: it runs in WAL mode with a busy
//! timeout, and every read-check-write is one `BEGIN IMMEDIATE`
//! transaction, so the check and the write are atomic in SQLite itself. The
//! file is created mode 0600 (it holds preimages and macaroons, which are
//! credentials). The API is synchronous; a [`Store`] is `Send + Sync`, so
//! share it in an `Arc` and call it from `spawn_blocking`.

mod clock;
mod error;
mod origin;
mod payments;
mod schema;
mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use origin::{Origin, OriginError};
pub(crate) use payments::{PAYMENT_COLUMNS, query_payments};
pub use payments::{PaymentRecord, PaymentState};
pub use schema::SCHEMA_VERSION;
pub use tokens::{NewToken, Token, TokenInfo, TokenPaths, TokenScheme, TokenStatus};

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

/// How long a call waits for another process's write lock before giving up
/// with [`StoreError::Busy`]. Writes here take milliseconds; five seconds
/// rides out a burst of concurrent payments without hanging a tool call.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The token store. Cheap to share: wrap it in an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    /// The path, for messages (`:memory:` for an in-memory store).
    location: String,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its directory, mode 0700)
    /// if needed, and bringing its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// [`Store::open`] with the timestamps taken from `clock`.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();

        // The file exists, mode 0600, before SQLite writes a byte to it.
        secure_file(path, &location)?;

        let open_err = |source| StoreError::Open {
            path: location.clone(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(open_err)?;
        // Switching a fresh file to WAL needs an exclusive lock, and SQLite
        // answers "busy" at once, without its busy handler, when another
        // connection is opening the same file: retry until the timeout.
        let mode: String =
            retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))
                .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %location, mode, "token store is not in WAL mode");
        }
        configure(&conn).map_err(open_err)?;
        schema::migrate(&mut conn, &location)?;

        // SQLite gives its -wal and -shm files the database's mode; tighten
        // any left looser by an older program.
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            tighten_if_exists(Path::new(&side), &location)?;
        }

        Ok(Store {
            conn: Mutex::new(conn),
            location,
            clock,
        })
    }

    /// A store in memory, gone when dropped. For tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with_clock(Arc::new(SystemClock))
    }

    /// [`Store::open_in_memory`] with the timestamps taken from `clock`.
    pub fn open_in_memory_with_clock(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let location = ":memory:".to_string();
        let open_err = |source| StoreError::Open {
            path: location.clone(),
            source,
        };
        let mut conn = Connection::open_in_memory().map_err(open_err)?;
        configure(&conn).map_err(open_err)?;
        schema::migrate(&mut conn, &location)?;
        Ok(Store {
            conn: Mutex::new(conn),
            location,
            clock,
        })
    }

    /// Where the store lives, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The store's idea of now, in Unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }

    /// The connection. A panic while it was held rolled back any open
    /// transaction (a `Transaction` rolls back on drop), so a poisoned lock
    /// still guards a consistent connection.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` outside any explicit transaction: each statement reads one
    /// consistent snapshot (WAL readers never wait for writers).
    pub(crate) fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E> {
        f(&self.conn())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
    /// first, so whatever `f` reads cannot change before it writes, in this
    /// process or any other. Commits if `f` returns `Ok`, rolls back if not.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>, u64) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| E::from(self.busy(e.into())))?;
        // Read under the lock, so timestamps follow the order of commits.
        let now = self.now();
        let out = f(&tx, now)?;
        tx.commit().map_err(|e| E::from(self.busy(e.into())))?;
        Ok(out)
    }

    /// Turns SQLite's "busy" into [`StoreError::Busy`], with the path.
    fn busy(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Query(q) if StoreError::is_busy(&q) => StoreError::Busy {
                path: self.location.clone(),
            },
            other => other,
        }
    }
}

/// Runs `f` again while SQLite says "busy", for up to
/// [`DEFAULT_BUSY_TIMEOUT`], for the few statements SQLite does not retry
/// itself.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + DEFAULT_BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(e) if StoreError::is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Per-connection settings.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: a committed reservation or pending token survives power loss,
    // not only a process crash; these writes are few and small.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// A checked conversion of an amount to SQLite's INTEGER.
pub(crate) fn msat_to_sql(what: &'static str, msat: u64) -> Result<i64, StoreError> {
    i64::try_from(msat).map_err(|_| StoreError::AmountTooLarge { what, msat })
}

/// An amount read back; the schema's CHECKs keep it non-negative.
pub(crate) fn msat_from_sql(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("negative amount {v}"),
    })
}

/// A timestamp, for SQLite (saturating: no clock reads 2^63 seconds).
pub(crate) fn time_to_sql(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A timestamp read back (a negative one, which this program never writes,
/// reads as 0).
pub(crate) fn time_from_sql(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Creates the store's directory (0700) and file (0600) if missing, and
/// tightens an existing file that is readable by others.
fn secure_file(path: &Path, location: &str) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                dir: dir.display().to_string(),
                source,
            })?;
    }

    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // Opening never truncates: an existing store is left as it is.
    drop(options.open(path).map_err(|source| StoreError::File {
        path: location.to_string(),
        source,
    })?);
    tighten_if_exists(path, location)
}

/// Sets `path` to mode 0600 if it exists and group or others have any access.
#[cfg(unix)]
fn tighten_if_exists(path: &Path, location: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;

    let file_err = |source| StoreError::File {
        path: location.to_string(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_err(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "token store file was readable by others; setting it to 0600"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(file_err)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_if_exists(_path: &Path, _location: &str) -> Result<(), StoreError> {
    Ok(())
}
