//! The health rules: one smartctl document (plus the previous sample and the admin's
//! settings) becomes a verdict with reasons.

pub use crate::drive_class::DriveClass;
use crate::endurance::{self, Endurance};
use crate::model::SmartctlOutput;
use crate::packed;
use crate::verdict::{verdict_of, Counters, Reason, Severity, Verdict, CRC, WATCHED};
use serde::{Deserialize, Serialize};

/// smartctl exit-status bits (smartctl(8), "RETURN VALUES").
pub mod exit_bit {
    /// Command line did not parse.
    pub const COMMAND_LINE: u8 = 1 << 0;
    /// Device open failed, or the device is in a low-power mode (with `-n`).
    pub const OPEN_FAILED: u8 = 1 << 1;
    /// Some SMART or other ATA command failed, or a SMART data checksum was wrong.
    pub const COMMAND_FAILED: u8 = 1 << 2;
    /// SMART status check returned "DISK FAILING".
    pub const DISK_FAILING: u8 = 1 << 3;
    /// Prefail attributes at or below threshold now.
    pub const PREFAIL_NOW: u8 = 1 << 4;
    /// Some attributes were at or below threshold in the past.
    pub const THRESHOLD_PAST: u8 = 1 << 5;
    /// The device error log has entries.
    pub const ERROR_LOG: u8 = 1 << 6;
    /// The self-test log has errors.
    pub const SELF_TEST_ERRORS: u8 = 1 << 7;
}

/// Where the temperature limits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The admin's per-disk setting.
    Setting,
    /// The drive's own limits (ATA SCT, NVMe thresholds, SCSI trip point).
    Drive,
    /// Class defaults (HDD 45/55 °C, SSD 60/70 °C).
    Default,
}

/// Temperature limits in force for a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TempLimits {
    pub warning_c: i64,
    pub critical_c: i64,
    pub source: LimitSource,
}

/// What the rules know besides the document itself.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The storage inventory's idea of the disk (used when smartctl gives no rotation rate).
    pub rotational_hint: bool,
    /// Counter values the admin accepted (and, for 199, the value first seen).
    pub baseline: Option<&'a Counters>,
    /// Per-disk temperature overrides (°C).
    pub warning_c: Option<i64>,
    pub critical_c: Option<i64>,
}

/// The outcome of evaluating one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub temperature_c: Option<i64>,
    pub limits: Option<TempLimits>,
    pub class: Option<DriveClass>,
    pub counters: Counters,
    pub power_on_hours: Option<u64>,
    /// Percent of a running self-test still to do.
    pub self_test_remaining: Option<u8>,
    /// How worn the SSD is (`None`: a hard disk, or the drive does not say).
    #[serde(default)]
    pub endurance: Option<Endurance>,
}

impl Evaluation {
    /// An `unavailable` result with one reason.
    pub fn unavailable(code: &str, text: impl Into<String>) -> Evaluation {
        Evaluation {
            verdict: Verdict::Unavailable,
            reasons: vec![Reason::new(Severity::Info, code, text)],
            temperature_c: None,
            limits: None,
            class: None,
            counters: Counters::default(),
            power_on_hours: None,
            self_test_remaining: None,
            endurance: None,
        }
    }
}

/// What one smartctl run told us.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Data was read and evaluated.
    Evaluated(Box<SmartctlOutput>, Evaluation),
    /// The disk is asleep; `-n standby` skipped it without reading it (keep the previous
    /// sample). `mode` is smartctl's name for the power mode (`STANDBY`, `STANDBY_Y`,
    /// `SLEEP`, `IDLE_A`, `STANDBY BY TIMER`, `LOW POWER`, `STANDBY (OS)`…).
    Standby { mode: String },
    /// No usable data; the evaluation holds the reason.
    Unavailable(Evaluation),
}

/// Interpret one run of `smartctl --json -x -n standby` (stdout and exit code). Never fails:
/// anything unusable is an `Unavailable` outcome naming the reason.
pub fn interpret(stdout: &[u8], stderr: &str, code: Option<i32>, ctx: &Context) -> Outcome {
    let code_text = code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
    interpret_with(stdout, stderr, code, &code_text, ctx)
}

