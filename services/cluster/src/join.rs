//! The joining side: check the CA against the token, send the CSR, start etcd as a learner,
//! get promoted.

use crate::ctx::{Ctx, ETCD_START_WAIT};
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::records::{self, NodeRecord};
use crate::token::JoinToken;
use crate::types::{JoinCluster, JoinGrant, JoinRequest, NameInventory, Role};
use crate::{ca, etcd, etcd_conf, etcd_wait, peer};
use cairn_core::alert::Progress;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

/// How long a join keeps asking while etcd has another learner to promote first.
const JOIN_QUEUE_WAIT: Duration = Duration::from_secs(300);
/// How long the learner may take to catch up before its promotion.
const PROMOTE_WAIT: Duration = Duration::from_secs(180);

/// Join the cluster `req.token` names.
pub async fn join(
    ctx: &Ctx,
    req: &JoinCluster,
    now_s: u64,
    progress: &dyn Progress,
) -> Result<LocalState, ClusterError> {
    let token =
        JoinToken::parse(&req.token, SystemTime::now()).map_err(|e| ClusterError::Invalid {
            field: "token",
            reason: cairn_base::error_chain::error_chain(&e),
        })?;

    if req.witness {
        witness_fits(&ctx.names.names())?;
    }

    progress.progress(5, "checking the cluster's certificate authority");
    // Nothing secret is sent until a member has shown the CA the token names.
    let (member, ca_pem) = peer::fetch_matching_ca(&token.endpoints, &token.ca_fingerprint).await?;

    progress.progress(15, "asking the cluster for a node certificate");
    let (node_key_pem, csr_pem) = ca::node_csr(
        &ctx.node_name,
        &[req.address, IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )
    .map_err(ClusterError::Certificates)?;
    let join_req = JoinRequest {
        secret: token.secret.to_text(),
        node_name: ctx.node_name.clone(),
        address: req.address,
        witness: req.witness,
        csr_pem,
        names: ctx.names.names(),
    };
    let grant = post_until_queued(member, &ca_pem, &join_req, progress).await?;
    check_grant(&grant, &ca_pem, &token.ca_fingerprint)?;

    let files = &ctx.files;
    files
        .write(&files.ca_cert(), grant.ca_cert_pem.as_bytes(), 0o644)
        .map_err(ClusterError::Files)?;
    files
        .write(&files.ca_key(), grant.ca_key_pem.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;
    files
        .write(&files.node_cert(), grant.node_cert_pem.as_bytes(), 0o644)
        .map_err(ClusterError::Files)?;
    files
        .write(&files.node_key(), node_key_pem.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;
    let tls = etcd_wait::client_tls(files)?;

    let mut endpoints = grant.etcd_endpoints.clone();
    if grant.role != Role::Client {
        progress.progress(35, "starting etcd as a learner");
        etcd_wait::clear_data_dir(&ctx.etcd_data)?;
        let mut conf = etcd_conf::EtcdMemberConf::new(
            &ctx.node_name,
            ctx.etcd_data.clone(),
            req.address,
            &grant.cluster.id,
            etcd_wait::tls_paths(files),
        );
        conf.initial_cluster = grant.etcd_initial_cluster.clone();
        conf.state = etcd_conf::InitialState::Existing;
        conf.heartbeat_ms = grant.etcd_heartbeat_ms;
        conf.election_ms = grant.etcd_election_ms;
        conf.listen_any = ctx.listen_any;
        // The revocation list exists before etcd starts (empty here; the liveness tick
        // rewrites it from /cairn/revoked/).
        crate::crl::write_crl(files, &[], SystemTime::now())?;
        conf.crl_file = Some(files.crl());
        let yaml = conf.to_yaml().map_err(ClusterError::EtcdConf)?;
        files
            .write(&files.etcd_conf(), yaml.as_bytes(), 0o600)
            .map_err(ClusterError::Files)?;
        crate::process::start_etcd(ctx.runner.as_ref()).map_err(|source| {
            ClusterError::Service {
                what: "start",
                source,
            }
        })?;
        progress.progress(50, "waiting for etcd to catch up");
        etcd_wait::wait_serving(&ctx.local_etcd, &tls, ETCD_START_WAIT).await?;

        progress.progress(70, "becoming a voter");
        let mut client = etcd::connect(&grant.etcd_endpoints, &tls, Duration::from_secs(10))
            .await
            .map_err(ClusterError::EtcdOp)?;
        let me = etcd::member_list(&mut client)
            .await
            .map_err(ClusterError::EtcdOp)?
            .into_iter()
            .find(|m| m.name == ctx.node_name)
            .ok_or_else(|| {
                ClusterError::Conflict(format!(
                    "etcd does not list {} as a member after it joined",
                    ctx.node_name
                ))
            })?;
        if me.is_learner {
            etcd::promote_learner_with_retry(
                &mut client,
                me.id,
                tokio::time::Instant::now() + PROMOTE_WAIT,
            )
            .await
            .map_err(ClusterError::EtcdOp)?;
        }
        endpoints.push(records::client_url(req.address));
    }

    progress.progress(90, "recording the node");
    let client = etcd::connect(&endpoints, &tls, Duration::from_secs(10))
        .await
        .map_err(ClusterError::EtcdOp)?;
    records::put_node(
        &client,
        &NodeRecord {
            name: ctx.node_name.clone(),
            address: req.address,
            role: grant.role,
            joined_at: now_s,
            names: ctx.names.names(),
            cert_serial: ca::cert_info(&grant.node_cert_pem)
                .map_err(ClusterError::Certificates)?
                .serial_hex,
            previous_serials: Vec::new(),
            networks: ctx.names.networks(),
            pools: ctx.names.pools(),
        },
    )
    .await?;
    let state = LocalState {
        cluster: grant.cluster.clone(),
        node_name: ctx.node_name.clone(),
        address: req.address,
        role: grant.role,
        etcd_endpoints: endpoints,
        etcd_heartbeat_ms: grant.etcd_heartbeat_ms,
        etcd_election_ms: grant.etcd_election_ms,
    };
    let witness = grant.role == Role::Witness;
    if witness {
        // Just before the state: a node that is a member as a witness always has the
        // marker, so its next boot starts neither libvirtd nor storage, SMART or VM domains.
        files
            .write(&files.witness(), b"witness\n", 0o644)
            .map_err(ClusterError::Files)?;
    }
    if let Err(e) = files.save(&state) {
        if witness {
            // Not a member after all: a standalone node with the marker would start without
            // its storage and VMs.
            let _ = std::fs::remove_file(files.witness());
        }
        return Err(ClusterError::Files(e));
    }
    progress.progress(100, "joined");
    Ok(state)
}

/// A witness runs no storage and no VMs: a node that already has pools or VMs cannot become
/// one (they would be left unmanaged). Refused before anything is sent, naming them.
pub fn witness_fits(names: &NameInventory) -> Result<(), ClusterError> {
    let mut held = Vec::new();
    if !names.pools.is_empty() {
        held.push(format!("pools {}", names.pools.join(", ")));
    }
    if !names.vms.is_empty() {
        held.push(format!("VMs {}", names.vms.join(", ")));
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(ClusterError::Invalid {
        field: "witness",
        reason: format!(
            "a witness runs no storage and no VMs, and this node has {}: join it as a full \
             node, or use a node without pools and VMs as the witness",
            held.join(" and ")
        ),
    })
}

/// Post the join; while etcd has another learner (a join before ours), wait and retry.
async fn post_until_queued(
    member: std::net::SocketAddr,
    ca_pem: &str,
    req: &JoinRequest,
    progress: &dyn Progress,
) -> Result<JoinGrant, ClusterError> {
    let start = Instant::now();
    loop {
        match peer::post_join(member, ca_pem, req).await {
            Err(ClusterError::Conflict(msg)) if msg.contains("retried") => {
                if start.elapsed() >= JOIN_QUEUE_WAIT {
                    return Err(ClusterError::Timeout {
                        what: format!("a place in the join queue ({msg})"),
                        waited: JOIN_QUEUE_WAIT,
                    });
                }
                progress.progress(20, "another node is joining: waiting for its turn");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

/// The grant's CA is the one we checked, and our certificate is signed by it.
fn check_grant(grant: &JoinGrant, ca_pem: &str, fingerprint: &str) -> Result<(), ClusterError> {
    let fp = ca::fingerprint(&grant.ca_cert_pem).map_err(ClusterError::Certificates)?;
    if fp != fingerprint || grant.ca_cert_pem.trim() != ca_pem.trim() {
        return Err(ClusterError::Conflict(
            "the member answered with another CA than the token names".into(),
        ));
    }
    ca::verify_signed_by(&grant.node_cert_pem, &grant.ca_cert_pem)
        .map_err(ClusterError::Certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_must_hold_no_pools_or_vms() {
        assert!(witness_fits(&NameInventory::default()).is_ok());
        let names = NameInventory {
            pools: vec!["tank".into()],
            vms: vec!["web".into(), "db".into()],
            users: vec!["admin".into()],
        };
        let err = witness_fits(&names).unwrap_err().to_string();
        assert!(err.contains("witness"), "{err}");
        assert!(err.contains("pools tank and VMs web, db"), "{err}");
        // Users alone are no obstacle: the cluster's accounts replace them.
        let users = NameInventory {
            users: vec!["admin".into()],
            ..Default::default()
        };
        assert!(witness_fits(&users).is_ok());
    }
}
