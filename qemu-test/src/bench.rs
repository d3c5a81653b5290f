//! The boot benchmark: cairn-init's boot timeline and RSS versus Debian's systemd as PID 1 on the same image.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::config::{BootMode, NodeConfig};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::https::{self, Trust};
use crate::lab::Lab;

/// Console line of the kernel's first message.
pub const KERNEL_LINE: &str = r"Linux version ";
pub const STAGE1: &str = r"cairn-init: stage 1";
pub const SWITCHING_ROOT: &str = r"cairn-init: switching root";
pub const STAGE2: &str = r"cairn-init: stage 2";
pub const ALL_READY: &str = r"cairn-init: all services ready";
/// systemd's line for journald being started: the kernel-log form
/// (`systemd[1]: Started systemd-journald.service - …`) or the status form, which systemd cuts
/// to 80 columns (`Started ␛[0;1;39msystemd-journald.serv…`). "Listening on" lines for the
/// sockets do not match.
pub const SYSTEMD_JOURNALD: &str = r"Started \S*systemd-journald\.|Started .*- Journal Service\.";
/// systemd's line for udevd being started (same two forms).
pub const SYSTEMD_UDEVD: &str =
    r"Started \S*systemd-udevd\.|Started .*- Rule-based Manager for Device Events";
/// cairn-init's readiness lines for the same two services.
pub const CAIRN_JOURNALD: &str = r"cairn-init: journald ready";
pub const CAIRN_UDEVD: &str = r"cairn-init: udevd ready";
/// cairn-init's line when cairnd accepts connections on port 443 (its TCP readiness probe):
/// the API is ready on the node.
pub const CAIRND_READY: &str = r"cairn-init: cairnd ready";

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub runs: usize,
    pub cpus: u8,
    pub memory_mib: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            runs: 3,
            cpus: 1,
            memory_mib: 1024,
        }
    }
}

/// One boot with cairn-init as PID 1.
#[derive(Debug, Clone, Copy)]
pub struct CairnRun {
    pub qemu_to_kernel: Duration,
    pub kernel_to_stage1: Duration,
    pub stage1_to_switch: Duration,
    pub switch_to_stage2: Duration,
    pub stage2_to_ready: Duration,
    pub ready_to_api: Duration,
    pub qemu_to_api: Duration,
    pub switch_to_api: Duration,
    /// switching root → cairnd accepting on :443 (API ready on the node, before the network
    /// has an address).
    pub switch_to_api_ready: Duration,
    /// switching root → journald and udevd ready under cairn-init (like for like with systemd).
    pub switch_to_journald_udevd: Duration,
    pub rss_init_kib: u64,
    pub rss_cairnd_kib: u64,
}

/// One boot of the same kernel and rootfs with systemd as PID 1.
#[derive(Debug, Clone, Copy)]
pub struct SystemdRun {
    pub qemu_to_switch: Duration,
    pub switch_to_journald_udevd: Duration,
}

/// All runs of one benchmark.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub options: BenchOptions,
    /// The accelerator every boot ran under (figures from KVM and TCG are never mixed).
    pub accel: Accel,
    pub image_zst_bytes: Option<u64>,
    pub cairn: Vec<CairnRun>,
    pub systemd: Vec<SystemdRun>,
}

