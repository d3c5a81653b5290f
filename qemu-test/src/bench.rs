//! The boot benchmark: cairn-init's boot timeline and RSS versus Debian's systemd as PID 1 on the same image, judged against issue 12's targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::accel::Accel;
use crate::config::{BootMode, NodeConfig};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::health::{self, DomainState, Strictness};
use crate::https::{self, Trust};
use crate::lab::Lab;
use crate::serial::SerialLine;

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

/// cairn-init's line when it starts a service (`cairn-init: starting NAME`).
pub const SERVICE_STARTING: &str = r"cairn-init: starting (\S+)\s*$";
/// cairn-init's line when a service is ready (`cairn-init: NAME ready`).
pub const SERVICE_READY: &str = r"cairn-init: (\S+) ready\s*$";

/// Start of the generated boot block in docs/benchmarks.md.
pub const DOC_BEGIN: &str = "<!-- bench:boot:begin -->";
/// End of the generated boot block in docs/benchmarks.md.
pub const DOC_END: &str = "<!-- bench:boot:end -->";

/// How many mapping groups of cairnd's memory are shown before "other".
pub const MEMORY_GROUPS_SHOWN: usize = 12;

/// A figure issue 12 sets a target for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// cairn-init's switching root → API ready, over systemd's switching root → journald + udevd.
    RatioApiReady,
    /// cairn-init's switching root → API answering over the lab network, over the same systemd span.
    RatioApiNetwork,
    /// RSS of cairn-init (PID 1), KiB.
    RssInit,
    /// RSS of cairnd idle after setup with the domains running, KiB.
    RssCairndSetUp,
}

/// One target: what it is called, which figure it judges and the limit (figure ≤ limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub name: &'static str,
    pub figure: Figure,
    pub limit: f64,
    /// The limit as the report shows it.
    pub shown: &'static str,
}

/// Issue 12's targets (medians of the runs of one bench).
pub const TARGETS: [Target; 4] = [
    Target {
        name: "switching root → API ready ≤ 1/3 of systemd's switching root → journald + udevd",
        figure: Figure::RatioApiReady,
        limit: 1.0 / 3.0,
        shown: "≤ 0.33",
    },
    Target {
        name: "switching root → API answering over the lab network ≤ systemd's switching root → journald + udevd",
        figure: Figure::RatioApiNetwork,
        limit: 1.0,
        shown: "≤ 1.00",
    },
    Target {
        name: "cairn-init RSS ≤ 4 MiB",
        figure: Figure::RssInit,
        limit: 4096.0,
        shown: "≤ 4096 KiB",
    },
    Target {
        name: "cairnd RSS ≤ 12 MiB idle after setup with the domains running",
        figure: Figure::RssCairndSetUp,
        limit: 12288.0,
        shown: "≤ 12288 KiB",
    },
];

/// The target of `figure`.
pub fn target(figure: Figure) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.figure == figure)
        .unwrap_or(&TARGETS[0])
}

/// A target judged against the report's figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub target: Target,
    /// The median (NaN when it could not be measured: then it is missed).
    pub value: f64,
    pub met: bool,
}

impl Verdict {
    /// Judges `value` against `target`.
    pub fn judge(target: Target, value: f64) -> Verdict {
        Verdict {
            target,
            value,
            met: value.is_finite() && value <= target.limit,
        }
    }

    /// `met` or `MISSED`.
    pub fn word(&self) -> &'static str {
        if self.met {
            "met"
        } else {
            "MISSED"
        }
    }
}

/// One service under cairn-init in one boot: when it started (from switching root) and how
/// long it took to be ready (`None`: it never was, within the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTiming {
    pub name: String,
    pub start: Duration,
    pub ready: Option<Duration>,
}

/// cairnd's memory at one moment: VmRSS, threads, and Rss per mapping group (largest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CairndMemory {
    pub rss_kib: u64,
    pub threads: u64,
    pub groups: Vec<(String, u64)>,
}

