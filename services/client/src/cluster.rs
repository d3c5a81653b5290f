//! The joining side of the cluster port (9443): fetch a member's CA trusting nothing and
//! sending nothing secret, check it against the join token's fingerprint, then talk to the
//! member trusting exactly that CA (a root store of one).

use crate::error::ClientError;
use crate::error_body::ErrorBody;
use crate::https::{open_with, read_whole, send_trusting, ClientRequest, ClientResponse};
use crate::tls::{provider, Trust};
use hyper::Method;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// `GET`: the member's cluster CA certificate (PEM), public.
pub const CA_PATH: &str = "/cluster/v1/ca";
/// `POST`: a join request, answered with the grant.
pub const JOIN_PATH: &str = "/cluster/v1/join";
/// `POST`: a member's certificate renewal (`{"csr_pem"}`, mutual TLS with its current member
/// certificate), answered with `{"cert_pem"}`.
pub const RENEW_PATH: &str = "/cluster/v1/renew";

/// The certificates of a PEM text (none is an error).
fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Pem(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Pem(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// A CA certificate's fingerprint as join tokens carry it: `sha256:` and the lowercase hex
/// of the first certificate's DER.
pub fn ca_fingerprint(ca_pem: &str) -> Result<String, ClientError> {
    let der = certs(ca_pem, "the cluster CA")?;
    let digest = Sha256::digest(der[0].as_ref());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// The CA PEM a member serves at [`CA_PATH`], trusting its certificate for nothing and
/// sending nothing but the `GET`. Compare it before use ([`fetch_ca_checked`]).
pub async fn fetch_ca(addr: SocketAddr, timeout: Duration) -> Result<String, ClientError> {
    let r = send_trusting(
        addr,
        ClientRequest::new(Method::GET, CA_PATH),
        Trust::Record,
        timeout,
    )
    .await?;
    if r.status != 200 {
        let message = ErrorBody::from_json(&r.json())
            .map_or_else(|| "no error body".to_string(), |b| b.message);
        return Err(ClientError::Status(addr, r.status.as_u16(), message));
    }
    let pem = String::from_utf8(r.body.to_vec())
        .map_err(|_| ClientError::Pem(format!("the CA {addr} served is not text")))?;
    certs(&pem, "the CA the member served")?;
    Ok(pem)
}

/// [`fetch_ca`], then its fingerprint compared with `expected` (the token's; case and the
/// `sha256:`/`SHA256:` prefix do not matter): the CA only when they match.
pub async fn fetch_ca_checked(
    addr: SocketAddr,
    expected: &str,
    timeout: Duration,
) -> Result<String, ClientError> {
    let pem = fetch_ca(addr, timeout).await?;
    let got = ca_fingerprint(&pem)?;
    let want = expected.trim().to_ascii_lowercase();
    if got != want {
        return Err(ClientError::CaMismatch {
            addr,
            expected: want,
            got,
        });
    }
    Ok(pem)
}

/// A TLS client configuration that trusts exactly one cluster CA, and presents a member
/// certificate when it has one (issue 17: forwarded calls).
#[derive(Debug, Clone)]
pub struct MemberTls {
    config: Arc<ClientConfig>,
}

impl MemberTls {
    /// Trust exactly `ca_pem`; with `identity` (certificate chain PEM, key PEM), present it.
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<Self, ClientError> {
        let mut roots = RootCertStore::empty();
        for c in certs(ca_pem, "the cluster CA")? {
            roots
                .add(c)
                .map_err(|e| ClientError::Pem(format!("the cluster CA cannot be trusted: {e}")))?;
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| ClientError::Pem(format!("the cluster CA cannot be trusted: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(crate::tls::VersionsError::from_rustls)?
            .with_webpki_verifier(verifier);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let chain = certs(cert_pem, "the member certificate")?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                    ClientError::Pem(format!("the member key is not valid PEM: {e}"))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::Pem(format!("the member certificate: {e}")))?
            }
        };
        Ok(MemberTls {
            config: Arc::new(config),
        })
    }

    /// A tokio connector over this configuration.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }
}

/// Send `req` to a cluster member at `addr` over HTTPS/1.1, trusting exactly the cluster CA
/// of `tls` (and presenting its member certificate, if it has one), all within `timeout`.
pub async fn send_with(
    addr: SocketAddr,
    req: ClientRequest,
    tls: &MemberTls,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    let fut = async {
        let opened = open_with(addr, req, tls.connector(), None, || {
            "one not signed by the cluster CA".to_string()
        })
        .await?;
        read_whole(addr, opened).await
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))?
}

/// `POST` a join request (JSON) to the member at `addr`, trusting exactly `ca_pem` (fetched
/// and checked with [`fetch_ca_checked`] first). The answer as it came: 200 with the grant,
/// or the member's error.
pub async fn post_join(
    addr: SocketAddr,
    ca_pem: &str,
    request: &serde_json::Value,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    let tls = MemberTls::new(ca_pem, None)?;
    send_with(
        addr,
        ClientRequest::new(Method::POST, JOIN_PATH).json(request),
        &tls,
        timeout,
    )
    .await
}

/// `POST` this node's renewal CSR to the member at `addr`, trusting exactly the cluster CA and
/// presenting the node's current certificate (`tls` made with an identity). The answer as it
/// came: 200 with `{"cert_pem"}`, or the member's error.
pub async fn post_renew(
    addr: SocketAddr,
    tls: &MemberTls,
    csr_pem: &str,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    send_with(
        addr,
        ClientRequest::new(Method::POST, RENEW_PATH)
            .json(&serde_json::json!({ "csr_pem": csr_pem })),
        tls,
        timeout,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn fingerprint_is_sha256_of_the_der_in_lowercase_hex() {
        let pem = ca();
        let fp = ca_fingerprint(&pem).unwrap();
        let der = certs(&pem, "x").unwrap();
        let want: String = Sha256::digest(der[0].as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fp, format!("sha256:{want}"));
        assert!(ca_fingerprint("nothing").is_err());
    }

    #[test]
    fn member_tls_needs_a_ca() {
        assert!(MemberTls::new(&ca(), None).is_ok());
        let e = MemberTls::new("", None).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
    }
}
