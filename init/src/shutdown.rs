//! The end of an orderly shutdown: kill what is left, sync, unmount, reboot(2).

use crate::log::log;
use crate::mounts::{unmount_for_shutdown, MountOps};
use crate::process::WaitResult;
use std::io;

/// Power off or reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Poweroff,
    Reboot,
}

impl Kind {
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Poweroff => "powering off",
            Kind::Reboot => "rebooting",
        }
    }
}

/// Grace period after SIGTERM to every remaining process.
pub const TERM_GRACE_MS: u64 = 5_000;
/// Grace period after SIGKILL.
pub const KILL_GRACE_MS: u64 = 3_000;

/// The system calls of the final phase.
pub trait SystemOps {
    /// kill(-1, sig): every process except PID 1.
    fn kill_all(&mut self, kill: bool);
    fn wait_any(&mut self) -> WaitResult;
    fn now_ms(&mut self) -> u64;
    /// Blocks up to `ms` for a child to change state.
    fn pause_ms(&mut self, ms: u64);
    fn sync(&mut self);
    /// Only returns on failure.
    fn reboot(&mut self, kind: Kind) -> io::Error;
}

/// Waits until no child is left or the deadline passes; true if none is left.
fn wait_no_children(ops: &mut dyn SystemOps, grace_ms: u64) -> bool {
    let deadline = ops.now_ms() + grace_ms;
    loop {
        match ops.wait_any() {
            WaitResult::Exited(..) => continue,
            WaitResult::NoChildren => return true,
            WaitResult::NoneExited => {
                let now = ops.now_ms();
                if now >= deadline {
                    return false;
                }
                ops.pause_ms((deadline - now).min(50));
            }
        }
    }
}

/// Kills the remaining processes, syncs, unmounts (if `mounts`), logs and reboots.
/// Returns only if reboot(2) failed.
pub fn finish(ops: &mut dyn SystemOps, mounts: Option<&mut dyn MountOps>, kind: Kind) -> io::Error {
    ops.kill_all(false);
    if !wait_no_children(ops, TERM_GRACE_MS) {
        log(&format!(
            "processes left {}s after SIGTERM, sending SIGKILL",
            TERM_GRACE_MS / 1000
        ));
        ops.kill_all(true);
        if !wait_no_children(ops, KILL_GRACE_MS) {
            log("processes survived SIGKILL (stuck in the kernel?), continuing");
        }
    }
    ops.sync();
    if let Some(m) = mounts {
        for p in unmount_for_shutdown(m) {
            log(&p);
        }
        ops.sync();
    }
    log(&format!("reached shutdown, {}", kind.verb()));
    ops.reboot(kind)
}

/// The real implementation.
#[derive(Debug, Default)]
pub struct RealSystemOps;

impl SystemOps for RealSystemOps {
    fn kill_all(&mut self, kill: bool) {
        use nix::sys::signal::{kill as k, Signal};
        let sig = if kill {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        let _ = k(nix::unistd::Pid::from_raw(-1), sig);
    }
    fn wait_any(&mut self) -> WaitResult {
        use crate::process::ProcessOps;
        crate::process::RealProcessOps.wait_any()
    }
    fn now_ms(&mut self) -> u64 {
        crate::clock::now().mono_ms
    }
    fn pause_ms(&mut self, ms: u64) {
        // SIGCHLD is blocked (signalfd), so this is a bounded nap between wait polls.
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    fn sync(&mut self) {
        nix::unistd::sync();
    }
    fn reboot(&mut self, kind: Kind) -> io::Error {
        use nix::sys::reboot::{reboot, RebootMode};
        let mode = match kind {
            Kind::Poweroff => RebootMode::RB_POWER_OFF,
            Kind::Reboot => RebootMode::RB_AUTOBOOT,
        };
        match reboot(mode) {
            Ok(never) => match never {},
            Err(e) => io::Error::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Rec {
        calls: Vec<String>,
        waits: VecDeque<WaitResult>,
        t: u64,
    }

    impl SystemOps for Rec {
        fn kill_all(&mut self, kill: bool) {
            self.calls.push(if kill { "KILL" } else { "TERM" }.into());
        }
        fn wait_any(&mut self) -> WaitResult {
            self.waits.pop_front().unwrap_or(WaitResult::NoneExited)
        }
        fn now_ms(&mut self) -> u64 {
            self.t
        }
        fn pause_ms(&mut self, ms: u64) {
            self.t += ms;
        }
        fn sync(&mut self) {
            self.calls.push("sync".into());
        }
        fn reboot(&mut self, kind: Kind) -> io::Error {
            self.calls.push(format!("reboot {kind:?}"));
            io::Error::from(io::ErrorKind::Other)
        }
    }

    #[test]
    fn term_is_enough_when_everything_exits() {
        let mut r = Rec {
            calls: vec![],
            waits: VecDeque::from([
                WaitResult::Exited(5, crate::supervisor::ExitStatus::Signal(15)),
                WaitResult::NoneExited,
                WaitResult::NoChildren,
            ]),
            t: 0,
        };
        finish(&mut r, None, Kind::Poweroff);
        assert_eq!(r.calls, vec!["TERM", "sync", "reboot Poweroff"]);
    }

    #[test]
    fn kill_after_grace_then_reboot_even_if_stuck() {
        let mut r = Rec {
            calls: vec![],
            waits: VecDeque::new(),
            t: 0,
        };
        finish(&mut r, None, Kind::Reboot);
        assert_eq!(r.calls, vec!["TERM", "KILL", "sync", "reboot Reboot"]);
        assert_eq!(r.t, TERM_GRACE_MS + KILL_GRACE_MS);
    }
}
