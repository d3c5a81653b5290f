//! Running a Playwright test of services/api/ui-tests (Debian's Chromium) against a lab node.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::Deadline;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qemu-test lives in the repository")
        .to_path_buf()
}

/// Run the Playwright lab test `test` (a file in services/api/ui-tests) against the node at
/// `url` with `env`; screenshots go to `results`.
pub fn run_browser(
    test: &str,
    url: &str,
    env: &[(&str, &str)],
    results: &Path,
    deadline: Deadline,
) -> Result<()> {
    run_browser_in(None, test, url, env, results, deadline)
}

/// [`run_browser`], inside the network namespace `netns` when given (a lab host's: the
/// browser then reaches the node on a lab network, not through the management NIC's
/// forward). The log is `playwright[-<CAIRN_NET_PHASE>].log`.
pub fn run_browser_in(
    netns: Option<&str>,
    test: &str,
    url: &str,
    env: &[(&str, &str)],
    results: &Path,
    deadline: Deadline,
) -> Result<()> {
    let script = repo_root().join("services/api/ui-tests/run.sh");
    let phase = env
        .iter()
        .find(|(k, _)| *k == "CAIRN_NET_PHASE")
        .map(|(_, v)| format!("-{v}"))
        .unwrap_or_default();
    let log_path = results.join(format!("playwright{phase}.log"));
    std::fs::create_dir_all(results)?;
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&script);
            c
        }
        None => Command::new(&script),
    };
    let mut child = cmd
        .env("CAIRN_URL", url)
        .env("CAIRN_LAB_TEST", test)
        .envs(env.iter().copied())
        .env("UI_RESULTS", results)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            ensure!(
                status.success(),
                "the browser test failed ({status}); log {}:\n{out}",
                log_path.display()
            );
            println!("{out}");
            return Ok(());
        }
        if deadline.expired() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the browser test did not finish within {:?} (log {})",
                deadline.total(),
                log_path.display()
            );
        }
        // poll interval of the child's exit; the deadline bounds the wait
        std::thread::sleep(Duration::from_millis(200).min(deadline.remaining()));
    }
}

/// How many screenshots (`*.png`) a browser test left in `results`.
pub fn screenshots(results: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(results)
        .with_context(|| format!("listing {}", results.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count())
}
