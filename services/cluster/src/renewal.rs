//! Node certificate renewal without downtime: when it is due, the schedule, the signing (by
//! this node's own CA key, or a member's on the cluster port) and the atomic install that a
//! running etcd and cluster port pick up at their next handshake.
//!
//! etcd 3.4 reads its `cert-file`/`key-file` at every TLS handshake (its `tlsutil` loads the
//! pair in `GetCertificate`), and the cluster port serves through a resolver that rereads the
//! files when they change, so neither restarts. The key is written before the certificate:
//! a handshake between the two writes fails once and the peer retries; never the other way
//! round (a new certificate with the old key would be served until the key lands).

use crate::ca::{self, CaError};
use crate::local::LocalFiles;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// How often the loop looks at the certificate when renewal is far away (it also wakes at the
/// renewal time itself, whichever comes first).
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The first retry after a failed renewal; doubled per failure up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between retries of a failed renewal.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// What the renewal loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The certificate is at or past 2/3 of its life (or expired): renew now.
    RenewNow,
    /// Look again after this long.
    CheckIn(Duration),
}

/// When to renew `cert_pem`, seen at `now`: [`ca::needs_renewal`] decides; otherwise wake at
/// the renewal time, but at least every [`CHECK_EVERY`] (a clock that jumps is noticed).
pub fn schedule(cert_pem: &str, now: SystemTime) -> Result<Next, CaError> {
    if ca::needs_renewal(cert_pem, now)? {
        return Ok(Next::RenewNow);
    }
    let info = ca::cert_info(cert_pem)?;
    let life = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    let renew_at = info.not_before + life * 2 / 3;
    let wait = renew_at.duration_since(now).unwrap_or_default();
    Ok(Next::CheckIn(
        wait.min(CHECK_EVERY).max(Duration::from_secs(1)),
    ))
}

/// The wait after `failures` failed renewals in a row (1, 2, …): 1 min, 2 min, 4 min, … 1 h.
pub fn retry_after(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << shift).min(MAX_RETRY)
}

/// A renewal that was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub old_serial: String,
    pub new_serial: String,
    pub not_after: SystemTime,
}

