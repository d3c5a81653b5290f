//! Host tests against real etcd 3.4 processes (Debian's `etcd-server`): TLS, leases, learners,
//! leader loss, snapshot and restore. Each test starts its own members on loopback, with
//! certificates from `ca.rs`, in a temporary directory, and kills them on drop.
//!
//! Without `/usr/bin/etcd` the tests print a skip message and pass, unless
//! `CAIRN_REQUIRE_ETCD` is set (`./dev test` sets it).

use cairn_cluster::ca::{self, CaBundle};
use cairn_cluster::etcd::{self, EtcdTls, Guard};
use cairn_cluster::etcd_conf::{min_lease_ttl_s, EtcdMemberConf, EtcdTlsFiles, InitialState};
use cairn_cluster::lease::{LeaseConfig, LeaseKeeper, LeaseStatus};
use etcd_client::{Client, ConnectOptions, TlsOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};
use tempfile::TempDir;
use tokio::time::Instant;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const HEARTBEAT_MS: u64 = 100;
const ELECTION_MS: u64 = 1000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Whether the etcd binaries are here; without them, skip (or fail when required).
fn have_etcd() -> bool {
    if Path::new(ETCD).exists() && Path::new(ETCDCTL).exists() {
        return true;
    }
    if std::env::var_os("CAIRN_REQUIRE_ETCD").is_some() {
        panic!(
            "CAIRN_REQUIRE_ETCD is set but {ETCD} or {ETCDCTL} is missing: \
             apt-get install etcd-server etcd-client (./dev test installs them)"
        );
    }
    eprintln!(
        "SKIPPED: {ETCD} or {ETCDCTL} not found (apt-get install etcd-server etcd-client); \
         set CAIRN_REQUIRE_ETCD=1 to make this a failure"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind((LOCAL, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Poll `f` until it returns Ok or `within` passes (then panic with the last error).
async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left.max(Duration::from_millis(10)), f()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => e,
            Err(_) => "the check itself timed out".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("gave up waiting for {what} after {within:?}: {last}");
        }
        // Poll interval between checks of the condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One etcd process.
struct Proc {
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.peer_port)
    }

    fn pid(&self) -> Pid {
        let id = self.child.as_ref().expect("running").id();
        Pid::from_raw(i32::try_from(id).expect("pid"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A set of etcd members on loopback with a fresh CA.
struct TestCluster {
    dir: TempDir,
    ca: CaBundle,
    /// A client identity signed by the CA.
    tls: EtcdTls,
    procs: Vec<Proc>,
}

impl TestCluster {
    fn new() -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = SystemTime::now();
        let ca = ca::create_ca("test", now).expect("CA");
        let (key_pem, cert_pem) =
            ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, "tester", &[], now).expect("client");
        let tls = EtcdTls {
            ca_pem: ca.cert_pem.clone(),
            cert_pem,
            key_pem,
        };
        TestCluster {
            dir,
            ca,
            tls,
            procs: Vec::new(),
        }
    }

    /// Start `n` members node1..noden as a new cluster and wait until it has a leader.
    async fn start(n: usize) -> TestCluster {
        let mut c = TestCluster::new();
        let ports: Vec<(String, u16, u16)> = (1..=n)
            .map(|i| (format!("node{i}"), free_port(), free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .map(|(name, _, peer)| format!("{name}=https://127.0.0.1:{peer}"))
            .collect();
        for (name, client, peer) in &ports {
            c.spawn(
                name,
                *client,
                *peer,
                &initial,
                InitialState::New,
                "test-cluster",
                None,
            );
        }
        for i in 0..n {
            c.wait_ready(i).await;
        }
        c
    }

    /// Write the member's certificates and config and start it. `data_dir` overrides the
    /// default `<dir>/<name>/data` (a restored snapshot).
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial: &[String],
        state: InitialState,
        token: &str,
        data_dir: Option<PathBuf>,
    ) -> usize {
        let dir = self.dir.path().join(format!("{name}-{client_port}"));
        std::fs::create_dir_all(&dir).expect("member dir");
        let (key, cert) = ca::issue_node_cert(
            &self.ca.cert_pem,
            &self.ca.key_pem,
            name,
            &[LOCAL],
            SystemTime::now(),
        )
        .expect("node cert");
        std::fs::write(dir.join("node.pem"), cert).expect("write");
        std::fs::write(dir.join("node.key"), key).expect("write");
        std::fs::write(dir.join("ca.pem"), &self.ca.cert_pem).expect("write");
        let mut conf = EtcdMemberConf::new(
            name,
            data_dir.unwrap_or_else(|| dir.join("data")),
            LOCAL,
            token,
            EtcdTlsFiles {
                cert_file: dir.join("node.pem"),
                key_file: dir.join("node.key"),
                trusted_ca_file: dir.join("ca.pem"),
            },
        );
        conf.client_port = client_port;
        conf.peer_port = peer_port;
        conf.initial_cluster = initial.to_vec();
        conf.state = state;
        conf.heartbeat_ms = HEARTBEAT_MS;
        conf.election_ms = ELECTION_MS;
        let yaml = conf.to_yaml().expect("valid etcd config");
        let conf_path = dir.join("etcd.yaml");
        std::fs::write(&conf_path, yaml).expect("write");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("log");
        let child = Command::new(ETCD)
            .arg("--config-file")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.procs.push(Proc {
            name: name.to_string(),
            client_port,
            peer_port,
            dir,
            child: Some(child),
        });
        self.procs.len() - 1
    }

    async fn client_of(&self, endpoints: &[String]) -> Client {
        etcd::connect(endpoints, &self.tls, CLIENT_TIMEOUT)
            .await
            .expect("connect")
    }

    async fn client(&self, i: usize) -> Client {
        self.client_of(&[self.procs[i].endpoint()]).await
    }

    /// Wait until member `i` answers `status` with a leader known.
    async fn wait_ready(&self, i: usize) -> u64 {
        let p = &self.procs[i];
        let ep = p.endpoint();
        let tls = self.tls.clone();
        let what = format!("{} ready with a leader", p.name);
        let within = Duration::from_secs(15);
        let start = Instant::now();
        loop {
            let r = async {
                let mut c = etcd::connect(std::slice::from_ref(&ep), &tls, CLIENT_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                let (_, leader) = etcd::status(&mut c).await.map_err(|e| e.to_string())?;
                if leader == 0 {
                    return Err("no leader yet".to_string());
                }
                Ok(leader)
            }
            .await;
            match r {
                Ok(l) => return l,
                Err(e) if start.elapsed() > within => {
                    panic!("{what}: {e}\n--- log:\n{}", p.log_tail())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The index of the current leader, asked of member `via`.
    async fn leader_index(&self, via: usize) -> usize {
        let mut c = self.client(via).await;
        let (_, leader) = etcd::status(&mut c).await.expect("status");
        let members = etcd::member_list(&mut c).await.expect("member list");
        let name = members
            .iter()
            .find(|m| m.id == leader)
            .map(|m| m.name.clone())
            .expect("the leader is a member");
        self.procs
            .iter()
            .position(|p| p.name == name)
            .expect("leader is ours")
    }

    fn signal(&self, i: usize, sig: Signal) {
        kill(self.procs[i].pid(), sig).expect("signal etcd");
    }
}

fn lease_config(endpoints: Vec<String>, tls: &EtcdTls, key: &str) -> LeaseConfig {
    LeaseConfig {
        endpoints,
        tls: tls.clone(),
        tls_files: None,
        ttl: Duration::from_secs(min_lease_ttl_s(ELECTION_MS)),
        keys: vec![(key.to_string(), b"up".to_vec())],
        request_timeout: Duration::from_millis(500),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_a_valid_certificate_is_refused() {
    if !have_etcd() {
        return;
    }
    let c = TestCluster::start(1).await;
    let ep = c.procs[0].endpoint();

    // The CA alone, no client certificate: the TLS handshake is refused.
    let opts = ConnectOptions::new()
        .with_tls(
            TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(&c.ca.cert_pem)),
        )
        .with_connect_timeout(CLIENT_TIMEOUT)
        .with_timeout(CLIENT_TIMEOUT);
    let mut anon = Client::connect([ep.as_str()], Some(opts))
        .await
        .expect("lazy connect");
    let e = anon
        .put("/cairn/x", "1", None)
        .await
        .expect_err("a client without a certificate must be refused");
    eprintln!("no client certificate: {e}");

    // A certificate from another CA (same names): refused too.
    let other = ca::create_ca("test", SystemTime::now()).expect("CA");
    let (key_pem, cert_pem) = ca::issue_node_cert(
        &other.cert_pem,
        &other.key_pem,
        "tester",
        &[],
        SystemTime::now(),
    )
    .expect("cert");
    let foreign = EtcdTls {
        ca_pem: c.ca.cert_pem.clone(),
        cert_pem,
        key_pem,
    };
    let mut f = etcd::connect(std::slice::from_ref(&ep), &foreign, CLIENT_TIMEOUT)
        .await
        .expect("lazy connect");
    let e = etcd::put_if_absent(&mut f, "/cairn/x", "1", None)
        .await
        .expect_err("a certificate from another CA must be refused");
    assert!(e.to_string().contains("put /cairn/x"), "{e}");

    // Plain HTTP: nothing.
    let mut plain = Client::connect(
        [format!("http://127.0.0.1:{}", c.procs[0].client_port)],
        Some(
            ConnectOptions::new()
                .with_connect_timeout(CLIENT_TIMEOUT)
                .with_timeout(CLIENT_TIMEOUT),
        ),
    )
    .await
    .expect("lazy connect");
    plain
        .get("/cairn/x", None)
        .await
        .expect_err("plain HTTP must be refused");

    // The CA's own client works, and the guarded helpers behave.
    let mut ok = c.client(0).await;
    assert!(etcd::put_if_absent(&mut ok, "/cairn/x", "1", None)
        .await
        .unwrap());
    assert!(!etcd::put_if_absent(&mut ok, "/cairn/x", "2", None)
        .await
        .unwrap());
    let v = etcd::get(&mut ok, "/cairn/x").await.unwrap().unwrap();
    assert_eq!(v.value, b"1");
    assert!(!etcd::guarded_put(
        &mut ok,
        "/cairn/x",
        "3",
        Guard::CreateRevision(v.create_revision + 1),
        None
    )
    .await
    .unwrap());
    assert!(etcd::guarded_put(
        &mut ok,
        "/cairn/x",
        "3",
        Guard::CreateRevision(v.create_revision),
        None
    )
    .await
    .unwrap());
    assert!(!etcd::guarded_put(
        &mut ok,
        "/cairn/x",
        "4",
        Guard::ModRevision(v.mod_revision),
        None
    )
    .await
    .unwrap());
    // A token is spent exactly once.
    assert!(
        etcd::put_if_absent(&mut ok, "/cairn/join-tokens/t1", "h", None)
            .await
            .unwrap()
    );
    assert!(etcd::delete_if_exists(&mut ok, "/cairn/join-tokens/t1")
        .await
        .unwrap());
    assert!(!etcd::delete_if_exists(&mut ok, "/cairn/join-tokens/t1")
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lost_while_its_member_is_stopped_then_regranted() {
    if !have_etcd() {
        return;
    }
    let c = TestCluster::start(3).await;
    let key = "/cairn/alive/node1";
    // The keeper talks to node1 only; node2 watches from outside.
    let cfg = lease_config(vec![c.procs[0].endpoint()], &c.tls, key);
    let ttl = cfg.ttl;
    let keeper = LeaseKeeper::start(cfg).await.expect("lease");
    let first = keeper.status();
    assert!(first.lost_since.is_none());
    let mut other = c.client(1).await;
    let v = etcd::get(&mut other, key)
        .await
        .unwrap()
        .expect("alive key");
    assert_eq!(v.lease, first.lease_id);

    // Keepalives go on.
    let mut rx = keeper.watch();
    wait_for(
        "a keepalive after the grant",
        Duration::from_secs(5),
        || {
            let s = *rx.borrow_and_update();
            async move {
                if s.last_ok > first.last_ok {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            }
        },
    )
    .await;

    // Freeze node1 past the TTL: the keeper must call the lease lost by its own clock.
    c.signal(0, Signal::SIGSTOP);
    let stopped = Instant::now();
    let lost: LeaseStatus = wait_for("the keeper to report the lease lost", ttl * 4, || {
        let s = keeper.status();
        async move {
            if s.lost_since.is_some() {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        }
    })
    .await;
    let lost_at = lost.lost_since.unwrap();
    assert!(
        lost_at <= lost.last_ok + ttl + Duration::from_millis(700),
        "lost reported late: {:?} after the last keepalive (TTL {ttl:?})",
        lost_at - lost.last_ok
    );
    assert!(lost_at >= stopped, "lost before the member stopped");
    // The rest of the cluster expires the lease: the alive key goes.
    wait_for(
        "the alive key to go once the lease expired",
        Duration::from_secs(10),
        || {
            let mut o = other.clone();
            async move {
                match etcd::get(&mut o, key).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(v) => Err(format!("still there on lease {:x}", v.lease)),
                }
            }
        },
    )
    .await;

    // Thaw node1: a new lease, the key put again on it.
    c.signal(0, Signal::SIGCONT);
    let renewed = wait_for("a new lease after SIGCONT", Duration::from_secs(15), || {
        let s = keeper.status();
        async move {
            if s.lost_since.is_none() && s.lease_id != first.lease_id {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        }
    })
    .await;
    let v = wait_for("the alive key back", Duration::from_secs(5), || {
        let mut o = other.clone();
        async move {
            etcd::get(&mut o, key)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "absent".to_string())
        }
    })
    .await;
    assert_eq!(v.lease, renewed.lease_id);

    // A graceful stop revokes: the key goes at once.
    keeper.shutdown(true).await.expect("revoke");
    assert!(etcd::get(&mut other, key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_new_leader_writes_go_on_and_the_lease_holds() {
    if !have_etcd() {
        return;
    }
    let mut c = TestCluster::start(3).await;
    let all: Vec<String> = c.procs.iter().map(|p| p.endpoint()).collect();
    let mut cfg = lease_config(all.clone(), &c.tls, "/cairn/alive/tester");
    // No keepalive succeeds while the survivors elect a leader (here 1-2.5 s with a 1 s
    // election timeout): a TTL of the bare minimum (2 s) can run out on our own clock, so the
    // lease that must survive a leader's death needs several election timeouts.
    cfg.ttl = Duration::from_secs(5);
    let ttl = cfg.ttl;
    let keeper = LeaseKeeper::start(cfg).await.expect("lease");
    let mut rx = keeper.watch();

    let leader = c.leader_index(0).await;
    let old_leader_name = c.procs[leader].name.clone();
    c.procs[leader].kill();
    let killed = Instant::now();
    let survivor = (0..3).find(|i| *i != leader).unwrap();

    // A new leader among the survivors.
    let new_leader = wait_for("a new leader", Duration::from_secs(10), || {
        let ep = c.procs[survivor].endpoint();
        let tls = c.tls.clone();
        let old = old_leader_name.clone();
        async move {
            let mut cl = etcd::connect(&[ep], &tls, CLIENT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let (_, l) = etcd::status(&mut cl).await.map_err(|e| e.to_string())?;
            let members = etcd::member_list(&mut cl)
                .await
                .map_err(|e| e.to_string())?;
            match members.iter().find(|m| m.id == l) {
                Some(m) if m.name != old => Ok(m.name.clone()),
                _ => Err(format!("leader {l:x}")),
            }
        }
    })
    .await;
    eprintln!(
        "leader {old_leader_name} killed; {new_leader} leads after {:?}",
        killed.elapsed()
    );

    // Writes go on through a client of every endpoint (the dead one included).
    let mut w = c.client_of(&all).await;
    for i in 0..5 {
        wait_for(
            "a write after the leader's death",
            Duration::from_secs(5),
            || {
                let mut w2 = w.clone();
                async move {
                    w2.put(format!("/cairn/test/{i}"), "v", None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await;
    }
    assert_eq!(
        w.get(
            "/cairn/test/",
            Some(etcd_client::GetOptions::new().with_prefix())
        )
        .await
        .unwrap()
        .kvs()
        .len(),
        5
    );

    // The lease held throughout: keepalives kept succeeding past a TTL after the kill.
    let watch_until = killed + ttl;
    wait_for("keepalives past the leader's death", ttl * 2, || {
        let s = *rx.borrow_and_update();
        async move {
            assert!(s.lost_since.is_none(), "the lease was lost: {s:?}");
            if s.last_ok > watch_until {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        }
    })
    .await;
    keeper.shutdown(false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_added_promoted_with_retry_and_removed() {
    if !have_etcd() {
        return;
    }
    let mut c = TestCluster::start(1).await;
    let mut cl = c.client(0).await;
    for i in 0..50 {
        cl.put(format!("/cairn/data/{i}"), vec![b'x'; 1000], None)
            .await
            .unwrap();
    }

    let (client_port, peer_port) = (free_port(), free_port());
    let peer = format!("https://127.0.0.1:{peer_port}");
    let id = etcd::add_learner(&mut cl, &peer)
        .await
        .expect("add learner");
    let members = etcd::member_list(&mut cl).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().any(|m| m.id == id && m.is_learner));

    // Not started yet: promotion is refused until the deadline, saying what it waited for.
    let e =
        etcd::promote_learner_with_retry(&mut cl, id, Instant::now() + Duration::from_millis(400))
            .await
            .expect_err("a learner that never started cannot be promoted");
    assert!(e.to_string().contains("catch up"), "{e}");

    let initial = vec![
        format!("node1={}", c.procs[0].peer_url()),
        format!("node2={peer}"),
    ];
    let n2 = c.spawn(
        "node2",
        client_port,
        peer_port,
        &initial,
        InitialState::Existing,
        "test-cluster",
        None,
    );
    etcd::promote_learner_with_retry(&mut cl, id, Instant::now() + Duration::from_secs(15))
        .await
        .expect("promote");
    let members = etcd::member_list(&mut cl).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
    // Promoting again counts as done.
    etcd::promote_learner_with_retry(&mut cl, id, Instant::now() + Duration::from_secs(2))
        .await
        .expect("promote twice");
    // The new voter serves the data.
    c.wait_ready(n2).await;
    let mut c2 = c.client(n2).await;
    let got = c2
        .get(
            "/cairn/data/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 50);

    // Remove it: one member left, and the removed process exits.
    etcd::remove_member(&mut cl, id, Instant::now() + Duration::from_secs(12))
        .await
        .expect("remove");
    let members = etcd::member_list(&mut cl).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "node1");
    let p = &mut c.procs[n2];
    wait_for(
        "the removed member to exit",
        Duration::from_secs(15),
        || {
            let exited = p
                .child
                .as_mut()
                .map(|ch| ch.try_wait().ok().flatten().is_some())
                .unwrap_or(true);
            async move {
                if exited {
                    Ok(())
                } else {
                    Err("still running".to_string())
                }
            }
        },
    )
    .await;
    // Removing an unknown member names the operation.
    let e = etcd::remove_member(&mut cl, id, Instant::now() + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("member remove"), "{e}");
    cl.put("/cairn/after", "1", None)
        .await
        .expect("still writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_saved_and_restored_into_a_new_cluster() {
    if !have_etcd() {
        return;
    }
    let mut c = TestCluster::start(1).await;
    let mut cl = c.client(0).await;
    for i in 0..20 {
        cl.put(format!("/cairn/vms/vm{i}"), format!("spec {i}"), None)
            .await
            .unwrap();
    }
    let old_cluster_id = cl
        .member_list()
        .await
        .unwrap()
        .header()
        .map(|h| h.cluster_id())
        .unwrap();

    let snap = c.dir.path().join("backup.db");
    let mut long = etcd::connect_unbounded(&[c.procs[0].endpoint()], &c.tls, CLIENT_TIMEOUT)
        .await
        .unwrap();
    let size = etcd::snapshot_to_file(&mut long, &snap)
        .await
        .expect("snapshot");
    assert!(size > 0);
    assert_eq!(std::fs::metadata(&snap).unwrap().len(), size);
    assert!(!snap.with_extension("tmp").exists());
    c.procs[0].kill();

    // Restore with a new cluster identity (etcd 3.4: etcdctl snapshot restore).
    let (client_port, peer_port) = (free_port(), free_port());
    let peer = format!("https://127.0.0.1:{peer_port}");
    let data = c.dir.path().join("restored");
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("restore")
        .arg(&snap)
        .args(["--name", "solo"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--initial-cluster", &format!("solo={peer}")])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster-token", "restored-cluster"])
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl snapshot restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = c.spawn(
        "solo",
        client_port,
        peer_port,
        &[format!("solo={peer}")],
        InitialState::New,
        "restored-cluster",
        Some(data),
    );
    c.wait_ready(n).await;
    let mut r = c.client(n).await;
    let got = r
        .get(
            "/cairn/vms/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 20);
    assert_eq!(
        etcd::get(&mut r, "/cairn/vms/vm7")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"spec 7"
    );
    let members = r.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);
    assert_eq!(members.members()[0].name(), "solo");
    assert_ne!(
        members.header().map(|h| h.cluster_id()).unwrap(),
        old_cluster_id
    );
    r.put("/cairn/after-restore", "1", None)
        .await
        .expect("writable");
}

/// Measurements for the timeouts decision (run by hand, also inside lab nodes):
///
/// `cargo test -p cairn-cluster --test etcd_real -- --ignored --nocapture measure`
///
/// - fsync: `CAIRN_SAMPLES` (500) × (4 KiB write + fdatasync) in `CAIRN_FSYNC_DIR` (default:
///   the temp dir; on a node `/var/lib/cairn`), as percentiles.
/// - heartbeat: for `CAIRN_MEASURE_S` seconds (35: etcd samples its peer round trip every
///   30 s), `status` round trips to every member every 100 ms, then etcd's own histograms
///   `etcd_network_peer_round_trip_time_seconds` and `etcd_disk_wal_fsync_duration_seconds`
///   from each member's `/metrics` (read with curl). Against a running cluster when
///   `CAIRN_ETCD_ENDPOINTS` (comma-separated `https://ip:2379`) is set, with
///   `CAIRN_ETCD_CA`, `CAIRN_ETCD_CERT`, `CAIRN_ETCD_KEY` (default: the node's files in
///   `/var/lib/cairn/cluster/`); otherwise two local members on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_fsync_and_heartbeat() {
    use std::io::Write;
    let env_num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(d)
    };
    let dir = std::env::var_os("CAIRN_FSYNC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let samples = usize::try_from(env_num("CAIRN_SAMPLES", 500)).unwrap_or(500);
    let path = dir.join(format!(".cairn-fsync-probe-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("probe file");
    let block = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = std::time::Instant::now();
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    println!(
        "fsync (4 KiB write + fdatasync) in {}: {}",
        dir.display(),
        percentiles(&mut lat)
    );

    // Targets: a running cluster, or two local members.
    let local;
    let (endpoints, tls, files): (Vec<String>, EtcdTls, [PathBuf; 3]) =
        if let Ok(eps) = std::env::var("CAIRN_ETCD_ENDPOINTS") {
            let file = |k: &str, d: &str| {
                PathBuf::from(
                    std::env::var(k).unwrap_or_else(|_| format!("/var/lib/cairn/cluster/{d}")),
                )
            };
            let files = [
                file("CAIRN_ETCD_CA", "ca.pem"),
                file("CAIRN_ETCD_CERT", "node.pem"),
                file("CAIRN_ETCD_KEY", "node.key"),
            ];
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            };
            let tls = EtcdTls {
                ca_pem: read(&files[0]),
                cert_pem: read(&files[1]),
                key_pem: read(&files[2]),
            };
            (
                eps.split(',').map(|s| s.trim().to_string()).collect(),
                tls,
                files,
            )
        } else {
            if !have_etcd() {
                return;
            }
            local = TestCluster::start(2).await;
            let d = &local.procs[0].dir;
            (
                local.procs.iter().map(|p| p.endpoint()).collect(),
                local.tls.clone(),
                [d.join("ca.pem"), d.join("node.pem"), d.join("node.key")],
            )
        };
    let mut clients = Vec::new();
    for ep in &endpoints {
        clients.push(
            etcd::connect(std::slice::from_ref(ep), &tls, CLIENT_TIMEOUT)
                .await
                .expect("connect"),
        );
    }
    let measure = Duration::from_secs(env_num("CAIRN_MEASURE_S", 35));
    println!("measuring status round trips for {measure:?} ...");
    let mut rtts: Vec<Vec<Duration>> = vec![Vec::new(); clients.len()];
    let mut errors = vec![0usize; clients.len()];
    let end = Instant::now() + measure;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < end {
        tick.tick().await;
        for (i, c) in clients.iter_mut().enumerate() {
            let t = std::time::Instant::now();
            match c.status().await {
                Ok(_) => rtts[i].push(t.elapsed()),
                Err(_) => errors[i] += 1,
            }
        }
    }
    for (i, ep) in endpoints.iter().enumerate() {
        println!(
            "status round trip to {ep}: {} errors={}",
            percentiles(&mut rtts[i]),
            errors[i]
        );
    }
    if !Path::new("/usr/bin/curl").exists() {
        println!("curl not found: etcd's own histograms not read");
        return;
    }
    for ep in &endpoints {
        let out = Command::new("/usr/bin/curl")
            .args(["-s", "--max-time", "5", "--cacert"])
            .arg(&files[0])
            .arg("--cert")
            .arg(&files[1])
            .arg("--key")
            .arg(&files[2])
            .arg(format!("{ep}/metrics"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{ep} /metrics:");
        for line in text.lines().filter(|l| {
            l.starts_with("etcd_network_peer_round_trip_time_seconds")
                || l.starts_with("etcd_disk_wal_fsync_duration_seconds")
                || l.starts_with("etcd_server_leader_changes_seen_total")
                || l.starts_with("etcd_server_heartbeat_send_failures_total")
        }) {
            println!("  {line}");
        }
    }
}

fn percentiles(v: &mut [Duration]) -> String {
    if v.is_empty() {
        return "no samples".to_string();
    }
    v.sort();
    let at = |q: f64| {
        let idx = ((v.len() as f64 - 1.0) * q).round();
        // idx is within 0..len by construction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = idx as usize;
        v[i.min(v.len() - 1)]
    };
    format!(
        "n={} p50={:?} p90={:?} p99={:?} max={:?}",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        v[v.len() - 1]
    )
}

/// The fingerprint (`sha256:` + hex) of the certificate the etcd at `endpoint` serves to a
/// new connection, seen through a real HTTPS request (`GET /health`) with `identity`.
async fn served_certificate(endpoint: &str, ca_pem: &str, identity: (&str, &str)) -> String {
    let addr: std::net::SocketAddr = endpoint
        .trim_start_matches("https://")
        .parse()
        .expect("endpoint address");
    let tls = cairn_client::cluster::MemberTls::new(ca_pem, Some(identity)).expect("member tls");
    let r = cairn_client::cluster::send_with(
        addr,
        cairn_client::ClientRequest::new(hyper::Method::GET, "/health"),
        &tls,
        CLIENT_TIMEOUT,
    )
    .await
    .expect("GET /health");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let hex: String = r.peer.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_files_are_picked_up_by_a_running_etcd() {
    use cairn_cluster::local::LocalFiles;
    use cairn_cluster::renewal;
    if !have_etcd() {
        return;
    }
    let c = TestCluster::start(1).await;
    let p = &c.procs[0];
    // The member's directory holds node.pem, node.key and ca.pem, the layout of
    // /var/lib/cairn/cluster; give it the CA key so it renews by itself.
    let files = LocalFiles { dir: p.dir.clone() };
    std::fs::write(files.ca_key(), &c.ca.key_pem).unwrap();
    let before_pem = files.read(&files.node_cert()).unwrap();
    let before = served_certificate(
        &p.endpoint(),
        &c.ca.cert_pem,
        (&c.tls.cert_pem, &c.tls.key_pem),
    )
    .await;
    assert_eq!(before, ca::fingerprint(&before_pem).unwrap());
    let pid = p.pid();

    let r = renewal::renew_with_own_ca(&files, SystemTime::now()).expect("renewal");
    assert_ne!(r.old_serial, r.new_serial);
    let after_pem = files.read(&files.node_cert()).unwrap();
    let want = ca::fingerprint(&after_pem).unwrap();

    // A new connection gets the new certificate (etcd loads the pair per handshake), from the
    // same process: no restart.
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        got = served_certificate(
            &p.endpoint(),
            &c.ca.cert_pem,
            (&c.tls.cert_pem, &c.tls.key_pem),
        )
        .await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got, want,
        "etcd still serves the old certificate (serial {}) after the files were replaced",
        r.old_serial
    );
    assert_eq!(ca::cert_info(&after_pem).unwrap().serial_hex, r.new_serial);
    assert_eq!(p.pid(), pid);
    // The renewed pair also works as a client identity against the running member.
    let renewed = EtcdTls {
        ca_pem: c.ca.cert_pem.clone(),
        cert_pem: after_pem,
        key_pem: files.read(&files.node_key()).unwrap(),
    };
    let mut cl = etcd::connect(&[p.endpoint()], &renewed, CLIENT_TIMEOUT)
        .await
        .expect("connect with the renewed identity");
    cl.put("/cairn/renewed", "1", None).await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_lost_for_good_is_recovered_from_the_survivors_snapshot() {
    use cairn_cluster::records::{self, NodeRecord};
    use cairn_cluster::types::{ClusterInfo, NameInventory, Role};
    use cairn_cluster::{recover, snapshot};
    if !have_etcd() {
        return;
    }
    let mut c = TestCluster::start(3).await;
    let all: Vec<String> = c.procs.iter().map(|p| p.endpoint()).collect();
    let cl = c.client_of(&all).await;
    let cluster = ClusterInfo {
        name: "lab".into(),
        id: "0123456789abcdef".into(),
        ca_fingerprint: ca::fingerprint(&c.ca.cert_pem).unwrap(),
        created_at: 1,
    };
    records::put_cluster(&cl, &cluster).await.unwrap();
    for (i, p) in c.procs.iter().enumerate() {
        records::put_node(
            &cl,
            &NodeRecord {
                name: p.name.clone(),
                address: LOCAL,
                role: Role::Voter,
                joined_at: 1,
                names: NameInventory::default(),
                cert_serial: format!("5e{i}"),
                previous_serials: Vec::new(),
                networks: Default::default(),
                pools: Vec::new(),
            },
        )
        .await
        .unwrap();
    }
    let mut kv = cl.kv_client();
    for i in 0..10 {
        kv.put(format!("/cairn/vms/vm{i}"), format!("spec {i}"), None)
            .await
            .unwrap();
    }
    let old_cluster_id = kv
        .get("/cairn/cluster", None)
        .await
        .unwrap()
        .header()
        .map(|h| h.cluster_id())
        .unwrap();

    // The scheduled snapshot on the survivor (node1), kept in its snapshot directory.
    let sdir = snapshot::dir_of(&c.procs[0].dir);
    let taken = snapshot::take(&c.procs[0].endpoint(), &c.tls, &sdir, 1_000, snapshot::KEEP)
        .await
        .expect("snapshot");
    assert!(taken.size > 0 && taken.revision > 0, "{taken:?}");
    assert_eq!(snapshot::list(&sdir), vec![taken.clone()]);

    // Two of three voters destroyed: no quorum on the survivor.
    c.procs[1].kill();
    c.procs[2].kill();
    let mut solo = etcd::connect(
        &[c.procs[0].endpoint()],
        &c.tls,
        Duration::from_millis(1500),
    )
    .await
    .unwrap();
    assert!(
        solo.put("/cairn/minority", "1", None).await.is_err(),
        "a write without quorum succeeded"
    );

    // Recover: etcd stopped, the snapshot restored with a new identity into its data dir.
    let (client_port, peer_port, dir) = {
        let p = &c.procs[0];
        (p.client_port, p.peer_port, p.dir.clone())
    };
    c.procs[0].kill();
    let data = dir.join("data");
    let source = recover::pick_source(&sdir, &snapshot::list(&sdir), None, &data).unwrap();
    assert_eq!(source, recover::Source::Snapshot(sdir.join(&taken.file)));
    let new_id = records::new_cluster_id();
    let peer = format!("https://127.0.0.1:{peer_port}");
    recover::restore(
        &cairn_core::command::SystemRunner,
        &source,
        "node1",
        &peer,
        &new_id,
        &data,
        2_000,
    )
    .expect("restore");
    assert!(
        dir.join("data.lost-2000").is_dir(),
        "the old data is kept aside"
    );
    let n = c.spawn(
        "node1",
        client_port,
        peer_port,
        &[format!("node1={peer}")],
        InitialState::New,
        &new_id,
        Some(data),
    );
    c.wait_ready(n).await;
    let r = c.client(n).await;
    let recovered = ClusterInfo {
        id: new_id.clone(),
        ..cluster.clone()
    };
    let mut dropped = recover::rewrite_records(&r, &recovered, "node1", 2_000)
        .await
        .expect("records");
    dropped.sort();
    assert_eq!(dropped, vec!["node2".to_string(), "node3".to_string()]);

    // The data is there, one member, a new cluster id, the lost nodes gone and revoked.
    let mut rc = r.clone();
    assert_eq!(
        etcd::get(&mut rc, "/cairn/vms/vm7")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"spec 7"
    );
    let members = etcd::member_list(&mut rc).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "node1");
    let resp = rc.member_list().await.unwrap();
    assert_ne!(resp.header().unwrap().cluster_id(), old_cluster_id);
    assert_eq!(records::get_cluster(&r).await.unwrap().unwrap().id, new_id);
    let names: Vec<String> = records::nodes(&r)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, vec!["node1".to_string()]);
    assert!(records::is_revoked(&r, "5e1").await.unwrap());
    assert!(records::is_revoked(&r, "5e2").await.unwrap());
    assert!(!records::is_revoked(&r, "5e0").await.unwrap());
    rc.put("/cairn/after-recovery", "1", None)
        .await
        .expect("writable");

    // New members can join again: a learner added, started, promoted.
    let (c4, p4) = (free_port(), free_port());
    let peer4 = format!("https://127.0.0.1:{p4}");
    let id4 = etcd::add_learner(&mut rc, &peer4)
        .await
        .expect("add learner");
    let m = c.spawn(
        "node4",
        c4,
        p4,
        &[format!("node1={peer}"), format!("node4={peer4}")],
        InitialState::Existing,
        &new_id,
        None,
    );
    etcd::promote_learner_with_retry(&mut rc, id4, Instant::now() + Duration::from_secs(30))
        .await
        .expect("promote");
    c.wait_ready(m).await;
    let members = etcd::member_list(&mut rc).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_is_told_within_the_probe_timeout_naming_whom_it_reaches() {
    use cairn_cluster::quorum::{decide, gate, probe, Voter, PROBE_TIMEOUT};
    if !have_etcd() {
        return;
    }
    let c = TestCluster::start(3).await;
    let voters: Vec<Voter> = c
        .procs
        .iter()
        .map(|p| Voter {
            name: p.name.clone(),
            endpoint: p.endpoint(),
        })
        .collect();
    let pool = std::sync::Arc::new(cairn_cluster::pool::EtcdPool::default());
    let view = decide(&probe(&pool, &voters, &c.tls).await);
    assert!(view.has_quorum, "{view:?}");
    assert_eq!(view.reachable.len(), 3, "{view:?}");
    // The pool keeps one client per voter: the next probe reuses them.
    assert_eq!(pool.len(), 3);

    // Freeze node3: the majority answers, and the probe does not wait out node3's timeout.
    c.signal(2, Signal::SIGSTOP);
    let t = Instant::now();
    let view = decide(&probe(&pool, &voters, &c.tls).await);
    let took = t.elapsed();
    assert!(view.has_quorum, "{view:?}");
    assert_eq!(view.reachable, ["node1", "node2"], "{view:?}");
    assert!(
        took < PROBE_TIMEOUT / 2,
        "a probe with one frozen voter took {took:?}"
    );
    eprintln!("one frozen voter of three: quorum told in {took:?}");

    // Freeze node2 too: node1 is a minority of one.
    c.signal(1, Signal::SIGSTOP);
    let t = Instant::now();
    let view = decide(&probe(&pool, &voters, &c.tls).await);
    let took = t.elapsed();
    assert!(
        took < PROBE_TIMEOUT + Duration::from_secs(1),
        "the probe took {took:?}"
    );
    assert!(!view.has_quorum, "{view:?}");
    assert_eq!(view.reachable, ["node1"], "{view:?}");
    assert_eq!(pool.len(), 1, "the frozen voters' clients are dropped");
    let e = gate(&view).unwrap_err().to_string();
    assert!(e.contains("[\"node1\"]") && e.contains("node3"), "{e}");
    eprintln!("minority told in {took:?}: {e}");

    // Thawed, quorum comes back.
    c.signal(1, Signal::SIGCONT);
    c.signal(2, Signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = decide(&probe(&pool, &voters, &c.tls).await);
        if view.has_quorum {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no quorum 20 s after the thaw: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// "Node power-off → shown offline" when the node was the leader: its liveness key is on a
/// lease nobody keeps alive any more, and etcd's new leader extends every lease by the
/// election timeout when it takes over (lessor Promote). Measures when the key is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_liveness_key_goes_within_ttl_plus_the_election() {
    if !have_etcd() {
        return;
    }
    let mut c = TestCluster::start(3).await;
    const TTL_S: i64 = 5;
    let ttl = Duration::from_secs(TTL_S.unsigned_abs());
    let leader = c.leader_index(0).await;
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let key = "/cairn/alive/dead-leader";
    {
        let mut cl = c.client(leader).await;
        let lease = cl.lease_grant(TTL_S, None).await.expect("grant").id();
        cl.put(
            key,
            "up",
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("put");
    }
    // The node's keeper dies with it: the lease is at its full TTL now.
    c.procs[leader].kill();
    let killed = Instant::now();
    let ep = c.procs[survivor].endpoint();
    let gone = wait_for(
        "the dead leader's key to expire",
        Duration::from_secs(30),
        || {
            let ep = ep.clone();
            let tls = c.tls.clone();
            async move {
                let mut cl = etcd::connect(&[ep], &tls, CLIENT_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                match etcd::get(&mut cl, key).await {
                    Ok(None) => Ok(killed.elapsed()),
                    Ok(Some(_)) => Err("still there".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    eprintln!(
        "leader killed → its liveness key gone: {:.1} s (TTL {} s, election timeout {} ms)",
        gone.as_secs_f64(),
        ttl.as_secs(),
        ELECTION_MS
    );
    assert!(gone >= ttl, "the key went before its TTL: {gone:?}");
    assert!(
        gone <= ttl + Duration::from_millis(5 * ELECTION_MS),
        "the key outlived TTL + 5 election timeouts: {gone:?}"
    );
}
