//! The kill switch as the dashboard sees it: the standing pause, its
//! history, and the switch itself, through the client's service layer.
//!
//! TEMPORARY: the kill switch core lands on main (`Ledger::pause` and
//! friends); until it is merged, the switch here answers that there is
//! none.

use crate::client::{FetchError, L402Client, Overview};

/// The standing pause: no agent may pay while it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// Why, as the person who paused said.
    pub reason: Option<String>,
    /// Who paused.
    pub by: String,
    /// Since when, Unix seconds.
    pub since: u64,
}

/// One pause, lifted or standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseEvent {
    /// When it was paused.
    pub paused_at: u64,
    /// Who paused.
    pub paused_by: String,
    /// Why.
    pub reason: Option<String>,
    /// When it was lifted, if it was.
    pub resumed_at: Option<u64>,
    /// Who lifted it.
    pub resumed_by: Option<String>,
}

pub(crate) async fn paused(_client: &L402Client) -> Result<Option<Pause>, FetchError> {
    Ok(None)
}

pub(crate) async fn pause(
    _client: &L402Client,
    _reason: Option<String>,
    _by: String,
) -> Result<Pause, FetchError> {
    Err(FetchError::BadRequest(
        "this build has no kill switch yet".into(),
    ))
}

pub(crate) async fn resume(_client: &L402Client, _by: String) -> Result<Option<Pause>, FetchError> {
    Err(FetchError::BadRequest(
        "this build has no kill switch yet".into(),
    ))
}

pub(crate) async fn history(
    _overview: &Overview,
    _limit: usize,
) -> Result<Vec<PauseEvent>, FetchError> {
    Ok(Vec::new())
}
