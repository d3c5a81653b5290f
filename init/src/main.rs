//! cairn-init entry point: stage 1 (initramfs), stage 2 (PID 1) or the `svc` CLI.

use anyhow::Context;
use cairn_init::{cli, log, stage1, stage2};
use std::path::Path;

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn-init: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run() -> anyhow::Result<i32> {
    if std::process::id() == 1 {
        pid1();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", cli::USAGE);
        return Ok(0);
    }
    let inv = cli::parse(&args).context("invalid command line")?;
    let out = cli::execute(&inv).context("svc command failed")?;
    print!("{out}");
    Ok(0)
}

/// PID 1 never returns and never exits: a panic is logged, synced and ends in a reboot.
fn pid1() -> ! {
    std::panic::set_hook(Box::new(|info| log::log(&format!("panic: {info}"))));
    let stage1 = Path::new(stage1::MARKER).exists();
    let _ = std::panic::catch_unwind(|| {
        if stage1 {
            stage1::run(&mut stage1::RealStage1Ops)
        } else {
            stage2::run(stage2::Settings::from_env())
        }
    });
    if stage1 {
        log::log("BOOT FAILED: internal error in stage 1 (panic)");
    } else {
        log::log("fatal error in PID 1; syncing and rebooting");
    }
    nix::unistd::sync();
    std::thread::sleep(std::time::Duration::from_millis(
        stage1::FAILURE_REBOOT_DELAY_MS,
    ));
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    loop {
        // reboot(2) failed: PID 1 must still not exit (that would panic the kernel).
        let _ = nix::sys::wait::wait();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
