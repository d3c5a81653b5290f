//! Starting and stopping the local etcd member through cairn-init (`cairn-init svc …`).

use cairn_core::command::{run_ok, CommandError, CommandRunner, Invocation};

/// cairn-init's command-line tool on the appliance.
pub const CAIRN_INIT: &str = "/usr/sbin/cairn-init";
/// The service name of etcd (rootfs/overlay/etc/cairn/services/etcd.toml).
pub const ETCD_SERVICE: &str = "etcd";

/// Start or stop the etcd service through cairn-init.
pub fn start_etcd(runner: &dyn CommandRunner) -> Result<(), CommandError> {
    run_ok(
        runner,
        &Invocation::new(CAIRN_INIT, ["svc", "start", ETCD_SERVICE]),
    )
    .map(|_| ())
}

/// Stop the etcd service (a leave, or before its data is replaced).
pub fn stop_etcd(runner: &dyn CommandRunner) -> Result<(), CommandError> {
    run_ok(
        runner,
        &Invocation::new(CAIRN_INIT, ["svc", "stop", ETCD_SERVICE]),
    )
    .map(|_| ())
}
