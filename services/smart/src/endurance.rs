//! SSD wear on every protocol, normalised to "endurance used %".
//!
//! NVMe reports `percentage_used` and SCSI SSDs the "percentage used endurance indicator"
//! directly. SATA SSDs report wear in a vendor attribute whose meaning depends on its
//! name as much as its number (233 is Intel's Media_Wearout_Indicator but WD's NAND writes
//! on some drives), so attributes are matched by number *and* smartctl's name for them.

use crate::drive_class::DriveClass;
use crate::model::{AtaAttribute, SmartctlOutput};
use serde::{Deserialize, Serialize};

/// How a wear attribute says how much life is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The normalised value is the life left, in percent (100 = new).
    ValueLeft,
    /// The raw value is the life left in percent (the normalised value when the raw one
    /// is not a percentage).
    RawLeft,
}

/// Wear attributes: (id, smartctl's name, how to read it).
const WEAR: &[(u64, &str, Reading)] = &[
    (233, "Media_Wearout_Indicator", Reading::ValueLeft), // Intel, Samsung DC
    (177, "Wear_Leveling_Count", Reading::ValueLeft),     // Samsung
    (202, "Percent_Lifetime_Remain", Reading::ValueLeft), // Crucial/Micron (raw = used)
    (231, "SSD_Life_Left", Reading::RawLeft),             // Kingston/Phison, SandForce
    (173, "Wear_Leveling_Count", Reading::ValueLeft),     // SanDisk, Crucial M4
    (173, "Ave_Block-Erase_Count", Reading::ValueLeft),   // Micron/Crucial
    (169, "Remaining_Lifetime_Perc", Reading::RawLeft),   // Silicon Motion, Transcend
    (245, "Percent_Life_Remaining", Reading::ValueLeft),  // Intel DC (Dell)
];

/// How worn an SSD is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endurance {
    /// Percent of the rated endurance used (may exceed 100 on NVMe).
    pub used_pct: u64,
    /// The drive itself says it is worn out (100 % used, or its wear attribute is at or
    /// below its threshold).
    pub worn_out: bool,
    /// Where the figure comes from, e.g. "attribute 233 Media_Wearout_Indicator".
    pub source: String,
}

fn percent(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v <= 100)
}

/// Life left according to one wear attribute, in percent.
fn left(a: &AtaAttribute, how: Reading) -> Option<u64> {
    let value = percent(a.value);
    match how {
        Reading::ValueLeft => value,
        Reading::RawLeft => percent(a.raw.as_ref().and_then(|r| r.value)).or(value),
    }
}

/// The drive's wear, when it reports one: NVMe, SCSI, or a SATA SSD's wear attribute (the
/// most worn when it has several). Hard disks have none.
pub fn endurance(out: &SmartctlOutput, class: DriveClass) -> Option<Endurance> {
    if let Some(used) = out
        .nvme_smart_health_information_log
        .as_ref()
        .and_then(|n| n.percentage_used)
    {
        return Some(Endurance {
            used_pct: used,
            worn_out: used >= 100,
            source: "NVMe percentage used".into(),
        });
    }
    if let Some(used) = out.scsi_percentage_used_endurance_indicator {
        return Some(Endurance {
            used_pct: used,
            worn_out: used >= 100,
            source: "SCSI percentage used endurance indicator".into(),
        });
    }
    if class != DriveClass::Ssd {
        return None;
    }
    let table = out
        .ata_smart_attributes
        .as_ref()
        .and_then(|a| a.table.as_deref())
        .unwrap_or_default();
    table
        .iter()
        .filter_map(|a| {
            let (id, name) = (a.id?, a.name.as_deref()?);
            let &(_, _, how) = WEAR.iter().find(|(i, n, _)| *i == id && *n == name)?;
            let used = 100 - left(a, how)?;
            let at_threshold = matches!((a.value, a.thresh), (Some(v), Some(t)) if t > 0 && v <= t);
            Some(Endurance {
                used_pct: used,
                worn_out: used >= 100 || at_threshold,
                source: format!("attribute {id} {name}"),
            })
        })
        .max_by_key(|e| (e.worn_out, e.used_pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ata(attrs: &str) -> SmartctlOutput {
        SmartctlOutput::parse(
            format!(r#"{{"rotation_rate":0,"ata_smart_attributes":{{"table":[{attrs}]}}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn each_vendor_attribute_is_read_its_own_way() {
        // Intel 233: the normalised value is the life left; the raw value means nothing.
        let e = endurance(
            &ata(r#"{"id":233,"name":"Media_Wearout_Indicator","value":15,"thresh":0,"raw":{"value":0}}"#),
            DriveClass::Ssd,
        )
        .unwrap();
        assert_eq!((e.used_pct, e.worn_out), (85, false));
        assert_eq!(e.source, "attribute 233 Media_Wearout_Indicator");
        // Micron 202: value 99 left, raw 1 used.
        let e = endurance(
            &ata(r#"{"id":202,"name":"Percent_Lifetime_Remain","value":99,"thresh":1,"raw":{"value":1}}"#),
            DriveClass::Ssd,
        )
        .unwrap();
        assert_eq!(e.used_pct, 1);
        // Kingston 231: the raw value is the life left (the normalised one stays at 100).
        let e = endurance(
            &ata(r#"{"id":231,"name":"SSD_Life_Left","value":100,"thresh":0,"raw":{"value":74}}"#),
            DriveClass::Ssd,
        )
        .unwrap();
        assert_eq!(e.used_pct, 26);
    }

    #[test]
    fn the_same_number_with_another_name_is_not_wear() {
        // WD's 233 on some drives counts NAND gigabytes written; 173 on Kingston is erases.
        let out = ata(
            r#"{"id":233,"name":"NAND_GB_Written_TLC","value":100,"raw":{"value":65406}},
               {"id":173,"name":"MaxAvgErase_Ct","value":100,"raw":{"value":50}}"#,
        );
        assert_eq!(endurance(&out, DriveClass::Ssd), None);
    }

    #[test]
    fn the_most_worn_attribute_wins_and_a_threshold_means_worn_out() {
        let out = ata(
            r#"{"id":169,"name":"Remaining_Lifetime_Perc","value":100,"raw":{"value":96}},
               {"id":177,"name":"Wear_Leveling_Count","value":5,"thresh":5,"raw":{"value":401}}"#,
        );
        let e = endurance(&out, DriveClass::Ssd).unwrap();
        assert_eq!((e.used_pct, e.worn_out), (95, true));
        // A hard disk's attributes are never read as wear.
        assert_eq!(endurance(&out, DriveClass::Hdd), None);
    }

    #[test]
    fn nvme_and_scsi_report_it_directly() {
        let nvme = SmartctlOutput::parse(
            br#"{"nvme_smart_health_information_log":{"percentage_used":104}}"#,
        )
        .unwrap();
        let e = endurance(&nvme, DriveClass::Ssd).unwrap();
        assert_eq!((e.used_pct, e.worn_out), (104, true));
        let scsi =
            SmartctlOutput::parse(br#"{"scsi_percentage_used_endurance_indicator":3}"#).unwrap();
        assert_eq!(endurance(&scsi, DriveClass::Ssd).unwrap().used_pct, 3);
    }
}
