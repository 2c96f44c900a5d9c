//! Where an lnd node is and how to prove who we are to it: its gRPC address
//! ([`LndHost`]), its TLS certificate ([`TlsCert`]) and a macaroon
//! ([`LndMacaroon`]).
//!
//! The certificate and the macaroon are each given as a path or inline, as
//! hosted setups only have environment variables: [`TlsCert::from_setting`]
//! and [`LndMacaroon::from_setting`] take a file path, PEM text (the
//! certificate), hex or base64. A value names a file when that file exists;
//! otherwise it is decoded as text, hex first (an lnd macaroon in hex is what
//! `xxd -p` and most hosting dashboards give), then base64.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// lnd's gRPC port when a host names none (lnd's `rpclisten` default).
pub const DEFAULT_LND_GRPC_PORT: u16 = 10009;

/// Largest credential file read: lnd's tls.cert and macaroons are a few
/// hundred bytes; anything this large is the wrong file.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// Why a host, certificate or macaroon setting is not usable. Each is a
/// sentence that names the setting; none quotes a macaroon.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file exists but cannot be read.
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        /// "lnd TLS certificate" or "lnd macaroon".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The value is not what it should be.
    #[error("the {what} {reason}")]
    Invalid {
        /// "lnd host", "lnd TLS certificate" or "lnd macaroon".
        what: &'static str,
        /// What is wrong, as the end of a sentence.
        reason: String,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> CredentialError {
    CredentialError::Invalid {
        what,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// host

/// An lnd gRPC address: `host:port`, the port defaulting to 10009. The host
/// is also the name the node's certificate must be valid for (lnd's
/// certificate names `localhost`, `127.0.0.1` and the machine's own names
/// by default; lnd's `tlsextradomain` / `tlsextraip` add more).
#[derive(Clone, PartialEq, Eq)]
pub struct LndHost {
    host: String,
    port: u16,
}

impl LndHost {
    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name the TLS certificate must be valid for.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, CredentialError> {
        ServerName::try_from(self.host.clone())
            .map_err(|_| invalid("lnd host", format!("{:?} is not a host name", self.host)))
    }
}

impl FromStr for LndHost {
    type Err = CredentialError;

    /// `host:port`, `host` (port 10009), `[v6]:port`; an `https://` prefix
    /// is allowed (some dashboards print one), nothing after the port is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |why: &str| invalid("lnd host", format!("{s:?} {why}"));
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        let rest = s
            .strip_prefix("https://")
            .unwrap_or(s)
            .trim_end_matches('/');
        if rest.contains("://") {
            return Err(bad("must be host:port (gRPC over TLS), not a URL"));
        }
        let url = url::Url::parse(&format!("https://{rest}"))
            .map_err(|e| bad(&format!("is not host:port ({e})")))?;
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(bad("must be host:port with nothing after the port"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("has no host")),
        };
        // url drops a port equal to the scheme's default (443): read it
        // from the text instead.
        let port = match url.port() {
            Some(p) => p,
            None if rest.ends_with(":443") => 443,
            None => DEFAULT_LND_GRPC_PORT,
        };
        Ok(LndHost { host, port })
    }
}

impl fmt::Display for LndHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for LndHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LndHost({self})")
    }
}

// ---------------------------------------------------------------------------
// certificate

/// lnd's TLS certificate, pinned: the node must present exactly this
/// certificate. Public; its `Debug` shows its SHA-256 fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCert {
    der: CertificateDer<'static>,
}

impl TlsCert {
    /// A certificate from PEM or DER bytes (what a tls.cert file holds).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        const WHAT: &str = "lnd TLS certificate";
        let der = if looks_like_pem(bytes) {
            let mut certs = CertificateDer::pem_slice_iter(bytes);
            match certs.next() {
                Some(Ok(der)) => der,
                Some(Err(e)) => return Err(invalid(WHAT, format!("is not readable PEM ({e})"))),
                None => return Err(invalid(WHAT, "is PEM without a CERTIFICATE block")),
            }
        } else {
            CertificateDer::from(bytes.to_vec())
        };
        // Parse it now, so that a wrong file is refused at start rather
        // than at the first handshake.
        webpki::EndEntityCert::try_from(&der)
            .map_err(|e| invalid(WHAT, format!("is not an X.509 certificate ({e})")))?;
        Ok(TlsCert { der })
    }

    /// A certificate from a setting: a path to lnd's tls.cert, inline PEM
    /// text, or its PEM or DER bytes as hex or base64.
    pub fn from_setting(value: &str) -> Result<Self, CredentialError> {
        load_setting(value, "lnd TLS certificate", false, |bytes| {
            Self::from_bytes(bytes)
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// SHA-256 of the DER, hex: what to compare with
    /// `openssl x509 -in tls.cert -outform der | sha256sum`.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.der.as_ref()))
    }

    pub(crate) fn certificate_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }
}

