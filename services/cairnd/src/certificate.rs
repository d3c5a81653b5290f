//! The node's self-signed TLS certificate: made on first boot, reused afterwards.

use anyhow::Context;
use cairn_api::tls::{leaf_fingerprint, server_config};
use cairn_api::Fingerprint;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls::ServerConfig;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name every node answers to besides its hostname.
pub const LOCAL_NAME: &str = "cairn.local";

/// The certificate and key files under the state directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn under(state_dir: &Path) -> Self {
        let dir = state_dir.join("tls");
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        }
    }
}

/// A usable certificate.
pub struct NodeCert {
    pub config: Arc<ServerConfig>,
    pub fingerprint: Fingerprint,
    /// Made during this start (first boot, or the old files were unusable).
    pub created: bool,
}

/// Subject alternative names: hostname, `cairn.local`, the node's addresses, 127.0.0.1.
pub fn subject_alt_names(hostname: &str, ips: &[IpAddr]) -> Vec<SanType> {
    let mut sans = Vec::new();
    let mut names = vec![LOCAL_NAME.to_string()];
    if !hostname.is_empty() && hostname != LOCAL_NAME {
        names.insert(0, hostname.to_string());
    }
    for n in names {
        match n.clone().try_into() {
            Ok(ia5) => sans.push(SanType::DnsName(ia5)),
            Err(_) => {
                tracing::warn!(
                    "hostname {n:?} is not a valid DNS name; left out of the certificate"
                )
            }
        }
    }
    let mut all_ips: Vec<IpAddr> = ips.to_vec();
    all_ips.push(IpAddr::from([127, 0, 0, 1]));
    let mut seen = Vec::new();
    for ip in all_ips {
        if !seen.contains(&ip) {
            seen.push(ip);
            sans.push(SanType::IpAddress(ip));
        }
    }
    sans
}

/// Make a new ECDSA P-256 self-signed certificate; returns (cert PEM, key PEM).
pub fn generate(hostname: &str, ips: &[IpAddr]) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot generate an ECDSA P-256 key")?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names(hostname, ips);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Cairn {hostname}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Cairn");
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).context("cannot get random bytes for the serial number")?;
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // rcgen's default validity (1975 .. 4096) is kept on purpose: a node's clock may be
    // wrong on first boot and the certificate is trusted by fingerprint, not by date.
    let cert = params
        .self_signed(&key)
        .context("cannot self-sign the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Load the certificate and key from `files`, or make and store new ones when they are
/// missing or unusable (e.g. a crash between writing the key and the certificate).
pub fn load_or_create(
    files: &TlsFiles,
    hostname: &str,
    ips: &[IpAddr],
) -> anyhow::Result<NodeCert> {
    match read_pair(files)? {
        Some((cert, key)) => match server_config(&cert, &key) {
            Ok(config) => {
                let fingerprint =
                    leaf_fingerprint(&cert).context("cannot fingerprint certificate")?;
                return Ok(NodeCert {
                    config,
                    fingerprint,
                    created: false,
                });
            }
            Err(e) => tracing::warn!(
                "stored certificate {} is unusable, making a new one: {}",
                files.cert.display(),
                cairn_core::boot::error_chain(&e)
            ),
        },
        None => tracing::info!("no certificate in {} yet; making one", files.dir.display()),
    }
    let (cert, key) = generate(hostname, ips)?;
    std::fs::create_dir_all(&files.dir)
        .with_context(|| format!("cannot create {}", files.dir.display()))?;
    set_mode(&files.dir, 0o700)?;
    // Key first: a crash after it leaves a key without a matching certificate, which the
    // next start detects and replaces.
    cairn_core::write_atomic(&files.key, key.as_bytes(), 0o600)
        .with_context(|| format!("cannot store {}", files.key.display()))?;
    cairn_core::write_atomic(&files.cert, cert.as_bytes(), 0o644)
        .with_context(|| format!("cannot store {}", files.cert.display()))?;
    let config = server_config(cert.as_bytes(), key.as_bytes())
        .context("the new certificate is unusable")?;
    let fingerprint =
        leaf_fingerprint(cert.as_bytes()).context("cannot fingerprint certificate")?;
    Ok(NodeCert {
        config,
        fingerprint,
        created: true,
    })
}

fn read_pair(files: &TlsFiles) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let read = |p: &Path| -> anyhow::Result<Option<Vec<u8>>> {
        match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    };
    Ok(match (read(&files.cert)?, read(&files.key)?) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    })
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ips() -> Vec<IpAddr> {
        vec!["10.0.2.15".parse().unwrap(), "fec0::5".parse().unwrap()]
    }

    #[test]
    fn sans_cover_names_and_addresses() {
        let sans = subject_alt_names("cairn-abc123", &ips());
        let text: Vec<String> = sans
            .iter()
            .map(|s| match s {
                SanType::DnsName(n) => format!("dns:{}", n.as_str()),
                SanType::IpAddress(ip) => format!("ip:{ip}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            text,
            vec![
                "dns:cairn-abc123",
                "dns:cairn.local",
                "ip:10.0.2.15",
                "ip:fec0::5",
                "ip:127.0.0.1"
            ]
        );
    }

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::under(dir.path());
        let first = load_or_create(&files, "cairn-abc123", &ips()).unwrap();
        assert!(first.created);
        let cert1 = std::fs::read(&files.cert).unwrap();
        let key_mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&files.dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let second = load_or_create(&files, "other-name", &[]).unwrap();
        assert!(!second.created);
        assert_eq!(second.fingerprint, first.fingerprint);
        assert_eq!(std::fs::read(&files.cert).unwrap(), cert1);
        assert_eq!(leaf_fingerprint(&cert1).unwrap(), first.fingerprint);
    }

    #[test]
    fn mismatched_pair_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::under(dir.path());
        let first = load_or_create(&files, "n", &[]).unwrap();
        let (_, other_key) = generate("n", &[]).unwrap();
        std::fs::write(&files.key, other_key).unwrap();
        let again = load_or_create(&files, "n", &[]).unwrap();
        assert!(again.created);
        assert_ne!(again.fingerprint, first.fingerprint);
    }

    #[test]
    fn missing_cert_with_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::under(dir.path());
        load_or_create(&files, "n", &[]).unwrap();
        std::fs::remove_file(&files.cert).unwrap();
        assert!(load_or_create(&files, "n", &[]).unwrap().created);
    }
}
