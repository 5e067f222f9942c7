//! TLS settings shared by the TCP and WebSocket acceptors (spec 1.5).
//!
//! We use rustls with the ring provider and no client certificates, as Go Pitaya uses
//! `crypto/tls` with its defaults: TLS 1.2 and 1.3.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Server-side TLS settings for an acceptor.
///
/// Cheap to clone: the rustls configuration is shared.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use pitaya::acceptor::{TcpAcceptor, TlsConfig};
///
/// let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let acceptor = TcpAcceptor::bind("0.0.0.0:3250").await?.with_tls(tls);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

/// Returned when TLS settings cannot be built from certificate and key files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A file holds a malformed PEM section.
    #[error("invalid pem in {}", path.display())]
    Pem {
        /// File that failed.
        path: PathBuf,
        /// Underlying PEM error.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", path.display())]
    NoCertificate {
        /// File that was read.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("no private key in {}", path.display())]
    NoPrivateKey {
        /// File that was read.
        path: PathBuf,
    },
    /// rustls refused the certificate chain or the key.
    #[error("invalid tls certificate or key")]
    Rustls(#[from] rustls::Error),
}

// ===== impl TlsConfig =====

impl TlsConfig {
    /// Returns TLS settings from a PEM certificate chain file and a PEM private key file.
    ///
    /// The certificate file may hold the whole chain, leaf first. The key may be PKCS#8,
    /// PKCS#1 (RSA) or SEC1 (EC); the first key in the file is used. Files are read
    /// synchronously: call this at start-up, not on a busy runtime.
    ///
    /// # Errors
    ///
    /// [`TlsError`] when a file cannot be read, holds bad PEM, holds no certificate or
    /// no key, or when rustls rejects the pair (for instance, a key that does not match).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let certs = read_certs(cert.as_ref())?;
        let key = read_key(key.as_ref())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        Ok(Self::from_server_config(Arc::new(config)))
    }

    /// Returns TLS settings from a ready rustls configuration.
    ///
    /// Use this for in-memory certificates, client authentication or ALPN.
    pub fn from_server_config(cfg: Arc<ServerConfig>) -> Self {
        TlsConfig {
            acceptor: TlsAcceptor::from(cfg),
        }
    }

    /// Returns the acceptor that runs the server side of the handshake.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

// Written by hand so that no key material can ever reach a log.
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Returns the contents of `path`, with the path in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Returns every certificate of a PEM file, in file order.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Returns the first private key of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(source) => Err(TlsError::Pem {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use pitaya_protocol::{Packet, PacketType};
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::acceptor::{Acceptor, TcpAcceptor};
    #[cfg(feature = "ws")]
    use {
        crate::acceptor::WsAcceptor, tokio_tungstenite::client_async,
        tokio_tungstenite::tungstenite::Message,
    };

    /// A self-signed certificate for `localhost` written to a fresh temporary directory.
    struct TestCert {
        dir: PathBuf,
        cert_pem: String,
    }

    impl TestCert {
        fn new(name: &str) -> Self {
            let unique = format!("pitaya-tls-{name}-{}", std::process::id());
            let dir = std::env::temp_dir().join(unique);
            std::fs::create_dir_all(&dir).unwrap();
            let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let cert_pem = certified.cert.pem();
            std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
            std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
            TestCert { dir, cert_pem }
        }

        fn cert_path(&self) -> PathBuf {
            self.dir.join("cert.pem")
        }

        fn key_path(&self) -> PathBuf {
            self.dir.join("key.pem")
        }

        fn server_config(&self) -> TlsConfig {
            TlsConfig::from_pem_files(self.cert_path(), self.key_path()).unwrap()
        }

        /// Returns a TLS client over `stream` that trusts only this certificate.
        async fn connect(&self, stream: TcpStream) -> TlsStream<TcpStream> {
            let mut roots = rustls::RootCertStore::empty();
            let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
            roots.add(cert).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from("localhost").unwrap();
            connector.connect(name, stream).await.unwrap()
        }
    }

    impl Drop for TestCert {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn tcp_with_tls_exchanges_packets_both_ways() {
        let cert = TestCert::new("tcp");
        let acceptor = TcpAcceptor::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_tls(cert.server_config());
        assert_eq!(acceptor.transport(), "tls");

        let tcp = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        let (incoming, _) = acceptor.accept(1024).await.unwrap();
        // Both handshake sides must progress at once, so the server side runs in a task.
        let server = tokio::spawn(incoming);
        let mut client = cert.connect(tcp).await;
        let mut conn = server.await.unwrap().unwrap();

        client.write_all(&[4, 0, 0, 2, b'h', b'i']).await.unwrap();
        client.flush().await.unwrap();
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, &b"hi"[..]));

        conn.sink
            .send(Packet::heartbeat().to_bytes().unwrap())
            .await
            .unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [3, 0, 0, 0]);
    }

    #[tokio::test]
    async fn proxy_header_is_read_in_clear_before_the_tls_handshake() {
        let cert = TestCert::new("proxy");
        let acceptor = TcpAcceptor::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_tls(cert.server_config())
            .with_proxy_protocol();

        let mut tcp = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        tcp.write_all(b"PROXY TCP4 198.51.100.9 192.0.2.1 40001 3250\r\n")
            .await
            .unwrap();
        let (incoming, _) = acceptor.accept(1024).await.unwrap();
        let server = tokio::spawn(incoming);
        let mut client = cert.connect(tcp).await;
        let mut conn = server.await.unwrap().unwrap();
        assert_eq!(
            conn.remote_addr,
            Some("198.51.100.9:40001".parse().unwrap())
        );

        client.write_all(&[3, 0, 0, 0]).await.unwrap();
        client.flush().await.unwrap();
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::heartbeat());
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let cert = TestCert::new("missing");
        let err = TlsConfig::from_pem_files(cert.dir.join("nope.pem"), cert.key_path());
        assert!(matches!(err, Err(TlsError::Read { .. })));
    }

    #[test]
    fn file_without_certificate_is_rejected() {
        let cert = TestCert::new("nocert");
        let err = TlsConfig::from_pem_files(cert.key_path(), cert.key_path());
        assert!(matches!(err, Err(TlsError::NoCertificate { path }) if path == cert.key_path()));
    }

    #[test]
    fn file_without_key_is_rejected() {
        let cert = TestCert::new("nokey");
        let err = TlsConfig::from_pem_files(cert.cert_path(), cert.cert_path());
        assert!(matches!(err, Err(TlsError::NoPrivateKey { path }) if path == cert.cert_path()));
    }

    #[test]
    fn truncated_pem_is_a_pem_error() {
        let cert = TestCert::new("truncated");
        let bad = cert.dir.join("bad.pem");
        let text = cert.cert_pem.lines().take(3).collect::<Vec<_>>().join("\n");
        std::fs::write(&bad, text).unwrap();
        let err = TlsConfig::from_pem_files(&bad, cert.key_path());
        assert!(matches!(err, Err(TlsError::Pem { .. })));
    }

    #[test]
    fn key_of_another_certificate_is_a_rustls_error() {
        let one = TestCert::new("pair-one");
        let two = TestCert::new("pair-two");
        let err = TlsConfig::from_pem_files(one.cert_path(), two.key_path());
        assert!(matches!(err, Err(TlsError::Rustls(_))));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let cert = TestCert::new("debug");
        assert_eq!(format!("{:?}", cert.server_config()), "TlsConfig { .. }");
    }

    #[cfg(feature = "ws")]
    #[tokio::test]
    async fn wss_exchanges_packets_both_ways() {
        let cert = TestCert::new("wss");
        let acceptor = WsAcceptor::bind("127.0.0.1:0")
            .await
            .unwrap()
            .with_tls(cert.server_config());
        assert_eq!(acceptor.transport(), "wss");

        let tcp = TcpStream::connect(acceptor.local_addr()).await.unwrap();
        let (incoming, _) = acceptor.accept(1024).await.unwrap();
        let server = tokio::spawn(incoming);
        let tls = cert.connect(tcp).await;
        let (mut client, _) = client_async("wss://localhost/", tls).await.unwrap();
        let mut conn = server.await.unwrap().unwrap();

        client
            .send(Message::binary(vec![4, 0, 0, 1, 7]))
            .await
            .unwrap();
        let packet = conn.stream.next().await.unwrap().unwrap();
        assert_eq!(packet, Packet::new(PacketType::Data, vec![7]));

        conn.sink
            .send(Packet::kick().to_bytes().unwrap())
            .await
            .unwrap();
        let msg = client.next().await.unwrap().unwrap();
        assert_eq!(msg.into_data(), &[5, 0, 0, 0][..]);
    }
}
