//! The checks every payment must pass before anything is reserved or
//! paid (DESIGN.md, "Before any payment"), shared by fetch and preview,
//! and the approval asked above the operator's threshold.

use std::time::SystemTime;

use reqwest::Url;
use reqwest::header::{self};

use super::{Call, Check, FetchError, L402Client, Msat, Refusal};
use crate::l402::{Challenge, Scheme};
use crate::lightning::Invoice;

/// The per-request cap in force: the operator's, or lower when the request
/// asked for less. A request asking for more is remembered, so that a
/// refusal can say the operator's cap stood.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cap {
    msat: u64,
    raise_refused_msat: Option<u64>,
}

impl Cap {
    pub(super) fn new(operator_msat: u64, requested_msat: Option<u64>) -> Self {
        Cap {
            msat: requested_msat.map_or(operator_msat, |r| r.min(operator_msat)),
            raise_refused_msat: requested_msat.filter(|r| *r > operator_msat),
        }
    }
}

/// A challenge that passed every check: what `pay` needs.
#[derive(Debug)]
pub(super) struct Checked {
    pub challenge: Challenge,
    pub invoice: Invoice,
    pub amount_msat: u64,
}

impl L402Client {
    /// Parses the 402's challenge and runs every check; the first failure
    /// is the refusal.
    pub(super) async fn check_challenge(
        &self,
        response: &reqwest::Response,
        url: &Url,
        cap: Cap,
        call: &Call,
    ) -> Result<Checked, FetchError> {
        let (checks, checked) = self.evaluate(response, url, cap)?;
        for c in &checks {
            tracing::debug!(
                "check {} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if let Some(refusal) = checks.into_iter().find_map(|c| c.refusal) {
            return Err(FetchError::Refused(refusal));
        }
        let checked = checked.ok_or_else(|| {
            FetchError::Refused(Refusal::InvalidChallenge("no usable challenge".into()))
        })?;
        self.approve(url, &checked, call).await?;
        Ok(checked)
    }

    /// Every check of DESIGN.md's "Before any payment" that needs no
    /// consent: each verdict, and the checked challenge when all passed.
    pub(super) fn evaluate(
        &self,
        response: &reqwest::Response,
        url: &Url,
        cap: Cap,
    ) -> Result<(Vec<Check>, Option<Checked>), FetchError> {
        let mut checks = Vec::new();
        let values: Vec<&str> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenge = match Challenge::parse_all(values) {
            Ok(mut all) => all.swap_remove(0),
            Err(e) => {
                checks.push(Check::fail(
                    "challenge",
                    Refusal::InvalidChallenge(e.to_string()),
                ));
                return Ok((checks, None));
            }
        };
        checks.push(Check::pass(
            "challenge",
            format!("{} challenge parsed", scheme_name(challenge.scheme)),
        ));

        let invoice: Invoice = match challenge.invoice.parse() {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check::fail(
                    "invoice",
                    Refusal::InvalidInvoice(e.to_string()),
                ));
                return Ok((checks, None));
            }
        };
        checks.push(Check::pass(
            "invoice",
            "BOLT11 invoice decodes and its signature is valid",
        ));

        let amount = invoice.amount_msat();
        match amount {
            Some(a) if a > 0 => checks.push(Check::pass("amount", format!("asks {}", Msat(a)))),
            _ => checks.push(Check::fail("amount", Refusal::Amountless)),
        }

        let now = SystemTime::now();
        if invoice.is_expired_at(now) {
            let ago = now
                .duration_since(invoice.expires_at())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            checks.push(Check::fail("expiry", Refusal::Expired { ago_secs: ago }));
        } else {
            let left = invoice
                .expires_at()
                .duration_since(now)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            checks.push(Check::pass("expiry", format!("expires in {left} s")));
        }

        let payer_net = self.payer.network();
        if !self.can_pay {
            checks.push(Check::fail(
                "payer",
                Refusal::NoPayer {
                    invoice: invoice.network(),
                },
            ));
        } else if invoice.network() == payer_net {
            checks.push(Check::pass(
                "network",
                format!("invoice is for {payer_net}, as the payer"),
            ));
        } else {
            checks.push(Check::fail(
                "network",
                Refusal::WrongNetwork {
                    invoice: invoice.network(),
                    payer: payer_net,
                },
            ));
        }

