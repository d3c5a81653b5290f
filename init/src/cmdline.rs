//! Kernel command line parameters cairn-init reads (`cairn.slot`, `cairn.init`).

/// A root slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// `a` or `b`.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The slot's root partition label.
    pub fn partlabel(self) -> String {
        format!("cairn-root-{}", self.letter())
    }
}

/// A bad `cairn.slot` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("cairn.slot missing from the kernel command line")]
    SlotMissing,
    #[error("cairn.slot={0:?} is invalid (expected a or b)")]
    SlotInvalid(String),
    #[error("cairn.init={0:?} is not an absolute path")]
    InitInvalid(String),
}

/// The value of the last `key=value` word for `key` (the kernel's own rule: last wins).
pub fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// `cairn.slot=a|b`.
pub fn slot(cmdline: &str) -> Result<Slot, CmdlineError> {
    match param(cmdline, "cairn.slot") {
        None => Err(CmdlineError::SlotMissing),
        Some("a") => Ok(Slot::A),
        Some("b") => Ok(Slot::B),
        Some(other) => Err(CmdlineError::SlotInvalid(other.to_string())),
    }
}

/// `cairn.init=PATH`, default `/sbin/init`.
pub fn init_path(cmdline: &str) -> Result<String, CmdlineError> {
    match param(cmdline, "cairn.init") {
        None => Ok("/sbin/init".to_string()),
        Some(p) if p.starts_with('/') => Ok(p.to_string()),
        Some(p) => Err(CmdlineError::InitInvalid(p.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_parsing() {
        assert_eq!(slot("quiet cairn.slot=b console=ttyS0"), Ok(Slot::B));
        assert_eq!(slot("cairn.slot=a cairn.slot=b"), Ok(Slot::B));
        assert_eq!(slot("quiet"), Err(CmdlineError::SlotMissing));
        assert_eq!(
            slot("cairn.slot=c"),
            Err(CmdlineError::SlotInvalid("c".into()))
        );
        assert_eq!(
            slot("cairn.slot="),
            Err(CmdlineError::SlotInvalid(String::new()))
        );
        assert_eq!(Slot::A.partlabel(), "cairn-root-a");
    }

    #[test]
    fn init_parsing() {
        assert_eq!(init_path("quiet").unwrap(), "/sbin/init");
        assert_eq!(
            init_path("cairn.init=/lib/systemd/systemd").unwrap(),
            "/lib/systemd/systemd"
        );
        assert!(init_path("cairn.init=systemd").is_err());
    }
}
