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
