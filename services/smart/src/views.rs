//! What the API shows of a disk's SMART data: device facts, attributes, the NVMe and SCSI
//! logs and the self-test log, in one shape for every protocol. Raw values and NVMe
//! counters are decimal strings: they can exceed 2^53, which JavaScript numbers cannot hold.

use crate::model::SmartctlOutput;
use serde::{Deserialize, Serialize};

/// Facts about the drive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub model: Option<String>,
    pub family: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub firmware: Option<String>,
    /// `ATA`, `NVMe` or `SCSI`.
    pub protocol: Option<String>,
    /// smartctl's device type (`sat`, `nvme`, `scsi`, `usbjmicron`…).
    pub device_type: Option<String>,
    /// Decimal string (bytes).
    pub capacity_bytes: Option<String>,
    pub rotation_rpm: Option<u64>,
    pub power_on_hours: Option<u64>,
    pub power_cycles: Option<u64>,
    pub smartctl_version: Option<String>,
}

/// One ATA attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeView {
    pub id: u64,
    pub name: String,
    pub value: Option<u64>,
    pub worst: Option<u64>,
    pub thresh: Option<u64>,
    /// `""`, `"now"` or `"past"`.
    pub when_failed: String,
    pub prefailure: bool,
    /// The raw value as a decimal string (exact).
    pub raw_value: Option<String>,
    /// smartctl's rendering of the raw value (e.g. `35 (Min/Max 20/41)`).
    pub raw_string: Option<String>,
    /// The count the raw value stands for, where it packs several counters (Seagate's
    /// 188: `12` for raw 51540393996); absent when the raw value is the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<String>,
}

/// The NVMe health log; counters are decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmeView {
    pub critical_warning: Option<u64>,
    pub temperature_c: Option<i64>,
    pub available_spare: Option<u64>,
    pub available_spare_threshold: Option<u64>,
    pub percentage_used: Option<u64>,
    pub data_units_read: Option<String>,
    pub data_units_written: Option<String>,
    pub host_reads: Option<String>,
    pub host_writes: Option<String>,
    pub controller_busy_time: Option<String>,
    pub power_cycles: Option<String>,
    pub power_on_hours: Option<String>,
    pub unsafe_shutdowns: Option<String>,
    pub media_errors: Option<String>,
    pub num_err_log_entries: Option<String>,
    pub warning_temp_time: Option<u64>,
    pub critical_comp_time: Option<u64>,
}

/// SCSI health counters; decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScsiView {
    pub grown_defects: Option<String>,
    pub uncorrected_read: Option<String>,
    pub uncorrected_write: Option<String>,
    pub uncorrected_verify: Option<String>,
    pub percentage_used: Option<u64>,
}

/// How a self-test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestResult {
    Passed,
    Failed,
    /// Aborted or interrupted (not a failure).
    Aborted,
    Running,
}

/// One self-test log entry, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestView {
    /// `Short offline`, `Extended offline`, …
    pub kind: String,
    /// The drive's words, e.g. `Completed: read failure`.
    pub status: String,
    pub result: TestResult,
    /// Power-on hours when it ran.
    pub hours: Option<u64>,
}

fn s(v: Option<u64>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Device facts from a document.
pub fn device(out: &SmartctlOutput) -> DeviceInfo {
    DeviceInfo {
        model: out.model().map(str::to_string),
        family: out.model_family.clone(),
        serial: out.serial_number.clone(),
        wwn: out.wwn.as_ref().and_then(|w| w.display()),
        firmware: out.firmware_version.clone(),
        protocol: out.protocol().map(str::to_string),
        device_type: out.device.as_ref().and_then(|d| d.kind.clone()),
        capacity_bytes: s(out.user_capacity.as_ref().and_then(|c| c.bytes)),
        rotation_rpm: out.rotation_rate,
        power_on_hours: out.power_on_time.as_ref().and_then(|p| p.hours),
        power_cycles: out.power_cycle_count,
        smartctl_version: out
            .smartctl
            .as_ref()
            .and_then(|s| s.version.as_ref())
            .map(|v| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            }),
    }
}

