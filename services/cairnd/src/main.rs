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

fn main() -> ExitCode {
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