/// Why a renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum RenewalError {
    #[error("node certificate")]
    Certificate(#[source] CaError),
    #[error("cluster files")]
    Files(#[source] crate::local::LocalError),
    /// The certificate the member signed is not for this node or not from the cluster CA.
    #[error("the renewed certificate is refused: {0}")]
    Refused(String),
    /// The caller of a member-signed renewal is not a member.
    #[error("the caller's certificate is not a member certificate of this cluster: {0}")]
    NotAMember(String),
    /// This node has no CA key and no member signed its CSR.
    #[error("no member signed the renewal: {0}")]
    NoSigner(String),
}

/// What the current node certificate names: its CN and IP SANs (kept in the renewed one).
pub fn current_identity(files: &LocalFiles) -> Result<(String, Vec<IpAddr>, String), RenewalError> {
    let pem = files
        .read(&files.node_cert())
        .map_err(RenewalError::Files)?;
    let info = ca::cert_info(&pem).map_err(RenewalError::Certificate)?;
    Ok((info.common_name, info.ips, info.serial_hex))
}

/// Whether this node holds the CA key (it signs its own renewal then).
pub fn holds_ca_key(files: &LocalFiles) -> bool {
    files.ca_key().exists()
}

/// A fresh key and CSR for this node's renewal, with the same name and addresses as its
/// current certificate. Returns `(key_pem, csr_pem)`.
pub fn renewal_csr(files: &LocalFiles) -> Result<(String, String), RenewalError> {
    let (name, ips, _) = current_identity(files)?;
    ca::node_csr(&name, &ips).map_err(RenewalError::Certificate)
}

/// Renew with this node's own CA key: a new key and certificate, installed.
pub fn renew_with_own_ca(files: &LocalFiles, now: SystemTime) -> Result<Renewed, RenewalError> {
    let ca_cert = files.read(&files.ca_cert()).map_err(RenewalError::Files)?;
    let ca_key = files.read(&files.ca_key()).map_err(RenewalError::Files)?;
    let (name, ips, _) = current_identity(files)?;
    let (key_pem, csr_pem) = ca::node_csr(&name, &ips).map_err(RenewalError::Certificate)?;
    let cert_pem = ca::sign_node_csr(&ca_cert, &ca_key, &csr_pem, &name, &ips, now)
        .map_err(RenewalError::Certificate)?;
    install(files, &key_pem, &cert_pem)
}

/// Install a renewed key and certificate (checked against the CA and this node's name first):
/// the key, then the certificate, each written atomically (temp file, fsync, rename).
pub fn install(files: &LocalFiles, key_pem: &str, cert_pem: &str) -> Result<Renewed, RenewalError> {
    let ca_cert = files.read(&files.ca_cert()).map_err(RenewalError::Files)?;
    let (name, _, old_serial) = current_identity(files)?;
    ca::verify_signed_by(cert_pem, &ca_cert).map_err(|e| RenewalError::Refused(e.to_string()))?;
    let info = ca::cert_info(cert_pem).map_err(RenewalError::Certificate)?;
    if info.common_name != name {
        return Err(RenewalError::Refused(format!(
            "it is for {:?}, this node is {name:?}",
            info.common_name
        )));
    }
    files
        .write(&files.node_key(), key_pem.as_bytes(), 0o600)
        .map_err(RenewalError::Files)?;
    files
        .write(&files.node_cert(), cert_pem.as_bytes(), 0o644)
        .map_err(RenewalError::Files)?;
    Ok(Renewed {
        old_serial,
        new_serial: info.serial_hex,
        not_after: info.not_after,
    })
}

/// The member side of a renewal asked over the cluster port: sign `csr_pem` for the caller
/// whose (TLS-verified) certificate is `caller_pem`. The CSR must carry the caller's name and
/// may only ask for the addresses its current certificate has; a revoked caller is refused by
/// the caller of this function (it reads `/cairn/revoked/`).
pub fn sign_for_member(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    caller_pem: &str,
    csr_pem: &str,
    now: SystemTime,
) -> Result<String, RenewalError> {
    ca::verify_signed_by(caller_pem, ca_cert_pem)
        .map_err(|e| RenewalError::NotAMember(e.to_string()))?;
    let caller = ca::cert_info(caller_pem).map_err(RenewalError::Certificate)?;
    if caller.is_ca {
        return Err(RenewalError::NotAMember("it is a CA certificate".into()));
    }
    if caller.not_after <= now {
        return Err(RenewalError::NotAMember("it has expired".into()));
    }
    ca::sign_node_csr(
        ca_cert_pem,
        ca_key_pem,
        csr_pem,
        &caller.common_name,
        &caller.ips,
        now,
    )
    .map_err(RenewalError::Certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const DAY: Duration = Duration::from_secs(86_400);

    fn setup() -> (tempfile::TempDir, LocalFiles, ca::CaBundle) {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles {
            dir: dir.path().to_path_buf(),
        };
        let now = SystemTime::now();
        let ca = ca::create_ca("t", now).unwrap();
        let (key, cert) = ca::issue_node_cert(
            &ca.cert_pem,
            &ca.key_pem,
            "node1",
            &["10.0.0.1".parse().unwrap()],
            now,
        )
        .unwrap();
        files
            .write(&files.ca_cert(), ca.cert_pem.as_bytes(), 0o644)
            .unwrap();
        files
            .write(&files.ca_key(), ca.key_pem.as_bytes(), 0o600)
            .unwrap();
        files
            .write(&files.node_cert(), cert.as_bytes(), 0o644)
            .unwrap();
        files
            .write(&files.node_key(), key.as_bytes(), 0o600)
            .unwrap();
        (dir, files, ca)
    }

    #[test]
    fn schedule_waits_until_two_thirds_and_checks_at_least_every_six_hours() {
        let (_d, files, _) = setup();
        let cert = files.read(&files.node_cert()).unwrap();
        let info = ca::cert_info(&cert).unwrap();
        let life = info.not_after.duration_since(info.not_before).unwrap();
        let renew_at = info.not_before + life * 2 / 3;
        // Fresh: far away, so the periodic check.
        assert_eq!(
            schedule(&cert, SystemTime::now()).unwrap(),
            Next::CheckIn(CHECK_EVERY)
        );
        // One hour before: wake at the renewal time.
        let w = schedule(&cert, renew_at - Duration::from_secs(3600)).unwrap();
        assert_eq!(w, Next::CheckIn(Duration::from_secs(3600)));
        // At and after it, and when expired: now.
        assert_eq!(schedule(&cert, renew_at).unwrap(), Next::RenewNow);
        assert_eq!(
            schedule(&cert, info.not_after + DAY).unwrap(),
            Next::RenewNow
        );
        assert!(schedule("garbage", SystemTime::now()).is_err());
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_after(1), Duration::from_secs(60));
        assert_eq!(retry_after(2), Duration::from_secs(120));
        assert_eq!(retry_after(3), Duration::from_secs(240));
        assert_eq!(retry_after(10), MAX_RETRY);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn own_ca_renewal_keeps_name_and_addresses_with_a_new_serial_and_key() {
        let (_d, files, ca) = setup();
        let old_key = files.read(&files.node_key()).unwrap();
        let r = renew_with_own_ca(&files, SystemTime::now() + 250 * DAY).unwrap();
        assert_ne!(r.old_serial, r.new_serial);
        let cert = files.read(&files.node_cert()).unwrap();
        let info = ca::cert_info(&cert).unwrap();
        assert_eq!(info.serial_hex, r.new_serial);
        assert_eq!(info.common_name, "node1");
        assert!(info.ips.contains(&"10.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(info.ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        ca::verify_signed_by(&cert, &ca.cert_pem).unwrap();
        assert_ne!(files.read(&files.node_key()).unwrap(), old_key);
        // Renewed 250 days in: not due again for a long time.
        assert!(!ca::needs_renewal(&cert, SystemTime::now() + 300 * DAY).unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(files.node_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_member_signs_only_for_the_callers_name_and_addresses() {
        let (_d, files, ca) = setup();
        let caller = files.read(&files.node_cert()).unwrap();
        let (_, csr) = renewal_csr(&files).unwrap();
        let cert =
            sign_for_member(&ca.cert_pem, &ca.key_pem, &caller, &csr, SystemTime::now()).unwrap();
        assert_eq!(ca::cert_info(&cert).unwrap().common_name, "node1");

        // Another name in the CSR.
        let (_, other) = ca::node_csr("node2", &[]).unwrap();
        let e = sign_for_member(
            &ca.cert_pem,
            &ca.key_pem,
            &caller,
            &other,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("node certificate"), "{e}");
        // An address the caller does not have.
        let (_, wider) = ca::node_csr("node1", &["10.9.9.9".parse().unwrap()]).unwrap();
        assert!(sign_for_member(
            &ca.cert_pem,
            &ca.key_pem,
            &caller,
            &wider,
            SystemTime::now()
        )
        .is_err());
        // A caller of another CA.
        let other_ca = ca::create_ca("x", SystemTime::now()).unwrap();
        let (_, foreign) = ca::issue_node_cert(
            &other_ca.cert_pem,
            &other_ca.key_pem,
            "node1",
            &[],
            SystemTime::now(),
        )
        .unwrap();
        let e = sign_for_member(&ca.cert_pem, &ca.key_pem, &foreign, &csr, SystemTime::now())
            .unwrap_err();
        assert!(matches!(e, RenewalError::NotAMember(_)), "{e}");
    }

    #[test]
    fn install_refuses_a_certificate_for_another_node_or_ca() {
        let (_d, files, ca) = setup();
        let before = files.read(&files.node_cert()).unwrap();
        let (key, cert) =
            ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, "node2", &[], SystemTime::now())
                .unwrap();
        let e = install(&files, &key, &cert).unwrap_err();
        assert!(e.to_string().contains("node2"), "{e}");
        let other = ca::create_ca("x", SystemTime::now()).unwrap();
        let (key, cert) = ca::issue_node_cert(
            &other.cert_pem,
            &other.key_pem,
            "node1",
            &[],
            SystemTime::now(),
        )
        .unwrap();
        assert!(matches!(
            install(&files, &key, &cert),
            Err(RenewalError::Refused(_))
        ));
        assert_eq!(files.read(&files.node_cert()).unwrap(), before);
    }
}
