//! A serde model of `smartctl --json -x` output where every field is optional.
//!
//! smartctl's JSON differs across versions (7.0–7.5), device types (ATA, NVMe, SCSI) and
//! bridges, and captures made with fewer options lack whole sections. Every field is an
//! `Option`, and every section is parsed leniently: a section whose shape we do not expect
//! becomes `None` instead of failing the whole document. Raw counters are `u64`,
//! never `f64`: they can exceed 2^53 (a value beyond 2^64 leaves its field `None`).

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Parse a section as `T`, or `None` when it is missing, `null` or shaped differently.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// One `smartctl --json` document.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmartctlOutput {
    #[serde(default, deserialize_with = "lenient")]
    pub smartctl: Option<SmartctlInfo>,
    #[serde(default, deserialize_with = "lenient")]
    pub device: Option<Device>,
    #[serde(default, deserialize_with = "lenient")]
    pub model_family: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub model_name: Option<String>,
    /// SCSI devices name their model here instead of `model_name` (older smartctl).
    #[serde(default, deserialize_with = "lenient")]
    pub scsi_model_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub serial_number: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub wwn: Option<Wwn>,
    #[serde(default, deserialize_with = "lenient")]
    pub firmware_version: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub user_capacity: Option<Capacity>,
    /// Spindle speed; 0 means a solid-state device.
    #[serde(default, deserialize_with = "lenient")]
    pub rotation_rate: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub smart_support: Option<SmartSupport>,
    #[serde(default, deserialize_with = "lenient")]
    pub smart_status: Option<SmartStatus>,
    #[serde(default, deserialize_with = "lenient")]
    pub ata_smart_data: Option<AtaSmartData>,
    #[serde(default, deserialize_with = "lenient")]
    pub ata_smart_attributes: Option<AtaAttributes>,
    #[serde(default, deserialize_with = "lenient")]
    pub ata_smart_self_test_log: Option<AtaSelfTestLog>,
    #[serde(default, deserialize_with = "lenient")]
    pub ata_smart_error_log: Option<AtaErrorLog>,
    #[serde(default, deserialize_with = "lenient")]
    pub ata_sct_status: Option<SctStatus>,
    #[serde(default, deserialize_with = "lenient")]
    pub nvme_smart_health_information_log: Option<NvmeHealth>,
    #[serde(default, deserialize_with = "lenient")]
    pub nvme_composite_temperature_threshold: Option<NvmeTempThreshold>,
    #[serde(default, deserialize_with = "lenient")]
    pub nvme_self_test_log: Option<NvmeSelfTestLog>,
    #[serde(default, deserialize_with = "lenient")]
    pub nvme_optional_admin_commands: Option<NvmeAdminCommands>,
    #[serde(default, deserialize_with = "lenient")]
    pub scsi_grown_defect_list: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub scsi_error_counter_log: Option<ScsiErrorCounterLog>,
    #[serde(default, deserialize_with = "lenient")]
    pub scsi_percentage_used_endurance_indicator: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub temperature: Option<Temperature>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_on_time: Option<PowerOnTime>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_cycle_count: Option<u64>,
    /// Everything else, e.g. the numbered `scsi_self_test_N` sections.
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// The `smartctl` section: version, arguments, exit status, messages.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmartctlInfo {
    #[serde(default, deserialize_with = "lenient")]
    pub version: Option<Vec<u32>>,
    #[serde(default, deserialize_with = "lenient")]
    pub argv: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    pub exit_status: Option<u8>,
    #[serde(default, deserialize_with = "lenient")]
    pub messages: Option<Vec<Message>>,
}

/// A message smartctl printed (`severity`: information, warning or error).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    #[serde(default, deserialize_with = "lenient")]
    pub string: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub severity: Option<String>,
}

/// Which device smartctl talked to and how.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Device {
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub info_name: Option<String>,
    /// The `-d` type: `sat`, `ata`, `nvme`, `scsi`, `usbjmicron`, `usbsunplus`, …
    #[serde(default, deserialize_with = "lenient", rename = "type")]
    pub kind: Option<String>,
    /// `ATA`, `NVMe` or `SCSI`.
    #[serde(default, deserialize_with = "lenient")]
    pub protocol: Option<String>,
}

