//! Host tests of the DRBD records against a real etcd 3.4 (Debian's `etcd-server`) on
//! loopback: concurrent number allocation never hands out an index twice, a freed index is
//! reused, and the fence-peer handler's answers with etcd up and down.
//!
//! Without `/usr/bin/etcd` the tests print a skip message and pass, unless
//! `CAIRN_REQUIRE_ETCD` is set (`./dev test` sets it).

use cairn_cluster::drbd::alloc;
use cairn_cluster::drbd::fence::{self, Answer, Role};
use cairn_cluster::drbd::names::Index;
use cairn_cluster::drbd::record::{ResourceRecord, Side};
use cairn_cluster::records::ALIVE_PREFIX;
use etcd_client::{Client, ConnectOptions};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::Instant;

const ETCD: &str = "/usr/bin/etcd";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn have_etcd() -> bool {
    if Path::new(ETCD).exists() {
        return true;
    }
    if std::env::var_os("CAIRN_REQUIRE_ETCD").is_some() {
        panic!("CAIRN_REQUIRE_ETCD is set but {ETCD} is missing: apt-get install etcd-server");
    }
    eprintln!("SKIPPED: {ETCD} not found (apt-get install etcd-server)");
    false
}

fn free_port() -> u16 {
    TcpListener::bind((LOCAL, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One single-member etcd on loopback (plain HTTP: these tests are about transactions, TLS
/// is etcd_real.rs's subject), killed on drop.
struct Etcd {
    _dir: TempDir,
    child: Option<Child>,
    endpoint: String,
}

impl Etcd {
    async fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cp, pp) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{cp}");
        let peer = format!("http://127.0.0.1:{pp}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let child = Command::new(ETCD)
            .args(["--name", "m1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("m1={peer}")])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let e = Etcd {
            _dir: dir,
            child: Some(child),
            endpoint: client,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = e.client().await {
                if c.status().await.is_ok() {
                    return e;
                }
            }
            assert!(Instant::now() < deadline, "etcd did not answer within 20 s");
            // Poll interval while waiting for etcd to serve.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn client(&self) -> Result<Client, etcd_client::Error> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(2));
        Client::connect([self.endpoint.as_str()], Some(opts)).await
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn record(vm: &str, primary: &str) -> ResourceRecord {
    let side = |n: u8| Side {
        node: format!("node{n}"),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 9, n)),
        disk: format!("/dev/pool{n}/vm-{vm}-disk0"),
        meta_disk: format!("/dev/pool{n}/vm-{vm}-disk0_drbdmd"),
    };
    ResourceRecord {
        name: String::new(),
        index: 0,
        vm: vm.into(),
        vm_disk: "disk0".into(),
        size_bytes: 256 << 20,
        secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
        sides: [side(1), side(2)],
        primary: primary.into(),
        generation: 1,
        initial_sync_done: true,
        lone_writer: None,
        fenced: vec![],
        retire: None,
        former: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_allocating_at_once_never_get_the_same_number() {
    if !have_etcd() {
        return;
    }
    let etcd = Etcd::start().await;
    const EACH: u32 = 12;
    const TOTAL: usize = 2 * EACH as usize;
    let mut tasks = Vec::new();
    for node in ["node1", "node2"] {
        let c = etcd.client().await.expect("client");
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for k in 0..EACH {
                let r = alloc::allocate(&c, |_| record(&format!("{node}-vm{k}"), "node1"))
                    .await
                    .expect("allocate");
                got.push((r.index, r.name.clone(), r.vm.clone()));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let indices: BTreeSet<u32> = all.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(
        indices.len(),
        TOTAL,
        "an index was handed out twice: {all:?}"
    );
    assert_eq!(
        indices,
        (0..2 * EACH).collect(),
        "not the lowest numbers: {all:?}"
    );
    let c = etcd.client().await.expect("client");
    let listed = alloc::list(&c).await.expect("list");
    assert_eq!(listed.len(), 2 * EACH as usize);
    for (i, name, vm) in &all {
        let rec = listed.iter().find(|r| r.name == *name).expect("record");
        assert_eq!(
            (rec.index, &rec.vm),
            (*i, vm),
            "record {name} was overwritten"
        );
        assert_eq!(Index::new(*i).unwrap().name(), *name);
    }

    // A freed number is the next one handed out, and its old record is gone.
    alloc::delete(&c, "cairn5").await.expect("delete");
    assert!(alloc::get(&c, "cairn5").await.expect("get").is_none());
    let again = alloc::allocate(&c, |_| record("late", "node2"))
        .await
        .expect("allocate");
    assert_eq!((again.index, again.name.as_str()), (5, "cairn5"));
    let next = alloc::allocate(&c, |_| record("later", "node2"))
        .await
        .expect("allocate");
    assert_eq!(next.index, 2 * EACH);
    match alloc::delete(&c, "web").await {
        Err(cairn_cluster::ClusterError::Invalid { field: "name", .. }) => {}
        other => panic!("deleting a foreign name: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_update_loses_to_an_earlier_one() {
    if !have_etcd() {
        return;
    }
    let etcd = Etcd::start().await;
    let c = etcd.client().await.expect("client");
    let r = alloc::allocate(&c, |_| record("web", "node1"))
        .await
        .expect("allocate");
    let (mut a, rev) = alloc::get(&c, &r.name).await.expect("get").expect("record");
    let mut b = a.clone();
    a.primary = "node2".into();
    a.generation = 2;
    b.fenced.push("node2".into());
    assert!(alloc::update_guarded(&c, &a, rev).await.expect("update"));
    assert!(!alloc::update_guarded(&c, &b, rev).await.expect("update"));
    let (now, _) = alloc::get(&c, &r.name).await.expect("get").expect("record");
    assert_eq!(
        (now.primary.as_str(), now.generation, now.fenced.len()),
        ("node2", 2, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_peer_answers_from_etcd_and_blocks_a_primary_that_lost_its_place() {
    if !have_etcd() {
        return;
    }
    let mut etcd = Etcd::start().await;
    let c = etcd.client().await.expect("client");
    let r = alloc::allocate(&c, |_| record("web", "node1"))
        .await
        .expect("allocate");

    // node2's lease gone: the recorded primary may write alone, peer down (5), recorded.
    let a = fence::handle(&c, "node1", &r.name, Role::Primary, 1000).await;
    assert_eq!(a, Answer::PeerDown);
    let (rec, _) = alloc::get(&c, &r.name).await.expect("get").expect("record");
    let w = rec.lone_writer.expect("lone writer recorded");
    assert_eq!((w.node.as_str(), w.generation, w.since), ("node1", 1, 1000));

    // node2 alive (its liveness key exists): outdated (4).
    c.kv_client()
        .put(format!("{ALIVE_PREFIX}node2"), "1", None)
        .await
        .expect("put alive");
    assert_eq!(
        fence::handle(&c, "node1", &r.name, Role::Primary, 1001).await,
        Answer::PeerOutdated
    );
    // The secondary asked while node1 is recorded primary: peer primary (6).
    assert_eq!(
        fence::handle(&c, "node2", &r.name, Role::Secondary, 1002).await,
        Answer::PeerPrimary
    );

    // The HA manager moved the record to node2: node1, still Primary, stays frozen (1).
    let (mut moved, rev) = alloc::get(&c, &r.name).await.expect("get").expect("record");
    moved.primary = "node2".into();
    moved.generation = 2;
    moved.fenced = vec!["node1".into()];
    assert!(alloc::update_guarded(&c, &moved, rev)
        .await
        .expect("update"));
    match fence::handle(&c, "node1", &r.name, Role::Primary, 1003).await {
        Answer::KeepFrozen(why) => assert!(why.contains("lost its place"), "{why}"),
        other => panic!("a primary that lost its place got {other:?}"),
    }
    // ... and node2, promoting, hears that node1 was fenced (7).
    assert_eq!(
        fence::handle(&c, "node2", &r.name, Role::Secondary, 1004).await,
        Answer::PeerFenced
    );
    // An unknown resource stays frozen.
    assert_eq!(
        fence::handle(&c, "node1", "cairn999", Role::Primary, 1005)
            .await
            .exit_code(),
        1
    );

    // etcd gone: frozen, within the client's timeout.
    etcd.kill();
    let start = Instant::now();
    let a = tokio::time::timeout(
        Duration::from_secs(15),
        fence::handle(&c, "node2", &r.name, Role::Primary, 1006),
    )
    .await
    .expect("the handler answered within 15 s without etcd");
    assert_eq!(a.exit_code(), 1, "{a:?}");
    eprintln!("handler without etcd answered in {:?}", start.elapsed());
}
