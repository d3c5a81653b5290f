//! The A/B root slot a node boots from.

use std::fmt;
use std::str::FromStr;

/// One of the two root slots (`cairn-root-a`, `cairn-root-b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Slot {
    /// The first slot: `cairn-root-a`, loader entry `cairn-a`.
    A,
    /// The second slot: `cairn-root-b`, loader entry `cairn-b`.
    B,
}

/// A slot name that is neither `a` nor `b` (the rejected text).
#[derive(Debug, PartialEq, Eq)]
pub struct BadSlot(pub String);

impl fmt::Display for BadSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot must be \"a\" or \"b\", got {:?}", self.0)
    }
}

impl std::error::Error for BadSlot {}

impl Slot {
    /// The lowercase letter used in partition labels, entry names and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// GPT partition label of this slot's root filesystem.
    pub fn root_partlabel(self) -> &'static str {
        match self {
            Slot::A => "cairn-root-a",
            Slot::B => "cairn-root-b",
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Slot {
    type Err = BadSlot;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a" | "A" => Ok(Slot::A),
            "b" | "B" => Ok(Slot::B),
            other => Err(BadSlot(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("a".parse::<Slot>().unwrap(), Slot::A);
        assert_eq!("B".parse::<Slot>().unwrap(), Slot::B);
        assert_eq!(Slot::B.to_string(), "b");
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::B.root_partlabel(), "cairn-root-b");
    }

    #[test]
    fn rejects_other_names() {
        let err = "c".parse::<Slot>().unwrap_err();
        assert_eq!(err.to_string(), "slot must be \"a\" or \"b\", got \"c\"");
        assert!("".parse::<Slot>().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Slot::A).unwrap(), "\"a\"");
        assert_eq!(serde_json::from_str::<Slot>("\"b\"").unwrap(), Slot::B);
    }
}
