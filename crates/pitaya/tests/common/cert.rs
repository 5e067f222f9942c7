//! A self-signed certificate for `localhost`, written to a temporary directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use pitaya::acceptor::TlsConfig;

/// Certificate and key files in a fresh directory, removed on drop.
pub(crate) struct TestCert {
    dir: PathBuf,
    /// The certificate in PEM, what clients trust.
    pub(crate) cert_pem: String,
}

impl TestCert {
    /// Returns a new self-signed certificate for `localhost` on disk.
    pub(crate) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "pitaya-it-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_pem = certified.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        TestCert { dir, cert_pem }
    }

    /// Returns server TLS settings loaded from the files, as an app would.
    pub(crate) fn server_config(&self) -> TlsConfig {
        TlsConfig::from_pem_files(self.dir.join("cert.pem"), self.dir.join("key.pem")).unwrap()
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
