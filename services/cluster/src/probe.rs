//! The status's record read: nodes, liveness keys and etcd members read in parallel, the
//! whole read within one deadline (a dead voter does not make the Cluster page wait).

use crate::error::ClusterError;
use crate::etcd;
use crate::records;
use crate::status::Observed;
use etcd_client::Client;
use std::time::Duration;
use tokio::time::Instant;

/// Read nodes, liveness and members (in parallel) with `client`, all within `deadline`:
/// `None` when the records could not be read in time. Which voters answer is the quorum
/// probe's part (`monitor::Monitor::check`), run first; it also picks the client.
pub async fn read_records(client: &Client, deadline: Duration) -> Option<Observed> {
    let until = Instant::now() + deadline;
    let read = async {
        let (nodes, alive, members) =
            tokio::join!(records::nodes(client), records::alive(client), async {
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
    use crate::etcd::EtcdTls;
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
    async fn a_silent_member_costs_one_deadline() {
        // A listener that accepts and never speaks TLS: a voter that hangs.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = format!("https://{}", l.local_addr().unwrap());
        let listener = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let deadline = Duration::from_millis(800);
        let client = etcd::connect_one(&ep, &tls(), deadline).await.unwrap();
        let start = Instant::now();
        // Three reads run in parallel; the whole read is bounded by one deadline.
        let observed = read_records(&client, deadline).await;
        let took = start.elapsed();
        assert!(observed.is_none());
        assert!(
            took < deadline * 2,
            "took {took:?} for a silent member with a {deadline:?} deadline"
        );
        listener.abort();
    }
}