impl fmt::Debug for TlsCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsCert(sha256 {})", self.fingerprint())
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"))
}

// ---------------------------------------------------------------------------
// macaroon

/// An lnd macaroon: a bearer credential (whoever holds an admin or
/// `offchain:write` macaroon can spend the node's money). Its `Debug` is
/// redacted, it has no `Display`, and it is wiped on drop.
#[derive(Clone)]
pub struct LndMacaroon(Zeroizing<Vec<u8>>);

impl LndMacaroon {
    /// A macaroon from its binary form (what an lnd .macaroon file holds).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        // lnd mints V2 binary macaroons, whose first byte is the version, 2.
        match bytes.first() {
            None => Err(invalid("lnd macaroon", "is empty")),
            Some(2) if bytes.len() >= 16 => Ok(LndMacaroon(Zeroizing::new(bytes.to_vec()))),
            _ => Err(invalid(
                "lnd macaroon",
                "is not an lnd macaroon (lnd's binary macaroons start with the byte 0x02; \
                 in hex, with 0201)",
            )),
        }
    }

    /// A macaroon from a setting: a path to a .macaroon file, or the
    /// macaroon as hex or base64.
    pub fn from_setting(value: &str) -> Result<Self, CredentialError> {
        load_setting(value, "lnd macaroon", true, Self::from_bytes)
    }

    /// The value of the `macaroon` gRPC header: lowercase hex. Secret.
    pub(crate) fn header_value(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    /// Its length in bytes (for display; the bytes themselves are secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: an empty macaroon is refused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for LndMacaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LndMacaroon(<redacted, {} bytes>)", self.0.len())
    }
}

// ---------------------------------------------------------------------------
// path or inline

/// How a credential setting is given, without reading it: for display
/// (`config show`) and for resolving relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingForm {
    /// A file that exists.
    File(PathBuf),
    /// Inline PEM, hex or base64 text.
    Inline,
    /// A path (it starts like one) to no file.
    Missing(PathBuf),
    /// Neither an existing file nor decodable text (an error when used).
    Unusable,
}

/// Whether `value` names an existing file or is inline text.
pub fn setting_form(value: &str) -> SettingForm {
    let v = value.trim();
    if looks_like_pem(v.as_bytes()) {
        return SettingForm::Inline;
    }
    let path = expand_home(v);
    if path.is_file() {
        return SettingForm::File(path);
    }
    if looks_like_path(v) {
        return SettingForm::Missing(path);
    }
    if !decoded_candidates(v).is_empty() {
        return SettingForm::Inline;
    }
    SettingForm::Unusable
}

