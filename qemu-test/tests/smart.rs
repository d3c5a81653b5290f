//! Scenario smart: the SMART data of an AHCI and an NVMe disk (QEMU emulates SMART for both)
//! is visible through the API with model, serial, verdict, ATA attributes and the NVMe health
//! log; a virtio disk (no SMART) is listed as unavailable with the serial the disk inventory
//! knows; a short self-test runs as a task; and the cost of one poll is measured on the node.

use anyhow::{ensure, Context, Result};
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Lab, Node, NodeConfig};
use serde_json::{json, Value};

/// QEMU gives data disk N the serial `CAIRNLAB000N` (NodeConfig::disk).
const AHCI_SERIAL: &str = "CAIRNLAB0001";
const NVME_SERIAL: &str = "CAIRNLAB0002";
const VIRTIO_SERIAL: &str = "CAIRNLAB0003";

fn node_config() -> NodeConfig {
    NodeConfig::new("smart1", BootMode::DirectKernel)
        .size(1, 1536)
        .disk(Bus::Ahci, 64)
        .disk(Bus::Nvme, 64)
        .disk(Bus::Virtio, 64)
}

/// The SMART list's entry for `serial`, once it has been checked.
fn checked(list: &Value, serial: &str) -> Option<Value> {
    list["disks"]
        .as_array()?
        .iter()
        .find(|d| d["serial"] == serial && d["checked_at"].is_u64())
        .cloned()
}

/// Mean wall and CPU time (ms) of `n` runs of the poll's smartctl command on the node.
fn smartctl_cost(node: &mut Node, dev: &str, n: u32, d: Deadline) -> Result<(f64, f64)> {
    // dash's `times` prints the shell's and then its children's user and system time.
    let script = format!(
        "sh -c 's=$(date +%s%N); i=0; while [ $i -lt {n} ]; do smartctl --json -x -n standby {dev} >/dev/null; i=$((i+1)); done; e=$(date +%s%N); echo wall_ns=$((e-s)); times'"
    );
    let out = node.shell_check(&script, d)?;
    let wall_ns: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("wall_ns="))
        .context("no wall time")?
        .trim()
        .parse()?;
    // Second line of `times`: children's "XmY.YYYs XmY.YYYs".
    let child = out
        .lines()
        .filter(|l| l.contains('m') && l.contains('s'))
        .nth(1)
        .with_context(|| format!("no children's times in {out:?}"))?;
    let secs = |t: &str| -> Result<f64> {
        let (m, s) = t
            .trim_end_matches('s')
            .split_once('m')
            .context("time format")?;
        Ok(m.parse::<f64>()? * 60.0 + s.parse::<f64>()?)
    };
    let cpu: f64 = child
        .split_whitespace()
        .map(secs)
        .collect::<Result<Vec<_>>>()?
        .iter()
        .sum();
    Ok((wall_ns / 1e6 / f64::from(n), cpu * 1e3 / f64::from(n)))
}