/// The ATA attribute table.
pub fn attributes(out: &SmartctlOutput) -> Vec<AttributeView> {
    let vendor = crate::packed::vendor_of(out);
    out.ata_smart_attributes
        .as_ref()
        .and_then(|a| a.table.as_ref())
        .map(|t| {
            t.iter()
                .map(|a| AttributeView {
                    id: a.id.unwrap_or_default(),
                    name: a.name.clone().unwrap_or_else(|| "Unknown_Attribute".into()),
                    value: a.value,
                    worst: a.worst,
                    thresh: a.thresh,
                    when_failed: a.when_failed.clone().unwrap_or_default(),
                    prefailure: a.flags.as_ref().and_then(|f| f.prefailure) == Some(true),
                    raw_value: s(a.raw.as_ref().and_then(|r| r.value)),
                    raw_string: a.raw.as_ref().and_then(|r| r.string.clone()),
                    count: crate::packed::count(a, vendor)
                        .filter(|c| Some(*c) != a.raw.as_ref().and_then(|r| r.value))
                        .map(|c| c.to_string()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The NVMe health log.
pub fn nvme(out: &SmartctlOutput) -> Option<NvmeView> {
    let n = out.nvme_smart_health_information_log.as_ref()?;
    Some(NvmeView {
        critical_warning: n.critical_warning,
        temperature_c: n.temperature,
        available_spare: n.available_spare,
        available_spare_threshold: n.available_spare_threshold,
        percentage_used: n.percentage_used,
        data_units_read: s(n.data_units_read),
        data_units_written: s(n.data_units_written),
        host_reads: s(n.host_reads),
        host_writes: s(n.host_writes),
        controller_busy_time: s(n.controller_busy_time),
        power_cycles: s(n.power_cycles),
        power_on_hours: s(n.power_on_hours),
        unsafe_shutdowns: s(n.unsafe_shutdowns),
        media_errors: s(n.media_errors),
        num_err_log_entries: s(n.num_err_log_entries),
        warning_temp_time: n.warning_temp_time,
        critical_comp_time: n.critical_comp_time,
    })
}

/// SCSI counters, when the device is SCSI.
pub fn scsi(out: &SmartctlOutput) -> Option<ScsiView> {
    if out.scsi_error_counter_log.is_none() && out.scsi_grown_defect_list.is_none() {
        return None;
    }
    let log = out.scsi_error_counter_log.as_ref();
    let unc =
        |d: Option<&crate::model::ScsiErrorCounters>| s(d.and_then(|d| d.total_uncorrected_errors));
    Some(ScsiView {
        grown_defects: s(out.scsi_grown_defect_list),
        uncorrected_read: unc(log.and_then(|l| l.read.as_ref())),
        uncorrected_write: unc(log.and_then(|l| l.write.as_ref())),
        uncorrected_verify: unc(log.and_then(|l| l.verify.as_ref())),
        percentage_used: out.scsi_percentage_used_endurance_indicator,
    })
}

/// The self-test log of any protocol, newest first.
pub fn self_tests(out: &SmartctlOutput) -> Vec<SelfTestView> {
    let mut v = Vec::new();
    if let Some(log) = &out.ata_smart_self_test_log {
        let table = log
            .extended
            .as_ref()
            .or(log.standard.as_ref())
            .and_then(|t| t.table.as_deref())
            .unwrap_or_default();
        for e in table {
            let st = e.status.clone().unwrap_or_default();
            let nibble = st.value.unwrap_or_default() >> 4;
            let result = match nibble {
                0 => TestResult::Passed,
                1 | 2 => TestResult::Aborted,
                15 => TestResult::Running,
                _ => TestResult::Failed,
            };
            v.push(SelfTestView {
                kind: e
                    .kind
                    .as_ref()
                    .and_then(|k| k.string.clone())
                    .unwrap_or_else(|| "Self-test".into()),
                status: st.string.unwrap_or_default(),
                result: if st.passed == Some(false) {
                    TestResult::Failed
                } else {
                    result
                },
                hours: e.lifetime_hours,
            });
        }
    }
    if let Some(table) = out
        .nvme_self_test_log
        .as_ref()
        .and_then(|l| l.table.as_deref())
    {
        for e in table {
            let r = e.self_test_result.clone().unwrap_or_default();
            let result = match r.value {
                Some(0) => TestResult::Passed,
                Some(5..=7) => TestResult::Failed,
                Some(15) | None => continue,
                Some(_) => TestResult::Aborted,
            };
            v.push(SelfTestView {
                kind: e
                    .self_test_code
                    .as_ref()
                    .and_then(|k| k.string.clone())
                    .unwrap_or_else(|| "Self-test".into()),
                status: r.string.unwrap_or_default(),
                result,
                hours: e.power_on_hours,
            });
        }
    }
    for t in out.scsi_self_tests() {
        let r = t.result.clone().unwrap_or_default();
        let result = match r.value {
            Some(0) => TestResult::Passed,
            Some(1 | 2) => TestResult::Aborted,
            Some(3..=7) => TestResult::Failed,
            Some(15) => TestResult::Running,
            _ => continue,
        };
        v.push(SelfTestView {
            kind: t
                .code
                .as_ref()
                .and_then(|k| k.string.clone())
                .unwrap_or_else(|| "Self-test".into()),
            status: r.string.unwrap_or_default(),
            result,
            hours: t.power_on_time.as_ref().and_then(|p| p.hours),
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_of_an_ata_document() {
        let doc = br#"{"model_name":"QEMU HARDDISK","serial_number":"QM1","device":{"type":"sat","protocol":"ATA"},
          "smartctl":{"version":[7,3]},"user_capacity":{"bytes":1073741824},
          "ata_smart_attributes":{"table":[{"id":5,"name":"Reallocated_Sector_Ct","value":100,"worst":100,"thresh":36,"when_failed":"","flags":{"prefailure":true},"raw":{"value":281474976710655,"string":"281474976710655"}}]},
          "ata_smart_self_test_log":{"standard":{"table":[
            {"type":{"string":"Short offline"},"status":{"value":0,"string":"Completed without error","passed":true},"lifetime_hours":5},
            {"type":{"string":"Short offline"},"status":{"value":23,"string":"Aborted by host"},"lifetime_hours":4},
            {"type":{"string":"Extended offline"},"status":{"value":121,"string":"Completed: read failure","passed":false},"lifetime_hours":3}]}}}"#;
        let out = SmartctlOutput::parse(doc).unwrap();
        let d = device(&out);
        assert_eq!(d.model.as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(d.capacity_bytes.as_deref(), Some("1073741824"));
        assert_eq!(d.smartctl_version.as_deref(), Some("7.3"));
        let a = attributes(&out);
        assert_eq!(a[0].raw_value.as_deref(), Some("281474976710655"));
        assert_eq!(a[0].count, None, "attribute 5 is not packed");
        assert!(a[0].prefailure);
        let t: Vec<TestResult> = self_tests(&out).iter().map(|t| t.result).collect();
        assert_eq!(
            t,
            [TestResult::Passed, TestResult::Aborted, TestResult::Failed]
        );
        assert!(nvme(&out).is_none() && scsi(&out).is_none());
    }

    #[test]
    fn a_packed_attribute_shows_its_count_beside_the_raw_value() {
        let doc = br#"{"model_name":"ST16000NM001G-2KK103","ata_smart_attributes":{"table":[
          {"id":188,"name":"Command_Timeout","raw":{"value":51540393996,"string":"51540393996"}}]}}"#;
        let a = attributes(&SmartctlOutput::parse(doc).unwrap());
        assert_eq!(a[0].raw_value.as_deref(), Some("51540393996"));
        assert_eq!(a[0].count.as_deref(), Some("12"));
    }

    #[test]
    fn nvme_counters_are_strings() {
        let doc = br#"{"nvme_smart_health_information_log":{"media_errors":9007199254740993,"percentage_used":3},
          "nvme_self_test_log":{"table":[{"self_test_code":{"string":"Short"},"self_test_result":{"value":7,"string":"Failed segments"},"power_on_hours":10}]}}"#;
        let out = SmartctlOutput::parse(doc).unwrap();
        let n = nvme(&out).unwrap();
        assert_eq!(n.media_errors.as_deref(), Some("9007199254740993"));
        assert_eq!(n.percentage_used, Some(3));
        assert_eq!(self_tests(&out)[0].result, TestResult::Failed);
    }
}
