//! The status's record read: nodes, liveness keys and etcd members read in parallel, the
//! whole read within one deadline (a dead voter does not make the Cluster page wait).

use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::records;
use crate::status::Observed;
use std::time::Duration;
use tokio::time::Instant;

/// Read nodes, liveness and members (in parallel), all within `deadline`: `None` when the
/// records could not be read in time. Which voters answer is the quorum probe's part
/// (`monitor::Monitor::check`), run first.
pub async fn read_records(
    endpoints: &[String],
    tls: &EtcdTls,
    deadline: Duration,
) -> Option<Observed> {
    let until = Instant::now() + deadline;
    let read = async {
        let client = etcd::connect(endpoints, tls, deadline)
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
    match tokio::time::timeout_at(until, read).await {
        Ok(Ok(o)) => Some(o),
        _ => None,
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
    async fn three_silent_endpoints_cost_one_deadline() {
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
        let observed = read_records(&endpoints, &tls(), deadline).await;
        let took = start.elapsed();
        assert!(observed.is_none());
        assert!(
            took < deadline * 2,
            "took {took:?} for three silent voters with a {deadline:?} deadline"
        );
        for l in listeners {
            l.abort();
        }
    }
}
