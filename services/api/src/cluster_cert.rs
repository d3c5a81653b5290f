//! The cluster port's certificate, reread at each handshake: a renewed node certificate is
//! served from the next connection on, without restarting the port.

use crate::tls::{certs_from_pem, provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Mutex};

/// Where the PEM chain and key come from (the cluster domain reads its files on each call).
pub type PemSource = Box<dyn Fn() -> Option<(String, String)> + Send + Sync>;

/// A certificate resolver that asks `source` for the chain and key at every handshake and
/// parses them again only when the text changed. A pair that does not load (a key written
/// before its certificate, mid-renewal) keeps the last good one.
pub struct ReloadingCert {
    source: PemSource,
    cached: Mutex<Option<(String, String, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// A resolver over `source`; `None` when it gives no pair that loads now.
    pub fn new(source: PemSource) -> Option<Self> {
        let r = ReloadingCert {
            source,
            cached: Mutex::new(None),
        };
        r.current()?;
        Some(r)
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let Some((chain, key)) = (self.source)() else {
            return cached.as_ref().map(|c| c.2.clone());
        };
        if let Some((c, k, ck)) = cached.as_ref() {
            if *c == chain && *k == key {
                return Some(ck.clone());
            }
        }
        match load(&chain, &key) {
            Some(ck) => {
                let ck = Arc::new(ck);
                *cached = Some((chain, key, ck.clone()));
                Some(ck)
            }
            None => cached.as_ref().map(|c| c.2.clone()),
        }
    }
}

fn load(chain: &str, key: &str) -> Option<CertifiedKey> {
    let certs = certs_from_pem(chain.as_bytes()).ok()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).ok()?;
    CertifiedKey::from_der(certs, key, &provider()).ok()
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn a_changed_pair_is_served_and_a_mismatched_one_keeps_the_last_good() {
        let (a_cert, a_key) = pair("a");
        let (b_cert, b_key) = pair("b");
        let now = Arc::new(Mutex::new((a_cert.clone(), a_key.clone())));
        let src = now.clone();
        let r = ReloadingCert::new(Box::new(move || Some(src.lock().unwrap().clone()))).unwrap();
        let der = |ck: Arc<CertifiedKey>| ck.cert[0].to_vec();
        let a_der = der(r.current().unwrap());
        // The key was replaced first: the pair does not match, the old one is kept.
        *now.lock().unwrap() = (a_cert.clone(), b_key.clone());
        assert_eq!(der(r.current().unwrap()), a_der);
        // Then the certificate: the new pair is served.
        *now.lock().unwrap() = (b_cert.clone(), b_key.clone());
        let b_der = der(r.current().unwrap());
        assert_ne!(b_der, a_der);
        assert_eq!(
            b_der,
            certs_from_pem(b_cert.as_bytes()).unwrap()[0].to_vec()
        );
        assert!(ReloadingCert::new(Box::new(|| None)).is_none());
    }
}
