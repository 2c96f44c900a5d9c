//! `WWW-Authenticate` challenges: `L402 macaroon="…", invoice="…"` and the
//! forms seen in the wild (LSAT, `token=`, `version=`, several per header).
//!
//! A header value is read with the generic grammar of RFC 9110 §11.6.1:
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! so other schemes (`Bearer realm="x"`, `Negotiate <token68>`) beside an
//! L402 one are understood well enough to be skipped. Inside a list, a new
//! challenge starts where a token is followed by something other than `=`.
//! Bare (unquoted) values may hold any visible character but `,` and `"`,
//! so an unquoted base64 macaroon (`/`, `+`, `=`) reads as expected.
//! Parameter names and scheme names are case-insensitive.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::payment::{PAYMENT_SCHEME, PaymentChallenge, PaymentError};
use super::{Macaroon, MacaroonError};

/// Longest header value we parse (16 KiB). Real challenges are < 2 KiB.
pub const MAX_CHALLENGE_HEADER_LEN: usize = 16 * 1024;

/// The auth scheme: `L402`, or its legacy name `LSAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `L402` (bLIP-26).
    L402,
    /// `LSAT`, the legacy name aperture still sends first.
    Lsat,
}

impl Scheme {
    /// The name as written on the wire: `L402` or `LSAT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::L402 => "L402",
            Scheme::Lsat => "LSAT",
        }
    }

    /// The scheme a (case-insensitive) auth-scheme name denotes, if any.
    pub fn from_name(name: &str) -> Option<Scheme> {
        if name.eq_ignore_ascii_case("L402") {
            Some(Scheme::L402)
        } else if name.eq_ignore_ascii_case("LSAT") {
            Some(Scheme::Lsat)
        } else {
            None
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a challenge header did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Larger than [`MAX_CHALLENGE_HEADER_LEN`].
    #[error("WWW-Authenticate value is {0} bytes; the limit is {MAX_CHALLENGE_HEADER_LEN}")]
    TooLong(usize),
    /// No L402 or LSAT challenge among the values.
    #[error("no L402 or LSAT challenge in WWW-Authenticate")]
    NoL402Challenge,
    /// A required parameter is absent.
    #[error("L402 challenge has no {0} parameter")]
    MissingParam(&'static str),
    /// A parameter appears twice.
    #[error("L402 challenge has the {0} parameter twice")]
    DuplicateParam(String),
    /// Broken syntax (unterminated quote, missing `=`, ...).
    #[error("malformed WWW-Authenticate value: {0}")]
    Syntax(String),
    /// The macaroon is not valid base64 or not a macaroon.
    #[error("challenge macaroon is invalid: {0}")]
    Macaroon(#[from] MacaroonError),
}

/// One L402 challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `L402` or `LSAT`.
    pub scheme: Scheme,
    /// The macaroon (`macaroon=` or `token=`).
    pub macaroon: Macaroon,
    /// The BOLT11 invoice text, not yet decoded.
    pub invoice: String,
    /// The `version=` parameter, when present.
    pub version: Option<String>,
}

impl Challenge {
    /// Every L402/LSAT challenge across several header values, in order.
    /// Other schemes (Bearer, Basic, ...) are skipped.
    ///
    /// The result is never empty: with no L402/LSAT challenge at all the
    /// error is [`ChallengeError::NoL402Challenge`]. A malformed value or
    /// L402 challenge beside a well-formed one is skipped (a server's
    /// broken extra challenge should not stop a payable one); when none is
    /// well-formed, the first error met is returned.
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Challenge>, ChallengeError> {
        let mut found = Vec::new();
        let mut first_error = None;
        for value in values {
            let raw = if value.len() > MAX_CHALLENGE_HEADER_LEN {
                Err(ChallengeError::TooLong(value.len()))
            } else {
                parse_value(value)
            };
            let results = match raw {
                Ok(raw) => raw
                    .into_iter()
                    .filter_map(|c| Scheme::from_name(c.scheme).map(|s| c.into_challenge(s)))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            for result in results {
                match result {
                    Ok(challenge) => found.push(challenge),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if found.is_empty() {
            return Err(first_error.unwrap_or(ChallengeError::NoL402Challenge));
        }
        Ok(found)
    }
}

/// Every `Payment` challenge across several header values, in order, any
/// method or intent: one whose parameters are unusable is an error in its
/// place (so a refusal can say what was wrong with it). A header value
/// that does not parse at all holds none (as [`Challenge::parse_all`]
/// skips it for L402).
pub fn parse_payment_challenges<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Vec<Result<PaymentChallenge, PaymentError>> {
    values
        .into_iter()
        .filter(|v| v.len() <= MAX_CHALLENGE_HEADER_LEN)
        .filter_map(|v| parse_value(v).ok())
        .flatten()
        .filter(|c| c.scheme.eq_ignore_ascii_case(PAYMENT_SCHEME))
        .map(|c| {
            PaymentChallenge::from_params(c.params.into_iter().map(|(n, v)| (n, v.into_owned())))
        })
        .collect()
}

impl FromStr for Challenge {
    type Err = ChallengeError;
    /// The first L402/LSAT challenge in one header value (the first
    /// well-formed one, as [`Challenge::parse_all`] reads them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Challenge::parse_all([s])?
            .into_iter()
            .next()
            .ok_or(ChallengeError::NoL402Challenge)
    }
}

impl fmt::Display for Challenge {
    /// aperture's form, `L402 macaroon="<b64>", invoice="<bolt11>"`, or
    /// with a version the 2026 form, `L402 version="0", token="<b64>",
    /// invoice="<bolt11>"`; the scheme as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        let macaroon = self.macaroon.to_base64();
        let invoice = Quoted(&self.invoice);
        match &self.version {
            None => write!(f, "{scheme} macaroon=\"{macaroon}\", invoice=\"{invoice}\""),
            Some(version) => write!(
                f,
                "{scheme} version=\"{}\", token=\"{macaroon}\", invoice=\"{invoice}\"",
                Quoted(version)
            ),
        }
    }
}

/// Writes the inside of a quoted-string: `"` and `\` escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['"', '\\']) {
            let (plain, special) = rest.split_at(i);
            f.write_str(plain)?;
            f.write_str("\\")?;
            // The special character is one ASCII byte.
            let (ch, after) = special.split_at(1);
            f.write_str(ch)?;
            rest = after;
        }
        f.write_str(rest)
    }
}

/// One challenge as the generic grammar sees it, any scheme.
#[derive(Debug)]
struct RawChallenge<'a> {
    scheme: &'a str,
    /// `(name, value)` in order; names as written.
    params: Vec<(&'a str, Cow<'a, str>)>,
}

