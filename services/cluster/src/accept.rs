//! The member side of a join: check the secret and the names, add the learner, sign the CSR.

use crate::ctx::Ctx;
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::membership;
use crate::records::{self, NodeRecord};
use crate::types::{JoinGrant, JoinRequest, NameInventory, Role};
use crate::{ca, etcd, token};
use etcd_client::Client;

/// Accept `req` into the cluster this member belongs to.
pub async fn accept(
    ctx: &Ctx,
    state: &LocalState,
    client: &Client,
    req: &JoinRequest,
) -> Result<JoinGrant, ClusterError> {
    let secret_hash = token::secret_hash(&req.secret);
    if records::token(client, &secret_hash).await?.is_none() {
        return Err(ClusterError::TokenRefused(
            "it is unknown, already spent or expired: make a new one".into(),
        ));
    }
    crate::validate::node_name("node_name", &req.node_name)?;
    let nodes = records::nodes(client).await?;
    if nodes.iter().any(|n| n.name == req.node_name) {
        return Err(ClusterError::Conflict(format!(
            "a node called {} is already in the cluster: rename the joining node first",
            req.node_name
        )));
    }
    if let Some(n) = nodes.iter().find(|n| n.address == req.address) {
        return Err(ClusterError::Conflict(format!(
            "{} already uses the cluster address {}",
            n.name, req.address
        )));
    }
    if let Some(clash) = name_clash(&nodes, &req.names) {
        return Err(ClusterError::Conflict(clash));
    }
    // The certificate is signed before the token is spent, so a bad CSR leaves it usable.
    let ca_cert_pem = ctx
        .files
        .read(&ctx.files.ca_cert())
        .map_err(ClusterError::Files)?;
    let ca_key_pem = ctx
        .files
        .read(&ctx.files.ca_key())
        .map_err(ClusterError::Files)?;
    let node_cert_pem = ca::sign_node_csr(
        &ca_cert_pem,
        &ca_key_pem,
        &req.csr_pem,
        &req.node_name,
        &[
            req.address,
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ],
        std::time::SystemTime::now(),
    )
    .map_err(|e| ClusterError::Invalid {
        field: "csr_pem",
        reason: cairn_base::error_chain::error_chain(&e),
    })?;

    let voters = nodes.iter().filter(|n| n.role != Role::Client).count();
    let role = if req.witness {
        Role::Witness
    } else if voters < membership::voters_wanted(nodes.len() + 1) {
        Role::Voter
    } else {
        Role::Client
    };

    let mut initial_cluster: Vec<String> = Vec::new();
    let mut admin = client.clone();
    let members = etcd::member_list(&mut admin)
        .await
        .map_err(ClusterError::EtcdOp)?;
    for m in &members {
        if let Some(url) = m.peer_urls.first() {
            initial_cluster.push(format!("{}={url}", m.name));
        }
    }
    let mut learner = None;
    if role != Role::Client {
        let peer = records::peer_url(req.address);
        // etcd takes one learner at a time, and no member change until every member has been
        // connected for a few seconds: the token stays unspent and the joining node retries.
        learner = Some(etcd::add_learner(&mut admin, &peer).await.map_err(|e| {
            ClusterError::Conflict(format!(
                "etcd did not take the new member yet ({}); the join is retried",
                cairn_base::error_chain::error_chain(&e)
            ))
        })?);
        initial_cluster.push(format!("{}={peer}", req.node_name));
    }
    // Spent only now, exactly once; a join that lost the race takes its learner back.
    if !records::spend_token(client, &secret_hash).await? {
        if let Some(id) = learner {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            if let Err(e) = etcd::remove_member(&mut admin, id, deadline).await {
                tracing::warn!(
                    "cluster: the learner of a refused join stays in etcd: {}",
                    cairn_base::error_chain::error_chain(&e)
                );
            }
        }
        return Err(ClusterError::TokenRefused(
            "it was spent or expired a moment ago: make a new one".into(),
        ));
    }
    let etcd_endpoints = nodes
        .iter()
        .filter(|n| n.role != Role::Client)
        .map(|n| records::client_url(n.address))
        .collect();
    Ok(JoinGrant {
        cluster: state.cluster.clone(),
        node_cert_pem,
        ca_cert_pem,
        ca_key_pem,
        role,
        etcd_initial_cluster: initial_cluster,
        etcd_endpoints,
        etcd_heartbeat_ms: state.etcd_heartbeat_ms,
        etcd_election_ms: state.etcd_election_ms,
    })
}

/// A pool, VM or user of the joining node that a member already has, said as the refusal.
pub fn name_clash(nodes: &[NodeRecord], joining: &NameInventory) -> Option<String> {
    for n in nodes {
        for (kind, theirs, ours) in [
            ("pool", &n.names.pools, &joining.pools),
            ("VM", &n.names.vms, &joining.vms),
            ("user", &n.names.users, &joining.users),
        ] {
            if let Some(name) = ours.iter().find(|x| theirs.contains(x)) {
                return Some(format!(
                    "the joining node's {kind} {name:?} clashes with the {kind} of the same name on {}: rename one of them first",
                    n.name
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pools: &[&str], vms: &[&str], users: &[&str]) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            address: "10.77.0.11".parse().unwrap(),
            role: Role::Voter,
            joined_at: 0,
            names: NameInventory {
                pools: pools.iter().map(|s| s.to_string()).collect(),
                vms: vms.iter().map(|s| s.to_string()).collect(),
                users: users.iter().map(|s| s.to_string()).collect(),
            },
            cert_serial: String::new(),
            previous_serials: Vec::new(),
            networks: Default::default(),
            pools: Vec::new(),
        }
    }

    #[test]
    fn clashes_name_the_kind_the_name_and_the_node() {
        let nodes = vec![node("node1", &["tank"], &["web"], &["admin"])];
        let none = NameInventory {
            pools: vec!["data".into()],
            vms: vec!["db".into()],
            users: vec![],
        };
        assert_eq!(name_clash(&nodes, &none), None);
        let vm = NameInventory {
            vms: vec!["web".into()],
            ..NameInventory::default()
        };
        let msg = name_clash(&nodes, &vm).unwrap();
        assert!(msg.contains("VM \"web\""), "{msg}");
        assert!(msg.contains("node1"), "{msg}");
        let pool = NameInventory {
            pools: vec!["tank".into()],
            ..NameInventory::default()
        };
        assert!(name_clash(&nodes, &pool).unwrap().contains("pool \"tank\""));
    }
}
