//! The outbound HTTP client (awc over rustls with the system's CA certificates).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// TLS settings shared by every client: loading the system roots once is enough.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate the store rejects is skipped; the rest still work.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                tracing::warn!(
                    "no system CA certificates found; https calls will fail (install ca-certificates)"
                );
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // ring supports every safe default version, so this cannot fail.
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A client for Slack or OpenAI with a default per-request timeout. Must be created on the
/// thread (actix arbiter) that uses it.
pub fn http_client(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(tls_config()).timeout(Duration::from_secs(10)))
        .timeout(timeout)
        .add_default_header(("User-Agent", concat!("itbot/", env!("CARGO_PKG_VERSION"))))
        .finish()
}
