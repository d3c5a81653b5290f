//! The local etcd member from cairnd's side: its TLS files, its data directory, waiting for
//! it to serve.

use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::etcd_conf::EtcdTlsFiles;
use crate::local::LocalFiles;
use std::path::Path;
use std::time::{Duration, Instant};

/// The certificate files etcd is configured with (the node certificate serves as peer,
/// server and client certificate).
pub fn tls_paths(files: &LocalFiles) -> EtcdTlsFiles {
    EtcdTlsFiles {
        trusted_ca_file: files.ca_cert(),
        cert_file: files.node_cert(),
        key_file: files.node_key(),
    }
}

/// This node's client identity for etcd.
pub fn client_tls(files: &LocalFiles) -> Result<EtcdTls, ClusterError> {
    Ok(EtcdTls {
        ca_pem: files.read(&files.ca_cert()).map_err(ClusterError::Files)?,
        cert_pem: files
            .read(&files.node_cert())
            .map_err(ClusterError::Files)?,
        key_pem: files.read(&files.node_key()).map_err(ClusterError::Files)?,
    })
}

/// Empty etcd's data directory (a new cluster, a new member, or after leaving).
pub fn clear_data_dir(dir: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ClusterError::DataDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Connect to `endpoint` until a status call answers, within `wait`.
pub async fn wait_serving(
    endpoint: &str,
    tls: &EtcdTls,
    wait: Duration,
) -> Result<etcd_client::Client, ClusterError> {
    let start = Instant::now();
    loop {
        let last;
        match etcd::connect(&[endpoint.to_string()], tls, Duration::from_secs(3)).await {
            Ok(mut client) => match client.status().await {
                Ok(_) => return Ok(client),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = cairn_base::error_chain::error_chain(&e),
        }
        if start.elapsed() >= wait {
            return Err(ClusterError::Timeout {
                what: format!("etcd at {endpoint} to serve (last: {last})"),
                waited: wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
