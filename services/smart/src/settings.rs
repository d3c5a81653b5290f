//! Per-disk overrides: polling and self-tests on or off, temperature limits, test intervals.

use crate::error::SmartError;
use serde::{Deserialize, Serialize};

/// What the admin set for one disk. Defaults: polled, self-tested (short every 7 days, long
/// every 30), temperature limits from the drive or the class defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSettings {
    /// Poll SMART data (off: the disk is never touched by the poller).
    #[serde(default = "yes")]
    pub polling: bool,
    /// Run the scheduled self-tests.
    #[serde(default = "yes")]
    pub self_tests: bool,
    /// Warning temperature (°C); `null`: the drive's own limit or the class default.
    #[serde(default)]
    pub temperature_warning_c: Option<i64>,
    /// Critical temperature (°C); `null`: the drive's own limit or the class default.
    #[serde(default)]
    pub temperature_critical_c: Option<i64>,
    /// Days between short self-tests.
    #[serde(default = "short_days")]
    pub short_test_days: u32,
    /// Days between long (extended) self-tests.
    #[serde(default = "long_days")]
    pub long_test_days: u32,
}

fn yes() -> bool {
    true
}
fn short_days() -> u32 {
    7
}
fn long_days() -> u32 {
    30
}

impl Default for DiskSettings {
    fn default() -> Self {
        DiskSettings {
            polling: true,
            self_tests: true,
            temperature_warning_c: None,
            temperature_critical_c: None,
            short_test_days: short_days(),
            long_test_days: long_days(),
        }
    }
}

impl DiskSettings {
    /// Check every field; the error names the first field at fault and why.
    pub fn validate(&self) -> Result<(), SmartError> {
        if let Some(w) = self.temperature_warning_c {
            if !(20..=100).contains(&w) {
                return Err(SmartError::invalid(
                    "temperature_warning_c",
                    format!("{w} °C is outside 20–100 °C"),
                ));
            }
        }
        if let Some(c) = self.temperature_critical_c {
            if !(25..=110).contains(&c) {
                return Err(SmartError::invalid(
                    "temperature_critical_c",
                    format!("{c} °C is outside 25–110 °C"),
                ));
            }
        }
        if let (Some(w), Some(c)) = (self.temperature_warning_c, self.temperature_critical_c) {
            if c <= w {
                return Err(SmartError::invalid(
                    "temperature_critical_c",
                    format!("must be above the warning temperature ({w} °C)"),
                ));
            }
        }
        if !(1..=90).contains(&self.short_test_days) {
            return Err(SmartError::invalid(
                "short_test_days",
                format!("{} is outside 1–90 days", self.short_test_days),
            ));
        }
        if !(1..=365).contains(&self.long_test_days) {
            return Err(SmartError::invalid(
                "long_test_days",
                format!("{} is outside 1–365 days", self.long_test_days),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(s: DiskSettings) -> Option<String> {
        s.validate()
            .err()
            .and_then(|e| e.field().map(str::to_string))
    }

    #[test]
    fn defaults_are_valid_and_fill_missing_fields() {
        assert!(DiskSettings::default().validate().is_ok());
        let s: DiskSettings = serde_json::from_str(r#"{"polling":false}"#).unwrap();
        assert_eq!(
            s,
            DiskSettings {
                polling: false,
                ..DiskSettings::default()
            }
        );
        assert!(serde_json::from_str::<DiskSettings>(r#"{"polling_x":1}"#).is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let d = DiskSettings::default;
        for (s, field) in [
            (
                DiskSettings {
                    temperature_warning_c: Some(10),
                    ..d()
                },
                "temperature_warning_c",
            ),
            (
                DiskSettings {
                    temperature_critical_c: Some(200),
                    ..d()
                },
                "temperature_critical_c",
            ),
            (
                DiskSettings {
                    temperature_warning_c: Some(50),
                    temperature_critical_c: Some(50),
                    ..d()
                },
                "temperature_critical_c",
            ),
            (
                DiskSettings {
                    short_test_days: 0,
                    ..d()
                },
                "short_test_days",
            ),
            (
                DiskSettings {
                    long_test_days: 400,
                    ..d()
                },
                "long_test_days",
            ),
        ] {
            assert_eq!(field_of(s).as_deref(), Some(field));
        }
    }
}