/// Interpret a saved `smartctl --json` output (a file, no process): the same rules as
/// [`interpret`], with the exit status the document records.
pub fn interpret_saved(stdout: &[u8], ctx: &Context) -> Outcome {
    interpret_with(stdout, "", None, "a saved output", ctx)
}

fn interpret_with(
    stdout: &[u8],
    stderr: &str,
    code: Option<i32>,
    code_text: &str,
    ctx: &Context,
) -> Outcome {
    if let Some(mode) = stderr.lines().find_map(power_mode_skip) {
        return Outcome::Standby {
            mode: mode.to_string(),
        };
    }
    if stdout.iter().all(u8::is_ascii_whitespace) {
        let why = if stderr.is_empty() {
            "no output"
        } else {
            stderr
        };
        return Outcome::Unavailable(Evaluation::unavailable(
            "no_output",
            format!("smartctl printed nothing ({code_text}): {why}"),
        ));
    }
    let out = match SmartctlOutput::parse(stdout) {
        Ok(o) => o,
        Err(e) => {
            return Outcome::Unavailable(Evaluation::unavailable(
                "unparsable",
                format!("smartctl's output is truncated or not JSON ({code_text}): {e}"),
            ))
        }
    };
    let status = out
        .exit_status()
        .or_else(|| code.and_then(|c| u8::try_from(c).ok()))
        .unwrap_or(0);
    let messages = out.messages();
    let joined = messages.join("; ");
    let said = |needle: &str| messages.iter().any(|m| m.contains(needle));
    if let Some(mode) = messages.iter().find_map(|m| power_mode_skip(m)) {
        return Outcome::Standby {
            mode: mode.to_string(),
        };
    }
    if said("Unknown USB bridge") {
        return Outcome::Unavailable(Evaluation::unavailable(
            "usb_bridge",
            format!("the disk is behind a USB bridge that does not pass SMART through: {joined}"),
        ));
    }
    if status & (exit_bit::COMMAND_LINE | exit_bit::OPEN_FAILED) != 0 {
        let text = if said("Permission denied") {
            format!("smartctl may not open the device: {joined}")
        } else if joined.is_empty() {
            format!("smartctl could not read the device ({code_text})")
        } else {
            format!("smartctl could not read the device: {joined}")
        };
        return Outcome::Unavailable(Evaluation::unavailable("open_failed", text));
    }
    let has_data = out.smart_status.is_some()
        || out.ata_smart_attributes.is_some()
        || out.nvme_smart_health_information_log.is_some()
        || out.scsi_error_counter_log.is_some()
        || out.scsi_grown_defect_list.is_some();
    let support = out.smart_support.as_ref();
    if !has_data && support.is_some_and(|s| s.available == Some(false)) {
        return Outcome::Unavailable(Evaluation::unavailable(
            "unsupported",
            "the device does not support SMART",
        ));
    }
    // SMART "disabled" on a SCSI drive only turns its informational-exceptions reporting
    // off: smartctl still reads the health status, the defect list, the error counters and
    // the temperature. Whatever health data is there is evaluated.
    if !has_data && support.is_some_and(|s| s.enabled == Some(false)) {
        return Outcome::Unavailable(Evaluation::unavailable(
            "disabled",
            "SMART is disabled on the device and it reports no health data",
        ));
    }
    if !has_data {
        let text = if joined.is_empty() {
            format!("smartctl returned no health data ({code_text})")
        } else {
            format!("smartctl returned no health data: {joined}")
        };
        return Outcome::Unavailable(Evaluation::unavailable("no_data", text));
    }
    let eval = evaluate(&out, status, ctx);
    Outcome::Evaluated(Box::new(out), eval)
}

