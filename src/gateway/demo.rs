//! Built-in content: what the demo sells, and the free index and health
//! check. Deterministic, so tests and the demo can assert exact bodies.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Gateway;
use super::answer::{json_error, read_body};
use super::config::{DemoContent, TokenPolicy};

/// Longest prompt `/v1/generate` accepts, in characters.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// The content's answer (`Ok`), or the gateway's refusal of the request
/// before anything was served (`Err`: a bad prompt), which spends no
/// single-use token.
pub(super) async fn serve(
    gw: &Gateway,
    content: DemoContent,
    req: Request,
) -> Result<Response, Response> {
    Ok(match content {
        DemoContent::Health => axum::Json(json!({ "status": "ok" })).into_response(),
        DemoContent::Index => index(gw, &req),
        DemoContent::Demo => axum::Json(json!({
            "message": "Hello from behind the paywall. This answer cost 21 sats over Lightning.",
            "paid": true,
        }))
        .into_response(),
        DemoContent::Charge => axum::Json(json!({
            "message": "Hello from behind the paywall. This answer was paid with the Payment \
                        scheme: one Lightning charge of 5 sats for this one request.",
            "paid": true,
        }))
        .into_response(),
        DemoContent::Data => axum::Json(data()).into_response(),
        DemoContent::Generate => return generate(gw, req).await,
    })
}

/// A small deterministic data set: hourly readings of a made-up sensor.
fn data() -> serde_json::Value {
    let readings: Vec<_> = (0..24u32)
        .map(|h| {
            // A smooth daily curve, in tenths of a degree, from integers only.
            let t = 150 + (i64::from(h) - 12).abs() * -5 + 60;
            json!({ "hour": h, "temperature_c": t as f64 / 10.0 })
        })
        .collect();
    json!({ "dataset": "demo-sensor", "unit": "celsius", "readings": readings })
}

async fn generate(gw: &Gateway, req: Request) -> Result<Response, Response> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = read_body(req.into_body(), gw.config.limits.max_body_bytes).await?;
    let prompt = if is_json {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => match v.get("prompt").and_then(|p| p.as_str()) {
                Some(p) => p.to_string(),
                None => {
                    return Err(json_error(
                        StatusCode::BAD_REQUEST,
                        "Send {\"prompt\": \"...\"} or a text/plain body.",
                    ));
                }
            },
            Err(_) => {
                return Err(json_error(
                    StatusCode::BAD_REQUEST,
                    "The body is not valid JSON.",
                ));
            }
        }
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(p) => p,
            Err(_) => {
                return Err(json_error(
                    StatusCode::BAD_REQUEST,
                    "The prompt is not UTF-8 text.",
                ));
            }
        }
    };
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(json_error(StatusCode::BAD_REQUEST, "The prompt is empty."));
    }
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("The prompt is longer than {MAX_PROMPT_CHARS} characters."),
        ));
    }
    Ok(axum::Json(json!({
        "prompt": prompt,
        "completion": completion(prompt),
        "model": "l402-demo-echo-1",
    }))
    .into_response())
}

/// A deterministic "completion": the prompt's words reversed, and a verdict
/// picked by the prompt's hash, so the same prompt always gets the same
/// answer and different prompts (usually) differ.
pub fn completion(prompt: &str) -> String {
    const VERDICTS: [&str; 4] = [
        "Paid per request, no account needed.",
        "The invoice was settled; here is your answer.",
        "Macaroons, not API keys.",
        "Every sat accounted for.",
    ];
    let reversed: Vec<&str> = prompt.split_whitespace().rev().collect();
    let digest = Sha256::digest(prompt.as_bytes());
    let verdict = VERDICTS[usize::from(digest[0]) % VERDICTS.len()];
    format!("{} — {verdict}", reversed.join(" "))
}

fn index(gw: &Gateway, req: &Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let routes: Vec<_> = gw
        .config
        .routes
        .iter()
        .map(|r| {
            json!({
                "path": r.path,
                "match": match r.path_match { super::PathMatch::Exact => "exact", super::PathMatch::Prefix => "prefix" },
                "method": r.method,
                "price_sats": r.price_sats,
                "free": r.free,
                "token": match r.token { TokenPolicy::Reusable => "reusable", TokenPolicy::SingleUse => "single-use" },
                "scheme": if r.free { None } else { Some(r.scheme.as_str()) },
                "valid_for_secs": if r.free { None } else { Some(r.valid_for()) },
                "description": r.description,
            })
        })
        .collect();
    if !wants_html {
        return axum::Json(json!({
            "name": "l402-mcp gateway",
            "protocol": "L402",
            "authorization_format": "L402 <macaroon>:<preimage hex>",
            "routes": routes,
        }))
        .into_response();
    }
    let mut rows = String::new();
    for r in &gw.config.routes {
        let price = if r.free {
            "free".to_string()
        } else {
            format!("{} sats", r.price_sats)
        };
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}{}</code></td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.method),
            escape(&r.path),
            if r.path_match == super::PathMatch::Prefix {
                "…"
            } else {
                ""
            },
            price,
            escape(r.description.as_deref().unwrap_or("")),
        ));
    }
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>l402-mcp gateway</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}}\
         td,th{{padding:.3rem .8rem;text-align:left}}</style></head><body>\n\
         <h1>l402-mcp gateway</h1>\n<p>Paid routes answer <code>402 Payment Required</code> with a \
         Lightning invoice and a macaroon. Pay the invoice, then repeat the request with \
         <code>Authorization: L402 &lt;macaroon&gt;:&lt;preimage hex&gt;</code>.</p>\n\
         <table><tr><th>Method</th><th>Path</th><th>Price</th><th>What</th></tr>\n{rows}</table>\n\
         </body></html>\n"
    ))
    .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_is_deterministic() {
        assert_eq!(completion("pay per call"), completion("pay per call"));
        assert!(completion("pay per call").starts_with("call per pay — "));
    }
}
