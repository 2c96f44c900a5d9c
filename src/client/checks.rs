//! The checks every payment must pass before anything is reserved or
//! paid (DESIGN.md, "Before any payment"), shared by fetch and preview,
//! and the approval asked above the operator's threshold.

use std::time::SystemTime;

use reqwest::Url;
use reqwest::header::{self};

use super::{Call, Check, FetchError, L402Client, Msat, PreferScheme, Refusal};
use crate::l402::payment::{ChargeRequest, PAYMENT_SCHEME, PaymentChallenge, PaymentError};
use crate::l402::{Challenge, ChallengeError, Credential, Scheme, parse_payment_challenges};
use crate::lightning::{Invoice, PaymentHash, Preimage};
use crate::store::{Origin, TokenScheme};

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

/// One challenge of a 402 that this client can pay.
#[derive(Debug, Clone)]
pub(super) enum Offer {
    /// An L402 (or LSAT) challenge: a macaroon and an invoice.
    L402(Challenge),
    /// A `Payment` challenge, `method="lightning"`, `intent="charge"`,
    /// with its request decoded.
    Payment {
        challenge: PaymentChallenge,
        request: ChargeRequest,
    },
}

impl Offer {
    /// The scheme a credential for it answers.
    pub(super) fn scheme(&self) -> TokenScheme {
        match self {
            Offer::L402(_) => TokenScheme::L402,
            Offer::Payment { .. } => TokenScheme::Payment,
        }
    }

    /// The scheme as the server named it: `L402`, `LSAT` or `Payment`.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Offer::L402(c) => scheme_name(c.scheme),
            Offer::Payment { .. } => PAYMENT_SCHEME,
        }
    }

    /// The BOLT11 invoice it asks to be paid.
    fn invoice_text(&self) -> &str {
        match self {
            Offer::L402(c) => &c.invoice,
            Offer::Payment { request, .. } => &request.method_details.invoice,
        }
    }

    /// The payment hash the invoice must have (the macaroon's; the
    /// request's `paymentHash`, when it says), if it can be read.
    fn bound_hash(&self) -> Option<PaymentHash> {
        match self {
            Offer::L402(c) => c.macaroon.identifier().ok().map(|id| id.payment_hash),
            Offer::Payment { request, .. } => request
                .method_details
                .payment_hash
                .as_deref()
                .and_then(|h| h.parse().ok()),
        }
    }

    /// The `Authorization` value answering it with `preimage`.
    pub(super) fn credential(&self, preimage: &Preimage) -> String {
        match self {
            Offer::L402(c) => Credential::new(c.macaroon.clone(), preimage.clone()).to_string(),
            Offer::Payment { challenge, .. } => challenge.credential(preimage),
        }
    }
}

/// A challenge that passed every check: what `pay` needs.
#[derive(Debug)]
pub(super) struct Checked {
    pub offer: Offer,
    pub invoice: Invoice,
    pub amount_msat: u64,
    /// The 402's challenges of the other scheme for the same invoice: if
    /// the server refuses the credential paid for `offer`, one of these
    /// costs nothing more to present.
    pub same_invoice: Vec<Offer>,
    /// The 402 offered the other scheme too, for another invoice.
    pub other_invoice: bool,
}

/// Every check's verdict on a 402, and what it offers.
pub(super) struct Evaluation {
    pub checks: Vec<Check>,
    /// The challenge to pay, when every check passed.
    pub checked: Option<Checked>,
    /// The scheme that would be paid, when a payable challenge is there.
    pub scheme: Option<TokenScheme>,
    /// The invoice's amount, when it decodes.
    pub price_msat: Option<u64>,
}

/// What a 402 offers, read from all its `WWW-Authenticate` values.
struct Offers {
    l402: Result<Vec<Challenge>, ChallengeError>,
    /// Every `Payment` challenge, any method or intent.
    payment: Vec<Result<PaymentChallenge, PaymentError>>,
}

impl Offers {
    fn parse(response: &reqwest::Response) -> Offers {
        let values: Vec<&str> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Offers {
            l402: Challenge::parse_all(values.iter().copied()),
            payment: parse_payment_challenges(values.iter().copied()),
        }
    }

    /// The payable `Payment` challenges, in order, requests decoded (one
    /// whose request does not decode is not payable).
    fn payable_payment(&self) -> Vec<Offer> {
        self.payment
            .iter()
            .filter_map(|c| c.as_ref().ok())
            .filter(|c| c.is_lightning_charge())
            .filter_map(|c| {
                c.charge().ok().map(|request| Offer::Payment {
                    challenge: c.clone(),
                    request,
                })
            })
            .collect()
    }