/// The counters the rules watch, read from a document.
pub fn counters(out: &SmartctlOutput) -> Counters {
    let nvme = out.nvme_smart_health_information_log.as_ref();
    let scsi_unc = out.scsi_error_counter_log.as_ref().map(|l| {
        [&l.read, &l.write, &l.verify]
            .iter()
            .filter_map(|d| d.as_ref()?.total_uncorrected_errors)
            .fold(0u64, u64::saturating_add)
    });
    Counters {
        reallocated_sectors: packed::counter(out, 5),
        pending_sectors: packed::counter(out, 197),
        offline_uncorrectable: packed::counter(out, 198),
        reported_uncorrect: packed::counter(out, 187),
        command_timeouts: packed::counter(out, 188),
        crc_errors: packed::counter(out, 199),
        media_errors: nvme.and_then(|n| n.media_errors),

        grown_defects: out.scsi_grown_defect_list,
        uncorrected_errors: scsi_unc,
    }
}

/// The drive class: smartctl's rotation rate, NVMe is flash, else the inventory's hint.
pub fn class_of(out: &SmartctlOutput, rotational_hint: bool) -> DriveClass {
    match out.rotation_rate {
        Some(0) => DriveClass::Ssd,
        Some(_) => DriveClass::Hdd,
        None if out.protocol() == Some("NVMe") => DriveClass::Ssd,
        None if rotational_hint => DriveClass::Hdd,
        None => DriveClass::Ssd,
    }
}

fn plausible(t: Option<i64>) -> Option<i64> {
    t.filter(|t| (30..=150).contains(t))
}

/// The limits in force: the admin's settings, else the drive's own, else class defaults.
pub fn limits(out: &SmartctlOutput, class: DriveClass, ctx: &Context) -> TempLimits {
    let (dw, dc) = class.default_limits();
    if ctx.warning_c.is_some() || ctx.critical_c.is_some() {
        return TempLimits {
            warning_c: ctx.warning_c.unwrap_or(dw),
            critical_c: ctx.critical_c.unwrap_or(dc),
            source: LimitSource::Setting,
        };
    }
    let t = out.temperature.as_ref();
    let sct = out
        .ata_sct_status
        .as_ref()
        .and_then(|s| s.temperature.as_ref());
    let nvme = out.nvme_composite_temperature_threshold.as_ref();
    let warn = plausible(nvme.and_then(|n| n.warning))
        .or(plausible(t.and_then(|t| t.op_limit_max)))
        .or(plausible(sct.and_then(|t| t.op_limit_max)));
    let crit = plausible(nvme.and_then(|n| n.critical))
        .or(plausible(t.and_then(|t| t.critical_limit_max)))
        .or(plausible(t.and_then(|t| t.limit_max)))
        .or(plausible(sct.and_then(|t| t.limit_max)))
        .or(plausible(t.and_then(|t| t.drive_trip)));
    match (warn, crit) {
        (None, None) => TempLimits {
            warning_c: dw,
            critical_c: dc,
            source: LimitSource::Default,
        },
        (Some(w), Some(c)) if c > w => TempLimits {
            warning_c: w,
            critical_c: c,
            source: LimitSource::Drive,
        },
        // Only a critical point (SCSI trip), or operating limit == absolute limit: warn
        // somewhat before it, never later than the class default would.
        (_, Some(c)) => TempLimits {
            warning_c: dw.min(c - 5),
            critical_c: c,
            source: LimitSource::Drive,
        },
        (Some(w), None) => TempLimits {
            warning_c: w,
            critical_c: w.max(dc),
            source: LimitSource::Drive,
        },
    }
}

