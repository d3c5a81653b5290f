//! rustls server configuration (ring provider) from PEM certificate and key.

use cairn_client::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate PEM is not valid")]
    CertPem(#[source] rustls::pki_types::pem::Error),
    #[error("certificate PEM contains no certificate")]
    NoCert,
    #[error("private key PEM is not valid")]
    KeyPem(#[source] rustls::pki_types::pem::Error),
    #[error("TLS protocol versions are not supported by the ring provider")]
    Versions(#[source] rustls::Error),
    #[error("certificate and private key cannot be used together")]
    CertKey(#[source] rustls::Error),
}

pub use cairn_client::provider;

/// Parse the certificate chain from PEM (leaf first).
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertPem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCert);
    }
    Ok(certs)
}

/// Fingerprint of the leaf certificate in a PEM file.
pub fn leaf_fingerprint(cert_pem: &[u8]) -> Result<Fingerprint, TlsError> {
    Ok(Fingerprint::of_der(&certs_from_pem(cert_pem)?[0]))
}

/// A server configuration for HTTP/2 and HTTP/1.1; fails if the key does not match the
/// certificate.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::CertKey)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh self-signed certificate and key as PEM.
    pub(crate) fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn builds_config_and_fingerprint() {
        let (cert, key) = self_signed();
        let cfg = server_config(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(cfg.alpn_protocols.len(), 2);
        let der = certs_from_pem(cert.as_bytes()).unwrap();
        assert_eq!(
            leaf_fingerprint(cert.as_bytes()).unwrap(),
            Fingerprint::of_der(&der[0])
        );
    }

    #[test]
    fn mismatched_key_is_refused() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let err = server_config(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(matches!(err, TlsError::CertKey(_)), "{err}");
    }

    #[test]
    fn empty_or_garbage_pem_is_refused() {
        assert!(matches!(certs_from_pem(b""), Err(TlsError::NoCert)));
        let (cert, _) = self_signed();
        assert!(matches!(
            server_config(cert.as_bytes(), b"nothing"),
            Err(TlsError::KeyPem(_))
        ));
    }
}
