//! One root store for every HTTPS client of a process: Mozilla's root certificates compiled
//! in (`webpki-root-certs`, the rustls project's bundle), given to the AWS SDK's client and to
//! the WeChat client alike. Nothing is read from the file system at start-up: the system
//! store (`/etc/ssl/certs`, read once per client before) was most of a cold start (BENCHMARKS.md).
//!
//! Those roots cover AWS's endpoints (global and China regions) and api.weixin.qq.com. A
//! deployment behind a TLS-inspecting proxy adds its CA with `SSL_CERT_FILE` (a PEM file),
//! read once and trusted by both clients too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::OnceLock;

/// Certificates trusted beyond the compiled-in roots: the PEM file `SSL_CERT_FILE` names, if
/// any (read once).
pub fn extra_pem() -> Option<&'static [u8]> {
    static EXTRA: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    EXTRA
        .get_or_init(|| {
            let path = std::env::var_os("SSL_CERT_FILE")?;
            std::fs::read(path).ok()
        })
        .as_deref()
}

/// The compiled-in roots, DER.
pub fn roots_der() -> impl Iterator<Item = &'static [u8]> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| c.as_ref())
}

/// The compiled-in roots as one PEM bundle (the AWS SDK's trust store takes PEM).
pub fn roots_pem() -> Vec<u8> {
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2200);
    for der in roots_der() {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let b64 = STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// `loader` with the AWS SDK's HTTPS client on the same roots (rustls with aws-lc-rs, as the
/// SDK's default client).
pub fn with_roots(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{
        Provider, TlsContext, TrustStore, rustls_provider::CryptoMode,
    };
    let mut trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(roots_pem());
    if let Some(extra) = extra_pem() {
        trust.add_pem_certificate(extra.to_vec());
    }
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(ctx) => loader.http_client(builder.tls_context(ctx).build_https()),
        // Cannot happen with a trust store and no server names; the SDK's default then.
        Err(_) => loader,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundle_has_every_root() {
        let pem = super::roots_pem();
        let n = String::from_utf8_lossy(&pem)
            .matches("BEGIN CERTIFICATE")
            .count();
        assert_eq!(n, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(n > 100);
    }
}
