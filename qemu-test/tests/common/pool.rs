//! Pools made through the storage API for the scenarios that need one (VMs, shares).

use anyhow::{Context, Result};
use cairn_lab::{ApiSession, Deadline};

/// Create pool `pool` (level single) on the data disk with serial `serial` through the
/// storage API and wait for its task.
pub fn create_single_pool(
    api: &ApiSession,
    pool: &str,
    serial: &str,
    deadline: Deadline,
) -> Result<()> {
    let disks = api.expect("GET", "/api/v1/disks", None)?;
    let id = disks["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["serial"] == serial))
        .and_then(|d| d["id"].as_str())
        .with_context(|| format!("no disk with serial {serial} in {disks}"))?
        .to_string();
    api.run_task(
        "POST",
        "/api/v1/pools",
        &serde_json::json!({"name": pool, "level": "single", "disks": [id]}),
        deadline,
    )
    .with_context(|| format!("creating pool {pool} through the storage API"))?;
    Ok(())
}
