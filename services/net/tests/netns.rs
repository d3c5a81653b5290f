//! Host tests in a fresh network namespace: the real rtnetlink apply of veth links, a
//! bridge, addresses and routes, idempotence, and links the spec does not own left alone.
//! They need root (CAP_NET_ADMIN) and skip with a message otherwise.

use cairn_net::netlink::{NetSystem, Netlink};
use cairn_net::plan::plan;
use cairn_net::spec::NetworkSpec;
use cairn_net::validate::validate;
use serde_json::json;
use std::process::Command;

/// Run `f` on a thread that lives in a new network namespace (unshare affects only the
/// calling thread, so the test process's namespace is untouched and the namespace goes
/// away with the thread).
fn in_netns(name: &str, f: impl FnOnce() + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {name}: needs root to create a network namespace");
        return;
    }
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .expect("netns test thread");
}

fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spec(v: serde_json::Value) -> NetworkSpec {
    serde_json::from_value(v).unwrap()
}

fn apply(nl: &Netlink, s: &NetworkSpec) -> usize {
    let obs = nl.observe().unwrap();
    validate(s, &obs).unwrap();
    let ops = plan(s, &obs).unwrap();
    // The batch path (one index cache for all ops), as the service runs it.
    if let Err((i, e)) = nl.apply_all(&ops) {
        panic!("{}: {e:?}", ops[i]);
    }
    ops.len()
}

#[test]
fn bridge_addresses_and_routes_apply_and_reapply_as_nothing() {
    in_netns(
        "bridge_addresses_and_routes_apply_and_reapply_as_nothing",
        || {
            ip("link set lo up");
            for i in 0..3 {
                ip(&format!("link add v{i} type veth peer name p{i}"));
                ip(&format!("link set p{i} up"));
            }
            // Something an admin made by hand: must survive.
            ip("link add handmade type bridge");
            ip("addr add 192.168.77.1/24 dev handmade");
            ip("link set handmade up");
            ip("route add 192.168.0.0/16 via 192.168.77.254");

            let nl = Netlink::new().unwrap();
            let s = spec(json!({
                "links": [{"name": "v0", "addresses": ["10.1.0.2/24"], "management": true, "mtu": 1400},
                          {"name": "v1"}, {"name": "v2"}],
                "bridges": [{"name": "br0", "ports": ["v1", "v2"], "stp": false,
                             "addresses": ["10.2.0.1/24", "fd00:2::1/64"]}],
                "routes": [{"destination": "10.99.0.0/16", "gateway": "10.1.0.1"},
                           {"destination": "10.98.0.0/16", "gateway": "10.2.0.254", "interface": "br0", "metric": 50}]
            }));
            let t = std::time::Instant::now();
            let first = apply(&nl, &s);
            println!(
                "BENCH host netns: {first} netlink operations applied in {:?}",
                t.elapsed()
            );
            assert!(first >= 10, "first apply made {first} changes");
            let obs = nl.observe().unwrap();
            assert_eq!(plan(&s, &obs).unwrap(), vec![], "second plan is empty");
            assert_eq!(apply(&nl, &s), 0);

            let br = ip("-d link show br0");
            assert!(br.contains("alias cairn"), "{br}");
            assert!(ip("link show v1").contains("master br0"));
            assert!(ip("link show v0").contains("mtu 1400"));
            assert!(ip("addr show br0").contains("10.2.0.1/24"));
            let routes = ip("route show");
            assert!(
                routes.contains("10.99.0.0/16 via 10.1.0.1 dev v0 proto static"),
                "{routes}"
            );
            assert!(
                routes.contains("10.98.0.0/16 via 10.2.0.254 dev br0 proto static metric 50"),
                "{routes}"
            );
            assert!(
                routes.contains("192.168.0.0/16 via 192.168.77.254"),
                "{routes}"
            );

            // A smaller spec: the bridge goes, its ports are freed, the hand-made bridge stays.
            let small = spec(json!({
                "links": [{"name": "v0", "addresses": ["10.1.0.3/24"], "management": true}]
            }));
            assert!(apply(&nl, &small) > 0);
            assert_eq!(apply(&nl, &small), 0);
            let links = ip("-br link");
            assert!(!links.contains("br0"), "{links}");
            assert!(links.contains("handmade"), "{links}");
            assert!(!ip("link show v1").contains("master"));
            let addrs = ip("addr show v0");
            assert!(
                addrs.contains("10.1.0.3/24") && !addrs.contains("10.1.0.2/24"),
                "{addrs}"
            );
            assert!(ip("addr show handmade").contains("192.168.77.1/24"));
            let routes = ip("route show");
            assert!(!routes.contains("10.99.0.0/16"), "{routes}");
            assert!(
                routes.contains("192.168.0.0/16 via 192.168.77.254"),
                "{routes}"
            );
        },
    );
}

#[test]
fn bridge_stp_changes_in_place() {
    in_netns("bridge_stp_changes_in_place", || {
        ip("link set lo up");
        ip("link add v0 type veth peer name p0");
        let nl = Netlink::new().unwrap();
        let mut s = spec(json!({
            "links": [{"name": "v0"}],
            "bridges": [{"name": "vmbr0", "ports": ["v0"], "stp": false,
                         "addresses": ["10.5.0.1/24"], "management": true}]
        }));
        apply(&nl, &s);
        s.bridges[0].stp = true;
        let obs = nl.observe().unwrap();
        let ops = plan(&s, &obs).unwrap();
        assert_eq!(
            ops.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            vec!["set bridge vmbr0 stp on"]
        );
        apply(&nl, &s);
        assert_eq!(apply(&nl, &s), 0);
        assert!(ip("-d link show vmbr0").contains("stp_state 1"));
    });
}
