//! Prints the host-side cost of one SMART poll's parse + evaluate, per fixture (the smartctl
//! run itself is measured on a lab node: qemu-test/tests/smart.rs). Run:
//! `cargo run --release -p cairn-smart --example bench_eval`.

use cairn_smart::{interpret, Context, Outcome};
use std::time::Instant;

const ROUNDS: u32 = 2_000;

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    println!("{:<78} {:>7} {:>10}", "fixture", "KiB", "µs/poll");
    let mut total = 0.0;
    for path in &names {
        let bytes = std::fs::read(path).expect("fixture");
        let ctx = Context::default();
        // Warm up, and make sure the work is not optimised away.
        let mut verdicts = 0usize;
        for _ in 0..50 {
            verdicts += usize::from(matches!(
                interpret(&bytes, "", Some(0), &ctx),
                Outcome::Evaluated(..)
            ));
        }
        let start = Instant::now();
        for _ in 0..ROUNDS {
            verdicts += usize::from(matches!(
                interpret(std::hint::black_box(&bytes), "", Some(0), &ctx),
                Outcome::Evaluated(..)
            ));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
        total += us;
        std::hint::black_box(verdicts);
        println!(
            "{:<78} {:>7.1} {:>10.1}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            bytes.len() as f64 / 1024.0,
            us
        );
    }
    println!(
        "mean over {} fixtures: {:.1} µs per poll (parse + evaluate, {ROUNDS} rounds each)",
        names.len(),
        total / names.len() as f64
    );
}
