//! TLS client settings: web PKI roots, extra CA files, or no verification at all.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::options::TlsOptions;
use crate::url::ServerUrl;
use crate::ClientError;

/// Runs the client side of TLS handshakes with one server name.
#[derive(Clone)]
pub(super) struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

// ===== impl TlsConnector =====

impl TlsConnector {
    /// Returns a connector for `url` built from the TLS options.
    ///
    /// # Errors
    ///
    /// [`ClientError::Tls`] when a CA file cannot be read or used, or the server name
    /// is not a valid DNS name or IP address.
    pub(super) fn new(url: &ServerUrl, opts: &TlsOptions) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let config = if opts.insecure {
            let verifier = Arc::new(danger::NoVerification(provider));
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(roots(&opts.ca_files)?)
                .with_no_client_auth()
        };
        let host = opts.server_name.as_deref().unwrap_or(url.host());
        let name = ServerName::try_from(host.to_owned()).map_err(tls_error)?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// Runs the TLS handshake over `tcp`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] when the handshake fails, certificate errors included.
    pub(super) async fn connect(
        &self,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ClientError> {
        Ok(self.connector.connect(self.name.clone(), tcp).await?)
    }
}

/// Returns the web PKI roots plus every certificate in `ca_files`.
fn roots(ca_files: &[impl AsRef<Path>]) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in ca_files {
        let path = path.as_ref();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(tls_error(format!("no certificate in {}", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(tls_error)?;
        }
    }
    Ok(roots)
}

fn tls_error(e: impl Into<crate::error::BoxError>) -> ClientError {
    ClientError::Tls(e.into())
}

mod danger {
    use std::sync::Arc;

    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::{self, CryptoProvider};
    use tokio_rustls::rustls::{DigitallySignedStruct, Error, SignatureScheme};

    /// Accepts any certificate for any name; still checks handshake signatures, so the
    /// peer must hold the key of the certificate it shows.
    #[derive(Debug)]
    pub(super) struct NoVerification(pub(super) Arc<CryptoProvider>);

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            let algs = &self.0.signature_verification_algorithms;
            crypto::verify_tls12_signature(message, cert, dss, algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            let algs = &self.0.signature_verification_algorithms;
            crypto::verify_tls13_signature(message, cert, dss, algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
