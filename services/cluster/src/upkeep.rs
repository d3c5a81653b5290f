//! A member's background upkeep, started with its membership and stopped with it: certificate
//! renewal, scheduled etcd snapshots (nodes that run an etcd member), republishing the
//! node's networks and pools in its node record when they change, and the replicated disks'
//! controller (`drbd::controller`).

use crate::ctx::Ctx;
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::networks::NodeNetworks;
use crate::records::PoolSpace;
use crate::renewal::{self, Next, RenewalError, Renewed};
use crate::types::{Role, CLUSTER_PORT};
use crate::{etcd, etcd_wait, records, snapshot};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the node's networks and pools are compared with what its record says (only a
/// change is written).
pub const NETWORKS_TICK: Duration = Duration::from_secs(10);
/// The deadline of one request to a member's cluster port or to etcd in the upkeep.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The running upkeep tasks; dropping it stops them.
pub struct Upkeep {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start the upkeep of a member on `rt`.
pub fn start(
    rt: &tokio::runtime::Handle,
    ctx: Arc<Ctx>,
    state: &LocalState,
    monitor: Arc<crate::monitor::Monitor>,
) -> Upkeep {
    let mut tasks = vec![rt.spawn(renewal_loop(ctx.clone(), state.clone()))];
    if state.role != Role::Client {
        match etcd_wait::client_tls(&ctx.files) {
            Ok(tls) => tasks.push(rt.spawn(snapshot::run_loop(
                ctx.local_etcd.clone(),
                tls,
                snapshot::dir_of(&ctx.files.dir),
                snapshot::SNAPSHOT_EVERY,
                snapshot::KEEP,
                now_s,
            ))),
            Err(e) => tracing::warn!(
                "cluster: no etcd snapshots (no client identity): {}",
                cairn_base::error_chain::error_chain(&e)
            ),
        }
    }
    tasks.push(rt.spawn(networks_loop(ctx.clone(), state.clone())));
    if !ctx.files.is_witness() {
        tasks.push(rt.spawn(crate::drbd::controller::run_loop(
            ctx,
            state.clone(),
            monitor,
        )));
    }
    Upkeep { tasks }
}

/// Renew the node certificate when [`renewal::schedule`] says so; retry with back-off.
async fn renewal_loop(ctx: Arc<Ctx>, state: LocalState) {
    let mut failures = 0u32;
    loop {
        let next = ctx
            .files
            .read(&ctx.files.node_cert())
            .map_err(RenewalError::Files)
            .and_then(|pem| {
                renewal::schedule(&pem, SystemTime::now()).map_err(RenewalError::Certificate)
            });
        let wait = match next {
            Ok(Next::CheckIn(d)) => d,
            Ok(Next::RenewNow) => match renew_once(&ctx, &state).await {
                Ok(r) => {
                    failures = 0;
                    tracing::info!(old = %r.old_serial, new = %r.new_serial, "cluster: node certificate renewed");
                    if let Err(e) = record_serial(&ctx, &state, &r).await {
                        tracing::warn!(
                            "cluster: the renewed serial is not in the node record yet: {}",
                            cairn_base::error_chain::error_chain(&e)
                        );
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    let wait = renewal::retry_after(failures);
                    tracing::warn!(
                        "cluster: node certificate renewal failed (retry in {wait:?}): {}",
                        cairn_base::error_chain::error_chain(&e)
                    );
                    wait
                }
            },
            Err(e) => {
                tracing::warn!(
                    "cluster: cannot read the node certificate for renewal: {}",
                    cairn_base::error_chain::error_chain(&e)
                );
                renewal::CHECK_EVERY
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One renewal: by this node's own CA key, else signed by a member over the cluster port.
pub async fn renew_once(ctx: &Ctx, state: &LocalState) -> Result<Renewed, RenewalError> {
    if renewal::holds_ca_key(&ctx.files) {
        return renewal::renew_with_own_ca(&ctx.files, SystemTime::now());
    }
    let (key_pem, csr_pem) = renewal::renewal_csr(&ctx.files)?;
    let files = &ctx.files;
    let ca = files.read(&files.ca_cert()).map_err(RenewalError::Files)?;
    let cert = files
        .read(&files.node_cert())
        .map_err(RenewalError::Files)?;
    let key = files.read(&files.node_key()).map_err(RenewalError::Files)?;
    let tls = cairn_client::cluster::MemberTls::new(&ca, Some((&cert, &key)))
        .map_err(|e| RenewalError::NoSigner(e.to_string()))?;
    let mut last = "no member address known".to_string();
    for addr in member_ports(state) {
        match cairn_client::cluster::post_renew(addr, &tls, &csr_pem, REQUEST_TIMEOUT).await {
            Ok(r) if r.status == 200 => {
                let cert_pem = r.json()["cert_pem"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return renewal::install(files, &key_pem, &cert_pem);
            }
            Ok(r) => last = format!("{addr}: HTTP {}: {}", r.status, r.json()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(RenewalError::NoSigner(last))
}

/// The cluster ports of the voters this node knows (from their etcd endpoints), itself left
/// out.
fn member_ports(state: &LocalState) -> Vec<SocketAddr> {
    state
        .etcd_endpoints
        .iter()
        .filter_map(|e| {
            let host = e.trim_start_matches("https://").rsplit_once(':')?.0;
            host.trim_matches(['[', ']']).parse::<IpAddr>().ok()
        })
        .filter(|ip| *ip != state.address)
        .map(|ip| SocketAddr::new(ip, CLUSTER_PORT))
        .collect()
}

async fn record_serial(ctx: &Ctx, state: &LocalState, r: &Renewed) -> Result<(), ClusterError> {
    let tls = etcd_wait::client_tls(&ctx.files)?;
    let client = etcd::connect(&state.etcd_endpoints, &tls, REQUEST_TIMEOUT)
        .await
        .map_err(ClusterError::EtcdOp)?;
    let Some(mut rec) = records::nodes(&client)
        .await?
        .into_iter()
        .find(|n| n.name == state.node_name)
    else {
        return Ok(());
    };
    if rec.cert_serial != r.new_serial {
        let old = std::mem::replace(&mut rec.cert_serial, r.new_serial.clone());
        if !rec.previous_serials.contains(&old) {
            rec.previous_serials.push(old);
        }
        records::put_node(&client, &rec).await?;
    }
    Ok(())
}

/// Republish the node's networks and pools when they differ from its record.
async fn networks_loop(ctx: Arc<Ctx>, state: LocalState) {
    let mut published: Option<(NodeNetworks, Vec<PoolSpace>)> = None;
    loop {
        let now = (ctx.names.networks(), ctx.names.pools());
        if published.as_ref() != Some(&now) {
            match publish_networks(&ctx, &state, &now).await {
                Ok(()) => published = Some(now),
                Err(e) => tracing::debug!(
                    "cluster: networks not published yet: {}",
                    cairn_base::error_chain::error_chain(&e)
                ),
            }
        }
        tokio::time::sleep(NETWORKS_TICK).await;
    }
}

async fn publish_networks(
    ctx: &Ctx,
    state: &LocalState,
    (networks, pools): &(NodeNetworks, Vec<PoolSpace>),
) -> Result<(), ClusterError> {
    let tls = etcd_wait::client_tls(&ctx.files)?;
    let client = etcd::connect(&state.etcd_endpoints, &tls, REQUEST_TIMEOUT)
        .await
        .map_err(ClusterError::EtcdOp)?;
    if let Some(mut rec) = records::nodes(&client)
        .await?
        .into_iter()
        .find(|n| n.name == state.node_name)
    {
        if rec.networks != *networks || rec.pools != *pools {
            rec.networks = networks.clone();
            rec.pools = pools.clone();
            records::put_node(&client, &rec).await?;
        }
        return Ok(());
    }
    // No record yet (a join still under way): not published, so the next tick tries again.
    Err(ClusterError::Conflict(format!(
        "no node record of {} yet",
        state.node_name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ClusterInfo;

    #[test]
    fn renewal_asks_the_other_voters_cluster_ports() {
        let state = LocalState {
            cluster: ClusterInfo {
                name: "c".into(),
                id: "1".into(),
                ca_fingerprint: "sha256:00".into(),
                created_at: 0,
            },
            node_name: "node4".into(),
            address: "10.0.0.4".parse().unwrap(),
            role: Role::Client,
            etcd_endpoints: vec![
                "https://10.0.0.1:2379".into(),
                "https://[fd00::2]:2379".into(),
                "https://10.0.0.4:2379".into(),
                "garbage".into(),
            ],
            etcd_heartbeat_ms: 100,
            etcd_election_ms: 1000,
        };
        assert_eq!(
            member_ports(&state),
            vec![
                "10.0.0.1:9443".parse::<SocketAddr>().unwrap(),
                "[fd00::2]:9443".parse().unwrap()
            ]
        );
    }
}