    /// The challenge to pay: the preferred scheme's first, unless this
    /// origin refused that scheme after it was paid (then the other's
    /// first, when offered); else whichever is offered. Else the refusal
    /// naming what was offered.
    fn choose(
        &self,
        prefer: PreferScheme,
        refused_here: Option<TokenScheme>,
    ) -> Result<(Offer, Vec<Offer>), Refusal> {
        let l402: Vec<Offer> = match &self.l402 {
            Ok(all) => all.iter().cloned().map(Offer::L402).collect(),
            Err(_) => Vec::new(),
        };
        let payment = self.payable_payment();
        let mut order = match prefer {
            PreferScheme::L402 => [TokenScheme::L402, TokenScheme::Payment],
            PreferScheme::Payment => [TokenScheme::Payment, TokenScheme::L402],
        };
        if refused_here == Some(order[0]) {
            order.reverse();
        }
        let of = |s: TokenScheme| match s {
            TokenScheme::L402 => &l402,
            TokenScheme::Payment => &payment,
        };
        if let Some(first) = order.iter().find_map(|s| of(*s).first()) {
            let others = order
                .iter()
                .filter(|s| **s != first.scheme())
                .flat_map(|s| of(*s).iter().cloned())
                .collect();
            return Ok((first.clone(), others));
        }
        if self.payment.is_empty() {
            let e = match &self.l402 {
                Err(e) => e.to_string(),
                Ok(_) => "no challenge".into(),
            };
            return Err(Refusal::InvalidChallenge(e));
        }
        let mut offered: Vec<String> = Vec::new();
        match &self.l402 {
            Err(ChallengeError::NoL402Challenge) | Ok(_) => {}
            Err(e) => offered.push(format!("an unusable L402 challenge: {e}")),
        }
        for c in &self.payment {
            offered.push(match c {
                Ok(c) if c.is_lightning_charge() => match c.charge() {
                    Ok(_) => "a Payment challenge".into(),
                    Err(e) => format!("a Payment challenge whose {e}"),
                },
                Ok(c) => format!("Payment {}", c.kind()),
                Err(e) => format!("an unusable Payment challenge ({e})"),
            });
        }
        Err(Refusal::UnsupportedScheme(offered.join("; ")))
    }
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
        let Evaluation {
            checks, checked, ..
        } = self.evaluate(response, url, cap)?;
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
    ) -> Result<Evaluation, FetchError> {
        let mut checks = vec![self.pause_check()?];
        let offers = Offers::parse(response);
        let done = |checks, scheme, price_msat| Evaluation {
            checks,
            checked: None,
            scheme,
            price_msat,
        };
        let refused_here = match Origin::from_url(url) {
            Ok(origin) => self.store.refused_scheme(&origin)?,
            Err(_) => None,
        };
        let (offer, others) = match offers.choose(self.config.prefer_scheme, refused_here) {
            Ok(chosen) => chosen,
            Err(refusal) => {
                checks.push(Check::fail("challenge", refusal));
                return Ok(done(checks, None, None));
            }
        };

        let invoice: Invoice = match offer.invoice_text().parse() {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check::pass(
                    "challenge",
                    format!("{} challenge parsed", offer.name()),
                ));
                checks.push(Check::fail(
                    "invoice",
                    Refusal::InvalidInvoice(e.to_string()),
                ));
                return Ok(done(checks, Some(offer.scheme()), None));
            }
        };
        let hash = invoice.payment_hash();
        let (same_invoice, other_invoice): (Vec<Offer>, Vec<Offer>) =
            others.into_iter().partition(|o| {
                o.invoice_text()
                    .parse::<Invoice>()
                    .is_ok_and(|i| i.payment_hash() == hash)
            });
        let why = match (refused_here, self.config.prefer_scheme) {
            (Some(r), _)
                if r != offer.scheme()
                    && (!same_invoice.is_empty() || !other_invoice.is_empty()) =>
            {
                format!(" (this server refused a paid {r} credential before)")
            }
            (_, p) if !same_invoice.is_empty() || !other_invoice.is_empty() => {
                format!(" (preferred scheme {p})")
            }
            _ => String::new(),
        };
        let also = match (same_invoice.first(), other_invoice.first()) {
            (Some(o), _) => format!("; {} is offered too, for the same invoice", o.name()),
            (None, Some(o)) => format!(
                "; {} is offered too, for another invoice (only one is paid)",
                o.name()
            ),
            _ => String::new(),
        };
        checks.push(Check::pass(
            "challenge",
            format!("{} challenge parsed{why}{also}", offer.name()),
        ));
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

        match &offer {
            Offer::L402(challenge) => match challenge.macaroon.identifier() {
                Ok(id) if id.payment_hash == hash => checks.push(Check::pass(
                    "payment_hash",
                    "the macaroon is bound to this invoice's payment hash",
                )),
                Ok(id) => checks.push(Check::fail(
                    "payment_hash",
                    Refusal::HashMismatch {
                        invoice: hash,
                        macaroon: id.payment_hash,
                    },
                )),
                Err(e) => checks.push(Check::fail(
                    "payment_hash",
                    Refusal::InvalidChallenge(format!("the macaroon identifier is unusable: {e}")),
                )),
            },
            Offer::Payment { challenge, request } => {
                checks.push(self.request_check(request, &invoice, offer.bound_hash()));
                checks.push(self.challenge_expiry_check(challenge, now));
            }
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
        let scheme = offer.scheme();
        let price_msat = invoice.amount_msat();
        let checked = all_ok.then_some(Checked {
            offer,
            invoice,
            amount_msat: asked,
            same_invoice,
            other_invoice: !other_invoice.is_empty(),
        });
        Ok(Evaluation {
            checks,
            checked,
            scheme: Some(scheme),
            price_msat,
        })
    }

    /// A `Payment` request's fields against its invoice: currency `sat`,
    /// the amount in sats equal to the invoice's, `paymentHash` (when
    /// given) the invoice's, `network` (when it names one) the invoice's.
    fn request_check(
        &self,
        request: &ChargeRequest,
        invoice: &Invoice,
        bound: Option<PaymentHash>,
    ) -> Check {
        let mismatch = |why: String| Check::fail("request", Refusal::RequestMismatch(why));
        if request.currency != "sat" {
            return mismatch(format!(
                "its currency is {:?}, not \"sat\"",
                request.currency
            ));
        }
        let sats = match request.amount_sats() {
            Ok(s) => s,
            Err(e) => return mismatch(e),
        };
        match invoice.amount_msat() {
            Some(msat) if msat == sats * 1000 => {}
            Some(msat) => {
                return mismatch(format!(
                    "it asks {} but the invoice is for {}",
                    Msat(sats * 1000),
                    Msat(msat)
                ));
            }
            // Refused by the amount check already.
            None => {}
        }
        match (&request.method_details.payment_hash, bound) {
            (None, _) => {}
            (Some(_), Some(h)) if h == invoice.payment_hash() => {}
            (Some(given), _) => {
                return mismatch(format!(
                    "its paymentHash {given} is not the invoice's {}",
                    invoice.payment_hash()
                ));
            }
        }
        if let Some(net) = &request.method_details.network
            && let Ok(named) = net.parse::<crate::lightning::Network>()
            && named != invoice.network()
        {
            return mismatch(format!(
                "it names network {net} but the invoice is for {}",
                invoice.network()
            ));
        }
        Check::pass(
            "request",
            format!(
                "the Payment request asks {} in sat, as its invoice, for the invoice's payment hash",
                Msat(sats * 1000)
            ),
        )
    }

    /// A `Payment` challenge's `expires`: not past, and not before a
    /// payment started now could complete (the payment timeout), since a
    /// credential presented after it is refused and its payment lost.
    fn challenge_expiry_check(&self, challenge: &PaymentChallenge, now: SystemTime) -> Check {
        let expires = match challenge.expires_at() {
            Ok(None) => {
                return Check::pass("challenge_expiry", "the Payment challenge does not expire");
            }
            Ok(Some(t)) => t,
            Err(e) => {
                return Check::fail("challenge_expiry", Refusal::InvalidChallenge(e.to_string()));
            }
        };
        let margin = self.config.payment_timeout;
        match expires.duration_since(now) {
            Err(past) => Check::fail(
                "challenge_expiry",
                Refusal::ChallengeExpiry(format!("expired {} s ago", past.duration().as_secs())),
            ),
            Ok(left) if left < margin => Check::fail(
                "challenge_expiry",
                Refusal::ChallengeExpiry(format!(
                    "expires in {} s, sooner than a payment may take (the payment timeout is {} s), \
                     and a credential presented after it is refused",
                    left.as_secs(),
                    margin.as_secs()
                )),
            ),
            Ok(left) => Check::pass(
                "challenge_expiry",
                format!("the Payment challenge expires in {} s", left.as_secs()),
            ),
        }
    }

    /// The kill switch, as a check: nothing is paid (nor anyone asked to
    /// approve a payment) while the operator's pause stands. The ledger
    /// checks again in the transaction that reserves, which is what holds
    /// against a pause committed after this read.
    fn pause_check(&self) -> Result<Check, FetchError> {
        Ok(match self.ledger.paused()? {
            None => Check::pass("pause", "payments are not paused"),
            Some(pause) => Check::fail("pause", Refusal::Paused(pause)),
        })
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
        let Some(approver) = call.approver().or_else(|| self.approver.clone()) else {
            return Err(unavailable());
        };
        let request = super::ApprovalRequest {
            url: url.to_string(),
            amount_msat: checked.amount_msat,
            fee_limit_msat: self.config.fee_limit_msat,
            description: checked.invoice.description(),
            payee: checked.invoice.payee_hex(),
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
