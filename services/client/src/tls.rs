//! The rustls client side of pinning: a verifier that trusts one certificate by fingerprint
//! (or records whichever it is shown), and client configurations built on it.

use crate::fingerprint::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsConnector;

/// The ring crypto provider (no aws-lc), for clients and the API's server alike.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How a client trusts the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Only the certificate with this fingerprint; any other fails the handshake.
    Pinned(Fingerprint),
    /// Any certificate; its fingerprint is recorded so the caller can compare it afterwards
    /// (a benchmark polling a node before it has read the console, pinning on first use).
    Record,
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS protocol versions are not supported by the ring provider")]
pub struct VersionsError(#[source] rustls::Error);

impl VersionsError {
    /// The error of a configuration builder that refused the default protocol versions.
    pub(crate) fn from_rustls(e: rustls::Error) -> Self {
        VersionsError(e)
    }
}

/// Accepts the certificate [`Trust`] allows and records the last one it saw.
#[derive(Debug)]
struct PinVerifier {
    trust: Trust,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp);
        match self.trust {
            Trust::Pinned(pin) if pin != fp => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for one [`Trust`], with the fingerprint its verifier last saw.
///
/// Sync callers hand [`PinnedTls::config`] to `rustls::ClientConnection`; async ones use
/// [`PinnedTls::connector`].
#[derive(Debug, Clone)]
pub struct PinnedTls {
    /// The configuration; every connection made with it checks the certificate.
    pub config: Arc<ClientConfig>,
    verifier: Arc<PinVerifier>,
}

impl PinnedTls {
    /// A configuration trusting per `trust` and offering the ALPN protocols `alpn` (none
    /// for plain HTTP/1.1, `h2` for callers that speak HTTP/2 themselves).
    pub fn new(trust: Trust, alpn: &[&[u8]]) -> Result<Self, VersionsError> {
        let provider = provider();
        let verifier = Arc::new(PinVerifier {
            trust,
            seen: Mutex::new(None),
            provider: provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(VersionsError)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(PinnedTls {
            config: Arc::new(config),
            verifier,
        })
    }

    /// The fingerprint of the last certificate a server presented through this
    /// configuration, whether or not it was trusted; `None` before any handshake.
    pub fn seen(&self) -> Option<Fingerprint> {
        *self.verifier.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A tokio connector over [`PinnedTls::config`].
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }
}

/// A TLS connector that trusts only the certificate with fingerprint `pin` and offers the
/// ALPN protocols `alpn` (e.g. `h2`): for callers that speak HTTP themselves (tests, probes).
pub fn pinned_connector(pin: Fingerprint, alpn: &[&[u8]]) -> Result<TlsConnector, VersionsError> {
    Ok(PinnedTls::new(Trust::Pinned(pin), alpn)?.connector())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_alpn_asked_for_and_sees_nothing_before_a_handshake() {
        let tls = PinnedTls::new(Trust::Record, &[b"h2", b"http/1.1"]).unwrap();
        assert_eq!(
            tls.config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.seen(), None);
        let plain = PinnedTls::new(Trust::Pinned(Fingerprint([1; 32])), &[]).unwrap();
        assert!(plain.config.alpn_protocols.is_empty());
    }
}
