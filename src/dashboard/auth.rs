//! Who may see the dashboard, and who may flip its switch.
//!
//! Every request passes, in order:
//!
//! 1. `Host` and `Origin`: the MCP server's own checks
//!    ([`crate::mcp::HostOriginCheck`]): loopback names, plus
//!    `--allowed-host`; loopback origins, plus `--allowed-origin`.
//! 2. The token, when one is set (it must be, off loopback): an
//!    `Authorization: Bearer` header (scripts), or the session cookie
//!    (browsers). A browser cannot send a header when it navigates, so the
//!    first visit carries the token once in the query, `/?token=…`: the
//!    answer sets an `HttpOnly`, `SameSite=Strict` cookie and redirects to
//!    the same address without the token, which so leaves the address bar
//!    and the history. The cookie holds an HMAC of the token, not the
//!    token.
//! 3. A `POST` (pause, resume) must name its origin, and it must be the
//!    dashboard's own (`http://` + its `Host`) or an `--allowed-origin`:
//!    another page (a loopback one included) cannot press the switch. A
//!    script that sends no `Origin` is let through only with the bearer
//!    header, which a cross-site form cannot send.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::mcp::HostOriginCheck;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "l402_dashboard";

/// How a request was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token is set (loopback only).
    Open,
    /// The bearer header.
    Bearer,
    /// The session cookie.
    Cookie,
}

/// What the guard decided.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Serve it.
    Pass(Access),
    /// The token came in the query and is right: set the cookie and go to
    /// this address (the same one, without the token).
    SetCookie { location: String, cookie: String },
    /// Refused: a status and a sentence.
    Refuse(StatusCode, String),
}

/// The guard of one dashboard listener.
pub(crate) struct Guard {
    host_origin: HostOriginCheck,
    token: Option<String>,
    /// The session cookie's value: HMAC-SHA256 of a fixed label under the
    /// token.
    cookie: Option<String>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Guard {
    pub(crate) fn new(host_origin: HostOriginCheck, token: Option<String>) -> Self {
        let cookie = token.as_deref().map(|t| {
            let mut mac = Hmac::<Sha256>::new_from_slice(t.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
            mac.update(b"l402-mcp dashboard session cookie v1");
            hex::encode(mac.finalize().into_bytes())
        });
        Guard {
            host_origin,
            token,
            cookie,
        }
    }

    /// The verdict on a request of `method` to `path` (with `query`).
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Verdict {
        // 1. Host, Origin.
        if let Err((status, sentence)) = self.host_origin.check(headers) {
            return Verdict::Refuse(status, sentence);
        }

        // 2. The token.
        let access = match (&self.token, &self.cookie) {
            (None, _) | (_, None) => Access::Open,
            (Some(token), Some(cookie)) => {
                let from_query = query.and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                });
                if let Some(given) = from_query {
                    if method != Method::GET || !same(given.trim(), token) {
                        return Verdict::Refuse(
                            StatusCode::UNAUTHORIZED,
                            "the token in the address is not this dashboard's".into(),
                        );
                    }
                    return Verdict::SetCookie {
                        location: without_token(path, query.unwrap_or_default()),
                        cookie: format!("{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict"),
                    };
                }
                if bearer(headers).is_some_and(|b| same(b, token)) {
                    Access::Bearer
                } else if cookie_value(headers).is_some_and(|c| same(&c, cookie)) {
                    Access::Cookie
                } else if path.starts_with("/static/") {
                    // The stylesheet and script are the same for everyone:
                    // the refusal page may use them.
                    Access::Open
                } else {
                    return Verdict::Refuse(
                        StatusCode::UNAUTHORIZED,
                        "this dashboard needs its token: open it once as /?token=<token> (a \
                         browser then keeps a cookie), or send Authorization: Bearer <token>"
                            .into(),
                    );
                }
            }
        };

        // 3. A state change must come from the dashboard's own page.
        if method != Method::GET && method != Method::HEAD {
            match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
                Some(origin) => {
                    let own = headers
                        .get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(|h| format!("http://{}", h.trim().to_ascii_lowercase()));
                    let ok = own.as_deref() == Some(origin.trim().to_ascii_lowercase().as_str())
                        || self.host_origin.origin_allowed(origin);
                    if !ok {
                        return Verdict::Refuse(
                            StatusCode::FORBIDDEN,
                            format!(
                                "a {method} to the dashboard must come from its own page; Origin \
                                 {origin:?} is another (the operator can allow it with \
                                 --allowed-origin)"
                            ),
                        );
                    }
                }
                None if access == Access::Bearer => {}
                None => {
                    return Verdict::Refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "a {method} to the dashboard must say where it comes from: browsers \
                             send Origin; a script sends Origin: http://<this dashboard's \
                             address>, or its bearer token"
                        ),
                    );
                }
            }
        }
        Verdict::Pass(access)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == COOKIE).then(|| v.trim().to_string())
        })
}

/// `path?query` without its `token` parameter.
fn without_token(path: &str, query: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = if path.starts_with('/') { path } else { "/" };
    if kept.is_empty() {
        return path.to_string();
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("{path}?{q}")
}

/// A `Set-Cookie` header value, or none when it cannot be one.
pub(crate) fn cookie_header(cookie: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(cookie).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> Guard {
        let check = HostOriginCheck::new("127.0.0.1:8404".parse().unwrap(), &[], &[]).unwrap();
        Guard::new(check, token.map(str::to_string))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_in_the_query_becomes_a_cookie_and_leaves_the_address() {
        let t = "a".repeat(32);
        let g = guard(Some(&t));
        let h = headers(&[("host", "127.0.0.1:8404")]);
        let q = format!("session=x&token={t}");
        let Verdict::SetCookie { location, cookie } = g.check(&Method::GET, "/", Some(&q), &h)
        else {
            panic!("no cookie")
        };
        assert_eq!(location, "/?session=x");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains(&t), "the cookie is not the token");
        let value = cookie.split(';').next().unwrap().to_string();
        let with = headers(&[("host", "127.0.0.1:8404"), ("cookie", &value)]);
        assert!(matches!(
            g.check(&Method::GET, "/api/summary", None, &with),
            Verdict::Pass(Access::Cookie)
        ));
        assert!(matches!(
            g.check(&Method::GET, "/api/summary", None, &h),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert!(matches!(
            g.check(&Method::GET, "/", Some("token=wrong"), &h),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn a_post_needs_its_own_origin_or_the_bearer_header() {
        let g = guard(None);
        let host = ("host", "127.0.0.1:8404");
        let post = |h: &HeaderMap| g.check(&Method::POST, "/api/pause", None, h);
        assert!(matches!(
            post(&headers(&[host, ("origin", "http://127.0.0.1:8404")])),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            post(&headers(&[host])),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        // Another loopback page passes the shared check, not this one.
        assert!(matches!(
            post(&headers(&[host, ("origin", "http://localhost:3000")])),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        let t = "b".repeat(32);
        let g = guard(Some(&t));
        let auth = format!("Bearer {t}");
        assert!(matches!(
            g.check(
                &Method::POST,
                "/api/pause",
                None,
                &headers(&[host, ("authorization", &auth)])
            ),
            Verdict::Pass(Access::Bearer)
        ));
    }
}
