//! The cluster CA: the CA itself, node keys and CSRs, signing, and reading certificates back.
//!
//! Keys are ECDSA P-256. A node certificate (decision 0026): CN = node name, SANs = its cluster
//! address(es) + 127.0.0.1 + the node name, serverAuth + clientAuth (etcd uses one certificate
//! as peer, server and client), one year, renewed at 2/3 of its life. The CA: ten years,
//! CN "Cairn cluster CA <name>".

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long the CA certificate is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long a node certificate is valid.
pub const NODE_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Certificates start this long before "now", so a peer whose clock is a little behind
/// accepts them.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A failure of the cluster CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Generating a key, building or signing a certificate failed.
    #[error("{what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A PEM input could not be read as what it should be.
    #[error("{what} is not a valid PEM {expected}: {reason}")]
    Parse {
        what: &'static str,
        expected: &'static str,
        reason: String,
    },
    /// The CSR asks for another node name than the one expected.
    #[error("the CSR's common name is {got:?}, expected the node name {expected:?}")]
    WrongName { expected: String, got: String },
    /// The CSR asks for a subject alternative name the signer was not told to allow.
    #[error("the CSR asks for the subject alternative name {0}, which is not allowed")]
    SanNotAllowed(String),
    /// A node name that cannot be a certificate's CN and DNS name.
    #[error("invalid node name {0:?}: 1-63 of a-z 0-9 -, starting with a letter")]
    BadName(String),
    /// The certificate was not signed by the CA.
    #[error("the certificate {subject:?} is not signed by the CA {ca:?}: {reason}")]
    NotSignedBy {
        subject: String,
        ca: String,
        reason: String,
    },
    /// A time outside what a certificate can hold.
    #[error("time out of range: {0}")]
    Time(String),
}

/// A CA certificate and its key (PEM).
#[derive(Clone)]
pub struct CaBundle {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What a certificate says, as far as the cluster cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name.
    pub common_name: String,
    /// The serial number, lowercase hex without leading zeros (the key of
    /// `/cairn/revoked/<serial>`).
    pub serial_hex: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub is_ca: bool,
}