/// One boot with cairn-init as PID 1.
#[derive(Debug, Clone)]
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
    /// switching root → health says `"ready": true` (all domains started; over the lab network).
    pub switch_to_domains_ready: Duration,
    /// The domains as health reported them once none was starting.
    pub domains: Vec<DomainState>,
    /// Every service cairn-init started, in the order it started them.
    pub services: Vec<ServiceTiming>,
    pub rss_init_kib: u64,
    /// cairnd's RSS on the unclaimed node (domains started, before setup).
    pub rss_cairnd_kib: u64,
    /// cairnd idle after setup with the domains running.
    pub cairnd_set_up: CairndMemory,
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
        let c = cairn_run(lab, options, i, &mut progress)?;
        progress(&format!(
            "run {i} [{accel}]: cairn-init  switch→API {:.2} s (QEMU→API {:.2} s), domains ready {:.2} s, RSS init {} KiB, cairnd {} KiB unclaimed, {} KiB after setup",
            c.switch_to_api.as_secs_f64(),
            c.qemu_to_api.as_secs_f64(),
            c.switch_to_domains_ready.as_secs_f64(),
            c.rss_init_kib,
            c.rss_cairnd_kib,
            c.cairnd_set_up.rss_kib
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

fn cairn_run(
    lab: &Lab,
    options: &BenchOptions,
    i: usize,
    progress: &mut impl FnMut(&str),
) -> Result<CairnRun, LabError> {
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
    // cairnd answers before its domains have started: poll health until none is starting
    // (a failed domain is reported, not fatal), right away so the time is not late.
    progress(&format!(
        "run {i}: API answering; waiting for health to say the domains are ready (`\"ready\": true`)"
    ));
    let health = health::wait_domains(addr, deadline, Strictness::Settle, |d| {
        health::fetch(addr, Trust::Pinned(seen), d)
    })?;
    let domains_at = Instant::now();
    let domains = health::domains(&health);
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
    let pid = cairnd_pid(&mut node, deadline)?;
    let rss_cairnd_kib = rss(&mut node, &pid, deadline)?;

    // Set the node up as an admin would, wait for the domains again, then read cairnd's
    // memory idle with the domains running.
    let deadline = Deadline::secs(300);
    progress(&format!("run {i}: setting the node up (claim)"));
    node.claim_now(deadline)?;
    health::wait_domains(addr, deadline, Strictness::Settle, |d| {
        health::fetch(addr, Trust::Pinned(setup.fingerprint), d)
    })?;
    let pid = cairnd_pid(&mut node, deadline)?;
    let status = node.shell_check(
        &format!("grep -E '^(VmRSS|Threads):' /proc/{pid}/status"),
        deadline,
    )?;
    let smaps = node.shell_check(&smaps_command(&pid), deadline)?;
    let (rss_kib, threads) = parse_status(&status).ok_or_else(|| LabError::ShellExitCode {
        cmd: format!("grep VmRSS/Threads /proc/{pid}/status"),
        text: status.clone(),
    })?;
    let cairnd_set_up = CairndMemory {
        rss_kib,
        threads,
        groups: parse_smaps_sums(&smaps),
    };
    let lines = node.serial()?.lines();
    let services = service_timings(lines.get(switch.index..).unwrap_or(&[]), switch.at);
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
        switch_to_domains_ready: domains_at - switch.at,
        domains,
        services,
        rss_init_kib,
        rss_cairnd_kib,
        cairnd_set_up,
    })
}

/// cairnd's PID, by its comm.
fn cairnd_pid(node: &mut crate::node::Node, deadline: Deadline) -> Result<String, LabError> {
    let cmd = "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = cairnd ] && echo ${p#/proc/}; done | head -n 1";
    let pid = node.shell_check(cmd, deadline)?.trim().to_string();
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LabError::ShellExitCode {
            cmd: cmd.into(),
            text: format!("no cairnd process found: {pid:?}"),
        });
    }
    Ok(pid)
}

fn rss(node: &mut crate::node::Node, pid: &str, deadline: Deadline) -> Result<u64, LabError> {
    let cmd = format!("grep VmRSS /proc/{pid}/status");
    let out = node.shell_check(&cmd, deadline)?;
    parse_vmrss(&out).ok_or(LabError::ShellExitCode { cmd, text: out })
}

/// KiB from a `VmRSS:     1234 kB` line.
pub fn parse_vmrss(line: &str) -> Option<u64> {
    status_field(line, "VmRSS:")
}

fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// (VmRSS KiB, Threads) from lines of /proc/PID/status.
pub fn parse_status(text: &str) -> Option<(u64, u64)> {
    Some((
        status_field(text, "VmRSS:")?,
        status_field(text, "Threads:")?,
    ))
}

/// The shell command summing `Rss:` of /proc/PID/smaps per mapping name on the node: one
/// `KIB NAME` line each (NAME empty for anonymous mappings). Summed there, so only a few
/// dozen lines cross the serial shell.
pub fn smaps_command(pid: &str) -> String {
    format!(
        "awk '/^[0-9a-f]+-[0-9a-f]+ /{{n=$6}} /^Rss:/{{s[n]+=$2}} END{{for(k in s) print s[k] \" \" k}}' /proc/{pid}/smaps"
    )
}

/// The group a mapping name counts in: `heap`, `anonymous`, `stacks`, or its path.
pub fn memory_group(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_suffix("(deleted)").unwrap_or(name).trim();
    match name {
        "" | "[anon]" => "anonymous".into(),
        "[heap]" => "heap".into(),
        n if n.starts_with("[stack") => "stacks".into(),
        n => n.to_string(),
    }
}