/// World Wide Name parts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Wwn {
    #[serde(default, deserialize_with = "lenient")]
    pub naa: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub oui: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<u64>,
}

impl Wwn {
    /// The WWN as smartctl prints it in text mode (`5 000cca 26dc1b3f0`).
    pub fn display(&self) -> Option<String> {
        Some(format!(
            "{:x} {:06x} {:09x}",
            self.naa?, self.oui?, self.id?
        ))
    }
}

/// Capacity in bytes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capacity {
    #[serde(default, deserialize_with = "lenient")]
    pub bytes: Option<u64>,
}

/// Whether the device supports SMART and has it on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmartSupport {
    #[serde(default, deserialize_with = "lenient")]
    pub available: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub enabled: Option<bool>,
}

/// The drive's own overall health assessment.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SmartStatus {
    #[serde(default, deserialize_with = "lenient")]
    pub passed: Option<bool>,
}

/// `ata_smart_data`: offline collection and self-test execution status, capabilities.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaSmartData {
    #[serde(default, deserialize_with = "lenient")]
    pub self_test: Option<AtaSelfTestState>,
    #[serde(default, deserialize_with = "lenient")]
    pub capabilities: Option<AtaCapabilities>,
}

/// The self-test execution status and expected durations.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaSelfTestState {
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<AtaTestStatus>,
    #[serde(default, deserialize_with = "lenient")]
    pub polling_minutes: Option<PollingMinutes>,
}

/// Expected self-test durations in minutes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PollingMinutes {
    #[serde(default, deserialize_with = "lenient")]
    pub short: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub extended: Option<u64>,
}

/// ATA SMART capabilities (only what we use).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaCapabilities {
    #[serde(default, deserialize_with = "lenient")]
    pub self_tests_supported: Option<bool>,
}

/// A self-test status byte: high nibble = result (0 ok, 1 aborted by host, 2 interrupted by
/// reset, 3–8 failures, 15 in progress), low nibble = remaining tenths.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaTestStatus {
    #[serde(default, deserialize_with = "lenient")]
    pub value: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub string: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub remaining_percent: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub passed: Option<bool>,
}

/// The ATA attribute table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaAttributes {
    #[serde(default, deserialize_with = "lenient")]
    pub table: Option<Vec<AtaAttribute>>,
}

/// One ATA SMART attribute.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaAttribute {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub value: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub worst: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub thresh: Option<u64>,
    /// `""`, `"now"` or `"past"`.
    #[serde(default, deserialize_with = "lenient")]
    pub when_failed: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub flags: Option<AttributeFlags>,
    #[serde(default, deserialize_with = "lenient")]
    pub raw: Option<RawValue>,
}

/// Attribute flags (only what we use).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AttributeFlags {
    #[serde(default, deserialize_with = "lenient")]
    pub prefailure: Option<bool>,
}

/// An attribute's raw value: the 48-bit number and smartctl's rendering of it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawValue {
    #[serde(default, deserialize_with = "lenient")]
    pub value: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub string: Option<String>,
}

/// The ATA self-test log (`standard`, and `extended` with `-x` on some drives).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaSelfTestLog {
    #[serde(default, deserialize_with = "lenient")]
    pub standard: Option<AtaSelfTestTable>,
    #[serde(default, deserialize_with = "lenient")]
    pub extended: Option<AtaSelfTestTable>,
}

/// A self-test log table, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaSelfTestTable {
    #[serde(default, deserialize_with = "lenient")]
    pub table: Option<Vec<AtaSelfTestEntry>>,
    #[serde(default, deserialize_with = "lenient")]
    pub error_count_total: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub error_count_outdated: Option<u64>,
}

/// One ATA self-test log entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaSelfTestEntry {
    #[serde(default, deserialize_with = "lenient", rename = "type")]
    pub kind: Option<ValueString>,
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<AtaTestStatus>,
    #[serde(default, deserialize_with = "lenient")]
    pub lifetime_hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub lba: Option<u64>,
}

/// A `{value, string}` pair.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ValueString {
    #[serde(default, deserialize_with = "lenient")]
    pub value: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub string: Option<String>,
}

