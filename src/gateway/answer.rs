//! The gateway's own answers that every part of it gives: a JSON error
//! sentence, and the capped read of a request body.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A JSON error body: `{"error": "<sentence>"}`.
pub(super) fn json_error(status: StatusCode, sentence: &str) -> Response {
    (status, axum::Json(json!({ "error": sentence }))).into_response()
}

/// The answer to a request body over the cap.
pub(super) fn too_large(limit: usize) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("The request body is larger than {limit} bytes."),
    )
}

/// Reads a request body (already capped by the paywall's edge checks); a longer one
/// is a 413, a body the client stopped sending a 400.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_long {
            too_large(limit)
        } else {
            json_error(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            )
        }
    })
}
