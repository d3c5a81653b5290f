//! Wall-clock timing of pipeline phases, printed as each phase ends and kept for the summary.

use std::time::Instant;

use anyhow::Result;

/// Durations of the phases run so far.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Phases {
    pub phases: Vec<(String, f64)>,
}

impl Phases {
    /// Runs `f` as phase `name`, printing its duration.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        println!("xtask: == {name} ==");
        let start = Instant::now();
        let result = f();
        let secs = start.elapsed().as_secs_f64();
        let verdict = if result.is_ok() { "done" } else { "FAILED" };
        println!("xtask: == {name}: {verdict} in {secs:.1} s ==");
        self.phases.push((name.to_string(), secs));
        result
    }

    /// Records a phase timed elsewhere (e.g. on another thread).
    pub fn record(&mut self, name: &str, secs: f64) {
        println!("xtask: == {name}: done in {secs:.1} s ==");
        self.phases.push((name.to_string(), secs));
    }

    /// A table of every phase and the total.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut total = 0.0;
        for (name, secs) in &self.phases {
            out.push_str(&format!("  {name:<40} {secs:>8.1} s\n"));
            total += secs;
        }
        out.push_str(&format!(
            "  {:<40} {total:>8.1} s (sum; some phases overlap)\n",
            "total"
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_success_and_failure() {
        let mut p = Phases::default();
        assert_eq!(p.run("one", || Ok(1)).unwrap(), 1);
        assert!(p
            .run("two", || -> Result<()> { anyhow::bail!("x") })
            .is_err());
        assert_eq!(p.phases.len(), 2);
        let s = p.summary();
        assert!(
            s.contains("one") && s.contains("two") && s.contains("total"),
            "{s}"
        );
    }
}