/// The ATA error log summary.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaErrorLog {
    #[serde(default, deserialize_with = "lenient")]
    pub summary: Option<AtaErrorSummary>,
    #[serde(default, deserialize_with = "lenient")]
    pub extended: Option<AtaErrorSummary>,
}

/// How many errors the drive logged.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AtaErrorSummary {
    #[serde(default, deserialize_with = "lenient")]
    pub count: Option<u64>,
}

/// SCT status (`-x`): its temperature section carries the drive's limits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SctStatus {
    #[serde(default, deserialize_with = "lenient")]
    pub temperature: Option<Temperature>,
}

/// The NVMe SMART / health information log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NvmeHealth {
    #[serde(default, deserialize_with = "lenient")]
    pub critical_warning: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub temperature: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub available_spare: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub available_spare_threshold: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub percentage_used: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub data_units_read: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub data_units_written: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub host_reads: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub host_writes: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub controller_busy_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_cycles: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_on_hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub unsafe_shutdowns: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub media_errors: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub num_err_log_entries: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub warning_temp_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub critical_comp_time: Option<u64>,
}

/// The NVMe controller's composite temperature thresholds (smartctl 7.3+ with `-x`/`-c`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NvmeTempThreshold {
    #[serde(default, deserialize_with = "lenient")]
    pub warning: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub critical: Option<i64>,
}

/// Optional NVMe admin commands the controller supports (only what we use).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NvmeAdminCommands {
    /// Device Self-test.
    #[serde(default, deserialize_with = "lenient")]
    pub self_test: Option<bool>,
}

/// The NVMe self-test log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NvmeSelfTestLog {
    #[serde(default, deserialize_with = "lenient")]
    pub current_self_test_operation: Option<ValueString>,
    #[serde(default, deserialize_with = "lenient")]
    pub current_self_test_completion_percent: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub table: Option<Vec<NvmeSelfTestEntry>>,
}

/// One NVMe self-test result (newest first).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NvmeSelfTestEntry {
    #[serde(default, deserialize_with = "lenient")]
    pub self_test_code: Option<ValueString>,
    /// 0 ok, 1–4 and 8–9 aborted, 5–7 failed, 15 unused entry.
    #[serde(default, deserialize_with = "lenient")]
    pub self_test_result: Option<ValueString>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_on_hours: Option<u64>,
}

/// One numbered SCSI self-test result (`scsi_self_test_N`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScsiSelfTest {
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<ValueString>,
    /// 0 ok, 1–2 aborted, 3–7 failed, 15 in progress.
    #[serde(default, deserialize_with = "lenient")]
    pub result: Option<ValueString>,
    #[serde(default, deserialize_with = "lenient")]
    pub power_on_time: Option<PowerOnTime>,
}

/// SCSI read/write/verify error counters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScsiErrorCounterLog {
    #[serde(default, deserialize_with = "lenient")]
    pub read: Option<ScsiErrorCounters>,
    #[serde(default, deserialize_with = "lenient")]
    pub write: Option<ScsiErrorCounters>,
    #[serde(default, deserialize_with = "lenient")]
    pub verify: Option<ScsiErrorCounters>,
}

/// One direction's SCSI error counters (only what we use).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScsiErrorCounters {
    #[serde(default, deserialize_with = "lenient")]
    pub total_uncorrected_errors: Option<u64>,
}

/// Temperatures in °C: current and the drive's limits (the names depend on the protocol:
/// ATA SCT `op_limit_max`/`limit_max`, NVMe `op_limit_max`/`critical_limit_max` in 7.5,
/// SCSI `drive_trip`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Temperature {
    #[serde(default, deserialize_with = "lenient")]
    pub current: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub op_limit_max: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub limit_max: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub critical_limit_max: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub drive_trip: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub lifetime_max: Option<i64>,
}

/// Power-on time.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PowerOnTime {
    #[serde(default, deserialize_with = "lenient")]
    pub hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub minutes: Option<u64>,
}

impl SmartctlOutput {
    /// Parse smartctl's standard output.
    pub fn parse(json: &[u8]) -> Result<SmartctlOutput, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// smartctl's exit status as recorded in the document.
    pub fn exit_status(&self) -> Option<u8> {
        self.smartctl.as_ref()?.exit_status
    }