/// cairnd's own timing of its polls (the product's path: smartctl, then parse+evaluate).
fn daemon_poll_times(node: &mut Node, d: Deadline) -> Result<Vec<String>> {
    let out = node.shell_check(
        "journalctl --no-pager -o cat -t cairnd | grep 'SMART poll of' || true",
        d,
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

fn start_test(api: &ApiSession, id: &str) -> Result<Result<Value, String>> {
    let r = api.post(
        &format!("/api/v1/smart/{id}/selftest"),
        &json!({"kind": "short"}),
    )?;
    if r.status != 202 {
        return Ok(Err(format!("HTTP {}: {}", r.status, r.body)));
    }
    let task = r.json()["id"].as_u64().context("task id")?;
    Ok(api
        .wait_task(task, Deadline::secs(240))
        .map_err(|e| e.to_string()))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn smart() -> Result<()> {
    let Some(lab) = Lab::for_test("smart") else {
        return Ok(());
    };
    let mut node = lab.start(node_config())?;
    // Only cairnd matters here (its API, claimed through setup): this scenario does not wait
    // for every other service of the node to be ready.
    let api = node.claim(Deadline::secs(300))?;

    // Both emulated disks are polled and show their identity and a verdict.
    let list = api.wait_for(
        "/api/v1/smart",
        "the AHCI and NVMe disks checked by the SMART service",
        Deadline::secs(180),
        |v| checked(v, AHCI_SERIAL).is_some() && checked(v, NVME_SERIAL).is_some(),
    )?;
    let ahci = checked(&list, AHCI_SERIAL).context("AHCI disk")?;
    let nvme = checked(&list, NVME_SERIAL).context("NVMe disk")?;
    println!("SMART list: {}", serde_json::to_string_pretty(&list)?);
    for (d, model, bus) in [
        (&ahci, "QEMU HARDDISK", "sata"),
        (&nvme, "QEMU NVMe Ctrl", "nvme"),
    ] {
        ensure!(d["model"] == model, "want model {model}: {d}");
        ensure!(d["bus"] == bus, "want bus {bus}: {d}");
        ensure!(
            ["healthy", "warning", "failing"].contains(&d["verdict"].as_str().unwrap_or("")),
            "QEMU emulates SMART, so the verdict must come from data: {d}"
        );
    }

    // The virtio disk has no SMART (smartctl is not run for it) but is not anonymous: its
    // serial comes from the disk inventory, the same one GET /api/v1/disks shows.
    let disks = api.expect("GET", "/api/v1/disks", None)?;
    let inventory = disks["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["serial"] == VIRTIO_SERIAL))
        .with_context(|| format!("no disk with serial {VIRTIO_SERIAL} in {disks}"))?;
    let virtio_id = inventory["id"].as_str().context("id")?.to_string();
    let list = api.wait_for(
        "/api/v1/smart",
        "the virtio disk checked by the SMART service",
        Deadline::secs(60),
        |v| {
            v["disks"]
                .as_array()
                .and_then(|a| a.iter().find(|d| d["id"] == virtio_id.as_str()))
                .is_some_and(|d| d["checked_at"].is_u64())
        },
    )?;
    let virtio = list["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == virtio_id.as_str()))
        .context("virtio disk")?;
    println!("SMART list entry of the virtio disk: {virtio}");
    ensure!(
        virtio["bus"] == "virtio" && virtio["verdict"] == "unavailable",
        "the virtio disk: {virtio}"
    );
    ensure!(
        virtio["serial"] == VIRTIO_SERIAL && virtio["serial"] == inventory["serial"],
        "the SMART list does not show the virtio disk's serial {VIRTIO_SERIAL}: {virtio}"
    );
    let v = api.expect("GET", &format!("/api/v1/smart/{virtio_id}"), None)?;
    ensure!(
        v["device"]["serial"] == VIRTIO_SERIAL,
        "the SMART detail of the virtio disk lacks its serial: {}",
        v["device"]
    );

    let ahci_id = ahci["id"].as_str().context("id")?.to_string();
    let nvme_id = nvme["id"].as_str().context("id")?.to_string();
    let a = api.expect("GET", &format!("/api/v1/smart/{ahci_id}"), None)?;
    let attrs = a["attributes"].as_array().context("attributes")?;
    ensure!(
        !attrs.is_empty(),
        "the AHCI disk shows no ATA attributes: {a}"
    );
    ensure!(
        attrs
            .iter()
            .all(|x| x["raw_value"].is_string() || x["raw_value"].is_null()),
        "raw values must be strings: {attrs:?}"
    );
    ensure!(a["device"]["protocol"] == "ATA", "{}", a["device"]);
    ensure!(a["device"]["serial"] == AHCI_SERIAL, "{}", a["device"]);
    ensure!(
        a["history"]["polls"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "no history after a poll: {}",
        a["history"]
    );
    let n = api.expect("GET", &format!("/api/v1/smart/{nvme_id}"), None)?;
    ensure!(
        n["nvme"].is_object(),
        "the NVMe disk shows no health log: {n}"
    );
    ensure!(
        n["nvme"]["available_spare"].is_u64() && n["nvme"]["percentage_used"].is_u64(),
        "NVMe log lacks spare/percentage_used: {}",
        n["nvme"]
    );
    ensure!(n["nvme"]["media_errors"].is_string(), "{}", n["nvme"]);
    ensure!(n["temperature_c"].is_i64(), "no NVMe temperature: {n}");
    println!("AHCI detail: {a}\nNVMe detail: {n}");

    // A short self-test through the API. QEMU's AHCI disk logs a completed test at once.
    let t = start_test(&api, &ahci_id)?;
    match &t {
        Ok(task) => {
            println!("AHCI short self-test: {}", task["message"]);
            let a = api.expect("GET", &format!("/api/v1/smart/{ahci_id}"), None)?;
            ensure!(
                a["last_short_test"].is_u64(),
                "the test time was not recorded: {a}"
            );
        }
        Err(e) => println!("AHCI short self-test did not pass: {e}"),
    }
    ensure!(t.is_ok(), "AHCI short self-test: {:?}", t.err());
    // QEMU 7.2's NVMe controller has no Device Self-test command: the drive's refusal must
    // come back as a clear error, or (on a QEMU that has it) the test passes.
    match start_test(&api, &nvme_id)? {
        Ok(task) => {
            println!("NVMe short self-test: {}", task["message"]);
            ensure!(
                task["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("passed")),
                "an NVMe self-test task succeeded without a logged pass: {task}"
            );
        }
        Err(e) => {
            println!("NVMe short self-test refused: {e}");
            ensure!(
                e.contains("self-test") || e.contains("Self-test"),
                "the refusal does not say why: {e}"
            );
        }
    }

    // Benchmark: the cost of one poll per disk.
    let d = Deadline::secs(300);
    let ahci_dev = a["dev"].as_str().context("dev")?.to_string();
    let nvme_dev = n["dev"].as_str().context("dev")?.to_string();
    for (name, dev) in [("AHCI", &ahci_dev), ("NVMe", &nvme_dev)] {
        let (wall, cpu) = smartctl_cost(&mut node, dev, 10, d)?;
        cairn_lab::bench_println!("smart poll {name} {dev}: smartctl --json -x wall {wall:.1} ms, CPU {cpu:.1} ms (mean of 10, on the node)");
    }
    for line in daemon_poll_times(&mut node, d)? {
        cairn_lab::bench_println!("cairnd: {line}");
    }
    node.finish();
    Ok(())
}