/// Median of durations (upper median for even counts).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Runs the benchmark: `options.runs` boots each, cairn and systemd alternating.
pub fn run(
    lab: &Lab,
    options: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, LabError> {
    let image_zst_bytes = std::fs::metadata(&lab.artifacts().image_zst)
        .ok()
        .map(|m| m.len());
    // Decided (probed) before the first boot, so no boot's timeline includes the probe.
    let accel = lab.accel()?.accel;
    let mut report = BenchReport {
        options: options.clone(),
        accel,
        image_zst_bytes,
        cairn: Vec::new(),
        systemd: Vec::new(),
    };
    for i in 1..=options.runs {
        let c = cairn_run(lab, options, i)?;
        progress(&format!(
            "run {i} [{accel}]: cairn-init  switch→API {:.2} s (QEMU→API {:.2} s), RSS init {} KiB, cairnd {} KiB",
            c.switch_to_api.as_secs_f64(),
            c.qemu_to_api.as_secs_f64(),
            c.rss_init_kib,
            c.rss_cairnd_kib
        ));
        report.cairn.push(c);
        let s = systemd_run(lab, options, i)?;
        progress(&format!(
            "run {i} [{accel}]: systemd     switch→journald+udevd {:.2} s",
            s.switch_to_journald_udevd.as_secs_f64()
        ));
        report.systemd.push(s);
    }
    Ok(report)
}

fn cairn_run(lab: &Lab, options: &BenchOptions, i: usize) -> Result<CairnRun, LabError> {
    let cfg = NodeConfig::new(&format!("cairn-{i}"), BootMode::DirectKernel)
        .size(options.cpus, options.memory_mib);
    let mut node = lab.start(cfg)?;
    let t0 = node.launched_at().unwrap_or_else(Instant::now);
    let deadline = Deadline::secs(240);
    let kernel = node.wait_serial(KERNEL_LINE, deadline)?;
    let stage1 = node.wait_serial_from(STAGE1, kernel.index, deadline)?;
    let switch = node.wait_serial_from(SWITCHING_ROOT, stage1.index, deadline)?;
    let stage2 = node.wait_serial_from(STAGE2, switch.index, deadline)?;
    // Poll the API from stage 2 on, trusting whatever certificate it shows; the
    // fingerprint is checked against the setup block afterwards.
    let addr = node.api_addr();
    let (api_at, seen) = loop {
        if deadline.expired() {
            return Err(LabError::ApiTimeout {
                addr,
                waited: deadline.total(),
                last: "no answer while benchmarking".into(),
            });
        }
        match https::get(
            addr,
            "/api/v1/health",
            Trust::Record,
            deadline.capped(Duration::from_secs(5)),
        ) {
            Ok(r) if r.status == 200 => break (Instant::now(), r.peer),
            _ => std::thread::sleep(Duration::from_millis(50).min(deadline.remaining())),
        }
    };
    let ready = node.wait_serial_from(ALL_READY, stage2.index, deadline)?;
    let journald = node.wait_serial_from(CAIRN_JOURNALD, switch.index, deadline)?;
    let udevd = node.wait_serial_from(CAIRN_UDEVD, switch.index, deadline)?;
    let api_ready = node.wait_serial_from(CAIRND_READY, switch.index, deadline)?;
    let setup = node.wait_setup(deadline)?;
    if setup.fingerprint != seen {
        return Err(LabError::HttpResponse {
            addr,
            detail: format!(
                "certificate {seen} is not the one in the setup block ({})",
                setup.fingerprint
            ),
        });
    }
    let rss_init_kib = rss(&mut node, "1", deadline)?;
    let pid = node.shell_check(
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = cairnd ] && echo ${p#/proc/}; done | head -n 1",
        deadline,
    )?;
    let rss_cairnd_kib = rss(&mut node, pid.trim(), deadline)?;
    node.finish();
    let ready_to_api = api_at.saturating_duration_since(ready.at);
    Ok(CairnRun {
        qemu_to_kernel: kernel.at - t0,
        kernel_to_stage1: stage1.at - kernel.at,
        stage1_to_switch: switch.at - stage1.at,
        switch_to_stage2: stage2.at - switch.at,
        stage2_to_ready: ready.at.saturating_duration_since(stage2.at),
        ready_to_api,
        qemu_to_api: api_at - t0,
        switch_to_api: api_at - switch.at,
        switch_to_api_ready: api_ready.at - switch.at,
        switch_to_journald_udevd: journald.at.max(udevd.at) - switch.at,
        rss_init_kib,
        rss_cairnd_kib,
    })
}

fn rss(node: &mut crate::node::Node, pid: &str, deadline: Deadline) -> Result<u64, LabError> {
    let cmd = format!("grep VmRSS /proc/{pid}/status");
    let out = node.shell_check(&cmd, deadline)?;
    parse_vmrss(&out).ok_or(LabError::ShellExitCode { cmd, text: out })
}

/// KiB from a `VmRSS:     1234 kB` line.
pub fn parse_vmrss(line: &str) -> Option<u64> {
    line.trim()
        .strip_prefix("VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn systemd_run(lab: &Lab, options: &BenchOptions, i: usize) -> Result<SystemdRun, LabError> {
    let cfg = NodeConfig::new(&format!("systemd-{i}"), BootMode::DirectKernel)
        .size(options.cpus, options.memory_mib)
        .cmdline(&["cairn.init=/lib/systemd/systemd", "systemd.show_status=1"]);
    let node = lab.start(cfg)?;
    let t0 = node.launched_at().unwrap_or_else(Instant::now);
    let deadline = Deadline::secs(240);
    let switch = node.wait_serial(SWITCHING_ROOT, deadline)?;
    let journald = node.wait_serial_from(SYSTEMD_JOURNALD, switch.index, deadline)?;
    let udevd = node.wait_serial_from(SYSTEMD_UDEVD, switch.index, deadline)?;
    let both = journald.at.max(udevd.at);
    node.finish();
    Ok(SystemdRun {
        qemu_to_switch: switch.at - t0,
        switch_to_journald_udevd: both - switch.at,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl BenchReport {
    /// cairn-init (switching root → API ready: cairnd accepting on :443) over systemd
    /// (switching root → journald + udevd started): the issue's target.
    pub fn ratio(&self) -> f64 {
        self.ratio_of(|r| r.switch_to_api_ready)
    }

    /// cairn-init (switching root → API answering over the lab network, which also waits
    /// for device coldplug and the DHCP lease) over systemd (→ journald + udevd).
    pub fn ratio_network(&self) -> f64 {
        self.ratio_of(|r| r.switch_to_api)
    }

    fn ratio_of(&self, pick: impl Fn(&CairnRun) -> Duration) -> f64 {
        let c = median(self.cairn.iter().map(pick).collect());
        let s = median(
            self.systemd
                .iter()
                .map(|r| r.switch_to_journald_udevd)
                .collect(),
        );
        if s.is_zero() {
            f64::NAN
        } else {
            c.as_secs_f64() / s.as_secs_f64()
        }
    }

    /// Like for like: journald + udevd ready under cairn-init over the same under systemd.
    pub fn ratio_services(&self) -> f64 {
        self.ratio_of(|r| r.switch_to_journald_udevd)
    }

    /// Rows: (figure, median, all runs).
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = vec![(
            "QEMU accelerator".to_string(),
            self.accel.label().to_string(),
            self.accel.qemu_args(None).join(" "),
        )];
        let mut dur = |name: &str, v: Vec<Duration>| {
            let all = v
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / ");
            rows.push((name.to_string(), secs(median(v)), all));
        };
        let c = &self.cairn;
        dur(
            "QEMU start → first kernel line",
            c.iter().map(|r| r.qemu_to_kernel).collect(),
        );
        dur(
            "first kernel line → `cairn-init: stage 1`",
            c.iter().map(|r| r.kernel_to_stage1).collect(),
        );
        dur(
            "stage 1 → `switching root`",
            c.iter().map(|r| r.stage1_to_switch).collect(),
        );
        dur(
            "switching root → `stage 2`",
            c.iter().map(|r| r.switch_to_stage2).collect(),
        );
        dur(
            "stage 2 → `all services ready`",
            c.iter().map(|r| r.stage2_to_ready).collect(),
        );
        dur(
            "all services ready → API answering",
            c.iter().map(|r| r.ready_to_api).collect(),
        );
        dur(
            "QEMU start → API answering (total)",
            c.iter().map(|r| r.qemu_to_api).collect(),
        );
        dur(
            "cairn-init: switching root → API ready (`cairnd ready`: accepting on :443)",
            c.iter().map(|r| r.switch_to_api_ready).collect(),
        );
        dur(
            "cairn-init: switching root → API answering over the lab network",
            c.iter().map(|r| r.switch_to_api).collect(),
        );
        dur(
            "cairn-init: switching root → journald + udevd ready",
            c.iter().map(|r| r.switch_to_journald_udevd).collect(),
        );
        dur(
            "systemd: switching root → journald + udevd started",
            self.systemd
                .iter()
                .map(|r| r.switch_to_journald_udevd)
                .collect(),
        );
        let mut kib = |name: &str, v: Vec<u64>| {
            let all = v
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(" / ");
            rows.push((name.to_string(), format!("{} KiB", median_u64(v)), all));
        };
        kib(
            "RSS of cairn-init (PID 1)",
            c.iter().map(|r| r.rss_init_kib).collect(),
        );
        kib(
            "RSS of cairnd",
            c.iter().map(|r| r.rss_cairnd_kib).collect(),
        );
        rows.push((
            "ratio cairn-init (→ API ready) / systemd (→ journald + udevd), target ≤ 0.33".into(),
            format!("{:.2}", self.ratio()),
            "medians".into(),
        ));
        rows.push((
            "ratio cairn-init (→ API answering over the network) / systemd (→ journald + udevd)"
                .into(),
            format!("{:.2}", self.ratio_network()),
            "medians".into(),
        ));
        rows.push((
            "ratio journald + udevd up: cairn-init / systemd".into(),
            format!("{:.2}", self.ratio_services()),
            "medians".into(),
        ));
        if let Some(b) = self.image_zst_bytes {
            rows.push((
                "compressed image (cairn.img.zst)".into(),
                format!("{:.1} MiB", b as f64 / 1048576.0),
                format!("{b} bytes"),
            ));
        }
        rows
    }

    /// Plain-text table.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cairn-lab bench: {} runs each, {} vCPU, {} MiB, {}, direct-kernel boot",
            self.options.runs, self.options.cpus, self.options.memory_mib, self.accel
        );
        for (name, med, all) in self.rows() {
            let _ = writeln!(s, "  {name:<55} {med:>10}   ({all})");
        }
        s
    }

    /// Markdown table lines for docs/benchmarks.md.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| Figure | Median | Runs |\n|---|---|---|\n");
        for (name, med, all) in self.rows() {
            let _ = writeln!(s, "| {name} | {med} | {all} |");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(vec![ms(4), ms(1)]), ms(4));
        assert_eq!(median(vec![]), Duration::ZERO);
        assert_eq!(median_u64(vec![9, 1, 5]), 5);
    }

    #[test]
    fn vmrss_lines() {
        assert_eq!(parse_vmrss("VmRSS:\t    2312 kB\n"), Some(2312));
        assert_eq!(parse_vmrss("VmHWM: 1 kB"), None);
    }

    #[test]
    fn regexes_match_real_console_lines() {
        let j = regex::Regex::new(SYSTEMD_JOURNALD).unwrap();
        let u = regex::Regex::new(SYSTEMD_UDEVD).unwrap();
        assert!(j.is_match("[\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39msystemd-journald.service\u{1b}[0m - Journal Service."));
        assert!(u.is_match("[  OK  ] Started systemd-udevd.service - Rule-based Manager for Device Events and Files."));
        assert!(!u.is_match("         Starting systemd-udevd.service - Rule-based Manager…"));
        // as seen on a TCG console: cut to 80 columns
        assert!(u.is_match("[\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39msystemd-udevd.serv…nager for Device Events and Files."));
        assert!(j.is_match(
            "[   24.676068] systemd[1]: Started systemd-journald.service - Journal Service."
        ));
        assert!(!j.is_match("[\u{1b}[0;32m  OK  \u{1b}[0m] Listening on \u{1b}[0;1;39msystemd-journald.socket\u{1b}[0m - Journal Socket."));
        assert!(!u.is_match("[\u{1b}[0;32m  OK  \u{1b}[0m] Listening on \u{1b}[0;1;39msystemd-udevd….socket\u{1b}[0m - udev Control Socket."));
        assert!(!u.is_match(
            "Starting \u{1b}[0;1;39msystemd-udev-trig…\u{1b}[0m - Coldplug All udev Devices..."
        ));
    }

    #[test]
    fn report_ratio_and_markdown() {
        let c = CairnRun {
            qemu_to_kernel: ms(1000),
            kernel_to_stage1: ms(2000),
            stage1_to_switch: ms(500),
            switch_to_stage2: ms(10),
            stage2_to_ready: ms(900),
            ready_to_api: ms(100),
            qemu_to_api: ms(4510),
            switch_to_api: ms(2000),
            switch_to_api_ready: ms(1000),
            switch_to_journald_udevd: ms(400),
            rss_init_kib: 2000,
            rss_cairnd_kib: 9000,
        };
        let s = SystemdRun {
            qemu_to_switch: ms(3500),
            switch_to_journald_udevd: ms(4000),
        };
        let r = BenchReport {
            options: BenchOptions::default(),
            accel: Accel::Tcg,
            image_zst_bytes: Some(150 << 20),
            cairn: vec![c, c, c],
            systemd: vec![s, s, s],
        };
        assert!((r.ratio() - 0.25).abs() < 1e-9);
        assert!((r.ratio_network() - 0.5).abs() < 1e-9);
        assert!((r.ratio_services() - 0.1).abs() < 1e-9);
        let md = r.markdown();
        assert!(
            md.contains("|---|---|---|\n| QEMU accelerator | TCG | -accel tcg |\n"),
            "{md}"
        );
        assert!(r.text().contains(", TCG, direct-kernel boot"));
        assert!(
            md.contains("| RSS of cairn-init (PID 1) | 2000 KiB | 2000 / 2000 / 2000 |"),
            "{md}"
        );
        assert!(
            md.contains("| compressed image (cairn.img.zst) | 150.0 MiB |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| ratio cairn-init (→ API ready) / systemd (→ journald + udevd), target ≤ 0.33 | 0.25 |"
            ),
            "{md}"
        );
    }
}