/// Evaluate a parsed document against every rule. `status` is smartctl's exit status.
pub fn evaluate(out: &SmartctlOutput, status: u8, ctx: &Context) -> Evaluation {
    let mut reasons = Vec::new();
    let failed_status = out.smart_status.as_ref().and_then(|s| s.passed) == Some(false);
    if failed_status {
        reasons.push(Reason::new(
            Severity::Failing,
            "health_check",
            "the drive's own health check reports FAILING",
        ));
    } else if status & exit_bit::DISK_FAILING != 0 {
        reasons.push(Reason::new(
            Severity::Failing,
            "health_check",
            "smartctl reports DISK FAILING (exit status bit 3)",
        ));
    }
    ata_attribute_rules(out, status, &mut reasons);
    self_test_rules(out, status, &mut reasons);
    nvme_rules(out, &mut reasons);
    let counters = counters(out);
    counter_rules(&counters, ctx.baseline, &mut reasons);
    if status & exit_bit::ERROR_LOG != 0 {
        let n = out
            .ata_smart_error_log
            .as_ref()
            .and_then(|l| l.extended.as_ref().or(l.summary.as_ref()))
            .and_then(|s| s.count);
        let text = match n {
            Some(1) => "the drive's error log has 1 entry".to_string(),
            Some(n) => format!("the drive's error log has {n} entries"),
            None => "the drive's error log has entries".to_string(),
        };
        reasons.push(Reason::new(Severity::Info, "error_log", text));
    }
    if status & exit_bit::COMMAND_FAILED != 0 {
        reasons.push(Reason::new(
            Severity::Info,
            "command_failed",
            "a SMART command to the disk failed (exit status bit 2): some data may be missing",
        ));
    }
    if let Some(kind) = out.device.as_ref().and_then(|d| d.kind.as_deref()) {
        if kind.starts_with("usb") {
            reasons.push(Reason::new(
                Severity::Info,
                "usb_bridge",
                format!("read through a USB bridge ({kind})"),
            ));
        }
    }
    let class = class_of(out, ctx.rotational_hint);
    let lim = limits(out, class, ctx);
    let temperature_c = temperature(out);
    if temperature_c.is_none() && reported_zero(out) {
        reasons.push(Reason::new(
            Severity::Info,
            "no_temperature",
            "the drive reports 0 °C: it has no temperature sensor, so its temperature is not available",
        ));
    }
    if let Some(t) = temperature_c {
        let src = match lim.source {
            LimitSource::Setting => "this disk's setting",
            LimitSource::Drive => "the drive's own limit",
            LimitSource::Default => match class {
                DriveClass::Hdd => "the default for hard disks",
                DriveClass::Ssd => "the default for SSDs",
            },
        };
        if t >= lim.critical_c {
            reasons.push(Reason::new(
                Severity::Failing,
                "temperature",
                format!(
                    "too hot: at or above the critical limit of {} °C ({src})",
                    lim.critical_c
                ),
            ));
        } else if t >= lim.warning_c {
            reasons.push(Reason::new(
                Severity::Warning,
                "temperature",
                format!(
                    "hot: at or above the warning limit of {} °C ({src})",
                    lim.warning_c
                ),
            ));
        }
    }
    let endurance = endurance::endurance(out, class);
    if let Some(e) = &endurance {
        endurance_rule(e, &mut reasons);
    }
    if out.smart_support.as_ref().and_then(|s| s.enabled) == Some(false) {
        let text = if out.protocol() == Some("SCSI") {
            "SMART (informational exceptions) reporting is turned off on the drive; the health data it still reports was evaluated"
        } else {
            "SMART is turned off on the drive; the health data it still reports was evaluated"
        };
        reasons.push(Reason::new(Severity::Info, "smart_disabled", text));
    }
    let self_test_remaining = running_self_test(out);
    if let Some(r) = self_test_remaining {
        reasons.push(Reason::new(
            Severity::Info,
            "self_test_running",
            format!("a self-test is running ({r}% remaining)"),
        ));
    }
    Evaluation {
        verdict: verdict_of(&reasons),
        reasons,
        temperature_c,
        limits: Some(lim),
        class: Some(class),
        counters,
        power_on_hours: out.power_on_time.as_ref().and_then(|p| p.hours),
        self_test_remaining,
        endurance,
    }
}

/// The power mode named in smartctl's "Device is in STANDBY_Y mode, exit(2)": `-n` skipped
/// a sleeping device without reading it (ataprint, scsiprint and smartctl.cpp all print
/// this one shape, whatever the mode is called).
pub fn power_mode_skip(message: &str) -> Option<&str> {
    let (mode, _) = message
        .trim()
        .strip_prefix("Device is in ")?
        .split_once(" mode, exit(")?;
    Some(mode).filter(|m| !m.is_empty())
}

/// A plausible reading, else `None`: drives without a sensor report 0 °C (and NVMe 0 K,
/// which smartctl shows as -273 °C).
fn sensor(t: Option<i64>) -> Option<i64> {
    t.filter(|t| *t != 0 && *t > -60)
}

