//! Long-lived etcd clients, one per member endpoint, shared by the quorum probe and the status
//! reads, so a probe is one request on an open HTTP/2 connection instead of a TLS handshake.

use crate::etcd::{self, EtcdError, EtcdTls};
use etcd_client::Client;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// One client per endpoint, made for the TLS identity it was made with (a renewed
/// certificate makes new ones).
#[derive(Default)]
pub struct EtcdPool {
    clients: Mutex<HashMap<String, (String, Client)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which identity a client speaks with: a hash of the CA and the certificate.
fn identity(tls: &EtcdTls) -> String {
    let mut h = Sha256::new();
    h.update(tls.ca_pem.as_bytes());
    h.update(tls.cert_pem.as_bytes());
    format!("{:x}", h.finalize())
}

impl EtcdPool {
    /// The client of `endpoint` (made lazily: the first request connects), each request
    /// bounded by `timeout`.
    pub async fn client(
        &self,
        endpoint: &str,
        tls: &EtcdTls,
        timeout: Duration,
    ) -> Result<Client, EtcdError> {
        let id = identity(tls);
        if let Some((made_with, c)) = lock(&self.clients).get(endpoint) {
            if *made_with == id {
                return Ok(c.clone());
            }
        }
        let c = etcd::connect_one(endpoint, tls, timeout).await?;
        lock(&self.clients).insert(endpoint.to_string(), (id, c.clone()));
        Ok(c)
    }

    /// Drop the client of `endpoint` after a failed request: the next one connects afresh
    /// (a connection to a member that was cut off or restarted is not trusted again).
    pub fn forget(&self, endpoint: &str) {
        lock(&self.clients).remove(endpoint);
    }

    /// Drop every client (the node left its cluster).
    pub fn clear(&self) {
        lock(&self.clients).clear();
    }

    /// How many endpoints have a client.
    pub fn len(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Whether no endpoint has a client.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn tls(cn: &str) -> EtcdTls {
        let now = SystemTime::now();
        let ca = crate::ca::create_ca("t", now).unwrap();
        let (key_pem, cert_pem) =
            crate::ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, cn, &[], now).unwrap();
        EtcdTls {
            ca_pem: ca.cert_pem,
            cert_pem,
            key_pem,
        }
    }

    #[tokio::test]
    async fn one_client_per_endpoint_and_identity() {
        let pool = EtcdPool::default();
        let a = tls("a");
        let t = Duration::from_secs(1);
        // Nothing listens there: clients are lazy, so making them does not connect.
        pool.client("https://127.0.0.1:9", &a, t).await.unwrap();
        pool.client("https://127.0.0.1:9", &a, t).await.unwrap();
        assert_eq!(pool.len(), 1);
        pool.client("https://127.0.0.1:10", &a, t).await.unwrap();
        assert_eq!(pool.len(), 2);
        // A renewed certificate replaces the endpoint's client.
        let b = tls("b");
        pool.client("https://127.0.0.1:9", &b, t).await.unwrap();
        assert_eq!(pool.len(), 2);
        assert_eq!(
            lock(&pool.clients)["https://127.0.0.1:9"].0,
            identity(&b),
            "the endpoint's client speaks with the new identity"
        );
        pool.forget("https://127.0.0.1:9");
        assert_eq!(pool.len(), 1);
        pool.clear();
        assert!(pool.is_empty());
    }
}