impl RawChallenge<'_> {
    /// Reads the L402 parameters; `scheme` is this challenge's.
    fn into_challenge(self, scheme: Scheme) -> Result<Challenge, ChallengeError> {
        let mut macaroon: Option<Cow<'_, str>> = None;
        let mut token: Option<Cow<'_, str>> = None;
        let mut invoice: Option<Cow<'_, str>> = None;
        let mut version: Option<Cow<'_, str>> = None;
        for (name, value) in self.params {
            let (slot, canonical) = if name.eq_ignore_ascii_case("macaroon") {
                (&mut macaroon, "macaroon")
            } else if name.eq_ignore_ascii_case("token") {
                (&mut token, "token")
            } else if name.eq_ignore_ascii_case("invoice") {
                (&mut invoice, "invoice")
            } else if name.eq_ignore_ascii_case("version") {
                (&mut version, "version")
            } else {
                continue; // unknown parameters are ignored
            };
            if slot.is_some() {
                return Err(ChallengeError::DuplicateParam(canonical.to_owned()));
            }
            *slot = Some(value);
        }
        // `token` is the 2026 name of `macaroon`. A server may send both
        // for old and new clients; they must then agree.
        let macaroon = match (macaroon, token) {
            (Some(m), Some(t)) if m != t => {
                return Err(ChallengeError::DuplicateParam("token".to_owned()));
            }
            (Some(m), _) | (None, Some(m)) => m,
            (None, None) => return Err(ChallengeError::MissingParam("macaroon")),
        };
        let invoice = match invoice {
            Some(i) if !i.is_empty() => i.into_owned(),
            _ => return Err(ChallengeError::MissingParam("invoice")),
        };
        Ok(Challenge {
            scheme,
            macaroon: macaroon.parse()?,
            invoice,
            version: version.map(Cow::into_owned),
        })
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The characters of a `token68`, before its `=` padding.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// A bare (unquoted) parameter value: any visible or non-ASCII byte but
/// `,` and `"`. Wider than `token`, to take unquoted base64 as it comes.
fn is_bare_value_byte(b: u8) -> bool {
    (b.is_ascii_graphic() || b >= 0x80) && b != b',' && b != b'"'
}

/// A cursor over one header value. Every slice goes through `str::get`,
/// so no input can make it panic; positions only ever stop next to ASCII
/// bytes, which are always character boundaries.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips spaces and tabs; true when there were any.
    fn skip_ows(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips list separators: whitespace and (empty elements') commas.
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> Result<&'a str, ChallengeError> {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.s
            .get(start..self.pos)
            .ok_or_else(|| self.syntax("a value is not valid UTF-8"))
    }

    fn token(&mut self) -> Result<&'a str, ChallengeError> {
        self.take_while(is_tchar)
    }

    /// A description of what is at the cursor, for error sentences.
    fn found(&self) -> String {
        match self.s.get(self.pos..).and_then(|rest| rest.chars().next()) {
            Some(c) => format!("{c:?} at byte {}", self.pos),
            None => "the end".to_owned(),
        }
    }

    fn syntax(&self, what: &str) -> ChallengeError {
        ChallengeError::Syntax(format!("{what} (found {})", self.found()))
    }

    /// A `token68` that is the whole of a challenge's credentials, followed
    /// by the end or a `,`; otherwise nothing is consumed.
    fn token68(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let mut end = start;
        let bytes = self.s.as_bytes();
        while bytes.get(end).copied().is_some_and(is_token68_char) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        let mut after = end;
        while matches!(bytes.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        if !matches!(bytes.get(after), None | Some(b',')) {
            return None;
        }
        let t = self.s.get(start..end)?;
        self.pos = after;
        Some(t)
    }

    /// True when a `token BWS "="` is next: the start of an auth-param
    /// rather than of a new challenge. Consumes nothing.
    fn param_is_next(&self) -> bool {
        let bytes = self.s.as_bytes();
        let mut i = self.pos;
        while bytes.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        if i == self.pos {
            return false;
        }
        while matches!(bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        bytes.get(i) == Some(&b'=')
    }

    /// A quoted-string, the cursor on its opening `"`; backslash escapes
    /// undone.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ChallengeError> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            match self.peek() {
                None => {
                    return Err(ChallengeError::Syntax(format!(
                        "unterminated quoted string starting at byte {open}"
                    )));
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    let buf = unescaped.get_or_insert_with(|| {
                        self.s
                            .as_bytes()
                            .get(start..self.pos)
                            .unwrap_or_default()
                            .to_vec()
                    });
                    self.pos += 1;
                    match self.peek() {
                        Some(b) => buf.push(b),
                        None => {
                            return Err(ChallengeError::Syntax(format!(
                                "unterminated quoted string starting at byte {open}"
                            )));
                        }
                    }
                    self.pos += 1;
                }
                Some(b) => {
                    if let Some(buf) = unescaped.as_mut() {
                        buf.push(b);
                    }
                    self.pos += 1;
                }
            }
        }
        let end = self.pos;
        self.pos += 1; // the closing quote
        match unescaped {
            // Bytes were copied whole between ASCII delimiters, so they
            // are UTF-8; the check is belt and braces.
            Some(buf) => String::from_utf8(buf)
                .map(Cow::Owned)
                .map_err(|_| ChallengeError::Syntax("a quoted string is not UTF-8".to_owned())),
            None => {
                self.s.get(start..end).map(Cow::Borrowed).ok_or_else(|| {
                    ChallengeError::Syntax("a quoted string is not UTF-8".to_owned())
                })
            }
        }
    }
}

