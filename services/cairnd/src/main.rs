//! cairnd: the Cairn node daemon (HTTPS API, first-boot setup, boot blessing).

mod addrs;
mod boot_record;
mod certificate;
mod cli;
mod console;
mod daemon;
mod domains;
mod listen;
mod logging;
mod node;
mod node_stop;
mod notify;
mod setup_code;
mod system;
mod time;

use std::process::ExitCode;

/// glibc malloc arenas: by default up to 8 per core, one per thread that allocates while
/// another holds an arena, each keeping its own free pages. cairnd's threads are mostly idle
/// (blocking pool, monitors); two arenas keep its heap small (issue 12: ≤ 12 MiB RSS).
const MALLOC_ARENAS: libc::c_int = 2;

fn main() -> ExitCode {
    // SAFETY: mallopt only sets an allocator parameter; called first, before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
    // drbdadm's fence-peer handler (decision 0027): not the daemon; its exit code is the answer.
    if std::env::args().nth(1).as_deref() == Some(cairn_cluster::drbd::handler::SUBCOMMAND) {
        return fence_peer();
    }
    match daemon::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging may not be up (bad flags); stderr reaches the journal or the console.
            eprintln!("cairnd: error: {e:#}");
            tracing::error!("fatal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cairnd drbd-fence-peer`: ask etcd whether the peer may be outdated; the answer goes to
/// stderr (drbdadm logs it) and is the exit code DRBD reads.
fn fence_peer() -> ExitCode {
    let answer = cairn_cluster::drbd::handler::run(
        std::path::Path::new("/var/lib/cairn/cluster"),
        std::path::Path::new("/proc/drbd"),
    );
    eprintln!(
        "cairnd drbd-fence-peer: {answer:?} (exit {})",
        answer.exit_code()
    );
    ExitCode::from(answer.exit_code())
}