/// The current temperature in °C, or `None` when the drive has no sensor.
pub fn temperature(out: &SmartctlOutput) -> Option<i64> {
    sensor(out.temperature.as_ref().and_then(|t| t.current)).or_else(|| {
        sensor(
            out.nvme_smart_health_information_log
                .as_ref()
                .and_then(|n| n.temperature),
        )
    })
}

/// Whether the drive reported a temperature of 0 °C (no sensor) rather than none at all.
fn reported_zero(out: &SmartctlOutput) -> bool {
    out.temperature.as_ref().and_then(|t| t.current) == Some(0)
        || out
            .nvme_smart_health_information_log
            .as_ref()
            .and_then(|n| n.temperature)
            == Some(0)
}

/// One rule for SSD wear on every protocol: a warning from 90 % of the rated endurance,
/// failing when the drive says it is worn out. The text names the threshold, not the
/// current figure, so it stays the same from one poll (and one percent) to the next.
fn endurance_rule(e: &Endurance, reasons: &mut Vec<Reason>) {
    if e.worn_out {
        reasons.push(Reason::new(
            Severity::Failing,
            "endurance",
            format!(
                "the SSD is worn out: its rated endurance is used up ({})",
                e.source
            ),
        ));
    } else if e.used_pct >= 90 {
        reasons.push(Reason::new(
            Severity::Warning,
            "endurance",
            format!(
                "the SSD has used 90 % or more of its rated endurance ({})",
                e.source
            ),
        ));
    }
}

fn ata_attribute_rules(out: &SmartctlOutput, status: u8, reasons: &mut Vec<Reason>) {
    let table = out
        .ata_smart_attributes
        .as_ref()
        .and_then(|a| a.table.as_deref())
        .unwrap_or_default();
    let mut failing_now = false;
    for a in table {
        let name = a.name.as_deref().unwrap_or("Unknown_Attribute");
        let id = a.id.unwrap_or_default();
        match a.when_failed.as_deref() {
            Some("now") => {
                failing_now = true;
                let prefail = a.flags.as_ref().and_then(|f| f.prefailure) != Some(false);
                reasons.push(Reason::new(
                    if prefail {
                        Severity::Failing
                    } else {
                        Severity::Warning
                    },
                    "attribute_failing",
                    format!(
                        "attribute {id} {name} is at or below its threshold now ({} ≤ {})",
                        a.value.map_or("?".into(), |v| v.to_string()),
                        a.thresh.map_or("?".into(), |v| v.to_string()),
                    ),
                ));
            }
            Some("past") => reasons.push(Reason::new(
                Severity::Info,
                "attribute_failed_past",
                format!("attribute {id} {name} was at or below its threshold in the past"),
            )),
            _ => {}
        }
    }
    if status & exit_bit::PREFAIL_NOW != 0 && !failing_now {
        reasons.push(Reason::new(
            Severity::Failing,
            "attribute_failing",
            "smartctl found pre-failure attributes at or below their thresholds (exit status bit 4)",
        ));
    }
}

/// ATA status nibble: 0 ok, 1 aborted by host, 2 interrupted by reset, 15 in progress;
/// 3–8 are failures.
fn ata_test_failed(status_value: u64) -> bool {
    (3..=8).contains(&(status_value >> 4))
}