/// Whether `name` is a valid node name (1-63 of `a-z 0-9 -`, starting with a letter).
pub fn valid_node_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Create a cluster CA for the cluster `cluster_name`, valid ten years from `now`.
pub fn create_ca(cluster_name: &str, now: SystemTime) -> Result<CaBundle, CaError> {
    let key = KeyPair::generate().map_err(gen("generating the CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("Cairn cluster CA {cluster_name}"),
    );
    dn.push(DnType::OrganizationName, "Cairn");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    let start = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    params.not_before = to_offset(start)?;
    params.not_after = to_offset(now + CA_VALIDITY)?;
    let cert = params
        .self_signed(&key)
        .map_err(gen("self-signing the CA"))?;
    Ok(CaBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The CA's fingerprint: `sha256:` + lowercase hex of its certificate's DER.
pub fn fingerprint(cert_pem: &str) -> Result<String, CaError> {
    let der = pem_der(cert_pem, "the certificate", "CERTIFICATE")?;
    Ok(format!("sha256:{}", hex(&Sha256::digest(&der))))
}

/// A fresh node key and a CSR for it: CN = `name`, SANs = `name`, 127.0.0.1 and `ips`.
/// Returns `(key_pem, csr_pem)`.
pub fn node_csr(name: &str, ips: &[IpAddr]) -> Result<(String, String), CaError> {
    if !valid_node_name(name) {
        return Err(CaError::BadName(name.to_string()));
    }
    let key = KeyPair::generate().map_err(gen("generating the node key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = node_sans(name, ips)?;
    let csr = params
        .serialize_request(&key)
        .map_err(gen("building the CSR"))?;
    let csr_pem = csr.pem().map_err(gen("encoding the CSR"))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// Sign a node's CSR with the CA. The CSR's CN must be `expected_name`; every SAN it asks for
/// must be the node name, 127.0.0.1 or one of `allowed_ips` (else the CSR is refused, naming
/// it). The certificate gets serverAuth + clientAuth, a random serial, one year from `now`.
/// Returns the certificate (PEM).
pub fn sign_node_csr(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    csr_pem: &str,
    expected_name: &str,
    allowed_ips: &[IpAddr],
    now: SystemTime,
) -> Result<String, CaError> {
    if !valid_node_name(expected_name) {
        return Err(CaError::BadName(expected_name.to_string()));
    }
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| CaError::Parse {
        what: "the CSR",
        expected: "CERTIFICATE REQUEST (with a valid signature)",
        reason: e.to_string(),
    })?;
    let cn = dn_text(csr.params.distinguished_name.get(&DnType::CommonName)).unwrap_or_default();
    if cn != expected_name {
        return Err(CaError::WrongName {
            expected: expected_name.to_string(),
            got: cn,
        });
    }
    for san in &csr.params.subject_alt_names {
        let ok = match san {
            SanType::DnsName(d) => d.as_str() == expected_name,
            SanType::IpAddress(ip) => {
                *ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || allowed_ips.contains(ip)
            }
            _ => false,
        };
        if !ok {
            return Err(CaError::SanNotAllowed(san_text(san)));
        }
    }
    let (ca_cert, ca_key) = load_ca(ca_cert_pem, ca_key_pem)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, expected_name);
    params.distinguished_name = dn;
    params.subject_alt_names = csr.params.subject_alt_names.clone();
    node_cert_params(&mut params, now)?;
    let cert = params
        .signed_by(&csr.public_key, &ca_cert, &ca_key)
        .map_err(gen("signing the node certificate"))?;
    Ok(cert.pem())
}

/// A key and certificate for a node, signed directly (the CA's own node at create time, or a
/// renewal by this node's own CA key). Returns `(key_pem, cert_pem)`.
pub fn issue_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    name: &str,
    ips: &[IpAddr],
    now: SystemTime,
) -> Result<(String, String), CaError> {
    let (key_pem, csr_pem) = node_csr(name, ips)?;
    let cert_pem = sign_node_csr(ca_cert_pem, ca_key_pem, &csr_pem, name, ips, now)?;
    Ok((key_pem, cert_pem))
}

/// Read a certificate (PEM): CN, serial, validity, SANs.
pub fn cert_info(cert_pem: &str) -> Result<CertInfo, CaError> {
    let der = pem_der(cert_pem, "the certificate", "CERTIFICATE")?;
    let cert = parse_der(&der, "the certificate")?;
    let common_name = common_name(&cert);
    let mut dns_names = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let v = cert.validity();
    // Canonical lowercase hex without leading zeros.
    let serial = cert.serial.to_str_radix(16).to_lowercase();
    Ok(CertInfo {
        common_name,
        serial_hex: serial,
        not_before: from_epoch(v.not_before.timestamp()),
        not_after: from_epoch(v.not_after.timestamp()),
        dns_names,
        ips,
        is_ca: cert.is_ca(),
    })
}

/// Check that `cert_pem` was issued by the CA `ca_pem`: issuer name and signature.
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> Result<(), CaError> {
    let der = pem_der(cert_pem, "the certificate", "CERTIFICATE")?;
    let ca_der = pem_der(ca_pem, "the CA certificate", "CERTIFICATE")?;
    let cert = parse_der(&der, "the certificate")?;
    let ca = parse_der(&ca_der, "the CA certificate")?;
    let fail = |reason: String| CaError::NotSignedBy {
        subject: common_name(&cert),
        ca: common_name(&ca),
        reason,
    };
    if cert.issuer() != ca.subject() {
        return Err(fail(format!(
            "its issuer is {}, the CA is {}",
            cert.issuer(),
            ca.subject()
        )));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| fail(format!("bad signature ({e})")))
}

/// Whether a certificate is at or past 2/3 of its life at `now` (or already expired).
pub fn needs_renewal(cert_pem: &str, now: SystemTime) -> Result<bool, CaError> {
    let info = cert_info(cert_pem)?;
    let life = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    let renew_at = info.not_before + life * 2 / 3;
    Ok(now >= renew_at)
}

fn node_cert_params(params: &mut CertificateParams, now: SystemTime) -> Result<(), CaError> {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    let start = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    params.not_before = to_offset(start)?;
    params.not_after = to_offset(now + NODE_VALIDITY)?;
    Ok(())
}

fn node_sans(name: &str, ips: &[IpAddr]) -> Result<Vec<SanType>, CaError> {
    let mut all: Vec<IpAddr> = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    for ip in ips {
        if !all.contains(ip) {
            all.push(*ip);
        }
    }
    let mut sans = vec![SanType::DnsName(
        name.to_string()
            .try_into()
            .map_err(gen("the node name as a DNS name"))?,
    )];
    sans.extend(all.into_iter().map(SanType::IpAddress));
    Ok(sans)
}

pub(crate) fn load_ca(
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<(rcgen::Certificate, KeyPair), CaError> {
    let key = KeyPair::from_pem(ca_key_pem).map_err(|e| CaError::Parse {
        what: "the CA key",
        expected: "PRIVATE KEY",
        reason: e.to_string(),
    })?;
    let params = CertificateParams::from_ca_cert_pem(ca_cert_pem).map_err(|e| CaError::Parse {
        what: "the CA certificate",
        expected: "CERTIFICATE",
        reason: e.to_string(),
    })?;
    // Only the params (name, key identifier) are used as the issuer; re-signing is harmless.
    let cert = params
        .self_signed(&key)
        .map_err(gen("loading the CA (does the key match the certificate?)"))?;
    let ca_der = pem_der(ca_cert_pem, "the CA certificate", "CERTIFICATE")?;
    let ca = parse_der(&ca_der, "the CA certificate")?;
    if ca.public_key().raw != key.public_key_der().as_slice() {
        return Err(CaError::Parse {
            what: "the CA key",
            expected: "PRIVATE KEY",
            reason: "it does not belong to the CA certificate".to_string(),
        });
    }
    Ok((cert, key))
}

fn dn_text(v: Option<&DnValue>) -> Option<String> {
    match v? {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        DnValue::Ia5String(s) => Some(s.as_str().to_string()),
        DnValue::TeletexString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn san_text(san: &SanType) -> String {
    match san {
        SanType::DnsName(d) => format!("DNS:{}", d.as_str()),
        SanType::IpAddress(ip) => format!("IP:{ip}"),
        SanType::Rfc822Name(m) => format!("email:{}", m.as_str()),
        SanType::URI(u) => format!("URI:{}", u.as_str()),
        other => format!("{other:?}"),
    }
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn parse_der<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, CaError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CaError::Parse {
            what,
            expected: "CERTIFICATE",
            reason: e.to_string(),
        })
}

pub(crate) fn pem_der(
    text: &str,
    what: &'static str,
    label: &'static str,
) -> Result<Vec<u8>, CaError> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| CaError::Parse {
            what,
            expected: label,
            reason: e.to_string(),
        })?;
    if pem.label != label {
        return Err(CaError::Parse {
            what,
            expected: label,
            reason: format!("found a {} block", pem.label),
        });
    }
    Ok(pem.contents)
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| CaError::Time(format!("no randomness: {e}")))?;
    // Positive and without a leading zero byte, so it prints the same everywhere.
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

pub(crate) fn to_offset(t: SystemTime) -> Result<OffsetDateTime, CaError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CaError::Time("before 1970".to_string()))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| CaError::Time(format!("{secs} s")))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Time(e.to_string()))
}

