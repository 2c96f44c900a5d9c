//! The dev node's HTTP face: `POST /dev/pay` and `GET /dev/payments/{hash}`.
//!
//! Every answer is JSON; every error is `{"error": "<sentence>"}`, including
//! a body that is not JSON or not the expected shape (axum's own rejections
//! are plain text, so they are translated here).

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::node::{DevInvoiceStatus, DevNode};
use crate::lightning::PaymentHash;

/// Largest request body `POST /dev/pay` reads: 64 KiB, far above any real
/// invoice (7089 characters at most) and small enough to read in full.
pub const MAX_PAY_BODY: usize = 64 * 1024;

/// `POST /dev/pay` request body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PayRequest {
    pub(crate) invoice: String,
}

/// `POST /dev/pay` success body, and the paid part of a status answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PaidBody {
    pub(crate) preimage: String,
    pub(crate) amount_msat: u64,
    pub(crate) fee_msat: u64,
}

/// `GET /dev/payments/{hash}` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum StatusBody {
    Succeeded(PaidBody),
    Unpaid,
}

/// Any error body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
}

fn error(status: StatusCode, sentence: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: sentence.into(),
        }),
    )
        .into_response()
}

/// The dev network's routes, to `.merge()` into the gateway's router (they
/// carry their own state and body limit).
pub fn router(node: Arc<DevNode>) -> Router {
    Router::new()
        .route("/dev/pay", post(pay))
        .route("/dev/payments/{payment_hash}", get(payment_status))
        .layer(DefaultBodyLimit::max(MAX_PAY_BODY))
        .with_state(node)
}

async fn pay(State(node): State<Arc<DevNode>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let status = rej.status();
            let sentence = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("The request body is larger than {MAX_PAY_BODY} bytes.")
            } else {
                format!("The request body could not be read: {}.", rej.body_text())
            };
            return error(status, sentence);
        }
    };
    let req: PayRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "The request body must be JSON of the form {{\"invoice\": \"<bolt11>\"}}: {e}."
                ),
            );
        }
    };
    match node.settle(&req.invoice) {
        Ok(p) => Json(PaidBody {
            preimage: p.preimage.to_hex(),
            amount_msat: p.amount_msat,
            fee_msat: p.fee_msat,
        })
        .into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "dev node refused to settle");
            let status =
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, e.to_string())
        }
    }
}

async fn payment_status(
    State(node): State<Arc<DevNode>>,
    hash: Result<Path<String>, PathRejection>,
) -> Response {
    let hash: PaymentHash = match hash.map(|Path(h)| h.parse()) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("The path is wrong: {e}.")),
        Err(rej) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("The path is wrong: {}.", rej.body_text()),
            );
        }
    };
    match node.status(&hash) {
        DevInvoiceStatus::Settled(p) => Json(StatusBody::Succeeded(PaidBody {
            preimage: p.preimage.to_hex(),
            amount_msat: p.amount_msat,
            fee_msat: p.fee_msat,
        }))
        .into_response(),
        DevInvoiceStatus::Unpaid { .. } => Json(StatusBody::Unpaid).into_response(),
        DevInvoiceStatus::NotIssued => error(
            StatusCode::NOT_FOUND,
            format!("No invoice with payment hash {hash} was issued by this dev node."),
        ),
    }
}
