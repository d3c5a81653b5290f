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

/// The services a witness does not run (rootfs/overlay/etc/cairn/services/*.toml carry
/// `condition_path_absent` on the witness marker), in stop order (libvirtd needs virtlogd).
pub const NOT_ON_A_WITNESS: &[&str] = &["libvirtd", "virtlogd"];

/// Stop the services a witness does not run (after a witness join; at the next boot
/// cairn-init does not start them).
pub fn stop_witness_excluded(runner: &dyn CommandRunner) -> Result<(), CommandError> {
    for name in NOT_ON_A_WITNESS {
        run_ok(runner, &Invocation::new(CAIRN_INIT, ["svc", "stop", name]))?;
    }
    Ok(())
}
