//! Scratch probe (not committed): boot one node, dump its journal.
use anyhow::Result;
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};

#[test]
#[ignore = "probe"]
fn zz_probe() -> Result<()> {
    let Some(lab) = Lab::for_test("zz_probe") else {
        return Ok(());
    };
    let mut node = lab.start(NodeConfig::new("node1", BootMode::DirectKernel))?;
    node.wait_ready(Deadline::secs(300))?;
    let j = node.shell_check(
        "journalctl -b --no-pager -o short-monotonic",
        Deadline::secs(60),
    )?;
    std::fs::write("/tmp/probe/journal.txt", j)?;
    node.finish();
    Ok(())
}
