//! Real counts from ATA raw values that pack several counters into 48 bits (Seagate's 188).
//!
//! An attribute's raw value is 48 bits wide, and some vendors put several 16-bit counters
//! in it. Seagate's 188 Command_Timeout is the common case: three counters, the lowest word
//! being the number of commands that timed out. When smartctl's drive database knows the
//! drive it splits the words itself (`raw.string` "0 0 12", highest word first); when it
//! does not, `raw.value` is the whole 48-bit number (51540393996 for 12/12/12). Either way
//! the count is the low word.

use crate::model::{AtaAttribute, SmartctlOutput};
use crate::verdict::Counters;

/// Whose drive it is, as far as raw-value packing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Seagate,
    Other,
}

/// One vendor's packing of one attribute: the count is the low 16-bit word.
struct Packing {
    id: u64,
    vendor: Vendor,
}

/// The packings we know of.
const PACKINGS: &[Packing] = &[
    // Command_Timeout: total / over 5 s / over 7.5 s, one 16-bit word each.
    Packing {
        id: 188,
        vendor: Vendor::Seagate,
    },
];

/// The drive's vendor: the model family, the SCSI vendor, or a Seagate model number
/// (`ST` and a digit, e.g. `ST16000NM001G-2KK103`).
pub fn vendor_of(out: &SmartctlOutput) -> Vendor {
    let family = out.model_family.as_deref().unwrap_or_default();
    let scsi_vendor = out
        .rest
        .get("scsi_vendor")
        .or_else(|| out.rest.get("vendor"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let model = out.model().unwrap_or_default();
    let st_number = model
        .strip_prefix("ST")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if family.to_ascii_lowercase().contains("seagate")
        || scsi_vendor.eq_ignore_ascii_case("seagate")
        || st_number
    {
        Vendor::Seagate
    } else {
        Vendor::Other
    }
}

/// smartctl's rendering of a raw value split into words (`"0 0 12"`), highest first.
fn words(s: &str) -> Option<Vec<u64>> {
    let w: Option<Vec<u64>> = s.split_whitespace().map(|t| t.parse().ok()).collect();
    w.filter(|w| w.len() >= 2)
}

/// Whether attribute `id` of this drive packs several counters into its raw value.
fn packs(id: u64, vendor: Vendor) -> bool {
    PACKINGS.iter().any(|p| p.id == id && p.vendor == vendor)
}

/// The count an attribute's raw value stands for: the low word when smartctl split it or
/// the vendor packs it, else the raw value itself.
pub fn count(a: &AtaAttribute, vendor: Vendor) -> Option<u64> {
    let raw = a.raw.as_ref()?;
    if let Some(w) = raw.string.as_deref().and_then(words) {
        return w.last().copied();
    }
    let value = raw.value?;
    if packs(a.id.unwrap_or_default(), vendor) {
        Some(value & 0xffff)
    } else {
        Some(value)
    }
}

/// The count of ATA attribute `id` ([`count`]).
pub fn counter(out: &SmartctlOutput, id: u64) -> Option<u64> {
    count(out.attribute(id)?, vendor_of(out))
}

/// Counter values stored before packed raw values were read as counts (a baseline
/// acknowledged at 51540393996 "command timeouts"), as the counts they stand for on this
/// drive. Values that fit in 16 bits are counts already and stay.
pub fn migrate(stored: &Counters, out: &SmartctlOutput) -> Counters {
    let mut c = stored.clone();
    let vendor = vendor_of(out);
    let split = |id| {
        out.attribute(id)
            .and_then(|a| a.raw.as_ref())
            .and_then(|r| r.string.as_deref())
            .and_then(words)
            .is_some()
    };
    if packs(188, vendor) || split(188) {
        c.command_timeouts = c.command_timeouts.map(|v| v & 0xffff);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(model: &str, raw: u64, string: &str) -> SmartctlOutput {
        SmartctlOutput::parse(
            format!(
                r#"{{"model_name":"{model}","ata_smart_attributes":{{"table":[
                {{"id":188,"name":"Command_Timeout","raw":{{"value":{raw},"string":"{string}"}}}}]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn seagate_188_is_the_low_word_split_or_not() {
        // 12/12/12 unsplit (smartctl did not know the drive), and "2 2 2" split by smartctl.
        let unsplit = doc("ST16000NM001G-2KK103", 51_540_393_996, "51540393996");
        assert_eq!(vendor_of(&unsplit), Vendor::Seagate);
        assert_eq!(counter(&unsplit, 188), Some(12));
        let split = doc("ST2000NM0008-2F3100", 8_590_065_666, "2 2 2");
        assert_eq!(counter(&split, 188), Some(2));
        let plain = doc("ST3500418AS", 7, "7");
        assert_eq!(counter(&plain, 188), Some(7));
    }

    #[test]
    fn other_vendors_keep_the_raw_value_unless_smartctl_split_it() {
        let wd = doc("WDC WD3200BEVT-60ZCT0", 132, "132");
        assert_eq!(vendor_of(&wd), Vendor::Other);
        assert_eq!(counter(&wd, 188), Some(132));
        let big = doc("Micron_5300_MTFDDAK960TDS", 70_000, "70000");
        assert_eq!(counter(&big, 188), Some(70_000));
        let split = doc("Some SSD", 65_537, "0 1 1");
        assert_eq!(counter(&split, 188), Some(1));
        // A rendering with extra text is not a list of words.
        assert_eq!(words("33 (0 19 0 0 0)"), None);
        assert_eq!(words("12"), None);
    }

    #[test]
    fn a_packed_stored_baseline_becomes_the_count_on_a_drive_that_packs() {
        let stored = Counters {
            command_timeouts: Some(51_540_393_996),
            reallocated_sectors: Some(70_000),
            ..Counters::default()
        };
        let seagate = doc("ST16000NM001G-2KK103", 51_540_393_996, "51540393996");
        let m = migrate(&stored, &seagate);
        assert_eq!(m.command_timeouts, Some(12));
        assert_eq!(
            m.reallocated_sectors,
            Some(70_000),
            "not a packed attribute"
        );
        let other = doc("WDC WD3200BEVT-60ZCT0", 132, "132");
        assert_eq!(migrate(&stored, &other), stored);
    }
}