/// Splits one header value into its challenges (every scheme).
fn parse_value(s: &str) -> Result<Vec<RawChallenge<'_>>, ChallengeError> {
    let mut lx = Lexer { s, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_separators();
        if lx.at_end() {
            break;
        }
        let scheme = lx.token()?;
        if scheme.is_empty() {
            return Err(lx.syntax("expected an auth scheme"));
        }
        let mut challenge = RawChallenge {
            scheme,
            params: Vec::new(),
        };
        let spaced = lx.skip_ows();
        match lx.peek() {
            None | Some(b',') => {
                // A scheme alone.
                out.push(challenge);
                continue;
            }
            Some(_) if !spaced => {
                return Err(lx.syntax(&format!("expected a space after auth scheme {scheme}")));
            }
            Some(_) => {}
        }
        if lx.token68().is_some() {
            // `Negotiate <token68>` and the like: nothing L402 reads.
            out.push(challenge);
            continue;
        }
        // auth-params, until the end or a token that starts a challenge.
        loop {
            let name = lx.token()?;
            if name.is_empty() {
                return Err(lx.syntax(&format!(
                    "expected a parameter name in the {scheme} challenge"
                )));
            }
            lx.skip_ows();
            if lx.peek() != Some(b'=') {
                return Err(lx.syntax(&format!("expected '=' after parameter {name}")));
            }
            lx.pos += 1;
            lx.skip_ows();
            let value = if lx.peek() == Some(b'"') {
                lx.quoted()?
            } else {
                let v = lx.take_while(is_bare_value_byte)?;
                if v.is_empty() {
                    return Err(lx.syntax(&format!("parameter {name} has no value")));
                }
                Cow::Borrowed(v)
            };
            challenge.params.push((name, value));
            lx.skip_ows();
            match lx.peek() {
                None => break,
                Some(b',') => {}
                Some(_) => {
                    return Err(lx.syntax(&format!("expected ',' after parameter {name}")));
                }
            }
            lx.skip_separators();
            if lx.at_end() || !lx.param_is_next() {
                break;
            }
        }
        out.push(challenge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemes(s: &str) -> Vec<(String, Vec<(String, String)>)> {
        parse_value(s)
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.scheme.to_owned(),
                    c.params
                        .into_iter()
                        .map(|(n, v)| (n.to_owned(), v.into_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    fn p(n: &str, v: &str) -> (String, String) {
        (n.to_owned(), v.to_owned())
    }

    #[test]
    fn generic_grammar_splits_challenges() {
        assert_eq!(
            schemes(r#"Bearer realm="x", L402 macaroon="m", invoice=i, Negotiate abc==, Basic"#),
            vec![
                ("Bearer".into(), vec![p("realm", "x")]),
                ("L402".into(), vec![p("macaroon", "m"), p("invoice", "i")]),
                ("Negotiate".into(), vec![]),
                ("Basic".into(), vec![]),
            ]
        );
        assert_eq!(
            schemes(r#" ,, L402   a = "b\"c\\d" ,,b=x/y+z==,"#),
            vec![("L402".into(), vec![p("a", r#"b"c\d"#), p("b", "x/y+z==")])]
        );
        assert_eq!(schemes(""), vec![]);
    }

    #[test]
    fn payment_challenges_are_found_beside_l402_in_any_split() {
        let charge = r#"Payment id="abc", realm="localhost:8081", method="lightning", intent="charge", request="eyJ9", expires="2026-03-25T20:15:00Z""#;
        let session = r#"payment ID=s, realm=r, method=lightning, intent=session, request=eyJ9"#;
        let other = r#"Payment id="t", realm="r", method="tempo", intent="charge", request="eyJ9""#;
        let broken = r#"Payment id="b", realm="r", method="lightning", intent="charge""#;
        let lsat = r#"LSAT macaroon="AgEEbHNhdA", invoice="lnbcrt1""#;
        // As aperture sends them (one per header), and all in one value.
        let joined = format!("{lsat}, {session}, {charge}, {other}, {broken}");
        for values in [
            vec![lsat, session, charge, other, broken],
            vec![joined.as_str()],
        ] {
            let found = parse_payment_challenges(values.iter().copied());
            assert_eq!(found.len(), 4, "{found:?}");
            let s = found[0].as_ref().unwrap();
            assert_eq!((s.id.as_str(), s.intent.as_str()), ("s", "session"));
            assert!(!s.is_lightning_charge());
            let c = found[1].as_ref().unwrap();
            assert!(c.is_lightning_charge());
            assert_eq!(c.expires.as_deref(), Some("2026-03-25T20:15:00Z"));
            assert_eq!(c.request, "eyJ9");
            assert!(!found[2].as_ref().unwrap().is_lightning_charge());
            assert_eq!(found[3], Err(PaymentError::MissingParam("request")));
        }
        assert!(parse_payment_challenges([lsat]).is_empty());
        assert!(parse_payment_challenges([r#"Payment id="a", id="b""#])[0].is_err());
    }

    #[test]
    fn rfc_9110_example_splits_into_two_challenges() {
        assert_eq!(
            schemes(
                r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#
            ),
            vec![
                (
                    "Newauth".into(),
                    vec![
                        p("realm", "apps"),
                        p("type", "1"),
                        p("title", r#"Login to "apps""#)
                    ]
                ),
                ("Basic".into(), vec![p("realm", "simple")]),
            ]
        );
    }

    #[test]
    fn escapes_keep_multibyte_characters() {
        assert_eq!(
            schemes("X a=\"\\é€\""),
            vec![("X".into(), vec![p("a", "é€")])]
        );
    }

    #[test]
    fn syntax_errors_never_panic() {
        for s in [
            "\"",
            "L402 a=\"",
            "L402 a=\"\\",
            "L402=x",
            "L402 a=b c=d",
            "é",
            "L402 é=1",
            "L402 a=b, é",
            "L402 a=\"x\"y",
            "=",
            ",=",
            "L402 a=b,=c",
            "L402\u{1}a=b",
        ] {
            assert!(
                matches!(parse_value(s), Err(ChallengeError::Syntax(_))),
                "{s:?} -> {:?}",
                parse_value(s)
            );
        }
    }

    #[test]
    fn quoted_display_escapes() {
        assert_eq!(Quoted(r#"a"b\c"#).to_string(), r#"a\"b\\c"#);
    }
}
