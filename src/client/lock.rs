//! The origin lock across processes.
//!
//! The in-process lock makes concurrent fetches of one origin pay once; two
//! processes sharing one store (a shell agent running the CLI twice at
//! once, two MCP servers) need the same guarantee. Each origin gets a lock
//! file beside the store (`<store>.locks/<hash of the origin>`), held with
//! the OS's advisory file lock while a payment for that origin is decided
//! and made. The OS drops the lock when the process dies, so a crash never
//! leaves an origin locked.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::FetchError;
use super::task::blocking;
use crate::store::Origin;

/// Held while a payment for one origin is decided and made; dropping it
/// (closing the file) releases the lock.
#[derive(Debug)]
pub(super) struct OriginFileLock {
    _file: File,
}

/// Locks `origin` for this process, waiting while another process holds
/// it; `None` for an in-memory store (one process only).
pub(super) async fn lock_origin(
    store_location: &str,
    origin: &Origin,
) -> Result<Option<OriginFileLock>, FetchError> {
    if store_location == ":memory:" {
        return Ok(None);
    }
    let dir = PathBuf::from(format!("{store_location}.locks"));
    let path = dir.join(hex::encode(
        &Sha256::digest(origin.as_str().as_bytes())[..16],
    ));
    let locked = blocking(move || {
        let fail = |action: &'static str, source: std::io::Error| FetchError::Lock {
            action,
            path: path.clone(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| fail("create the directory of", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        file.lock().map_err(|e| fail("take", e))?;
        Ok::<_, FetchError>(OriginFileLock { _file: file })
    })
    .await??;
    Ok(Some(locked))
}
