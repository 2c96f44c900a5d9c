//! The gateway's own answers that every part of it gives: a JSON error
//! sentence, and the capped read of a request body.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

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
            .is_some_and(|s| s.is::<TooLarge>() || s.is::<http_body_util::LengthLimitError>())
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

/// A request body over the gateway's cap, as the error its reader sees.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {0} bytes")]
pub(super) struct TooLarge(pub u64);

/// What is left of a body that went over the cap: [`Capped`] leaves it
/// here when it stops, for the gateway to read before it answers, so that
/// a client still sending gets the 413 and not a broken pipe.
#[derive(Clone, Default)]
pub(super) struct Overflow(Arc<Mutex<Option<Body>>>);

impl Overflow {
    /// The rest of the body, if it went over the cap.
    pub fn take(&self) -> Option<Body> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A request body that fails with [`TooLarge`] once more than `limit`
/// bytes have come, whether the client declared a length or sent chunks.
pub(super) struct Capped {
    inner: Option<Body>,
    seen: u64,
    limit: u64,
    overflow: Overflow,
}

impl Capped {
    pub fn new(body: Body, limit: usize, overflow: Overflow) -> Self {
        Capped {
            inner: Some(body),
            seen: 0,
            limit: limit as u64,
            overflow,
        }
    }
}

impl hyper::body::Body for Capped {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        *this.overflow.0.lock().unwrap_or_else(|e| e.into_inner()) =
                            this.inner.take();
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map(hyper::body::Body::size_hint)
            .unwrap_or_default()
    }
}