    /// smartctl's messages, as text.
    pub fn messages(&self) -> Vec<String> {
        self.smartctl
            .as_ref()
            .and_then(|s| s.messages.as_ref())
            .map(|m| m.iter().filter_map(|m| m.string.clone()).collect())
            .unwrap_or_default()
    }

    /// `ATA`, `NVMe`, `SCSI` (or None).
    pub fn protocol(&self) -> Option<&str> {
        self.device.as_ref()?.protocol.as_deref()
    }

    /// The model name, whichever field holds it.
    pub fn model(&self) -> Option<&str> {
        self.model_name
            .as_deref()
            .or(self.scsi_model_name.as_deref())
    }

    /// The ATA attribute with `id`.
    pub fn attribute(&self, id: u64) -> Option<&AtaAttribute> {
        self.ata_smart_attributes
            .as_ref()?
            .table
            .as_ref()?
            .iter()
            .find(|a| a.id == Some(id))
    }

    /// The raw value of ATA attribute `id`.
    pub fn raw(&self, id: u64) -> Option<u64> {
        self.attribute(id)?.raw.as_ref()?.value
    }

    /// Whether the drive says it can run self-tests (`None`: it does not say).
    pub fn self_tests_supported(&self) -> Option<bool> {
        let ata = self
            .ata_smart_data
            .as_ref()
            .and_then(|d| d.capabilities.as_ref())
            .and_then(|c| c.self_tests_supported);
        let nvme = self
            .nvme_optional_admin_commands
            .as_ref()
            .and_then(|c| c.self_test);
        ata.or(nvme)
    }

    /// The numbered SCSI self-test results, newest (0) first.
    pub fn scsi_self_tests(&self) -> Vec<ScsiSelfTest> {
        let mut numbered: Vec<(u32, ScsiSelfTest)> = self
            .rest
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("scsi_self_test_")?.parse().ok()?;
                Some((n, serde_json::from_value(v.clone()).ok()?))
            })
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        numbered.into_iter().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_above_2_pow_53_keep_every_digit() {
        let doc = br#"{"ata_smart_attributes":{"table":[{"id":188,"raw":{"value":281479271743489,"string":"1 1 1"}},{"id":241,"raw":{"value":18446744073709551615}}]},
          "nvme_smart_health_information_log":{"data_units_read":18446744073709551615}}"#;
        let out = SmartctlOutput::parse(doc).unwrap();
        assert_eq!(out.raw(188), Some(281_479_271_743_489));
        assert_eq!(out.raw(241), Some(u64::MAX));
        assert_eq!(
            out.nvme_smart_health_information_log
                .unwrap()
                .data_units_read,
            Some(u64::MAX)
        );
    }

    #[test]
    fn odd_sections_become_none_instead_of_failing() {
        let doc = br#"{"smart_status":"yes","temperature":{"current":"hot"},"rotation_rate":7200,
          "ata_smart_attributes":{"table":[{"id":5,"thresh":null,"raw":{"value":3}}]}}"#;
        let out = SmartctlOutput::parse(doc).unwrap();
        assert!(out.smart_status.is_none());
        assert_eq!(out.temperature.as_ref().unwrap().current, None);
        assert_eq!(out.rotation_rate, Some(7200));
        assert_eq!(out.raw(5), Some(3));
        assert_eq!(out.attribute(5).unwrap().thresh, None);
    }

    #[test]
    fn wwn_renders_like_smartctl() {
        let w = Wwn {
            naa: Some(5),
            oui: Some(0xcca),
            id: Some(0x26dc1b3f0),
        };
        assert_eq!(w.display().as_deref(), Some("5 000cca 26dc1b3f0"));
    }

    #[test]
    fn scsi_self_tests_are_ordered_by_number() {
        let doc = br#"{"scsi_self_test_1":{"result":{"value":7}},"scsi_self_test_0":{"result":{"value":0}},"scsi_self_test_x":{}}"#;
        let out = SmartctlOutput::parse(doc).unwrap();
        let t = out.scsi_self_tests();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].result.as_ref().unwrap().value, Some(0));
        assert_eq!(t[1].result.as_ref().unwrap().value, Some(7));
    }
}
