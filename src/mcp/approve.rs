//! Asking the MCP client's user before a payment above the threshold,
//! through elicitation.

use std::time::Duration;

use async_trait::async_trait;
use rmcp::RoleServer;
use rmcp::service::{ElicitationError, Peer, ServiceError};
use serde::Deserialize;

use crate::client::{Approval, ApprovalRequest, Approver, Msat};

/// The one question: pay or not.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(description = "Approve a Lightning payment")]
struct PaymentApproval {
    /// True to pay this invoice; false to refuse it.
    approve: bool,
}

rmcp::elicit_safe!(PaymentApproval);

/// Asks through the session's peer (built only for clients that declared
/// form elicitation).
pub(crate) struct ElicitApprover {
    peer: Peer<RoleServer>,
    timeout: Duration,
}

impl std::fmt::Debug for ElicitApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElicitApprover")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ElicitApprover {
    pub fn new(peer: Peer<RoleServer>, timeout: Duration) -> Self {
        ElicitApprover { peer, timeout }
    }
}

/// The sentence the person reads.
fn question(r: &ApprovalRequest) -> String {
    let what = r
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!(" (the invoice says: {d:?})"))
        .unwrap_or_default();
    format!(
        "An AI agent wants to pay {} (plus up to {} in routing fees) over Lightning for {}{what}. \
         This session has {} left. Approve this payment?",
        Msat(r.amount_msat),
        Msat(r.fee_limit_msat),
        r.url,
        Msat(r.budget_left_msat),
    )
}

#[async_trait]
impl Approver for ElicitApprover {
    async fn approve(&self, request: &ApprovalRequest) -> Approval {
        // Stop asking if the request that needs the payment is cancelled.
        let cancelled = request.call.cancelled();
        let asked = self
            .peer
            .elicit_with_timeout::<PaymentApproval>(question(request), Some(self.timeout));
        let answer = tokio::select! {
            answer = asked => answer,
            () = cancelled => return Approval::Declined("the request was cancelled".into()),
        };
        match answer {
            Ok(Some(PaymentApproval { approve: true })) => Approval::Approved,
            Ok(_) => Approval::Declined("the user did not approve it".into()),
            Err(ElicitationError::UserDeclined) => {
                Approval::Declined("the user declined it".into())
            }
            Err(ElicitationError::UserCancelled) => {
                Approval::Declined("the user dismissed the approval request".into())
            }
            Err(ElicitationError::CapabilityNotSupported) => Approval::Unavailable,
            Err(ElicitationError::Service(ServiceError::Timeout { .. })) => Approval::Declined(
                format!("nobody answered within {} s", self.timeout.as_secs()),
            ),
            Err(e) => Approval::Declined(format!("the approval request failed: {e}")),
        }
    }
}

/// What [`UrlApprover`] says when it has opened an approval: the handler
/// turns the refusal into `input_required`, so the agent never reads it
/// unless the client can show no URL.
pub(crate) const ASKED_ON_THE_PAGE: &str =
    "the payment needs a person's approval on the approval page";

/// Asks through the approval page, for a client on 2026-07-28 that can
/// show a URL (one call: this approver lives as long as its call).
pub(crate) struct UrlApprover {
    desk: std::sync::Arc<super::approval_page::Desk>,
    /// The budget session the call pays from.
    scope: String,
    /// Digest of the call's arguments.
    args: [u8; 32],
    /// The approval this call continues (its `requestState`), if any.
    grant: Option<std::sync::Arc<super::approval_page::Pending>>,
    /// The approval this call opened, and its page's URL.
    opened: std::sync::Mutex<Option<(std::sync::Arc<super::approval_page::Pending>, String)>>,
}

impl std::fmt::Debug for UrlApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlApprover")
            .field("scope", &self.scope)
            .field("continues", &self.grant.is_some())
            .finish_non_exhaustive()
    }
}

impl UrlApprover {
    pub fn new(
        desk: std::sync::Arc<super::approval_page::Desk>,
        scope: String,
        args: [u8; 32],
        grant: Option<std::sync::Arc<super::approval_page::Pending>>,
    ) -> Self {
        UrlApprover {
            desk,
            scope,
            args,
            grant,
            opened: std::sync::Mutex::new(None),
        }
    }

    /// The approval this call opened, and its page's URL: the call answers
    /// `input_required` with it.
    pub fn opened(&self) -> Option<(std::sync::Arc<super::approval_page::Pending>, String)> {
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The message next to the page's URL.
    pub fn message(r: &super::approval_page::Pending) -> String {
        format!(
            "An AI agent wants to pay {} (plus up to {} in routing fees) over Lightning for {}. \
             Open the approval page to approve or decline this one payment.",
            Msat(r.amount_msat),
            Msat(r.fee_limit_msat),
            r.url
        )
    }
}

#[async_trait]
impl Approver for UrlApprover {
    async fn approve(&self, request: &ApprovalRequest) -> Approval {
        if let Some(grant) = &self.grant {
            if grant.covers(request) {
                return match grant.wait_and_take(request.call.cancelled()).await {
                    Ok(()) => Approval::Approved,
                    Err(why) => Approval::Declined(why),
                };
            }
            // The server asks for something else now (another amount or
            // payee): what the person saw is not what would be paid.
            grant.decline("the payment asked for changed after it was shown");
        }
        match self.desk.open(&self.scope, self.args, request).await {
            Ok(opened) => {
                *self.opened.lock().unwrap_or_else(|e| e.into_inner()) = Some(opened);
                Approval::Declined(ASKED_ON_THE_PAGE.into())
            }
            Err(e) => Approval::Declined(e),
        }
    }
}
