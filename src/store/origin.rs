//! The origin a token is good for: `scheme://host:port`, normalized so that
//! one server is always one key in the store.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// An HTTP(S) origin, normalized: lowercase scheme and host (IDNA hosts in
/// punycode, IPv6 in brackets) and an explicit port, e.g.
/// `https://api.example.com:443`. Tokens are stored and looked up by it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

/// Why a text or URL is not an HTTP(S) origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Not a URL at all.
    #[error("{input:?} is not a URL: {reason}")]
    NotUrl {
        /// The text given.
        input: String,
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than http or https.
    #[error("{0:?} is not an http or https URL")]
    NotHttp(String),
    /// No host.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// An origin was expected, and the text has a path, query or fragment.
    #[error(
        "{0:?} is not an origin: it has a path, query or fragment (expected scheme://host[:port])"
    )]
    NotOrigin(String),
}

impl Origin {
    /// The origin of `url` (its path, query, fragment and credentials are
    /// dropped).
    pub fn from_url(url: &Url) -> Result<Self, OriginError> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(OriginError::NotHttp(url.to_string()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| OriginError::NoHost(url.to_string()))?;
        // `Url` has already lowercased the scheme and host and dropped a
        // default port, which `port_or_known_default` puts back.
        let port = url
            .port_or_known_default()
            .ok_or_else(|| OriginError::NotHttp(url.to_string()))?;
        Ok(Origin(format!("{scheme}://{host}:{port}")))
    }

    /// The normalized text, `scheme://host:port`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Origin {
    type Err = OriginError;

    /// Parses `scheme://host[:port]` (a trailing `/` is allowed); anything
    /// with a path, query or fragment is refused: use [`Origin::from_url`]
    /// for a full URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(s).map_err(|e| OriginError::NotUrl {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(OriginError::NotOrigin(s.to_string()));
        }
        Origin::from_url(&url)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({})", self.0)
    }
}
