//! Scenario vms: a VM from the lab's tiny test guest on a thin volume, driven only through
//! the API: start → heartbeat on its console → ACPI shutdown ignored, timeout, forced off →
//! ten CoW clones in one batch call (timed; pool data unchanged) → all eleven beat → pool
//! grew only by what the clones wrote → node reboot → the autostart VMs are back and beating.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::api_session::ApiSession;
use cairn_lab::{BootMode, Bus, Deadline, Lab, Node, NodeConfig};
use serde_json::{json, Value};

const POOL: &str = "tank";
const GIB: u64 = 1 << 30;
const CLONES: usize = 10;
/// How many of the clones are autostart VMs (with the original).
const AUTOSTART_CLONES: usize = 2;

/// Build the test guest with the repository's script (nasm) and return its bytes.
fn guest_image() -> Result<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join("../build/guest/cairn-guest.img");
    let status = Command::new(dir.join("guest/build.sh"))
        .arg(&out)
        .status()
        .context("running qemu-test/guest/build.sh")?;
    ensure!(
        status.success(),
        "qemu-test/guest/build.sh failed: {status}"
    );
    Ok(std::fs::read(&out)?)
}

/// Standard base64 with padding (the image travels in a JSON body).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The console text of `vm` through the API.
fn console(api: &ApiSession, vm: &str) -> Result<String> {
    let r = api.get(&format!("/api/v1/vms/{vm}/console"))?;
    ensure!(
        r.status == 200,
        "GET console of {vm}: HTTP {} {}",
        r.status,
        r.body
    );
    Ok(r.body)
}