/// Rss per group from [`smaps_command`]'s output, largest first (then by name).
pub fn parse_smaps_sums(out: &str) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.lines() {
        let line = line.trim_start();
        let (kib, name) = line.split_once(' ').unwrap_or((line, ""));
        if let Ok(kib) = kib.parse::<u64>() {
            *sums.entry(memory_group(name)).or_default() += kib;
        }
    }
    sorted_groups(sums)
}

fn sorted_groups(sums: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The first `n` groups and the rest summed as `other` (left out when nothing is left).
pub fn top_groups(groups: &[(String, u64)], n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = groups.iter().take(n).cloned().collect();
    let rest: u64 = groups.iter().skip(n).map(|g| g.1).sum();
    if groups.len() > n {
        v.push(("other".into(), rest));
    }
    v
}

/// Services from cairn-init's console lines after switching root: each `starting NAME`
/// (the first) and the first `NAME ready` after it, as offsets from `switch_at`, in the
/// order they started.
pub fn service_timings(lines: &[SerialLine], switch_at: Instant) -> Vec<ServiceTiming> {
    let (Ok(starting), Ok(ready)) = (Regex::new(SERVICE_STARTING), Regex::new(SERVICE_READY))
    else {
        return Vec::new();
    };
    let mut out: Vec<(ServiceTiming, Instant)> = Vec::new();
    for line in lines {
        if let Some(c) = starting.captures(&line.text) {
            let name = &c[1];
            if !out.iter().any(|(s, _)| s.name == name) {
                out.push((
                    ServiceTiming {
                        name: name.to_string(),
                        start: line.at.saturating_duration_since(switch_at),
                        ready: None,
                    },
                    line.at,
                ));
            }
        } else if let Some(c) = ready.captures(&line.text) {
            if let Some((s, at)) = out.iter_mut().find(|(s, _)| s.name == c[1]) {
                if s.ready.is_none() {
                    s.ready = Some(line.at.saturating_duration_since(*at));
                }
            }
        }
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// One service over all runs: medians of its start offset and start → ready (over the runs
/// it became ready in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub name: String,
    pub start: Duration,
    pub ready: Option<Duration>,
    pub ready_runs: usize,
    pub runs: usize,
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

/// One row of the figures table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub figure: String,
    pub median: String,
    pub runs: String,
    /// The row's target and how the median fares against it.
    pub verdict: Option<Verdict>,
}

/// What the generated block of docs/benchmarks.md says about where it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocContext {
    /// `YYYY-mm-dd HH:MM UTC`.
    pub when: String,
    /// `git rev-parse --short HEAD`, or `unknown`.
    pub commit: String,
    /// The command line that made it.
    pub command: String,
    /// The machine's cores.
    pub cores: usize,
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

    /// The median a target judges (NaN without runs).
    pub fn figure(&self, figure: Figure) -> f64 {
        if self.cairn.is_empty() {
            return f64::NAN;
        }
        match figure {
            Figure::RatioApiReady => self.ratio(),
            Figure::RatioApiNetwork => self.ratio_network(),
            Figure::RssInit => {
                median_u64(self.cairn.iter().map(|r| r.rss_init_kib).collect()) as f64
            }
            Figure::RssCairndSetUp => {
                median_u64(self.cairn.iter().map(|r| r.cairnd_set_up.rss_kib).collect()) as f64
            }
        }
    }

    /// Every target judged, in [`TARGETS`] order.
    pub fn verdicts(&self) -> Vec<Verdict> {
        TARGETS
            .iter()
            .map(|t| Verdict::judge(*t, self.figure(t.figure)))
            .collect()
    }

    /// The end of the report: the missed targets, or that all were met.
    pub fn verdict_summary(&self) -> String {
        let missed: Vec<String> = self
            .verdicts()
            .iter()
            .filter(|v| !v.met)
            .map(|v| {
                format!(
                    "{} (median {}, target {})",
                    v.target.name,
                    shown(v),
                    v.target.shown
                )
            })
            .collect();
        if missed.is_empty() {
            "all targets met".into()
        } else {
            format!("targets MISSED: {}", missed.join("; "))
        }
    }

    /// Rows of the figures table.
    pub fn rows(&self) -> Vec<Row> {
        let verdicts = self.verdicts();
        let judged = |f: Figure| verdicts.iter().find(|v| v.target.figure == f).copied();
        let mut rows = vec![Row {
            figure: "QEMU accelerator".to_string(),
            median: self.accel.label().to_string(),
            runs: self.accel.qemu_args(None).join(" "),
            verdict: None,
        }];
        let mut dur = |name: &str, v: Vec<Duration>| {
            let all = v
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / ");
            rows.push(Row {
                figure: name.to_string(),
                median: secs(median(v)),
                runs: all,
                verdict: None,
            });
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
            "cairn-init: switching root → all domains ready (health `\"ready\": true`)",
            c.iter().map(|r| r.switch_to_domains_ready).collect(),
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
        let mut kib = |name: &str, v: Vec<u64>, verdict: Option<Verdict>| {
            let all = v
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(" / ");
            rows.push(Row {
                figure: name.to_string(),
                median: format!("{} KiB", median_u64(v)),
                runs: all,
                verdict,
            });
        };
        kib(
            "RSS of cairn-init (PID 1)",
            c.iter().map(|r| r.rss_init_kib).collect(),
            judged(Figure::RssInit),
        );
        kib(
            "RSS of cairnd, unclaimed (domains started, before setup)",
            c.iter().map(|r| r.rss_cairnd_kib).collect(),
            None,
        );
        kib(
            "RSS of cairnd, idle after setup with the domains running",
            c.iter().map(|r| r.cairnd_set_up.rss_kib).collect(),
            judged(Figure::RssCairndSetUp),
        );
        let threads: Vec<u64> = c.iter().map(|r| r.cairnd_set_up.threads).collect();
        rows.push(Row {
            figure: "threads of cairnd after setup".into(),
            median: median_u64(threads.clone()).to_string(),
            runs: threads
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            verdict: None,
        });
        rows.push(Row {
            figure: "ratio cairn-init (→ API ready) / systemd (→ journald + udevd)".into(),
            median: format!("{:.2}", self.ratio()),
            runs: "medians".into(),
            verdict: judged(Figure::RatioApiReady),
        });
        rows.push(Row {
            figure:
                "ratio cairn-init (→ API answering over the network) / systemd (→ journald + udevd)"
                    .into(),
            median: format!("{:.2}", self.ratio_network()),
            runs: "medians".into(),
            verdict: judged(Figure::RatioApiNetwork),
        });
        rows.push(Row {
            figure: "ratio journald + udevd up: cairn-init / systemd".into(),
            median: format!("{:.2}", self.ratio_services()),
            runs: "medians".into(),
            verdict: None,
        });
        if let Some(b) = self.image_zst_bytes {
            rows.push(Row {
                figure: "compressed image (cairn.img.zst)".into(),
                median: format!("{:.1} MiB", b as f64 / 1048576.0),
                runs: format!("{b} bytes"),
                verdict: None,
            });
        }
        rows
    }

    /// Per service under cairn-init, over the runs, sorted by when it started.
    pub fn service_rows(&self) -> Vec<ServiceRow> {
        let mut names: Vec<String> = Vec::new();
        for r in &self.cairn {
            for s in &r.services {
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
            }
        }
        let mut rows: Vec<ServiceRow> = names
            .into_iter()
            .map(|name| {
                let seen: Vec<&ServiceTiming> = self
                    .cairn
                    .iter()
                    .filter_map(|r| r.services.iter().find(|s| s.name == name))
                    .collect();
                let readies: Vec<Duration> = seen.iter().filter_map(|s| s.ready).collect();
                ServiceRow {
                    start: median(seen.iter().map(|s| s.start).collect()),
                    ready: (!readies.is_empty()).then(|| median(readies.clone())),
                    ready_runs: readies.len(),
                    runs: seen.len(),
                    name,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
        rows
    }

    /// Per domain: (name, states over the runs, median took_ms, reasons).
    pub fn domain_rows(&self) -> Vec<(String, String, Option<u64>, String)> {
        health::DOMAINS
            .iter()
            .filter_map(|name| {
                let seen: Vec<&DomainState> = self
                    .cairn
                    .iter()
                    .filter_map(|r| r.domains.iter().find(|d| d.name == *name))
                    .collect();
                if seen.is_empty() {
                    return None;
                }
                let mut states: Vec<&str> = seen.iter().map(|d| d.state.as_str()).collect();
                let all_same = states.windows(2).all(|w| w[0] == w[1]);
                if all_same {
                    states.truncate(1);
                }
                let took: Vec<u64> = seen.iter().filter_map(|d| d.took_ms).collect();
                let mut reasons: Vec<&str> =
                    seen.iter().filter_map(|d| d.reason.as_deref()).collect();
                reasons.dedup();
                Some((
                    name.to_string(),
                    states.join(" / "),
                    (!took.is_empty()).then(|| median_u64(took)),
                    reasons.join("; "),
                ))
            })
            .collect()
    }

    /// cairnd's memory after setup: median VmRSS, and per group the median Rss over the
    /// runs (top [`MEMORY_GROUPS_SHOWN`] and `other`).
    pub fn memory_rows(&self) -> Vec<(String, u64)> {
        let mut all: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (i, r) in self.cairn.iter().enumerate() {
            for (g, kib) in &r.cairnd_set_up.groups {
                let v = all
                    .entry(g.clone())
                    .or_insert_with(|| vec![0; self.cairn.len()]);
                v[i] += kib;
            }
        }
        let medians: BTreeMap<String, u64> =
            all.into_iter().map(|(g, v)| (g, median_u64(v))).collect();
        top_groups(&sorted_groups(medians), MEMORY_GROUPS_SHOWN)
    }

    /// Plain-text report: figures with their targets, services, domains, memory, verdicts.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cairn-lab bench: {} runs each, {} vCPU, {} MiB, {}, direct-kernel boot",
            self.options.runs, self.options.cpus, self.options.memory_mib, self.accel
        );
        for r in self.rows() {
            let target = r
                .verdict
                .map(|v| format!("  target {}: {}", v.target.shown, v.word()))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<55} {:>10}   ({}){target}",
                r.figure, r.median, r.runs
            );
        }
        let _ = writeln!(
            s,
            "\nServices under cairn-init (medians; start offset from switching root):"
        );
        for r in self.service_rows() {
            let _ = writeln!(
                s,
                "  {:<20} start {:>8}   start → ready {}",
                r.name,
                secs(r.start),
                service_ready(&r)
            );
        }
        let _ = writeln!(s, "\ncairnd's domains (health once none was starting):");
        let domains = self.domain_rows();
        if domains.is_empty() {
            let _ = writeln!(s, "  (health reports no domains: an image before issue 12)");
        }
        for (name, state, took, reason) in domains {
            let _ = writeln!(
                s,
                "  {name:<10} {state:<20} {}{}",
                took.map(|t| format!("{t} ms"))
                    .unwrap_or_else(|| "-".into()),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!("  ({reason})")
                }
            );
        }
        let _ = writeln!(
            s,
            "\ncairnd's memory idle after setup (Rss per mapping, median KiB):"
        );
        for (g, kib) in self.memory_rows() {
            let _ = writeln!(s, "  {kib:>8} KiB  {g}");
        }
        let _ = writeln!(s, "\n{}", self.verdict_summary());
        s
    }

    /// Markdown tables for docs/benchmarks.md: figures (with targets and verdicts), services,
    /// domains, cairnd's memory, and the verdicts.
    pub fn markdown(&self) -> String {
        let mut s =
            String::from("| Figure | Median | Runs | Target | Verdict |\n|---|---|---|---|---|\n");
        for r in self.rows() {
            let (t, v) = r
                .verdict
                .map(|v| (v.target.shown.to_string(), v.word().to_string()))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {t} | {v} |",
                r.figure, r.median, r.runs
            );
        }
        s.push_str(
            "\nServices under cairn-init, by start (medians; offset from `switching root`):\n\n\
             | Service | Start | Start → ready |\n|---|---|---|\n",
        );
        for r in self.service_rows() {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                r.name,
                secs(r.start),
                service_ready(&r)
            );
        }
        s.push_str("\ncairnd's domains (health once none was starting):\n\n");
        let domains = self.domain_rows();
        if domains.is_empty() {
            s.push_str("Health reports no domains (an image before issue 12).\n");
        } else {
            s.push_str("| Domain | State | took_ms (median) | Reason |\n|---|---|---|---|\n");
            for (name, state, took, reason) in domains {
                let _ = writeln!(
                    s,
                    "| {name} | {state} | {} | {reason} |",
                    took.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
                );
            }
        }
        s.push_str(
            "\ncairnd's memory idle after setup, Rss per mapping (median over the runs):\n\n\
             | Mapping | Rss |\n|---|---|\n",
        );
        for (g, kib) in self.memory_rows() {
            let _ = writeln!(s, "| {g} | {kib} KiB |");
        }
        s.push_str("\nTargets (issue 12):\n\n");
        for v in self.verdicts() {
            let _ = writeln!(
                s,
                "- {}: {} — median {} (target {})",
                v.target.name,
                v.word(),
                shown(&v),
                v.target.shown
            );
        }
        let _ = writeln!(s, "\nVerdict: {}.", self.verdict_summary());
        s
    }

    /// The generated section of docs/benchmarks.md (what goes between the markers).
    pub fn doc_section(&self, ctx: &DocContext) -> String {
        format!(
            "### Boot, {} (generated by `cairn-lab bench`)\n\n\
             Commit {}, `{}`, {} cores, {} accelerator, {} runs each ({} vCPU, {} MiB per \
             node, direct-kernel boot). Generated: do not edit by hand; the next bench with \
             `--update-doc` replaces this block.\n\n{}",
            ctx.when,
            ctx.commit,
            ctx.command,
            ctx.cores,
            self.accel,
            self.options.runs,
            self.options.cpus,
            self.options.memory_mib,
            self.markdown()
        )
    }
}

