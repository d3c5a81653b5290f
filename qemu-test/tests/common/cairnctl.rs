//! Running the `cairnctl` binary from the lab host against a node, as an admin would after
//! `cairnctl login`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use cairn_lab::{ApiSession, Deadline, Node};
use serde_json::json;

/// cairnctl with a config dir holding the node's pinned certificate and an API token.
pub struct Cairnctl {
    bin: PathBuf,
    cfg: PathBuf,
    addr: String,
    /// Printed before each command's output (the scenario's name).
    tag: String,
}

/// What one cairnctl run gave.
#[derive(Debug)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The cairnctl binary built next to this test (`cargo build -p cairnctl` first; the test
/// command does).
pub fn bin() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/cairnctl");
    ensure!(
        bin.is_file(),
        "no {}: run `cargo build -p cairnctl` before this scenario",
        bin.display()
    );
    Ok(bin)
}

impl Cairnctl {
    /// Write what `cairnctl login` would have stored for `node` (its pinned certificate and
    /// `api`'s token) into the node's results dir, and use that.
    pub fn logged_in(node: &mut Node, api: &ApiSession, tag: &str) -> Result<Cairnctl> {
        let bin = bin()?;
        let pin = node.wait_setup(Deadline::secs(30))?.fingerprint.to_string();
        let addr = format!("127.0.0.1:{}", api.addr().port());
        let cfg = node.dir().join("cairnctl");
        std::fs::create_dir_all(&cfg).context("cairnctl config dir")?;
        std::fs::write(
            cfg.join("nodes.json"),
            json!({"current": addr, "nodes": {addr.clone(): {
                "fingerprint": pin, "user": "admin", "token": api.token(), "token_id": null}}})
            .to_string(),
        )
        .context("writing nodes.json")?;
        Ok(Cairnctl {
            bin,
            cfg,
            addr,
            tag: tag.to_string(),
        })
    }

    /// Run `cairnctl --node ADDR ARGS…` (stdin empty, so it never prompts) and print what it
    /// gave.
    pub fn run(&self, args: &[&str]) -> Result<CtlOutput> {
        let out = Command::new(&self.bin)
            .arg("--config-dir")
            .arg(&self.cfg)
            .args(["--node", &self.addr])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running cairnctl {args:?}"))?;
        let r = CtlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!(
            "{}: cairnctl {} -> {}\n{}{}",
            self.tag,
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        );
        Ok(r)
    }

    /// [`Cairnctl::run`] as (exit code, stdout, stderr).
    pub fn parts(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let r = self.run(args)?;
        Ok((r.code, r.stdout, r.stderr))
    }

    /// [`Cairnctl::run`] that must exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let r = self.run(args)?;
        ensure!(
            r.code == 0,
            "cairnctl {} exited {}: {}{}",
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        );
        Ok(r.stdout)
    }

    /// [`Cairnctl::run`] with `-o json` that must exit 0; returns the parsed output.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.ok(&all)?;
        serde_json::from_str(&out).with_context(|| format!("cairnctl {args:?} -o json: {out}"))
    }
}
