//! The revocation list (CRL) etcd checks client and peer certificates against, built from
//! `/cairn/revoked/` and signed by the cluster CA.
//!
//! etcd 3.4 reads the file named by `ClientTLSInfo.CRLFile` / `PeerTLSInfo.CRLFile` on every
//! TLS handshake and refuses a certificate whose serial it lists (it compares serials only),
//! so rewriting the file atomically is all a change takes. A missing or unreadable file makes
//! etcd refuse every handshake: the file is written before etcd first starts (an empty list).

use crate::ca::{gen, load_ca, pem_der, to_offset, CaError};
use crate::error::ClusterError;
use crate::local::LocalFiles;
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// How long a CRL is declared valid (`nextUpdate`); etcd does not check it, other readers may.
pub const CRL_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// A serial as `/cairn/revoked/<serial>` keys it (lowercase hex, no leading zeros) → its bytes.
pub fn serial_bytes(serial_hex: &str) -> Result<Vec<u8>, CaError> {
    let s = serial_hex.trim();
    if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CaError::Parse {
            what: "a revoked serial",
            expected: "1 to 40 hex digits",
            reason: format!("{serial_hex:?}"),
        });
    }
    let padded = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    Ok((0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap_or(0))
        .collect())
}

/// A CRL (PEM) signed by the CA listing `serials` (hex, as in `/cairn/revoked/`), issued at
/// `now`; its number is `now` in seconds, so a later list has a higher number.
pub fn build_crl(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    serials: &[String],
    now: SystemTime,
) -> Result<String, CaError> {
    let (ca, key) = load_ca(ca_cert_pem, ca_key_pem)?;
    let this_update = to_offset(now)?;
    let mut revoked_certs = Vec::with_capacity(serials.len());
    for s in serials {
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial_bytes(s)?),
            revocation_time: this_update,
            reason_code: Some(RevocationReason::CessationOfOperation),
            invalidity_date: None,
        });
    }
    let number = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
        .max(1);
    let params = CertificateRevocationListParams {
        this_update,
        next_update: to_offset(now + CRL_VALIDITY)?,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(&ca, &key)
        .map_err(gen("signing the revocation list"))?
        .pem()
        .map_err(gen("encoding the revocation list"))
}

/// Build the CRL of `serials` with the CA in `files` and write it atomically to
/// [`LocalFiles::crl`] (0644: it holds nothing secret).
pub fn write_crl(
    files: &LocalFiles,
    serials: &[String],
    now: SystemTime,
) -> Result<(), ClusterError> {
    let ca_cert = files.read(&files.ca_cert()).map_err(ClusterError::Files)?;
    let ca_key = files.read(&files.ca_key()).map_err(ClusterError::Files)?;
    let pem = build_crl(&ca_cert, &ca_key, serials, now).map_err(ClusterError::Certificates)?;
    files
        .write(&files.crl(), pem.as_bytes(), 0o644)
        .map_err(ClusterError::Files)
}

/// The serials (lowercase hex, no leading zeros) a CRL (PEM) lists.
pub fn crl_serials(crl_pem: &str) -> Result<Vec<String>, CaError> {
    let der = pem_der(crl_pem, "the revocation list", "X509 CRL")?;
    let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| CaError::Parse {
        what: "the revocation list",
        expected: "X509 CRL",
        reason: e.to_string(),
    })?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| format!("{:x}", r.user_certificate))
        .collect())
}

/// The serial (lowercase hex, no leading zeros, as `/cairn/revoked/` keys it) of a
/// certificate given as DER (a TLS peer's leaf).
pub fn serial_of_der(der: &[u8]) -> Result<String, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::Parse {
        what: "the peer certificate",
        expected: "CERTIFICATE",
        reason: e.to_string(),
    })?;
    Ok(cert.serial.to_str_radix(16).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_lists_the_revoked_serials_of_node_certificates() {
        let now = SystemTime::now();
        let ca = crate::ca::create_ca("t", now).unwrap();
        let (_key, csr) = crate::ca::node_csr("node3", &[]).unwrap();
        let cert =
            crate::ca::sign_node_csr(&ca.cert_pem, &ca.key_pem, &csr, "node3", &[], now).unwrap();
        let serial = crate::ca::cert_info(&cert).unwrap().serial_hex;
        let pem = build_crl(
            &ca.cert_pem,
            &ca.key_pem,
            std::slice::from_ref(&serial),
            now,
        )
        .unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
        assert_eq!(crl_serials(&pem).unwrap(), vec![serial.clone()]);
        let der = crate::ca::pem_der(&cert, "c", "CERTIFICATE").unwrap();
        assert_eq!(serial_of_der(&der).unwrap(), serial);
    }

    #[test]
    fn an_empty_crl_is_valid_and_lists_nothing() {
        let now = SystemTime::now();
        let ca = crate::ca::create_ca("t", now).unwrap();
        let pem = build_crl(&ca.cert_pem, &ca.key_pem, &[], now).unwrap();
        assert!(crl_serials(&pem).unwrap().is_empty());
    }

    #[test]
    fn a_bad_serial_is_refused_naming_it() {
        let now = SystemTime::now();
        let ca = crate::ca::create_ca("t", now).unwrap();
        let e = build_crl(&ca.cert_pem, &ca.key_pem, &["zz".to_string()], now).unwrap_err();
        assert!(e.to_string().contains("\"zz\""), "{e}");
        assert_eq!(serial_bytes("abc").unwrap(), vec![0x0a, 0xbc]);
    }

    #[test]
    fn a_wrong_ca_key_is_refused() {
        let now = SystemTime::now();
        let a = crate::ca::create_ca("a", now).unwrap();
        let b = crate::ca::create_ca("b", now).unwrap();
        assert!(build_crl(&a.cert_pem, &b.key_pem, &[], now).is_err());
    }
}
