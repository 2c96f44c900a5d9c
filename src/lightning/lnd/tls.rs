//! The TLS connection to lnd: its self-signed certificate pinned as the only
//! thing trusted.
//!
//! lnd's tls.cert is self-signed and marked as a CA (`CA:TRUE`), and the
//! node presents that same certificate as its server certificate. webpki,
//! and so rustls' standard verifier (and tonic's TLS), refuses a CA
//! certificate in the server's place (`CaUsedAsEndEntity`), which is why
//! clients of lnd in Rust are tempted to turn verification off. This
//! verifier does not: the server must present exactly the pinned
//! certificate (byte for byte), the certificate must be valid for the host
//! name connected to (as lncli checks), and the handshake signatures are
//! verified with its key, so only the holder of the node's TLS key gets
//! through. No system or webpki roots are consulted. The certificate's
//! validity dates are not checked: the pin is the operator's explicit
//! choice of this one certificate, and lnd replaces an expired one with a
//! new certificate (which then no longer matches the pin).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::credentials::{LndHost, TlsCert};

/// Why a connection to lnd could not be made. Nothing was sent on it: a
/// request that fails with this in its error chain never reached lnd.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to lnd at {host}: {reason}")]
pub(crate) struct ConnectError {
    pub host: String,
    pub reason: String,
}

/// Why the pinned verifier refused the node's certificate.
#[derive(Debug, thiserror::Error)]
enum PinError {
    #[error(
        "the node presented a certificate other than the pinned tls.cert (sha256 {presented}, pinned {pinned}); \
         if the node's certificate was renewed, use its current tls.cert"
    )]
    Mismatch { presented: String, pinned: String },
    #[error(
        "the pinned tls.cert is not valid for the name {name:?} (connect by a name the certificate lists, \
         e.g. localhost or 127.0.0.1, or add it to lnd with tlsextradomain / tlsextraip and let lnd renew its certificate)"
    )]
    Name { name: String },
}

/// Accepts only the pinned certificate; see the module docs.
#[derive(Debug)]
struct PinnedCert {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let other = |e: PinError| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        };
        if end_entity.as_ref() != self.pinned.as_ref() {
            return Err(other(PinError::Mismatch {
                presented: fingerprint(end_entity.as_ref()),
                pinned: fingerprint(self.pinned.as_ref()),
            }));
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        })?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| {
                other(PinError::Name {
                    name: server_name.to_str().into_owned(),
                })
            })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client configuration that trusts `cert` alone and speaks
/// HTTP/2 (gRPC).
fn client_config(cert: &TlsCert) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert {
        pinned: cert.certificate_der(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()?
        // "dangerous" is rustls' name for any verifier of one's own; this
        // one verifies more narrowly than the default, not less.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Opens TLS connections to one lnd node.
#[derive(Clone)]
pub(crate) struct Connector {
    host: LndHost,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.host)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector to `host` pinning `cert`; a connection (TCP and TLS
    /// handshake) that takes longer than `timeout` fails.
    pub fn new(host: &LndHost, cert: &TlsCert, timeout: Duration) -> Result<Self, ConnectError> {
        let err = |reason: String| ConnectError {
            host: host.to_string(),
            reason,
        };
        let server_name = host.server_name().map_err(|e| err(e.to_string()))?;
        let config = client_config(cert).map_err(|e| err(format!("TLS setup failed: {e}")))?;
        Ok(Connector {
            host: host.clone(),
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// One TLS connection.
    pub async fn connect(&self) -> Result<TokioIo<TlsStream<TcpStream>>, ConnectError> {
        let err = |reason: String| ConnectError {
            host: self.host.to_string(),
            reason,
        };
        let attempt = async {
            let tcp = TcpStream::connect((self.host.host(), self.host.port()))
                .await
                .map_err(|e| err(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| err(format!("TLS handshake failed: {}", handshake_error(&e))))?;
            Ok(TokioIo::new(tls))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(err(format!(
                "no connection within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// A handshake error as a sentence: the pin's own reason when the pin
/// refused the certificate (rustls would print it with `Debug`).
fn handshake_error(e: &std::io::Error) -> String {
    let pin = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                Some(other.0.to_string())
            }
            _ => None,
        });
    pin.unwrap_or_else(|| e.to_string())
}

/// True when `error`'s chain holds a [`ConnectError`]: the request it
/// ended was never sent.
pub(crate) fn is_connect_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cur) = e {
        if cur.is::<ConnectError>() {
            return true;
        }
        e = cur.source();
    }
    false
}

/// The [`ConnectError`] in `error`'s chain, if any.
pub(crate) fn connect_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ConnectError> {
    let mut e: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(cur) = e {
        if let Some(c) = cur.downcast_ref::<ConnectError>() {
            return Some(c);
        }
        e = cur.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;

    const CERT: &str = include_str!("testdata/lnd-like-tls.cert");
    const KEY: &str = include_str!("testdata/lnd-like-tls.key");
    const OTHER_CERT: &str = include_str!("testdata/other-tls.cert");
    const OTHER_KEY: &str = include_str!("testdata/other-tls.key");

    /// A TLS server on `ip` presenting `cert` (a CA certificate, as lnd
    /// does), answering each handshake and closing.
    async fn server_on(ip: &str, cert: &str, key: &str) -> std::net::SocketAddr {
        let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        addr
    }

    async fn server(cert: &str, key: &str) -> std::net::SocketAddr {
        server_on("127.0.0.1", cert, key).await
    }

    fn connector(host: &str, pinned: &str) -> Connector {
        let host: LndHost = host.parse().unwrap();
        let cert = TlsCert::from_bytes(pinned.as_bytes()).unwrap();
        Connector::new(&host, &cert, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn the_pinned_ca_certificate_is_accepted_as_the_server_certificate() {
        let addr = server(CERT, KEY).await;
        for host in [
            format!("127.0.0.1:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ] {
            let c = connector(&host, CERT);
            let io = c.connect().await.unwrap();
            let (_, session) = io.inner().get_ref();
            assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "{host}");
        }
    }

    #[tokio::test]
    async fn another_certificate_is_refused_even_for_the_right_name() {
        let addr = server(OTHER_CERT, OTHER_KEY).await;
        let c = connector(&format!("127.0.0.1:{}", addr.port()), CERT);
        let e = c.connect().await.unwrap_err().to_string();
        assert!(
            e.contains("presented a certificate other than the pinned tls.cert"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_name_the_certificate_does_not_list_is_refused() {
        // A loopback address the certificate does not list (it lists only
        // 127.0.0.1 and ::1).
        let addr = server_on("127.0.0.2", CERT, KEY).await;
        let c = connector(&format!("127.0.0.2:{}", addr.port()), CERT);
        match c.connect().await {
            Err(e) => assert!(e.to_string().contains("not valid for the name"), "{e}"),
            Ok(_) => panic!("a name outside the certificate was accepted"),
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = connector(&format!("127.0.0.1:{port}"), CERT);
        let e = c.connect().await.unwrap_err();
        assert!(is_connect_error(&e));
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to lnd at 127.0.0.1:{port}: "))
        );
    }
}