        match challenge.macaroon.identifier() {
            Ok(id) if id.payment_hash == invoice.payment_hash() => checks.push(Check::pass(
                "payment_hash",
                "the macaroon is bound to this invoice's payment hash",
            )),
            Ok(id) => checks.push(Check::fail(
                "payment_hash",
                Refusal::HashMismatch {
                    invoice: invoice.payment_hash(),
                    macaroon: id.payment_hash,
                },
            )),
            Err(e) => checks.push(Check::fail(
                "payment_hash",
                Refusal::InvalidChallenge(format!("the macaroon identifier is unusable: {e}")),
            )),
        }

        let asked = amount.unwrap_or(0);
        if asked <= cap.msat {
            checks.push(Check::pass(
                "cap",
                format!(
                    "{} is within the per-request cap of {}",
                    Msat(asked),
                    Msat(cap.msat)
                ),
            ));
        } else {
            checks.push(Check::fail(
                "cap",
                Refusal::OverCap {
                    url: url.to_string(),
                    asked_msat: asked,
                    cap_msat: cap.msat,
                    raise_refused_msat: cap.raise_refused_msat,
                },
            ));
        }

        let fee = self.config.fee_limit_msat;
        let budget = self.budget()?;
        if asked.saturating_add(fee) <= budget.left_msat {
            checks.push(Check::pass(
                "budget",
                format!(
                    "{} plus up to {} in fees fits the session's {} left",
                    Msat(asked),
                    Msat(fee),
                    Msat(budget.left_msat)
                ),
            ));
        } else if let Some(server) = budget
            .server
            .as_ref()
            .filter(|p| asked.saturating_add(fee) > p.left_msat)
        {
            // The server's pool is what binds.
            checks.push(Check::fail(
                "budget",
                Refusal::OverServerBudget {
                    url: url.to_string(),
                    asked_msat: asked,
                    fee_limit_msat: fee,
                    left_msat: server.left_msat,
                    budget_msat: server.budget_msat,
                },
            ));
        } else {
            checks.push(Check::fail(
                "budget",
                Refusal::OverBudget {
                    url: url.to_string(),
                    session: budget.session.clone(),
                    asked_msat: asked,
                    fee_limit_msat: fee,
                    left_msat: budget.left_msat,
                    budget_msat: budget.budget_msat,
                },
            ));
        }

        if let Some(threshold) = self.config.approve_above_msat
            && asked > threshold
        {
            checks.push(Check::pass(
                "approval",
                format!(
                    "{} is above the approval threshold of {}: a person will be asked",
                    Msat(asked),
                    Msat(threshold)
                ),
            ));
        }

        let all_ok = checks.iter().all(|c| c.ok);
        let checked = all_ok.then_some(Checked {
            challenge,
            invoice,
            amount_msat: asked,
        });
        Ok((checks, checked))
    }

    pub(super) async fn approve(
        &self,
        url: &Url,
        checked: &Checked,
        call: &Call,
    ) -> Result<(), FetchError> {
        let Some(threshold) = self.config.approve_above_msat else {
            return Ok(());
        };
        if checked.amount_msat <= threshold {
            return Ok(());
        }
        let unavailable = || {
            FetchError::Refused(Refusal::ApprovalUnavailable {
                asked_msat: checked.amount_msat,
                threshold_msat: threshold,
            })
        };
        let Some(approver) = &self.approver else {
            return Err(unavailable());
        };
        let request = super::ApprovalRequest {
            url: url.to_string(),
            amount_msat: checked.amount_msat,
            fee_limit_msat: self.config.fee_limit_msat,
            description: checked.invoice.description(),
            budget_left_msat: self.budget()?.left_msat,
            call: call.clone(),
        };
        match approver.approve(&request).await {
            super::Approval::Approved => Ok(()),
            super::Approval::Declined(reason) => Err(FetchError::Refused(Refusal::NotApproved {
                asked_msat: checked.amount_msat,
                reason,
            })),
            super::Approval::Unavailable => Err(unavailable()),
        }
    }
}

pub(super) fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::L402 => "L402",
        Scheme::Lsat => "LSAT",
    }
}
