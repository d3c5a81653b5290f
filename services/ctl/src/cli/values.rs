//! Values on cairnctl's command line that clap cannot read by itself: the output format,
//! sizes with binary units, and the specs of a VM's disks and NICs.

use clap::builder::{PossibleValue, TypedValueParser};

/// How a verb prints what the node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Tables and sentences for people.
    Text,
    /// The node's JSON as it came, one document per line, for scripts.
    Json,
}

/// Reads `text` or `json`, offering both to shell completion, and says "expected text or
/// json" otherwise.
#[derive(Debug, Clone, Copy)]
pub struct OutputParser;

impl TypedValueParser for OutputParser {
    type Value = Output;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Output, clap::Error> {
        output.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [PossibleValue::new("text"), PossibleValue::new("json")].into_iter(),
        ))
    }
}

/// `text` or `json`.
fn output(s: &str) -> Result<Output, String> {
    match s {
        "text" => Ok(Output::Text),
        "json" => Ok(Output::Json),
        _ => Err("expected text or json".into()),
    }
}

/// Parse a size: bytes, or a number with K, M, G or T (binary units, optional `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1_024.0),
        Some('M' | 'm') => (&t[..t.len() - 1], 1_048_576.0),
        Some('G' | 'g') => (&t[..t.len() - 1], 1_073_741_824.0),
        Some('T' | 't') => (&t[..t.len() - 1], 1_099_511_627_776.0),
        _ => (t, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 10G, 512M or a byte count)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{s:?} must be a positive size"));
    }
    whole_bytes(n * mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// `bytes` as a whole number of bytes (the fraction dropped); `None` when it does not fit
/// a `u64`.
fn whole_bytes(bytes: f64) -> Option<u64> {
    // 2^64 exactly: every finite f64 below it and not negative fits a u64.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    if !(0.0..LIMIT).contains(&bytes) {
        return None;
    }
    // Checked just above: 0 <= bytes < 2^64, so only the fraction of a byte is dropped.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = bytes as u64;
    Some(whole)
}

/// `--expires-days`: a token's lifetime, 1 to 3650 days.
pub fn expires_days(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n @ 1..=3650) => Ok(n),
        _ => Err("expected a number of days from 1 to 3650".into()),
    }
}

/// `smart test --kind`: `short` or `long`.
pub fn self_test_kind(s: &str) -> Result<String, String> {
    match s {
        "short" | "long" => Ok(s.to_string()),
        _ => Err("expected short or long".into()),
    }
}

/// `vms autostart NAME on|off`.
pub fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?} is not on or off")),
    }
}

/// `--disk POOL:SIZE_GIB[:BUS]`: a new volume for a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisk {
    /// The pool the volume is made in.
    pub pool: String,
    /// Its size, rounded down to whole 512-byte sectors.
    pub size_bytes: u64,
    /// The bus the guest sees it on (the node's default when absent).
    pub bus: Option<String>,
}

/// Parse `POOL:SIZE_GIB[:BUS]` (the size may have a fraction: `0.5`).
pub fn new_disk(s: &str) -> Result<NewDisk, String> {
    let p: Vec<&str> = s.split(':').collect();
    let (pool, size, bus) = match p.as_slice() {
        [pool, size] => (*pool, *size, None),
        [pool, size, bus] => (*pool, *size, Some(bus.to_string())),
        _ => return Err("expected POOL:SIZE_GIB[:BUS]".into()),
    };
    let gib: f64 = size
        .parse()
        .map_err(|_| format!("{size:?} is not a number"))?;
    let bytes = whole_bytes(gib * 1_073_741_824.0)
        .ok_or_else(|| format!("{size:?} is not a size in GiB"))?;
    Ok(NewDisk {
        pool: pool.to_string(),
        size_bytes: bytes / 512 * 512,
        bus,
    })
}

/// `--clone-disk VM:DISK[:SNAPSHOT]`: a copy of another VM's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneDisk {
    /// The VM whose disk is copied.
    pub vm: String,
    /// The disk's index in that VM (0 is the first).
    pub disk: usize,
    /// Copy the disk as it was in this snapshot of the VM, not as it is now.
    pub snapshot: Option<String>,
}

/// Parse `VM:DISK[:SNAPSHOT]`.
pub fn clone_disk(s: &str) -> Result<CloneDisk, String> {
    let p: Vec<&str> = s.split(':').collect();
    let (vm, disk, snapshot) = match p.as_slice() {
        [vm, disk] => (*vm, *disk, None),
        [vm, disk, snap] => (*vm, *disk, Some(snap.to_string())),
        _ => return Err("expected VM:DISK[:SNAPSHOT]".into()),
    };
    Ok(CloneDisk {
        vm: vm.to_string(),
        disk: disk
            .parse()
            .map_err(|_| format!("{disk:?} is not a number"))?,
        snapshot,
    })
}

/// `--iso POOL/SHARE/FILE`: an ISO image on a share, attached as a CD-ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso {
    /// The pool of the share.
    pub pool: String,
    /// The share holding the image.
    pub share: String,
    /// The image's path inside the share (it may have further `/`).
    pub file: String,
}

/// Parse `POOL/SHARE/FILE`.
pub fn iso(s: &str) -> Result<Iso, String> {
    match s.splitn(3, '/').collect::<Vec<_>>().as_slice() {
        [pool, share, file] => Ok(Iso {
            pool: pool.to_string(),
            share: share.to_string(),
            file: file.to_string(),
        }),
        _ => Err("expected POOL/SHARE/FILE".into()),
    }
}

/// `--nic BRIDGE[=MAC]`: a network card on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The bridge the card is plugged into.
    pub bridge: String,
    /// Its MAC address (the node picks one when absent).
    pub mac: Option<String>,
}

/// Parse `BRIDGE[=MAC]`.
pub fn nic(s: &str) -> Result<Nic, String> {
    Ok(match s.split_once('=') {
        Some((b, m)) => Nic {
            bridge: b.to_string(),
            mac: Some(m.to_string()),
        },
        None => Nic {
            bridge: s.to_string(),
            mac: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn sizes_too_large_for_u64_are_refused() {
        assert!(parse_size("20000000T").unwrap_err().contains("too large"));
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn vm_device_specs() {
        assert_eq!(
            new_disk("tank:0.5"),
            Ok(NewDisk {
                pool: "tank".into(),
                size_bytes: 1 << 29,
                bus: None
            })
        );
        assert!(new_disk("tank").is_err());
        assert!(new_disk("tank:-1").is_err());
        assert_eq!(clone_disk("base:1").map(|c| c.disk), Ok(1));
        assert!(clone_disk("base:x").is_err());
        assert_eq!(iso("p/s/a/b.iso").map(|i| i.file), Ok("a/b.iso".into()));
        assert!(iso("p/s").is_err());
        assert_eq!(
            nic("br0=52:54:00:00:00:01").map(|n| n.mac.is_some()),
            Ok(true)
        );
    }
}
