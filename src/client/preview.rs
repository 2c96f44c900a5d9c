//! `preview`: what fetching a URL would cost and what every check says;
//! nothing paid, nothing reserved.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use super::checks::{Cap, Evaluation};
use super::fetch::{Asking, Outgoing, parse_url};
use super::{BudgetView, Check, FetchError, L402Client, Preview, Refusal};
use crate::store::Origin;

impl L402Client {
    /// What fetching `url` with `method` would cost and what every check
    /// says. Sends the request without credential and without body; pays
    /// nothing and reserves nothing. Only safe methods (GET, HEAD, OPTIONS,
    /// TRACE) are sent: a preview must not act, and a POST or DELETE to an
    /// endpoint that does not charge would.
    pub async fn preview(&self, url: &str, method: Method) -> Result<Preview, FetchError> {
        self.preview_asking(url, method, self.approver.is_some())
            .await
    }

    /// [`preview`](Self::preview) for a caller who says whether someone
    /// can be asked to approve a payment above the threshold (a call with
    /// its own approver, see [`Call::set_approver`](super::Call::set_approver)).
    pub async fn preview_asking(
        &self,
        url: &str,
        method: Method,
        can_ask: bool,
    ) -> Result<Preview, FetchError> {
        if !method.is_safe() {
            return Err(FetchError::BadRequest(format!(
                "a preview sends the request to learn its price, and a {method} could change \
                 something on a server that does not charge, so only GET, HEAD, OPTIONS and TRACE \
                 are previewed; to bound what this {method} may cost, fetch it with a max cost \
                 (it pays only within that and the operator's limits)"
            )));
        }
        self.recover_once().await;
        let mut out = Outgoing {
            method,
            headers: HeaderMap::new(),
            body: None,
        };
        let (url, response) = self
            .follow(parse_url(url)?, &mut out, &mut Asking { client: self })
            .await?;
        let origin = Origin::from_url(&url).map_err(|e| FetchError::BadRequest(e.to_string()))?;
        let cached_token = self.has_token(&origin).await?;
        let budget: BudgetView = self.budget()?;
        let status = response.status().as_u16();
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(Preview {
                url: url.to_string(),
                status,
                payment_required: false,
                price_msat: None,
                description: None,
                checks: Vec::new(),
                would_pay: false,
                cached_token,
                budget,
                scheme: None,
                prefer_scheme: self.config.prefer_scheme,
            });
        }
        let Evaluation {
            mut checks,
            checked,
            scheme,
            price_msat,
        } = self.evaluate(&response, &url, Cap::new(self.config.max_cost_msat, None))?;
        checks.push(Check::pass(
            "rate",
            format!(
                "at most {} payments per minute (a preview uses none)",
                self.config.payments_per_minute
            ),
        ));
        // The price even when a check failed, if the invoice decodes.
        let price_msat = checked.as_ref().map(|c| c.amount_msat).or(price_msat);
        let description = checked.as_ref().and_then(|c| c.invoice.description());
        let mut would_pay = checks.iter().all(|c| c.ok);
        if let (Some(threshold), Some(price)) = (self.config.approve_above_msat, price_msat)
            && price > threshold
            && !can_ask
        {
            would_pay = false;
            checks.push(Check::fail(
                "approval",
                Refusal::ApprovalUnavailable {
                    asked_msat: price,
                    threshold_msat: threshold,
                },
            ));
        }
        Ok(Preview {
            url: url.to_string(),
            status,
            payment_required: true,
            price_msat,
            description,
            checks,
            would_pay,
            cached_token,
            budget,
            scheme,
            prefer_scheme: self.config.prefer_scheme,
        })
    }
}