/// A verdict's median as the report shows it.
fn shown(v: &Verdict) -> String {
    match v.target.figure {
        Figure::RssInit | Figure::RssCairndSetUp => format!("{:.0} KiB", v.value),
        Figure::RatioApiReady | Figure::RatioApiNetwork => format!("{:.2}", v.value),
    }
}

fn service_ready(r: &ServiceRow) -> String {
    match r.ready {
        None => "never ready".into(),
        Some(d) if r.ready_runs < r.runs => {
            format!("{} (ready in {} of {} runs)", secs(d), r.ready_runs, r.runs)
        }
        Some(d) => secs(d),
    }
}

/// `doc` with the text between [`DOC_BEGIN`] and [`DOC_END`] replaced by `block`; an error
/// (saying what is wrong) when the markers are missing, repeated or out of order.
pub fn replace_block(doc: &str, block: &str) -> Result<String, String> {
    let begins = doc.matches(DOC_BEGIN).count();
    let ends = doc.matches(DOC_END).count();
    if begins != 1 || ends != 1 {
        return Err(format!(
            "want exactly one `{DOC_BEGIN}` and one `{DOC_END}`, found {begins} and {ends}"
        ));
    }
    let b = doc.find(DOC_BEGIN).unwrap_or_default() + DOC_BEGIN.len();
    let e = doc.find(DOC_END).unwrap_or_default();
    if e < b {
        return Err(format!("`{DOC_END}` comes before `{DOC_BEGIN}`"));
    }
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..b],
        block.trim_end(),
        &doc[e..]
    ))
}

