//! Create: the CA, this node's certificate, a one-member etcd and the cluster record.

use crate::ctx::{Ctx, ETCD_START_WAIT};
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::records::{self, NodeRecord};
use crate::types::{ClusterInfo, CreateCluster, Role};
use crate::{ca, etcd_conf, etcd_wait};
use cairn_core::alert::Progress;
use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

/// Make this standalone node the first voter of a new cluster.
pub async fn create(
    ctx: &Ctx,
    req: &CreateCluster,
    now_s: u64,
    progress: &dyn Progress,
) -> Result<LocalState, ClusterError> {
    progress.progress(5, "making the cluster CA");
    let ca = ca::create_ca(&req.name, SystemTime::now()).map_err(ClusterError::Certificates)?;
    let fingerprint = ca::fingerprint(&ca.cert_pem).map_err(ClusterError::Certificates)?;
    let cluster = ClusterInfo {
        name: req.name.clone(),
        id: records::new_cluster_id(),
        ca_fingerprint: fingerprint,
        created_at: now_s,
    };
    let files = &ctx.files;
    files
        .write(&files.ca_cert(), ca.cert_pem.as_bytes(), 0o644)
        .map_err(ClusterError::Files)?;
    files
        .write(&files.ca_key(), ca.key_pem.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;

    progress.progress(15, "issuing this node's certificate");
    let (node_key_pem, node_cert_pem) = ca::issue_node_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &ctx.node_name,
        &[req.address, IpAddr::V4(Ipv4Addr::LOCALHOST)],
        SystemTime::now(),
    )
    .map_err(ClusterError::Certificates)?;
    files
        .write(&files.node_cert(), node_cert_pem.as_bytes(), 0o644)
        .map_err(ClusterError::Files)?;
    files
        .write(&files.node_key(), node_key_pem.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;

    progress.progress(25, "starting etcd (a cluster of one)");
    // A fresh cluster starts from an empty data directory (a standalone node has none; a
    // node that left keeps none either).
    etcd_wait::clear_data_dir(&ctx.etcd_data)?;
    let mut conf = etcd_conf::EtcdMemberConf::new(
        &ctx.node_name,
        ctx.etcd_data.clone(),
        req.address,
        &cluster.id,
        etcd_wait::tls_paths(files),
    );
    conf.heartbeat_ms = ctx.timing.heartbeat_ms;
    conf.election_ms = ctx.timing.election_ms;
    conf.listen_any = ctx.listen_any;
    // The revocation list exists before etcd starts (empty here; the liveness tick
    // rewrites it from /cairn/revoked/).
    crate::crl::write_crl(files, &[], SystemTime::now())?;
    conf.crl_file = Some(files.crl());
    let yaml = conf.to_yaml().map_err(ClusterError::EtcdConf)?;
    files
        .write(&files.etcd_conf(), yaml.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;
    crate::process::start_etcd(ctx.runner.as_ref()).map_err(|source| ClusterError::Service {
        what: "start",
        source,
    })?;

    progress.progress(50, "waiting for etcd to serve");
    let tls = etcd_wait::client_tls(files)?;
    let client = etcd_wait::wait_serving(&ctx.local_etcd, &tls, ETCD_START_WAIT).await?;

    progress.progress(80, "writing the cluster record");
    let state = LocalState {
        cluster: cluster.clone(),
        node_name: ctx.node_name.clone(),
        address: req.address,
        role: Role::Voter,
        etcd_endpoints: vec![records::client_url(req.address)],
        etcd_heartbeat_ms: ctx.timing.heartbeat_ms,
        etcd_election_ms: ctx.timing.election_ms,
    };
    records::put_cluster(&client, &cluster).await?;
    records::put_node(
        &client,
        &NodeRecord {
            name: ctx.node_name.clone(),
            address: req.address,
            role: Role::Voter,
            joined_at: now_s,
            names: ctx.names.names(),
            cert_serial: ca::cert_info(&node_cert_pem)
                .map_err(ClusterError::Certificates)?
                .serial_hex,
            previous_serials: Vec::new(),
            networks: ctx.names.networks(),
            pools: ctx.names.pools(),
        },
    )
    .await?;
    files.save(&state).map_err(ClusterError::Files)?;
    progress.progress(100, "cluster created");
    Ok(state)
}
