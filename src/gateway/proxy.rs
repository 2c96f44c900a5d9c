//! Proxy mode: forward a paid request to the route's upstream, as aperture
//! does, streaming both bodies. The client's `Authorization` header (its
//! L402 credential) never goes upstream, nor do hop-by-hop headers.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;

use super::Gateway;
use super::paywall::json_error;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus the credential.
const DROPPED: [HeaderName; 9] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::AUTHORIZATION,
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    // Also drop whatever the Connection header names as hop-by-hop.
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in from {
        if DROPPED.contains(name)
            || name.as_str() == "keep-alive"
            || named.iter().any(|n| n == name.as_str())
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Joins the upstream base (`http://host:port[/base]`) with the path the
/// route matched (canonical: no dot or empty segments, no encoded dots or
/// slashes, see [`super::paywall::canonical_path`]) and the request's query.
/// The result stays under the base: nothing in `path` can climb out of it.
fn upstream_url(base: &str, path: &str, req: &Request) -> String {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!("{}{path}{query}", base.trim_end_matches('/'))
}

/// Forwards the request. `Ok`: the upstream answered (any status: the
/// answer is delivered); `Err`: it could not be reached or failed before
/// answering, and nothing was delivered.
pub(super) async fn forward(
    gw: &Gateway,
    upstream: &str,
    path: &str,
    req: Request,
) -> Result<Response, Response> {
    let url = upstream_url(upstream, path, &req);
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let stream = body.into_data_stream();
    let request = gw
        .upstream
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(stream));

    let upstream_resp = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(upstream = %upstream, error = %e, "upstream request failed");
            let (status, sentence) = if e.is_timeout() {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "The upstream service did not answer in time.",
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    "The upstream service could not be reached.",
                )
            };
            return Err(json_error(status, sentence));
        }
    };

    let status = upstream_resp.status();
    let mut resp_headers = HeaderMap::new();
    copy_headers(upstream_resp.headers(), &mut resp_headers);
    let body = Body::from_stream(upstream_resp.bytes_stream().map_err(std::io::Error::other));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = resp_headers;
    Ok(resp)
}
