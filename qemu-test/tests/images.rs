//! Scenario images: a pool's image library on a real node: its share made by the first upload, an upload interrupted then resumed by `cairnctl images upload` (SHA-256 the node reports = the host's, MB/s printed), listed, attached as a VM's CD-ROM, its delete refused while the VM uses it and allowed after; then the same through the Images page and the VM wizard in Chromium.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cairn_lab::{Deadline, Lab, Node};
use common::cairnctl::Cairnctl;
use common::guest;
use serde_json::json;

const POOL: &str = "tank";
const IMAGE: &str = "guest-disk.img";
/// The uploaded file: the test guest's boot sector, then pseudo-random bytes (nothing a
/// compressing or zero-skipping path could shortcut).
const SIZE: usize = 24 << 20;
/// What the scenario sends through the API before it "loses the connection".
const FIRST_PART: usize = 4 << 20;

/// The raw disk image uploaded: `boot_sector` then `SIZE` bytes of xorshift output in all.
fn image_bytes(boot_sector: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    out.extend_from_slice(boot_sector);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(SIZE);
    out
}

/// The host's SHA-256 of `path` (coreutils `sha256sum`).
fn host_sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    ensure!(
        out.status.success(),
        "sha256sum {}: {out:?}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_string())
}

/// The shares of the pool, by name.
fn shares(api: &cairn_lab::ApiSession) -> Result<Vec<String>> {
    let v = api.expect("GET", &format!("/api/v1/pools/{POOL}/shares"), None)?;
    let list = v.as_array().or_else(|| v["shares"].as_array());
    Ok(list
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The node's libvirt disk list of `vm` (`virsh domblklist --details`).
fn domblklist(node: &mut Node, vm: &str) -> Result<String> {
    Ok(node.shell_check(
        &format!("virsh -c qemu:///system domblklist {vm} --details"),
        Deadline::secs(60),
    )?)
}

#[test]
fn the_image_starts_with_the_boot_sector_and_is_not_zeros() {
    let sector = [0xabu8; 512];
    let img = image_bytes(&sector);
    assert_eq!(img.len(), SIZE);
    assert_eq!(img[..512], sector);
    assert!(img[SIZE - 4096..].iter().any(|&b| b != 0));
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn images() -> Result<()> {
    let Some(lab) = Lab::for_test("images") else {
        return Ok(());
    };
    let boot = guest::build_images(&guest::default_dir())?;
    let cfg = guest::vm_host_config(&lab, "images1", &[])?;
    let serial = cfg.disks[0].serial.clone();
    let mut node = lab.start(cfg)?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let api = node
        .claim(Deadline::secs(120))
        .context("claiming the node")?;
    let ctl = Cairnctl::logged_in(&mut node, &api, "images")?;
    api.wait_for(
        "/api/v1/vms",
        "libvirt connected",
        Deadline::secs(120),
        |v| v["resources"]["libvirt_connected"] == true,
    )?;

    // An unknown pool has no library and gets none: 404, nothing made.
    let r = api.post(
        "/api/v1/pools/nope/images",
        &json!({"name": IMAGE, "size_bytes": SIZE}),
    )?;
    ensure!(
        r.status == 404,
        "an upload to an unknown pool: {} {}",
        r.status,
        r.body
    );

    common::pool::create_single_pool(&api, POOL, &serial, Deadline::secs(300))?;
    ensure!(
        !shares(&api)?.iter().any(|s| s == "images"),
        "a new pool already has a share images"
    );
    // Its library lists empty before the first upload, and listing makes nothing.
    let r = api.get(&format!("/api/v1/pools/{POOL}/images"))?;
    ensure!(
        r.status == 200 && r.json()["images"] == json!([]) && r.json()["uploads"] == json!([]),
        "the library of a new pool: {} {}",
        r.status,
        r.body
    );
    ensure!(
        !shares(&api)?.iter().any(|s| s == "images"),
        "listing the library made a share images"
    );

    // The file on the host and its SHA-256.
    let data = image_bytes(&boot.base);
    let file = node.dir().join(IMAGE);
    std::fs::write(&file, &data).with_context(|| format!("writing {}", file.display()))?;
    let sha = host_sha256(&file)?;

    // The first upload makes the library (share `images`, no admin step); its first 4 MiB
    // go through the API, then the "connection is lost".
    let up = api.expect(
        "POST",
        &format!("/api/v1/pools/{POOL}/images"),
        Some(&json!({"name": IMAGE, "size_bytes": SIZE, "sha256": sha})),
    )?;
    let id = up["id"]
        .as_str()
        .context("the upload has no id")?
        .to_string();
    ensure!(
        shares(&api)?.iter().any(|s| s == "images"),
        "the first upload did not make the share images"
    );
    let url = format!("/api/v1/pools/{POOL}/images/uploads/{id}");
    let r = api.put_bytes(&format!("{url}?offset=0"), data[..FIRST_PART].to_vec())?;
    ensure!(
        r.status == 200 && r.json()["offset"] == FIRST_PART,
        "the first part: {} {}",
        r.status,
        r.body
    );
    // A write at the wrong offset is refused, naming where the upload is.
    let r = api.put_bytes(&format!("{url}?offset=0"), data[..4096].to_vec())?;
    ensure!(
        r.status == 409
            && r.json()["code"] == "wrong_offset"
            && r.body.contains(&FIRST_PART.to_string()),
        "a write at offset 0 of an upload at {FIRST_PART}: {} {}",
        r.status,
        r.body
    );
    let list = ctl.ok(&["images", "list", "--pool", POOL])?;
    ensure!(
        list.contains(&format!("uploading {IMAGE}")),
        "images list shows no upload in progress: {list}"
    );

    // cairnctl resumes it where the node says it is, and the node checks the SHA-256.
    let file_arg = file.to_string_lossy().into_owned();
    let t = Instant::now();
    let out = ctl.run(&["images", "upload", &file_arg, "--pool", POOL])?;
    let took = t.elapsed();
    ensure!(out.code == 0, "cairnctl images upload: {out:?}");
    ensure!(
        out.stderr.contains("resuming the upload"),
        "cairnctl did not resume the upload: {out:?}"
    );
    ensure!(
        out.stdout.contains(&format!("sha256 {sha}")),
        "the node's SHA-256 is not the host's {sha}: {}",
        out.stdout
    );
    let sent = (SIZE - FIRST_PART) as f64;
    cairn_lab::bench_eprintln!(
        "images: cairnctl images upload resumed {:.0} MiB in {:.2} s: {:.1} MB/s",
        sent / f64::from(1u32 << 20),
        took.as_secs_f64(),
        sent / 1e6 / took.as_secs_f64()
    );
    let on_node = node.shell_check(
        &format!("sha256sum /var/lib/cairn/shares/{POOL}/images/{IMAGE}"),
        Deadline::secs(120),
    )?;
    ensure!(
        on_node.starts_with(&sha),
        "the file on the node: {on_node} (host: {sha})"
    );
    let list = ctl.json(&["images", "list", "--pool", POOL])?;
    let img = list["images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == IMAGE))
        .with_context(|| format!("images list has no {IMAGE}: {list}"))?;
    ensure!(
        img["size_bytes"] == SIZE && list["uploads"].as_array().is_some_and(Vec::is_empty),
        "images list: {list}"
    );

    // A VM booting its test guest from disk, the image as its CD-ROM. (The image is a disk
    // image, not El Torito: a guest cannot boot from it as a CD.)
    api.run_task(
        "POST",
        "/api/v1/vms",
        &json!({"name": "guest", "vcpus": 1, "memory_mib": 32, "machine": "pc",
                "boot": ["disk", "cdrom"],
                "disks": [{"source": "new", "pool": POOL, "size_bytes": 1u64 << 30, "bus": "ide"},
                          {"source": "iso", "pool": POOL, "share": "images", "file": IMAGE, "bus": "sata"}]}),
        Deadline::secs(120),
    )?;
    api.expect(
        "PUT",
        "/api/v1/vms/guest/disks/0/image",
        Some(&json!({"data_base64": guest::base64(&boot.base)})),
    )?;
    ctl.ok(&["vms", "start", "guest"])?;
    guest::wait_beats(&api, "guest", 1, 2, Deadline::secs(120))?;
    let blk = domblklist(&mut node, "guest")?;
    ensure!(
        blk.lines()
            .any(|l| l.contains("cdrom") && l.contains(&format!("images/{IMAGE}"))),
        "the running guest has no CD-ROM from the library: {blk}"
    );

    // Deleting the image: refused (409, naming the VM) while the VM has it, then allowed.
    let r = api.delete(&format!("/api/v1/pools/{POOL}/images/{IMAGE}"), &json!({}))?;
    ensure!(
        r.status == 409 && r.json()["code"] == "in_use" && r.body.contains("guest"),
        "delete of an image in use: {} {}",
        r.status,
        r.body
    );
    let r = ctl.run(&["images", "delete", IMAGE, "--pool", POOL])?;
    ensure!(
        r.code != 0 && r.stderr.contains("VM guest"),
        "cairnctl images delete of an image in use: {r:?}"
    );
    ctl.ok(&["vms", "off", "guest"])?;
    ctl.ok(&["vms", "delete", "guest", "--yes", "--delete-disks"])?;
    ctl.ok(&["images", "delete", IMAGE, "--pool", POOL])?;
    let list = ctl.json(&["images", "list", "--pool", POOL])?;
    ensure!(
        list["images"].as_array().is_some_and(Vec::is_empty),
        "the image is still listed: {list}"
    );

    // The same through the page in Chromium (services/api/ui-tests/lab-images.test.mjs): the
    // file uploaded from the host, the node's SHA-256 equal to the host's, the image offered
    // by the VM wizard as an installer and on the VM it creates, its delete refused while that
    // VM has it, then allowed; screenshots in <results>/images1/ui.
    let url = format!("https://{}", node.api_addr());
    let results = node.dir().join("ui");
    let file_arg = file.display().to_string();
    let started = Instant::now();
    common::browser::run_browser(
        "lab-images.test.mjs",
        &url,
        &[
            ("CAIRN_PASSWORD", cairn_lab::LAB_PASSWORD),
            ("CAIRN_POOL", POOL),
            ("CAIRN_IMAGE_FILE", file_arg.as_str()),
            ("CAIRN_IMAGE_SHA256", sha.as_str()),
        ],
        &results,
        Deadline::secs(600),
    )
    .context("driving the Images page in Chromium")?;
    println!(
        "images: the page uploaded, offered and deleted the image in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let shots = common::browser::screenshots(&results)?;
    ensure!(
        shots >= 10,
        "expected desktop and phone screenshots of the page's steps in {}, found {shots}",
        results.display()
    );
    let vms = api.expect("GET", "/api/v1/vms", None)?;
    ensure!(
        vms["vms"].as_array().is_some_and(Vec::is_empty),
        "the page's VM is still there: {vms}"
    );
    let list = ctl.json(&["images", "list", "--pool", POOL])?;
    ensure!(
        list["images"].as_array().is_some_and(Vec::is_empty),
        "the page's image is still listed: {list}"
    );
    std::fs::remove_file(&file).ok();
    node.finish();
    Ok(())
}