/// The highest `HEARTBEAT n` after the last boot banner of the console text.
fn last_beat(text: &str) -> Option<u64> {
    let boot = text.rfind("CAIRN GUEST")?;
    text[boot..]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("HEARTBEAT "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
}

/// Wait until `vm`'s console shows at least `beats` heartbeats since its last boot and the
/// boot banner count reached `boots`; returns the console text.
fn wait_beats(api: &ApiSession, vm: &str, boots: usize, beats: u64, d: Deadline) -> Result<String> {
    let mut last = String::new();
    let t0 = Instant::now();
    while !d.expired() {
        last = console(api, vm)?;
        if last.matches("CAIRN GUEST").count() >= boots && last_beat(&last).unwrap_or(0) >= beats {
            eprintln!(
                "vms: {vm} beat {beats} times after boot {boots} ({:.1} s)",
                t0.elapsed().as_secs_f64()
            );
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(500).min(d.remaining()));
    }
    let tail: String = last.lines().rev().take(8).collect::<Vec<_>>().join(" | ");
    bail!("VM {vm}: no {beats} heartbeats after boot {boots} within {:?}; console tail (newest first): {tail}", d.total())
}

/// The node is up for this scenario: the API answers and libvirtd and virtlogd are ready
/// under cairn-init (other services' readiness is the boot scenario's business).
fn node_up(node: &mut Node, d: Deadline) -> Result<()> {
    node.wait_health(d).context("waiting for the API")?;
    let mut last = Vec::new();
    while !d.expired() {
        let services = node.services(d)?;
        let ready = |n: &str| services.iter().any(|s| s.name == n && s.state == "ready");
        if ready("virtlogd") && ready("libvirtd") {
            return Ok(());
        }
        last = services;
        std::thread::sleep(Duration::from_millis(500).min(d.remaining()));
    }
    bail!(
        "virtlogd and libvirtd not both ready within {:?}: {last:?}",
        d.total()
    )
}

/// Start a task-returning call and wait for the task; returns the finished task.
fn run_task(
    api: &ApiSession,
    method: &str,
    path: &str,
    body: &Value,
    d: Deadline,
) -> Result<Value> {
    let t = api.expect(method, path, Some(body))?;
    let id = t["id"]
        .as_u64()
        .with_context(|| format!("{method} {path}: no task in {t}"))?;
    let t0 = Instant::now();
    let done = api.wait_task(id, d)?;
    eprintln!(
        "vms: {method} {path}: {} ({:.1} s)",
        done["message"].as_str().unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
    Ok(done)
}

/// Thin pool data in use, in bytes, and its chunk size (asserted with lvs on the lab shell).
fn pool_data(node: &mut Node) -> Result<(u64, u64)> {
    let out = node.shell_check(
        &format!("lvs --noheadings --nosuffix --units b -o lv_size,data_percent,chunk_size cairn-{POOL}/thin"),
        Deadline::secs(60),
    )?;
    let f: Vec<&str> = out.split_whitespace().collect();
    ensure!(f.len() == 3, "unexpected lvs output: {out:?}");
    let size: f64 = f[0].parse()?;
    let pct: f64 = f[1].parse()?;
    Ok(((size * pct / 100.0) as u64, f[2].parse()?))
}

#[test]
fn base64_matches_the_rfc_examples() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

fn create_pool(api: &ApiSession, serial: &str) -> Result<()> {
    let disks = api.expect("GET", "/api/v1/disks", None)?;
    let list = disks["disks"]
        .as_array()
        .or_else(|| disks.as_array())
        .cloned()
        .unwrap_or_default();
    let disk = list
        .iter()
        .find(|d| d["serial"] == serial)
        .with_context(|| format!("no disk with serial {serial} in {disks}"))?;
    let id = disk["id"].as_str().context("disk without id")?.to_string();
    run_task(
        api,
        "POST",
        "/api/v1/pools",
        &json!({"name": POOL, "level": "single", "disks": [id]}),
        Deadline::secs(300),
    )
    .context("creating the pool through the storage API")?;
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn vms() -> Result<()> {
    let Some(lab) = Lab::for_test("vms") else {
        return Ok(());
    };
    let image = guest_image()?;
    let cfg = NodeConfig::new("node1", BootMode::DirectKernel)
        .size(2, 2048)
        .disk(Bus::Virtio, 2048)
        // The node's TCG CPU advertises SVM, so /dev/kvm opens; the lab's tenants run under
        // plain TCG (DESIGN §3), so the accelerator is forced (and reported as tcg).
        .cmdline(&["cairn.vm.accel=tcg"]);
    let serial = cfg.disks[0].serial.clone();
    let mut node = lab.start(cfg)?;
    node_up(&mut node, Deadline::secs(300))?;
    let api = node
        .claim(Deadline::secs(120))
        .context("claiming the node")?;

    // libvirtd (ready above, under cairn-init) answers; the API says the node emulates (TCG).
    let list = api.wait_for(
        "/api/v1/vms",
        "libvirt connected",
        Deadline::secs(120),
        |v| v["resources"]["libvirt_connected"] == true,
    )?;

    ensure!(list["resources"]["cpus"] == 2, "node CPUs: {list}");

    eprintln!("vms: node up and claimed; libvirt connected; creating pool {POOL}");
    create_pool(&api, &serial)?;
    eprintln!("vms: pool created");

    // Validation names the field and changes nothing.
    let bad = api.post(
        "/api/v1/vms",
        &json!({"name": "guest", "vcpus": 64, "memory_mib": 32,
                "disks": [{"source": "new", "pool": POOL, "size_bytes": 10 * GIB}]}),
    )?;
    ensure!(
        bad.status == 422 && bad.json()["field"] == "vcpus",
        "64 vCPUs: {} {}",
        bad.status,
        bad.body
    );
    let bad = api.post(
        "/api/v1/vms",
        &json!({"name": "guest", "vcpus": 1, "memory_mib": 32,
                "disks": [{"source": "new", "pool": "nope", "size_bytes": GIB}]}),
    )?;
    ensure!(
        bad.status == 422 && bad.json()["field"] == "disks[0].pool",
        "unknown pool: {} {}",
        bad.status,
        bad.body
    );

    // The guest: a 10 GiB thin disk on IDE (the guest does ATA PIO), its image written
    // through the API, autostart on.
    run_task(
        &api,
        "POST",
        "/api/v1/vms",
        &json!({"name": "guest", "vcpus": 1, "memory_mib": 32, "machine": "pc", "autostart": true,
                "disks": [{"source": "new", "pool": POOL, "size_bytes": 10 * GIB, "bus": "ide"}]}),
        Deadline::secs(120),
    )?;
    let b64 = base64(&image);
    api.expect(
        "PUT",
        "/api/v1/vms/guest/disks/0/image",
        Some(&json!({"data_base64": b64})),
    )?;

    let asked = Instant::now();
    run_task(
        &api,
        "POST",
        "/api/v1/vms/guest/start",
        &json!({}),
        Deadline::secs(120),
    )?;
    wait_beats(&api, "guest", 1, 1, Deadline::secs(120))?;
    let first_beat = asked.elapsed();
    eprintln!(
        "BENCH vms: API start call -> first heartbeat on the console: {:.1} s",
        first_beat.as_secs_f64()
    );
    let text = wait_beats(&api, "guest", 1, 3, Deadline::secs(120))?;
    ensure!(
        text.contains("FLUSHED "),
        "the guest reported no flushed number: {text}"
    );
    let vm = api.expect("GET", "/api/v1/vms/guest", None)?;
    ensure!(vm["state"] == "running", "guest state: {vm}");

    // ACPI shutdown: the guest ignores it; after the timeout it is powered off.
    let t = run_task(
        &api,
        "POST",
        "/api/v1/vms/guest/shutdown",
        &json!({"timeout_s": 8}),
        Deadline::secs(120),
    )?;
    ensure!(
        t["message"]
            .as_str()
            .unwrap_or_default()
            .contains("powered off"),
        "the shutdown did not time out and force off: {t}"
    );
    let vm = api.expect("GET", "/api/v1/vms/guest", None)?;
    ensure!(
        vm["state"] == "shut_off",
        "guest after forced shutdown: {vm}"
    );
    let r = api.post("/api/v1/vms/guest/off", &json!({}))?;
    ensure!(
        r.status == 409,
        "force off of a stopped VM: {} {}",
        r.status,
        r.body
    );

    // Ten CoW clones of the 10 GiB disk in ONE batch call (one task, one LVM process):
    // timed, and no pool data used before they write.
    let (before, chunk) = pool_data(&mut node)?;
    // A batch naming a taken name is refused whole, naming the clone, and makes nothing.
    let bad = api.post(
        "/api/v1/vms/guest/clone",
        &json!({"clones": [{"name": "c1"}, {"name": "guest"}]}),
    )?;
    ensure!(
        bad.status == 422 && bad.json()["field"] == "clones[1].name",
        "batch with a taken name: {} {}",
        bad.status,
        bad.body
    );
    let clones: Vec<Value> = (1..=CLONES)
        // Two clones keep the source's autostart; the others do not (after the node's
        // reboot they must stay off).
        .map(|i| json!({"name": format!("c{i}"), "autostart": i <= AUTOSTART_CLONES}))
        .collect();
    let t0 = Instant::now();
    let done = run_task(
        &api,
        "POST",
        "/api/v1/vms/guest/clone",
        &json!({"clones": clones}),
        Deadline::secs(300),
    )?;
    let took = t0.elapsed();
    ensure!(
        done["state"] == "succeeded",
        "the batch clone task did not succeed: {done}"
    );
    let (after_clone, _) = pool_data(&mut node)?;
    eprintln!(
        "BENCH vms: {CLONES} clones of a 10 GiB VM disk in one API call: {:.2} s; thin-pool data {before} -> {after_clone} bytes (+{})",
        took.as_secs_f64(),
        after_clone.saturating_sub(before)
    );
    // Where the batch's time went, as cairnd logged it (storage: check, lvm; VMs: volumes,
    // libvirt); informational, so a missing journal does not fail the scenario.
    match node.shell_run(
        "journalctl --no-pager -o cat -t cairnd | grep -E 'clone batch of|cloned guest as' | tail -n 2",
        Deadline::secs(60),
    ) {
        Ok(out) => {
            for l in out.output.lines() {
                eprintln!("vms: cairnd: {l}");
            }
        }
        Err(e) => eprintln!("vms: cairnd's clone timings not read: {e}"),
    }
    // The clones are thin volumes that are not activation-skipped (lv_attr's 10th character
    // is `k` when they are), so the pool's activation at boot brings them up.
    let attrs = node.shell_check(
        &format!("lvs --noheadings -o lv_name,lv_attr cairn-{POOL}"),
        Deadline::secs(60),
    )?;
    for i in 1..=CLONES {
        let lv = format!("vol-c{i}-disk0");
        let attr = attrs
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&lv.as_str())).then(|| f.get(1).map(|a| a.to_string()))
            })
            .flatten()
            .with_context(|| format!("no LV {lv} in {attrs}"))?;
        ensure!(
            attr.chars().nth(9) != Some('k'),
            "{lv} is activation-skipped: {attr}"
        );
    }
    ensure!(
        after_clone <= before + chunk,
        "clones used pool data before writing: {before} -> {after_clone}"
    );

    // All eleven start and beat.
    let names: Vec<String> = std::iter::once("guest".to_string())
        .chain((1..=CLONES).map(|i| format!("c{i}")))
        .collect();
    // All start requests at once (each is a task), then wait for every task.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for n in &names {
        let t = api.expect("POST", &format!("/api/v1/vms/{n}/start"), Some(&json!({})))?;
        tasks.push((n.clone(), t["id"].as_u64().context("start: no task id")?));
    }
    for (n, id) in tasks {
        api.wait_task(id, Deadline::secs(300))
            .with_context(|| format!("starting {n}"))?;
    }
    eprintln!(
        "vms: {} VMs started in {:.1} s",
        names.len(),
        t0.elapsed().as_secs_f64()
    );
    for n in &names {
        let boots = if n == "guest" { 2 } else { 1 };
        wait_beats(&api, n, boots, 2, Deadline::secs(240))?;
    }
    let list = api.expect("GET", "/api/v1/vms", None)?;
    ensure!(
        list["resources"]["memory_running_mib"] == 32 * names.len(),
        "resources: {list}"
    );

    // The pool grew only by what the clones wrote: each writes a header sector and one
    // sector per flush near the disk's start, i.e. a few thin chunks each.
    let (after_run, _) = pool_data(&mut node)?;
    let grown = after_run.saturating_sub(after_clone);
    eprintln!(
        "BENCH vms: pool data after {} VMs ran: +{grown} bytes (chunk {chunk})",
        names.len()
    );
    ensure!(
        grown <= names.len() as u64 * 4 * chunk,
        "the pool grew by {grown} bytes for {} VMs writing a few sectors each (chunk {chunk})",
        names.len()
    );

    // Reboot the node: the autostart VMs come back and beat again.
    node.powerdown(Deadline::secs(120))
        .context("powering the node down")?;
    node.launch()?;
    node_up(&mut node, Deadline::secs(300))?;
    let autostart: Vec<&String> = names.iter().take(1 + AUTOSTART_CLONES).collect();
    for n in &autostart {
        let boots = if n.as_str() == "guest" { 3 } else { 2 };
        let text = wait_beats(&api, n, boots, 2, Deadline::secs(300))
            .with_context(|| format!("autostart VM {n} after the node reboot"))?;
        ensure!(text.contains("RESUME "), "{n}: {text}");
    }
    let list = api.expect("GET", "/api/v1/vms", None)?;
    for vm in list["vms"].as_array().into_iter().flatten() {
        let name = vm["name"].as_str().unwrap_or_default().to_string();
        let want = if autostart.contains(&&name) {
            "running"
        } else {
            "shut_off"
        };
        ensure!(
            vm["state"] == want,
            "after the reboot {name} is {} (want {want})",
            vm["state"]
        );
    }
    // Checked last so a run shows the whole flow whatever the accelerator.
    let list = api.expect("GET", "/api/v1/vms", None)?;
    ensure!(
        list["resources"]["accelerator"] == "tcg",
        "accelerator: {list}"
    );
    node.finish();
    Ok(())
}