/// Replaces the marked block of the document at `path` with `block`, atomically (a temporary
/// file in the same directory, renamed over it). Nothing is written when the markers are wrong.
pub fn update_doc(path: &Path, block: &str) -> Result<(), LabError> {
    let doc = std::fs::read_to_string(path).map_err(|source| LabError::Io {
        what: "read the document to update",
        path: path.to_path_buf(),
        source,
    })?;
    let new = replace_block(&doc, block).map_err(|detail| LabError::DocMarkers {
        path: path.to_path_buf(),
        detail,
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |source| LabError::Io {
        what: "write the updated document",
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(new.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
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
    fn status_and_smaps_parse_and_group() {
        assert_eq!(
            parse_status("VmRSS:\t   26240 kB\nThreads:\t9\n"),
            Some((26240, 9))
        );
        assert_eq!(parse_status("VmRSS: 1 kB\n"), None);
        let out = "812 \n4000 /usr/sbin/cairnd\n300 [heap]\n12 [stack]\n900 /usr/lib/x86_64-linux-gnu/libc.so.6\n100 /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)\n4 [vdso]\ngarbage\n";
        let g = parse_smaps_sums(out);
        assert_eq!(
            g,
            vec![
                ("/usr/sbin/cairnd".to_string(), 4000),
                ("/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(), 1000),
                ("anonymous".to_string(), 812),
                ("heap".to_string(), 300),
                ("stacks".to_string(), 12),
                ("[vdso]".to_string(), 4),
            ]
        );
        let top = top_groups(&g, 2);
        assert_eq!(top.len(), 3);
        assert_eq!(top[2], ("other".to_string(), 812 + 300 + 12 + 4));
        assert_eq!(top_groups(&g, 12).len(), 6, "no `other` when all are shown");
        assert!(smaps_command("42").ends_with("/proc/42/smaps"));
        assert_eq!(memory_group("[stack:123]"), "stacks");
    }

    fn line(t0: Instant, ms_after: u64, text: &str) -> SerialLine {
        SerialLine {
            at: t0 + ms(ms_after),
            text: text.to_string(),
        }
    }

    #[test]
    fn services_from_console_lines() {
        let t0 = Instant::now();
        let lines = vec![
            line(t0, 0, "cairn-init: switching root"),
            line(t0, 100, "cairn-init: starting journald"),
            line(t0, 150, "cairn-init: starting udevd\r"),
            line(t0, 400, "cairn-init: journald ready"),
            line(t0, 500, "cairn-init: starting cairnd"),
            line(t0, 900, "[    3.2] some kernel line"),
            line(t0, 1000, "cairn-init: udevd ready"),
            line(t0, 1500, "cairn-init: cairnd ready"),
            line(t0, 1600, "cairn-init: starting chronyd"),
            line(t0, 1700, "cairn-init: all services ready"),
            line(t0, 2000, "cairn-init: starting cairnd"),
            line(t0, 2100, "cairn-init: cairnd ready"),
        ];
        let s = service_timings(&lines, t0);
        assert_eq!(
            s,
            vec![
                ServiceTiming {
                    name: "journald".into(),
                    start: ms(100),
                    ready: Some(ms(300))
                },
                ServiceTiming {
                    name: "udevd".into(),
                    start: ms(150),
                    ready: Some(ms(850))
                },
                ServiceTiming {
                    name: "cairnd".into(),
                    start: ms(500),
                    ready: Some(ms(1000))
                },
                ServiceTiming {
                    name: "chronyd".into(),
                    start: ms(1600),
                    ready: None
                },
            ]
        );
    }

    fn run_with(
        api_ready_ms: u64,
        rss_init: u64,
        rss_set_up: u64,
        services: Vec<ServiceTiming>,
    ) -> CairnRun {
        CairnRun {
            qemu_to_kernel: ms(1000),
            kernel_to_stage1: ms(2000),
            stage1_to_switch: ms(500),
            switch_to_stage2: ms(10),
            stage2_to_ready: ms(900),
            ready_to_api: ms(100),
            qemu_to_api: ms(4510),
            switch_to_api: ms(2000),
            switch_to_api_ready: ms(api_ready_ms),
            switch_to_journald_udevd: ms(400),
            switch_to_domains_ready: ms(3000),
            domains: vec![
                DomainState {
                    name: "storage".into(),
                    state: "ready".into(),
                    took_ms: Some(400),
                    reason: None,
                },
                DomainState {
                    name: "vms".into(),
                    state: "absent".into(),
                    took_ms: None,
                    reason: Some("libvirtd is not installed".into()),
                },
            ],
            services,
            rss_init_kib: rss_init,
            rss_cairnd_kib: 9000,
            cairnd_set_up: CairndMemory {
                rss_kib: rss_set_up,
                threads: 7,
                groups: vec![("/usr/sbin/cairnd".into(), 5000), ("heap".into(), 900)],
            },
        }
    }

    fn report(cairn: Vec<CairnRun>) -> BenchReport {
        let s = SystemdRun {
            qemu_to_switch: ms(3500),
            switch_to_journald_udevd: ms(4000),
        };
        BenchReport {
            options: BenchOptions::default(),
            accel: Accel::Tcg,
            image_zst_bytes: Some(150 << 20),
            cairn,
            systemd: vec![s, s, s],
        }
    }

    #[test]
    fn targets_table_and_verdicts() {
        assert_eq!(TARGETS.len(), 4);
        assert!((target(Figure::RatioApiReady).limit - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(target(Figure::RatioApiNetwork).limit, 1.0);
        assert_eq!(target(Figure::RssInit).limit, 4096.0);
        assert_eq!(target(Figure::RssCairndSetUp).limit, 12288.0);
        assert!(Verdict::judge(TARGETS[2], 4096.0).met);
        assert!(!Verdict::judge(TARGETS[2], 4097.0).met);
        assert!(!Verdict::judge(TARGETS[0], f64::NAN).met);
        assert_eq!(Verdict::judge(TARGETS[0], 0.4).word(), "MISSED");

        let met = report(vec![run_with(1000, 2000, 9000, vec![]); 3]);
        assert!(met.verdicts().iter().all(|v| v.met));
        assert_eq!(met.verdict_summary(), "all targets met");

        // ratio 0.5 and cairnd 26 MiB: two missed, named at the end
        let missed = report(vec![run_with(2000, 2000, 26240, vec![]); 3]);
        let v = missed.verdicts();
        assert!(!v[0].met && v[1].met && v[2].met && !v[3].met, "{v:?}");
        let summary = missed.verdict_summary();
        assert!(summary.starts_with("targets MISSED: "), "{summary}");
        assert!(summary.contains("median 0.50, target ≤ 0.33"), "{summary}");
        assert!(summary.contains("median 26240 KiB"), "{summary}");
        assert!(!summary.contains("cairn-init RSS"), "{summary}");
        assert!(missed.text().trim_end().ends_with(&summary));

        assert!(report(vec![]).verdicts().iter().all(|v| !v.met));
    }

    #[test]
    fn report_rows_and_markdown() {
        let svc = |name: &str, start: u64, ready: Option<u64>| ServiceTiming {
            name: name.into(),
            start: ms(start),
            ready: ready.map(ms),
        };
        let r = report(vec![
            run_with(
                1000,
                2000,
                9000,
                vec![
                    svc("journald", 100, Some(300)),
                    svc("cairnd", 500, Some(900)),
                ],
            ),
            run_with(
                1000,
                2000,
                9000,
                vec![
                    svc("cairnd", 450, Some(1100)),
                    svc("journald", 90, Some(200)),
                ],
            ),
            run_with(
                1000,
                2000,
                9000,
                vec![
                    svc("journald", 120, Some(250)),
                    svc("cairnd", 480, None),
                    svc("chronyd", 2000, None),
                ],
            ),
        ]);
        assert!((r.ratio() - 0.25).abs() < 1e-9);
        assert!((r.ratio_network() - 0.5).abs() < 1e-9);
        assert!((r.ratio_services() - 0.1).abs() < 1e-9);
        let rows = r.service_rows();
        assert_eq!(
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["journald", "cairnd", "chronyd"]
        );
        assert_eq!(rows[0].start, ms(100));
        assert_eq!(rows[0].ready, Some(ms(250)));
        assert_eq!((rows[1].ready_runs, rows[1].runs), (2, 3));
        assert_eq!(rows[2].ready, None);

        let md = r.markdown();
        assert!(
            md.contains("|---|---|---|---|---|\n| QEMU accelerator | TCG | -accel tcg |  |  |\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| RSS of cairn-init (PID 1) | 2000 KiB | 2000 / 2000 / 2000 | ≤ 4096 KiB | met |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| RSS of cairnd, idle after setup with the domains running | 9000 KiB | 9000 / 9000 / 9000 | ≤ 12288 KiB | met |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| ratio cairn-init (→ API ready) / systemd (→ journald + udevd) | 0.25 | medians | ≤ 0.33 | met |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| compressed image (cairn.img.zst) | 150.0 MiB |"),
            "{md}"
        );
        assert!(md.contains("| journald | 0.10 s | 0.25 s |"), "{md}");
        assert!(
            md.contains("| cairnd | 0.48 s | 1.10 s (ready in 2 of 3 runs) |"),
            "{md}"
        );
        assert!(md.contains("| chronyd | 2.00 s | never ready |"), "{md}");
        assert!(md.contains("| storage | ready | 400 |  |"), "{md}");
        assert!(
            md.contains("| vms | absent | - | libvirtd is not installed |"),
            "{md}"
        );
        assert!(
            md.contains("| /usr/sbin/cairnd | 5000 KiB |\n| heap | 900 KiB |"),
            "{md}"
        );
        assert!(
            md.contains("all domains ready (health `\"ready\": true`) | 3.00 s"),
            "{md}"
        );
        assert!(md.trim_end().ends_with("Verdict: all targets met."), "{md}");
        let text = r.text();
        assert!(text.contains(", TCG, direct-kernel boot"));
        assert!(text.contains("target ≤ 4096 KiB: met"), "{text}");
        assert!(text.contains("never ready"), "{text}");

        let ctx = DocContext {
            when: "2026-12-07 06:00 UTC".into(),
            commit: "abc1234".into(),
            command: "cairn-lab bench --update-doc docs/benchmarks.md".into(),
            cores: 2,
        };
        let doc = r.doc_section(&ctx);
        assert!(doc.starts_with("### Boot, 2026-12-07 06:00 UTC"), "{doc}");
        assert!(doc.contains("Commit abc1234, `cairn-lab bench --update-doc docs/benchmarks.md`, 2 cores, TCG accelerator"), "{doc}");
        assert!(doc.ends_with(&md));
    }

    #[test]
    fn replaces_the_marked_block() {
        let doc = format!("# B\n\nintro\n{DOC_BEGIN}\nold\ntable\n{DOC_END}\n\n### older\nkept\n");
        let new = replace_block(&doc, "### Boot, new\n\n| a |\n").unwrap();
        assert_eq!(
            new,
            format!(
                "# B\n\nintro\n{DOC_BEGIN}\n### Boot, new\n\n| a |\n{DOC_END}\n\n### older\nkept\n"
            )
        );
        // again: same shape, the block replaced once more
        let again = replace_block(&new, "x").unwrap();
        assert_eq!(
            again,
            format!("# B\n\nintro\n{DOC_BEGIN}\nx\n{DOC_END}\n\n### older\nkept\n")
        );
        assert!(replace_block("no markers", "x")
            .unwrap_err()
            .contains("found 0 and 0"));
        assert!(replace_block(&format!("{DOC_END}\n{DOC_BEGIN}"), "x")
            .unwrap_err()
            .contains("comes before"));
        assert!(replace_block(&format!("{DOC_BEGIN}{DOC_BEGIN}{DOC_END}"), "x").is_err());
    }

    #[test]
    fn benchmarks_md_has_one_boot_block() {
        let path = crate::artifacts::workspace_root().join("docs/benchmarks.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let new = replace_block(&doc, "x").unwrap();
        // the block comes before the older boot sections it supersedes
        let b = new.find(DOC_BEGIN).unwrap();
        let older = new.find("### Boot, re-run 2026-12-07 04:45 UTC").unwrap();
        assert!(b < older);
    }

    #[test]
    fn update_doc_writes_atomically_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("benchmarks.md");
        std::fs::write(&path, format!("a\n{DOC_BEGIN}\nold\n{DOC_END}\nb\n")).unwrap();
        update_doc(&path, "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("a\n{DOC_BEGIN}\nnew\n{DOC_END}\nb\n")
        );
        let entries = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries(), 1, "no temporary file left behind");

        std::fs::write(&path, "no markers here\n").unwrap();
        let err = update_doc(&path, "new").unwrap_err();
        assert!(matches!(err, LabError::DocMarkers { .. }), "{err}");
        assert!(err.to_string().contains("nothing was written"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "no markers here\n");
        assert_eq!(entries(), 1);
        assert!(update_doc(&dir.path().join("missing.md"), "x").is_err());
    }
}