fn from_epoch(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

pub(crate) fn gen(what: &'static str) -> impl Fn(rcgen::Error) -> CaError {
    move |source| CaError::Generate { what, source }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ca_is_a_ca_with_the_cluster_name() {
        let now = SystemTime::now();
        let ca = create_ca("lab", now).unwrap();
        let info = cert_info(&ca.cert_pem).unwrap();
        assert_eq!(info.common_name, "Cairn cluster CA lab");
        assert!(info.is_ca);
        let life = info.not_after.duration_since(now).unwrap();
        assert!(life > CA_VALIDITY - Duration::from_secs(5) && life <= CA_VALIDITY);
        verify_signed_by(&ca.cert_pem, &ca.cert_pem).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        let ca = create_ca("lab", SystemTime::now()).unwrap();
        let fp = fingerprint(&ca.cert_pem).unwrap();
        assert!(fp.starts_with("sha256:"));
        assert_eq!(fp.len(), 7 + 64);
        assert!(fp[7..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(fp, fingerprint(&ca.cert_pem).unwrap());
        let other = create_ca("lab", SystemTime::now()).unwrap();
        assert_ne!(fp, fingerprint(&other.cert_pem).unwrap());
        let e = fingerprint("not a pem").unwrap_err();
        assert!(e.to_string().contains("not a valid PEM"), "{e}");
    }

    #[test]
    fn csr_signed_into_a_node_certificate() {
        let now = SystemTime::now();
        let ca = create_ca("lab", now).unwrap();
        let (key, csr) = node_csr("node2", &[ip("10.0.0.2")]).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let cert = sign_node_csr(
            &ca.cert_pem,
            &ca.key_pem,
            &csr,
            "node2",
            &[ip("10.0.0.2")],
            now,
        )
        .unwrap();
        verify_signed_by(&cert, &ca.cert_pem).unwrap();
        let info = cert_info(&cert).unwrap();
        assert_eq!(info.common_name, "node2");
        assert!(!info.is_ca);
        assert_eq!(info.dns_names, vec!["node2".to_string()]);
        assert_eq!(info.ips, vec![ip("127.0.0.1"), ip("10.0.0.2")]);
        assert!(!info.serial_hex.is_empty() && !info.serial_hex.starts_with('0'));
        let life = info.not_after.duration_since(now).unwrap();
        assert!(life > NODE_VALIDITY - Duration::from_secs(5) && life <= NODE_VALIDITY);
        // Extended key usages: both server and client.
        let der = pem_der(&cert, "c", "CERTIFICATE").unwrap();
        let parsed = parse_der(&der, "c").unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        // Serials are random.
        let cert2 = sign_node_csr(
            &ca.cert_pem,
            &ca.key_pem,
            &csr,
            "node2",
            &[ip("10.0.0.2")],
            now,
        )
        .unwrap();
        assert_ne!(cert_info(&cert2).unwrap().serial_hex, info.serial_hex);
    }

    #[test]
    fn csr_with_another_name_or_san_is_refused() {
        let now = SystemTime::now();
        let ca = create_ca("lab", now).unwrap();
        let (_, csr) = node_csr("node2", &[ip("10.0.0.2")]).unwrap();
        let e = sign_node_csr(
            &ca.cert_pem,
            &ca.key_pem,
            &csr,
            "node3",
            &[ip("10.0.0.2")],
            now,
        )
        .unwrap_err();
        assert!(matches!(e, CaError::WrongName { .. }), "{e}");
        let e = sign_node_csr(
            &ca.cert_pem,
            &ca.key_pem,
            &csr,
            "node2",
            &[ip("10.0.0.9")],
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("IP:10.0.0.2"), "{e}");
        let e = sign_node_csr(&ca.cert_pem, &ca.key_pem, "garbage", "node2", &[], now).unwrap_err();
        assert!(e.to_string().contains("the CSR"), "{e}");
        assert!(matches!(node_csr("Node_2", &[]), Err(CaError::BadName(_))));
    }

    #[test]
    fn wrong_ca_key_or_other_ca_is_refused() {
        let now = SystemTime::now();
        let ca = create_ca("lab", now).unwrap();
        let other = create_ca("lab", now).unwrap();
        let (_, csr) = node_csr("node2", &[]).unwrap();
        let e = sign_node_csr(&ca.cert_pem, &other.key_pem, &csr, "node2", &[], now).unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        let (_, cert) = issue_node_cert(&ca.cert_pem, &ca.key_pem, "node1", &[], now).unwrap();
        let e = verify_signed_by(&cert, &other.cert_pem).unwrap_err();
        assert!(matches!(e, CaError::NotSignedBy { .. }), "{e}");
        // Same subject name, other key: caught by the signature, not the name.
        assert!(e.to_string().contains("bad signature"), "{e}");
    }

    #[test]
    fn renewal_at_two_thirds() {
        let now = SystemTime::now();
        let ca = create_ca("lab", now).unwrap();
        let (_, cert) =
            issue_node_cert(&ca.cert_pem, &ca.key_pem, "node1", &[ip("10.0.0.1")], now).unwrap();
        let info = cert_info(&cert).unwrap();
        let life = info.not_after.duration_since(info.not_before).unwrap();
        let at = info.not_before + life * 2 / 3;
        assert!(!needs_renewal(&cert, now).unwrap());
        assert!(!needs_renewal(&cert, at - Duration::from_secs(60)).unwrap());
        assert!(needs_renewal(&cert, at + Duration::from_secs(1)).unwrap());
        assert!(needs_renewal(&cert, info.not_after + Duration::from_secs(1)).unwrap());
    }
}