fn self_test_rules(out: &SmartctlOutput, status: u8, reasons: &mut Vec<Reason>) {
    let mut failures: Vec<String> = Vec::new();
    let mut newest_failed = false;
    let mut newest_seen = false;
    if let Some(log) = &out.ata_smart_self_test_log {
        let table = log
            .extended
            .as_ref()
            .or(log.standard.as_ref())
            .and_then(|t| t.table.as_deref())
            .unwrap_or_default();
        for e in table {
            let Some(st) = &e.status else { continue };
            let v = st.value.unwrap_or_default();
            let nibble = v >> 4;
            if nibble == 1 || nibble == 2 || nibble == 15 {
                continue; // aborted, interrupted or running: not a result
            }
            let failed = st.passed == Some(false) || ata_test_failed(v);
            if !newest_seen {
                newest_seen = true;
                newest_failed = failed;
            }
            if failed {
                failures.push(format!(
                    "{} \"{}\" at {} h",
                    e.kind
                        .as_ref()
                        .and_then(|k| k.string.as_deref())
                        .unwrap_or("self-test"),
                    st.string.as_deref().unwrap_or("failed"),
                    e.lifetime_hours.map_or("?".into(), |h| h.to_string()),
                ));
            }
        }
    }
    if let Some(table) = out
        .nvme_self_test_log
        .as_ref()
        .and_then(|l| l.table.as_deref())
    {
        for e in table {
            let Some(r) = e.self_test_result.as_ref().and_then(|r| r.value) else {
                continue;
            };
            if !(0..=7).contains(&r) || (1..=4).contains(&r) {
                continue; // aborted or unused entry
            }
            let failed = (5..=7).contains(&r);
            if !newest_seen {
                newest_seen = true;
                newest_failed = failed;
            }
            if failed {
                failures.push(format!(
                    "{} \"{}\" at {} h",
                    e.self_test_code
                        .as_ref()
                        .and_then(|k| k.string.as_deref())
                        .unwrap_or("self-test"),
                    e.self_test_result
                        .as_ref()
                        .and_then(|r| r.string.as_deref())
                        .unwrap_or("failed"),
                    e.power_on_hours.map_or("?".into(), |h| h.to_string()),
                ));
            }
        }
    }
    for t in out.scsi_self_tests() {
        let Some(r) = t.result.as_ref().and_then(|r| r.value) else {
            continue;
        };
        if r == 1 || r == 2 || r > 7 {
            continue; // aborted, in progress or reserved
        }
        let failed = (3..=7).contains(&r);
        if !newest_seen {
            newest_seen = true;
            newest_failed = failed;
        }
        if failed {
            failures.push(format!(
                "self-test \"{}\" at {} h",
                t.result
                    .as_ref()
                    .and_then(|r| r.string.as_deref())
                    .unwrap_or("failed"),
                t.power_on_time
                    .as_ref()
                    .and_then(|p| p.hours)
                    .map_or("?".into(), |h| h.to_string()),
            ));
        }
    }
    if newest_failed {
        reasons.push(Reason::new(
            Severity::Failing,
            "self_test_failed",
            format!("the most recent self-test failed: {}", failures[0]),
        ));
    } else if !failures.is_empty() || status & exit_bit::SELF_TEST_ERRORS != 0 {
        let text = if failures.is_empty() {
            "the self-test log contains errors (exit status bit 7)".to_string()
        } else {
            format!(
                "the self-test log has {} failed test{} (newest: {})",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" },
                failures[0]
            )
        };
        let severity = if status & exit_bit::SELF_TEST_ERRORS != 0 {
            Severity::Failing
        } else {
            // An older failure that a newer passing test has superseded.
            Severity::Info
        };
        reasons.push(Reason::new(severity, "self_test_log", text));
    }
}

fn nvme_rules(out: &SmartctlOutput, reasons: &mut Vec<Reason>) {
    let Some(n) = &out.nvme_smart_health_information_log else {
        return;
    };
    let cw = n.critical_warning.unwrap_or_default();
    const BITS: &[(u64, Severity, &str)] = &[
        (
            0x01,
            Severity::Failing,
            "available spare is below its threshold",
        ),
        (
            0x02,
            Severity::Warning,
            "temperature is outside the drive's limits",
        ),
        (
            0x04,
            Severity::Failing,
            "reliability is degraded by media or internal errors",
        ),
        (
            0x08,
            Severity::Failing,
            "the media has been placed in read-only mode",
        ),
        (
            0x10,
            Severity::Failing,
            "the volatile memory backup device has failed",
        ),
        (
            0x20,
            Severity::Failing,
            "the persistent memory region has become read-only",
        ),
    ];
    for (bit, severity, what) in BITS {
        if cw & bit != 0 {
            reasons.push(Reason::new(
                *severity,
                "nvme_critical_warning",
                format!("NVMe critical warning (0x{bit:02x}): {what}"),
            ));
        }
    }
    if cw & !0x3f != 0 {
        reasons.push(Reason::new(
            Severity::Failing,
            "nvme_critical_warning",
            format!("NVMe critical warning 0x{cw:02x} has bits this version does not know"),
        ));
    }
    if let (Some(spare), Some(thresh)) = (n.available_spare, n.available_spare_threshold) {
        if spare < thresh && cw & 0x01 == 0 {
            reasons.push(Reason::new(
                Severity::Failing,
                "nvme_spare",
                format!("available spare {spare}% is below the threshold of {thresh}%"),
            ));
        }
    }
}

