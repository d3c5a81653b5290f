//! The status read: every voter's etcd probed in parallel while the records are read, the
//! whole answer within one probe deadline (a dead voter does not make the Cluster page wait
//! once per voter).

use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::records;
use crate::status::Observed;
use std::time::Duration;
use tokio::time::Instant;

/// Read nodes, liveness and members; probe each voter's etcd for the reachable list. Returns
/// within about `deadline` whatever the voters do: `None` when the records could not be read
/// in time, and the voters that answered (by node name when the records were read, else by
/// endpoint).
pub async fn observe(
    endpoints: Vec<String>,
    tls: EtcdTls,
    deadline: Duration,
) -> (Option<Observed>, Vec<String>) {
    let until = Instant::now() + deadline;
    let mut probes = tokio::task::JoinSet::new();
    for e in endpoints.iter().cloned() {
        let tls = tls.clone();
        probes.spawn(async move {
            let ok = tokio::time::timeout_at(until, async {
                let mut c = etcd::connect(std::slice::from_ref(&e), &tls, deadline).await?;
                etcd::status(&mut c).await
            })
            .await
            .is_ok_and(|r| r.is_ok());
            (e, ok)
        });
    }
    let read = async {
        let client = etcd::connect(&endpoints, &tls, deadline)
            .await
            .map_err(ClusterError::EtcdOp)?;
        let (nodes, alive, members) =
            tokio::join!(records::nodes(&client), records::alive(&client), async {
                let mut admin = client.clone();
                etcd::member_list(&mut admin)
                    .await
                    .map_err(ClusterError::EtcdOp)
            });
        Ok::<Observed, ClusterError>(Observed {
            nodes: nodes?,
            alive: alive?,
            members: members?
                .into_iter()
                .map(|m| (m.name, format!("{:x}", m.id), m.is_learner))
                .collect(),
        })
    };
    let observed = match tokio::time::timeout_at(until, read).await {
        Ok(Ok(o)) => Some(o),
        _ => None,
    };
    let mut reachable = Vec::new();
    // Every probe ends by `until` (its own timeout); the extra second only guards a task that
    // does not yield.
    while let Ok(Some(joined)) =
        tokio::time::timeout_at(until + Duration::from_secs(1), probes.join_next()).await
    {
        if let Ok((e, true)) = joined {
            reachable.push(e.trim_start_matches("https://").to_string());
        }
    }
    probes.abort_all();
    reachable.sort();
    match observed {
        Some(o) => {
            // Name the reachable voters rather than their endpoints.
            let names = o
                .nodes
                .iter()
                .filter(|n| {
                    reachable
                        .iter()
                        .any(|r| r.starts_with(&n.address.to_string()))
                })
                .map(|n| n.name.clone())
                .collect();
            (Some(o), names)
        }
        None => (None, reachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn tls() -> EtcdTls {
        let now = SystemTime::now();
        let ca = crate::ca::create_ca("t", now).unwrap();
        let (key_pem, cert_pem) =
            crate::ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, "t", &[], now).unwrap();
        EtcdTls {
            ca_pem: ca.cert_pem,
            cert_pem,
            key_pem,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_silent_voters_cost_one_deadline_not_three() {
        // Listeners that accept and never speak TLS: a voter that hangs.
        let mut listeners = Vec::new();
        let mut endpoints = Vec::new();
        for _ in 0..3 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            endpoints.push(format!("https://{}", l.local_addr().unwrap()));
            listeners.push(tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((s, _)) = l.accept().await {
                    held.push(s);
                }
            }));
        }
        let deadline = Duration::from_millis(800);
        let start = Instant::now();
        let (observed, reachable) = observe(endpoints, tls(), deadline).await;
        let took = start.elapsed();
        assert!(observed.is_none());
        assert!(reachable.is_empty());
        assert!(
            took < deadline * 2,
            "took {took:?} for three silent voters with a {deadline:?} deadline"
        );
        for l in listeners {
            l.abort();
        }
    }
}
