//! Scenario vms: a VM from the lab's tiny test guest on a thin volume, driven only through
//! the API: start → heartbeat on its console → ACPI shutdown ignored, timeout, forced off →
//! ten CoW clones in one batch call (timed; pool data unchanged), one of them given the
//! guest's ACPI variant (`cairn-guest-acpi.img`, built by `qemu-test/guest/build.sh`) → all
//! eleven beat → pool grew only by what the clones wrote → node
//! reboot: cairnd shuts the VMs down first (the ACPI guest by itself, the others forced off
//! after the short lab timeout), libvirtd stops after cairnd → the autostart VMs are back.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{Deadline, Lab, Node};
use common::guest::{base64, build_images as build_guest_images, wait_beats};
use serde_json::{json, Value};

const POOL: &str = "tank";
const GIB: u64 = 1 << 30;
const CLONES: usize = 10;
/// How many of the clones are autostart VMs (with the original).
const AUTOSTART_CLONES: usize = 2;
/// The clone that runs the guest's ACPI variant (it powers off on the power button).
const ACPI_VM: &str = "c1";
/// The guest timeout at node stop for the lab (the default is 60 s; docs/vms.md).
const LAB_VM_STOP_TIMEOUT_S: u64 = 15;

/// Whether `code` contains the byte sequence `seq`.
fn contains(code: &[u8], seq: &[u8]) -> bool {
    code.windows(seq.len()).any(|w| w == seq)
}

/// The node is up for this scenario: what every booted node must show
/// (`common::check_node_up`), and libvirtd and virtlogd ready under cairn-init.
fn node_up(node: &mut Node, d: Deadline) -> Result<()> {
    common::check_node_up(node, d).context("waiting for the node")?;
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
    // A percentage (0–100, from lvs) of a size in bytes: never negative, never above the
    // size, and whole bytes are all the callers compare.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let used = (size * pct / 100.0) as u64;
    Ok((used, f[2].parse()?))
}

#[test]
fn build_script_makes_both_guest_variants() {
    let dir = tempfile::tempdir().unwrap();
    let g = build_guest_images(dir.path()).unwrap();
    // `mov eax, 0x80000b40` (PCI config address of the PIIX4 PM base) and
    // `mov ax, 0x2000; out dx, ax` (SLP_EN with SLP_TYP 0 to PM1_CNT).
    let pci_pm_base = [0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80];
    let s5 = [0xb8, 0x00, 0x20, 0xef];
    assert!(
        !contains(&g.base, &pci_pm_base) && !contains(&g.base, &s5),
        "the base guest must have no ACPI code"
    );
    assert!(contains(&g.acpi, &pci_pm_base) && contains(&g.acpi, &s5));
    // The variant only adds the ACPI code: both start the same and print the same banner.
    assert_eq!(g.base[..14], g.acpi[..14]);
    for img in [&g.base, &g.acpi] {
        assert!(contains(img, b"CAIRN GUEST") && contains(img, b"CAIRNSEQ"));
    }
}

/// The last `shutting down, reason=…` of each VM in libvirt's per-VM logs
/// (`/var/log/libvirt/qemu/NAME.log`), with how many such lines the log has.
fn parse_stop_reasons(text: &str) -> std::collections::BTreeMap<String, (usize, String)> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        // grep -H output: PATH:LINE
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(vm) = path.rsplit('/').next().and_then(|f| f.strip_suffix(".log")) else {
            continue;
        };
        let Some(reason) = rest.split("shutting down, reason=").nth(1) else {
            continue;
        };
        let e = out.entry(vm.to_string()).or_insert((0, String::new()));
        e.0 += 1;
        e.1 = reason.trim().to_string();
    }
    out
}