/// Reads a path-or-inline setting and parses it with `parse`.
fn load_setting<T>(
    value: &str,
    what: &'static str,
    secret: bool,
    parse: impl Fn(&[u8]) -> Result<T, CredentialError>,
) -> Result<T, CredentialError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(what, "is empty"));
    }
    // Inline PEM (a certificate pasted into an environment variable).
    if looks_like_pem(v.as_bytes()) {
        return parse(v.as_bytes());
    }
    // A file: its bytes as they are, or, when they are not the thing
    // itself, the hex or base64 text it holds.
    let path = expand_home(v);
    if path.is_file() {
        let bytes = read_limited(&path, what)?;
        let err = match parse(&bytes) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if let Ok(text) = std::str::from_utf8(&bytes) {
            for candidate in decoded_candidates(text.trim()) {
                if let Ok(t) = parse(&candidate) {
                    return Ok(t);
                }
            }
        }
        return Err(match err {
            CredentialError::Invalid { what, reason } => CredentialError::Invalid {
                what,
                reason: format!("in {} {reason}", path.display()),
            },
            other => other,
        });
    }
    // A path that is not there (base64 may contain '/', but no lnd
    // credential's base64 or hex starts like a path).
    if looks_like_path(v) {
        return Err(invalid(
            what,
            format!("file {} does not exist", path.display()),
        ));
    }
    // Inline hex, then base64.
    let candidates = decoded_candidates(v);
    if candidates.is_empty() {
        // Only a certificate setting may be quoted back: a macaroon's
        // value may be a real (if mangled) secret.
        let shown = if secret {
            String::new()
        } else {
            format!("{v:?} ")
        };
        return Err(invalid(
            what,
            format!("{shown}is neither an existing file nor hex, base64 or PEM text"),
        ));
    }
    let mut last = None;
    for candidate in candidates {
        match parse(&candidate) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| invalid(what, "cannot be decoded")))
}

fn looks_like_path(v: &str) -> bool {
    ["/", "./", "../", "~/"].iter().any(|p| v.starts_with(p)) || v.contains('\\')
}

fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, CredentialError> {
    use std::io::Read;
    let read_err = |source| CredentialError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        return Err(invalid(
            what,
            format!(
                "file {} is larger than {MAX_CREDENTIAL_BYTES} bytes: not an lnd credential",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// What `text` decodes to: as hex (when it is hex), then as base64
/// (standard or URL-safe, padded or not). Whitespace is ignored.
fn decoded_candidates(text: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    if compact.is_empty() {
        return out;
    }
    if compact.len().is_multiple_of(2)
        && let Ok(b) = hex::decode(&compact)
    {
        out.push(b);
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(&compact) {
            out.push(b);
            break;
        }
    }
    out
}

fn expand_home(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate of the shape lnd makes (ECDSA P-256,
    /// CA:TRUE, SANs localhost and 127.0.0.1), made with openssl.
    pub(crate) const LND_LIKE_CERT_PEM: &str = include_str!("testdata/lnd-like-tls.cert");

    /// The start of an lnd admin macaroon, V2 binary (location "lnd").
    fn macaroon_bytes() -> Vec<u8> {
        let mut b = vec![0x02, 0x01, 0x03, b'l', b'n', b'd', 0x02, 0x1f];
        b.extend_from_slice(&[7u8; 40]);
        b
    }

    #[test]
    fn host_port_forms() {
        let h: LndHost = "127.0.0.1:10009".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("127.0.0.1", 10009));
        let h: LndHost = "localhost".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("localhost", DEFAULT_LND_GRPC_PORT));
        let h: LndHost = "https://node.example.com:443".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("node.example.com", 443));
        assert_eq!(h.to_string(), "node.example.com:443");
        let h: LndHost = "[::1]:10010".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("::1", 10010));
        assert_eq!(h.to_string(), "[::1]:10010");
        for bad in ["", "http://x:1", "x:1/path", "x:99999", "user@x:1", "x:1?q"] {
            assert!(
                matches!(
                    bad.parse::<LndHost>(),
                    Err(CredentialError::Invalid {
                        what: "lnd host",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn macaroon_from_path_hex_and_base64_is_the_same() {
        let bytes = macaroon_bytes();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pay.macaroon");
        std::fs::write(&path, &bytes).unwrap();
        let from_path = LndMacaroon::from_setting(path.to_str().unwrap()).unwrap();
        let from_hex = LndMacaroon::from_setting(&hex::encode(&bytes)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let from_b64 = LndMacaroon::from_setting(&b64).unwrap();
        let url_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        let from_url_b64 = LndMacaroon::from_setting(&format!("  {url_b64}\n")).unwrap();
        for m in [&from_path, &from_hex, &from_b64, &from_url_b64] {
            assert_eq!(m.0.as_slice(), bytes.as_slice());
        }
        // A file holding the hex text (as some setups store it) works too.
        let hex_file = dir.path().join("pay.macaroon.hex");
        std::fs::write(&hex_file, format!("{}\n", hex::encode(&bytes))).unwrap();
        let from_hex_file = LndMacaroon::from_setting(hex_file.to_str().unwrap()).unwrap();
        assert_eq!(from_hex_file.0.as_slice(), bytes.as_slice());
        assert_eq!(from_hex.header_value().as_str(), hex::encode(&bytes));
    }

    #[test]
    fn macaroon_is_never_shown() {
        let m = LndMacaroon::from_bytes(&macaroon_bytes()).unwrap();
        let shown = format!("{m:?}");
        assert_eq!(shown, "LndMacaroon(<redacted, 48 bytes>)");
        // A wrong inline value is not quoted back in the error.
        let secret = "not-a-macaroon-but-maybe-a-secret!";
        let e = LndMacaroon::from_setting(secret).unwrap_err().to_string();
        assert!(!e.contains(secret), "{e}");
        assert_eq!(
            e,
            "the lnd macaroon is neither an existing file nor hex, base64 or PEM text"
        );
    }

    #[test]
    fn macaroon_must_be_an_lnd_macaroon() {
        let e = LndMacaroon::from_setting("00112233445566778899aabbccddeeff00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("start with the byte 0x02"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.macaroon");
        std::fs::write(&empty, b"").unwrap();
        let e = LndMacaroon::from_setting(empty.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
        let missing = dir.path().join("missing.macaroon");
        assert!(LndMacaroon::from_setting(missing.to_str().unwrap()).is_err());
    }

    #[test]
    fn cert_from_path_pem_hex_and_base64_is_the_same() {
        let from_pem = TlsCert::from_setting(LND_LIKE_CERT_PEM).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls.cert");
        std::fs::write(&path, LND_LIKE_CERT_PEM).unwrap();
        let from_path = TlsCert::from_setting(path.to_str().unwrap()).unwrap();
        let from_pem_hex = TlsCert::from_setting(&hex::encode(LND_LIKE_CERT_PEM)).unwrap();
        let der = from_pem.der().to_vec();
        let from_der_b64 =
            TlsCert::from_setting(&base64::engine::general_purpose::STANDARD.encode(&der)).unwrap();
        let from_pem_b64 = TlsCert::from_setting(
            &base64::engine::general_purpose::STANDARD.encode(LND_LIKE_CERT_PEM),
        )
        .unwrap();
        let der_path = dir.path().join("tls.der");
        std::fs::write(&der_path, &der).unwrap();
        let from_der_path = TlsCert::from_setting(der_path.to_str().unwrap()).unwrap();
        for c in [
            &from_path,
            &from_pem_hex,
            &from_der_b64,
            &from_pem_b64,
            &from_der_path,
        ] {
            assert_eq!(c, &from_pem);
        }
        assert_eq!(from_pem.fingerprint().len(), 64);
        assert!(format!("{from_pem:?}").starts_with("TlsCert(sha256 "));
    }

    #[test]
    fn cert_errors_are_sentences() {
        let e = TlsCert::from_setting("/nonexistent/tls.cert")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the lnd TLS certificate file /nonexistent/tls.cert does not exist"
        );
        let e = TlsCert::from_setting("tls.cert!").unwrap_err().to_string();
        assert_eq!(
            e,
            "the lnd TLS certificate \"tls.cert!\" is neither an existing file nor hex, base64 or PEM text"
        );
        let e =
            TlsCert::from_setting("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("without a CERTIFICATE block"), "{e}");
        let e = TlsCert::from_setting("deadbeef").unwrap_err().to_string();
        assert!(e.contains("is not an X.509 certificate"), "{e}");
    }

    #[test]
    fn setting_form_tells_files_from_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls.cert");
        std::fs::write(&path, LND_LIKE_CERT_PEM).unwrap();
        assert_eq!(
            setting_form(path.to_str().unwrap()),
            SettingForm::File(path.clone())
        );
        assert_eq!(setting_form(LND_LIKE_CERT_PEM), SettingForm::Inline);
        assert_eq!(setting_form("0201036c6e64"), SettingForm::Inline);
        assert_eq!(
            setting_form("/no/such/file"),
            SettingForm::Missing(PathBuf::from("/no/such/file"))
        );
        assert_eq!(setting_form("tls.cert!"), SettingForm::Unusable);
    }
}
