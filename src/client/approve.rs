//! Asking a person before a payment above the operator's threshold.

use async_trait::async_trait;

/// What the approver is asked.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// The URL whose 402 asks for payment.
    pub url: String,
    /// The invoice amount, msat.
    pub amount_msat: u64,
    /// The fee limit, msat.
    pub fee_limit_msat: u64,
    /// The invoice's description, if any.
    pub description: Option<String>,
    /// The payee's node id, hex (from the invoice).
    pub payee: String,
    /// What the session has left, msat.
    pub budget_left_msat: u64,
    /// The fetch that needs the payment: an approver stops asking when it
    /// is cancelled.
    pub call: super::Call,
}

/// The approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Pay.
    Approved,
    /// Do not pay; the reason is shown to the agent.
    Declined(String),
    /// Nobody can be asked (the MCP client cannot elicit, no terminal).
    Unavailable,
}

/// Asks whether a payment above the threshold may go ahead.
#[async_trait]
pub trait Approver: Send + Sync + std::fmt::Debug {
    /// Asks; must not pay or reserve anything itself.
    async fn approve(&self, request: &ApprovalRequest) -> Approval;
}
