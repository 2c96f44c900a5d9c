//! Store work off the async threads.

use super::FetchError;

/// Runs blocking store work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FetchError::Task(format!("a store task: {e}")))
}