#[test]
fn stop_reasons_from_libvirt_logs() {
    let text = "/var/log/libvirt/qemu/guest.log:2026-11-23 09:01:02.003+0000: shutting down, reason=destroyed
/var/log/libvirt/qemu/guest.log:2026-11-23 09:05:02.003+0000: shutting down, reason=destroyed
/var/log/libvirt/qemu/c1.log:2026-11-23 09:05:00.100+0000: shutting down, reason=shutdown
";
    let r = parse_stop_reasons(text);
    assert_eq!(r["guest"], (2, "destroyed".to_string()));
    assert_eq!(r["c1"], (1, "shutdown".to_string()));
    assert!(!r.contains_key("c2"));
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn vms() -> Result<()> {
    let Some(lab) = Lab::for_test("vms") else {
        return Ok(());
    };
    let guest = build_guest_images(&common::guest::default_dir())?;
    // Under TCG the tenants' accelerator is forced to TCG (and reported as tcg); under KVM
    // cairnd picks nested KVM where the host allows it. VMs stop faster at node stop.
    let stop_timeout = format!("cairn.vm.stop_timeout_s={LAB_VM_STOP_TIMEOUT_S}");
    let cfg = common::guest::vm_host_config(&lab, "node1", &[&stop_timeout])?;
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
    common::pool::create_single_pool(&api, POOL, &serial, Deadline::secs(300))?;
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
    api.run_task(
        "POST",
        "/api/v1/vms",
        &json!({"name": "guest", "vcpus": 1, "memory_mib": 32, "machine": "pc", "autostart": true,
                "disks": [{"source": "new", "pool": POOL, "size_bytes": 10 * GIB, "bus": "ide"}]}),
        Deadline::secs(120),
    )?;
    let b64 = base64(&guest.base);
    api.expect(
        "PUT",
        "/api/v1/vms/guest/disks/0/image",
        Some(&json!({"data_base64": b64})),
    )?;

    let asked = Instant::now();
    api.run_task(
        "POST",
        "/api/v1/vms/guest/start",
        &json!({}),
        Deadline::secs(120),
    )?;
    wait_beats(&api, "guest", 1, 1, Deadline::secs(120))?;
    let first_beat = asked.elapsed();
    cairn_lab::bench_eprintln!(
        "vms: API start call -> first heartbeat on the console: {:.1} s",
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
    let t = api.run_task(
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
    let done = api.run_task(
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
    cairn_lab::bench_eprintln!(
        "vms: {CLONES} clones of a 10 GiB VM disk in one API call: {:.2} s; thin-pool data {before} -> {after_clone} bytes (+{})",
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

    // One autostart clone runs the guest's ACPI variant: at the node's stop it powers off by
    // itself, the others are forced off after the timeout.
    api.expect(
        "PUT",
        &format!("/api/v1/vms/{ACPI_VM}/disks/0/image"),
        Some(&json!({"data_base64": base64(&guest.acpi)})),
    )?;

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
    cairn_lab::bench_eprintln!(
        "vms: pool data after {} VMs ran: +{grown} bytes (chunk {chunk})",
        names.len()
    );
    ensure!(
        grown <= names.len() as u64 * 4 * chunk,
        "the pool grew by {grown} bytes for {} VMs writing a few sectors each (chunk {chunk})",
        names.len()
    );

    // Reboot the node: cairnd shuts the VMs down before it exits (ACPI, then forced off
    // after the lab's timeout), libvirtd stops only after that; the autostart VMs come back.
    let mark = node.serial()?.mark();
    let asked = Instant::now();
    node.powerdown(Deadline::secs(180))
        .context("powering the node down (VMs shut down first)")?;
    cairn_lab::bench_eprintln!(
        "vms: node power-down with {} running VMs (guest timeout {LAB_VM_STOP_TIMEOUT_S} s): {:.1} s",
        names.len(),
        asked.elapsed().as_secs_f64()
    );
    let console: Vec<String> = node.serial()?.lines()[mark..]
        .iter()
        .map(|l| l.text.clone())
        .collect();
    let at = |needle: &str| {
        console
            .iter()
            .position(|l| l.contains(needle))
            .with_context(|| format!("no {needle:?} on the node's console at power-down"))
    };
    let cairnd_stopped = at("cairn-init: stopped cairnd")?;
    for later in ["libvirtd", "virtlogd"] {
        let stopping = at(&format!("cairn-init: stopping {later}"))?;
        ensure!(
            cairnd_stopped < stopping,
            "{later} was stopped before cairnd had stopped: {}",
            console.join(" | ")
        );
    }
    // The stop as cairnd reported it on the console (and in the journal, which does not
    // survive the power-off here).
    let report = console
        .iter()
        .find(|l| l.contains("cairnd: node stop: "))
        .context("no `cairnd: node stop:` report on the node's console")?;
    eprintln!("vms: {}", report.trim());
    ensure!(
        report.contains(&format!("{} VM(s) stopped in", names.len()))
            && report.contains(&format!("1 shut down by ACPI ({ACPI_VM})"))
            && report.contains(&format!(
                "{} powered off after the {LAB_VM_STOP_TIMEOUT_S} s timeout",
                names.len() - 1
            )),
        "cairnd's node stop report: {report:?}"
    );
    let report_at = at("cairnd: node stop: ")?;
    ensure!(
        report_at < cairnd_stopped,
        "cairnd's node stop report came after `stopped cairnd`"
    );
    node.launch()?;
    node_up(&mut node, Deadline::secs(300))?;

    // As libvirt logged each VM's end: the ACPI guest shut down by itself (reason=shutdown),
    // the others were destroyed by libvirtd on cairnd's order (reason=destroyed); a VM
    // killed with the node would have no such line.
    let logs = node.shell_check(
        "grep -H 'shutting down, reason=' /var/log/libvirt/qemu/*.log | grep -v '\\.console\\.log:'",
        Deadline::secs(60),
    )?;
    let reasons = parse_stop_reasons(&logs);
    for n in &names {
        // guest was forced off once through the API before.
        let (count, want) = match n.as_str() {
            ACPI_VM => (1, "shutdown"),
            "guest" => (2, "destroyed"),
            _ => (1, "destroyed"),
        };
        let got = reasons.get(n.as_str());
        ensure!(
            got.is_some_and(|(c, r)| *c == count && r == want),
            "libvirt's log of {n}: want {count} stop(s), the last reason={want}; got {got:?}\n{logs}"
        );
    }
    eprintln!(
        "vms: libvirt logged {ACPI_VM} reason=shutdown, the other {} reason=destroyed",
        names.len() - 1
    );
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
    let decision = lab.accel()?;
    let tenants = list["resources"]["accelerator"]
        .as_str()
        .unwrap_or_default();
    eprintln!(
        "vms: the node runs under {}, its tenant VMs under {tenants} ({})",
        decision.accel, decision.nested_note
    );
    // Unknown only under KVM on a host that does not say whether it allows nested KVM.
    let want = decision.tenant_accel().map(|a| a.name());
    ensure!(
        want.is_none_or(|w| w == tenants),
        "tenant accelerator {tenants:?}, want {want:?} (node {}; {}): {list}",
        decision.accel,
        decision.nested_note
    );
    node.finish();
    Ok(())
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

#[test]
fn console_numbers_count_from_the_last_boot() {
    use common::guest::{flushed_since_boot, last_beat};
    let text = "CAIRN GUEST\r\nHEARTBEAT 1\r\nFLUSHED 1\r\nHEARTBEAT 2\r\nFLUSHED 2\r\n\
                CAIRN GUEST\r\nHEARTBEAT 1\r\nFLUSHED 3\r\nFLUSHED 4\r\n";
    assert_eq!(last_beat(text), Some(1));
    assert_eq!(flushed_since_boot(text), vec![3, 4]);
    assert_eq!(last_beat("no banner yet"), None);
    assert!(flushed_since_boot("").is_empty());
}
