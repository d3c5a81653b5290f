//! Children of the harness that must die with it: QEMU, the accelerator probe, dnsmasq.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Make `cmd`'s child receive SIGKILL when the thread that spawned it ends, so a harness
/// killed by a test timeout (or a crash) leaves nothing running. Nodes and lab servers are
/// driven from the thread that started them.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
