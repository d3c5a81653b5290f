//! Verdicts, reasons and the counters whose growth the health rules watch.

use serde::{Deserialize, Serialize};

/// A disk's overall SMART health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    Warning,
    Failing,
    /// No SMART data could be read; the reasons say why (USB bridge, virtual disk,
    /// permission, truncated output…).
    Unavailable,
}

impl Verdict {
    /// The lower-case name used by the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Warning => "warning",
            Verdict::Failing => "failing",
            Verdict::Unavailable => "unavailable",
        }
    }
}

/// How much one finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Shown, but does not change the verdict.
    Info,
    Warning,
    Failing,
}

/// One finding of the health rules, in words an admin understands. The text is stable from
/// one poll to the next while the condition is unchanged (alerts are raised once per change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `reallocated_sectors`, `temperature`.
    pub code: String,
    pub text: String,
}

impl Reason {
    /// A finding.
    pub fn new(severity: Severity, code: &str, text: impl Into<String>) -> Reason {
        Reason {
            severity,
            code: code.to_string(),
            text: text.into(),
        }
    }
}

/// The verdict the findings add up to (never `Unavailable`: that comes from no data).
pub fn verdict_of(reasons: &[Reason]) -> Verdict {
    match reasons.iter().map(|r| r.severity).max() {
        Some(Severity::Failing) => Verdict::Failing,
        Some(Severity::Warning) => Verdict::Warning,
        _ => Verdict::Healthy,
    }
}

/// The counters the rules compare between samples. `None`: the drive does not report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// ATA 5 Reallocated_Sector_Ct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reallocated_sectors: Option<u64>,
    /// ATA 197 Current_Pending_Sector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_sectors: Option<u64>,
    /// ATA 198 Offline_Uncorrectable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_uncorrectable: Option<u64>,
    /// ATA 187 Reported_Uncorrect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_uncorrect: Option<u64>,
    /// ATA 188 Command_Timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeouts: Option<u64>,
    /// ATA 199 UDMA_CRC_Error_Count (cabling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_errors: Option<u64>,
    /// NVMe media and data integrity errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_errors: Option<u64>,
    /// SCSI grown defect list length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grown_defects: Option<u64>,
    /// SCSI total uncorrected read + write + verify errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected_errors: Option<u64>,
}

/// One watched counter: how to read it from [`Counters`] and how to speak about it.
pub struct CounterRule {
    pub code: &'static str,
    pub get: fn(&Counters) -> Option<u64>,
    pub set: fn(&mut Counters, Option<u64>),
    /// "Reallocated sectors (attribute 5)".
    pub label: &'static str,
}

/// Counters whose every increase above the accepted baseline is a warning (the baseline
/// is 0 until the admin acknowledges the current values).
pub const WATCHED: &[CounterRule] = &[
    CounterRule {
        code: "reallocated_sectors",
        get: |c| c.reallocated_sectors,
        set: |c, v| c.reallocated_sectors = v,
        label: "reallocated sectors (attribute 5)",
    },
    CounterRule {
        code: "pending_sectors",
        get: |c| c.pending_sectors,
        set: |c, v| c.pending_sectors = v,
        label: "sectors pending reallocation (attribute 197)",
    },
    CounterRule {
        code: "offline_uncorrectable",
        get: |c| c.offline_uncorrectable,
        set: |c, v| c.offline_uncorrectable = v,
        label: "offline uncorrectable sectors (attribute 198)",
    },
    CounterRule {
        code: "reported_uncorrect",
        get: |c| c.reported_uncorrect,
        set: |c, v| c.reported_uncorrect = v,
        label: "uncorrectable errors reported to the host (attribute 187)",
    },
    CounterRule {
        code: "command_timeouts",
        get: |c| c.command_timeouts,
        set: |c, v| c.command_timeouts = v,
        label: "command timeouts (attribute 188)",
    },
    CounterRule {
        code: "media_errors",
        get: |c| c.media_errors,
        set: |c, v| c.media_errors = v,
        label: "NVMe media and data integrity errors",
    },
    CounterRule {
        code: "grown_defects",
        get: |c| c.grown_defects,
        set: |c, v| c.grown_defects = v,
        label: "grown defects (SCSI)",
    },
    CounterRule {
        code: "uncorrected_errors",
        get: |c| c.uncorrected_errors,
        set: |c, v| c.uncorrected_errors = v,
        label: "uncorrected read/write/verify errors (SCSI)",
    },
];

/// The CRC counter (199): a warning only when it grows past the value first seen.
pub const CRC: CounterRule = CounterRule {
    code: "crc_errors",
    get: |c| c.crc_errors,
    set: |c, v| c.crc_errors = v,
    label: "interface CRC errors (attribute 199)",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_worst_finding() {
        let i = Reason::new(Severity::Info, "a", "a");
        let w = Reason::new(Severity::Warning, "b", "b");
        let f = Reason::new(Severity::Failing, "c", "c");
        assert_eq!(verdict_of(&[]), Verdict::Healthy);
        assert_eq!(verdict_of(std::slice::from_ref(&i)), Verdict::Healthy);
        assert_eq!(verdict_of(&[i.clone(), w.clone()]), Verdict::Warning);
        assert_eq!(verdict_of(&[w, f, i]), Verdict::Failing);
    }

    #[test]
    fn counter_rules_read_and_write_their_own_field() {
        for rule in WATCHED.iter().chain(std::iter::once(&CRC)) {
            let mut c = Counters::default();
            (rule.set)(&mut c, Some(7));
            assert_eq!((rule.get)(&c), Some(7), "{}", rule.code);
            let others = WATCHED
                .iter()
                .chain(std::iter::once(&CRC))
                .filter(|r| r.code != rule.code)
                .filter(|r| (r.get)(&c).is_some())
                .count();
            assert_eq!(others, 0, "{} leaks into another field", rule.code);
        }
    }
}