fn counter_rules(now: &Counters, baseline: Option<&Counters>, reasons: &mut Vec<Reason>) {
    let zero = Counters::default();
    let base = baseline.unwrap_or(&zero);
    for rule in WATCHED {
        let Some(v) = (rule.get)(now) else { continue };
        let accepted = (rule.get)(base).unwrap_or(0);
        if v > accepted {
            let text = if accepted == 0 {
                format!("{v} {}", rule.label)
            } else {
                format!("{v} {} (up from {accepted} accepted)", rule.label)
            };
            reasons.push(Reason::new(Severity::Warning, rule.code, text));
        }
    }
    if let Some(v) = (CRC.get)(now) {
        match (CRC.get)(base) {
            Some(first) if v > first => reasons.push(Reason::new(
                Severity::Warning,
                CRC.code,
                format!(
                    "{v} {} (up from {first}): check the cable and connector",
                    CRC.label
                ),
            )),
            _ if v > 0 => reasons.push(Reason::new(
                Severity::Info,
                CRC.code,
                format!("{v} {} recorded before monitoring began", CRC.label),
            )),
            _ => {}
        }
    }
}

/// Percent still to do of a self-test the drive is running now.
pub fn running_self_test(out: &SmartctlOutput) -> Option<u8> {
    if let Some(st) = out
        .ata_smart_data
        .as_ref()
        .and_then(|d| d.self_test.as_ref())
        .and_then(|s| s.status.as_ref())
    {
        if st.value.unwrap_or_default() >> 4 == 15 {
            let rem = st
                .remaining_percent
                .unwrap_or_else(|| (st.value.unwrap_or_default() & 0xf) * 10);
            return Some(rem.min(100) as u8);
        }
    }
    if let Some(log) = &out.nvme_self_test_log {
        let op = log
            .current_self_test_operation
            .as_ref()
            .and_then(|o| o.value)
            .unwrap_or_default();
        if op != 0 {
            let done = log.current_self_test_completion_percent.unwrap_or_default();
            return Some(100u64.saturating_sub(done).min(100) as u8);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_power_mode_line_names_its_mode_and_nothing_else_does() {
        assert_eq!(
            power_mode_skip("Device is in STANDBY_Y mode, exit(2)"),
            Some("STANDBY_Y")
        );
        assert_eq!(
            power_mode_skip("Device is in STANDBY (OS) mode, exit(2)\n"),
            Some("STANDBY (OS)")
        );
        assert_eq!(
            power_mode_skip("Device is in IDLE_C BY TIMER mode, exit(3)"),
            Some("IDLE_C BY TIMER")
        );
        for other in [
            "Smartctl open device: /dev/sdb failed: No such device",
            "Device is in  mode, exit(2)",
            "Device placed in STANDBY mode",
        ] {
            assert_eq!(power_mode_skip(other), None, "{other}");
        }
    }

    #[test]
    fn zero_degrees_is_no_sensor_and_nvme_fills_in() {
        let t = |doc: &[u8]| temperature(&SmartctlOutput::parse(doc).unwrap());
        assert_eq!(t(br#"{"temperature":{"current":0}}"#), None);
        assert_eq!(t(br#"{"temperature":{"current":-273}}"#), None);
        assert_eq!(t(br#"{"temperature":{"current":-5}}"#), Some(-5));
        assert_eq!(
            t(br#"{"temperature":{"current":0},"nvme_smart_health_information_log":{"temperature":41}}"#),
            Some(41)
        );
    }
}
