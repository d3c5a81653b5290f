//! systemd-boot entry file names with boot counting (`cairn-b+2-1.conf`).

use cairn_base::Slot;
use std::fmt;

/// The boot counter in an entry's file name: tries left and tries done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootCounter {
    pub left: u32,
    pub done: u32,
}

/// A parsed entry file name: `ID[+LEFT[-DONE]].conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    /// The name without counter and suffix, e.g. `cairn-b`.
    pub id: String,
    /// `None` for a blessed entry (no counter in the name).
    pub counter: Option<BootCounter>,
}

/// A file name that is not a loader entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryNameError {
    #[error("entry file name {0:?} does not end in .conf")]
    NotConf(String),
    #[error("entry file name {0:?} has an empty id")]
    EmptyId(String),
}

impl EntryName {
    /// Parse a file name from `loader/entries/`. A `+` suffix that is not a well-formed
    /// counter is kept as part of the id, as systemd-boot does.
    pub fn parse(file_name: &str) -> Result<Self, EntryNameError> {
        let stem = file_name
            .strip_suffix(".conf")
            .ok_or_else(|| EntryNameError::NotConf(file_name.to_string()))?;
        let (id, counter) = match stem.rsplit_once('+') {
            Some((id, tail)) => match parse_counter(tail) {
                Some(c) => (id, Some(c)),
                None => (stem, None),
            },
            None => (stem, None),
        };
        if id.is_empty() {
            return Err(EntryNameError::EmptyId(file_name.to_string()));
        }
        Ok(EntryName {
            id: id.to_string(),
            counter,
        })
    }

    /// The slot of a `cairn-a` / `cairn-b` entry.
    pub fn slot(&self) -> Option<Slot> {
        self.id.strip_prefix("cairn-")?.parse().ok()
    }

    /// Whether the entry used up its tries (`+0-N`): a slot that failed to boot.
    pub fn is_failed(&self) -> bool {
        matches!(self.counter, Some(BootCounter { left: 0, .. }))
    }

    /// The file name once blessed: the counter dropped.
    pub fn blessed_file_name(&self) -> String {
        format!("{}.conf", self.id)
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.counter {
            None => write!(f, "{}.conf", self.id),
            Some(BootCounter { left, done: 0 }) => write!(f, "{}+{left}.conf", self.id),
            Some(BootCounter { left, done }) => write!(f, "{}+{left}-{done}.conf", self.id),
        }
    }
}

fn parse_counter(tail: &str) -> Option<BootCounter> {
    let (left, done) = match tail.split_once('-') {
        Some((l, d)) => (l, Some(d)),
        None => (tail, None),
    };
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    Some(BootCounter {
        left: num(left)?,
        done: match done {
            Some(d) => num(d)?,
            None => 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryName {
        EntryName::parse(s).unwrap()
    }

    #[test]
    fn counting_entry() {
        let e = p("cairn-b+2-1.conf");
        assert_eq!(e.id, "cairn-b");
        assert_eq!(e.counter, Some(BootCounter { left: 2, done: 1 }));
        assert_eq!(e.slot(), Some(Slot::B));
        assert!(!e.is_failed());
        assert_eq!(e.blessed_file_name(), "cairn-b.conf");
        assert_eq!(e.to_string(), "cairn-b+2-1.conf");
    }

    #[test]
    fn fresh_entry_has_no_done() {
        let e = p("cairn-a+3.conf");
        assert_eq!(e.counter, Some(BootCounter { left: 3, done: 0 }));
        assert_eq!(e.to_string(), "cairn-a+3.conf");
    }

    #[test]
    fn failed_entry() {
        let e = p("cairn-b+0-3.conf");
        assert!(e.is_failed());
        assert_eq!(e.counter.unwrap().done, 3);
    }

    #[test]
    fn blessed_entry() {
        let e = p("cairn-a.conf");
        assert_eq!(e.counter, None);
        assert_eq!(e.slot(), Some(Slot::A));
        assert!(!e.is_failed());
        assert_eq!(e.to_string(), "cairn-a.conf");
    }

    #[test]
    fn malformed_counters_stay_in_id() {
        assert_eq!(p("x+y.conf").id, "x+y");
        assert_eq!(p("x+1-.conf").id, "x+1-");
        assert_eq!(p("x+-1.conf").counter, None);
        assert_eq!(p("other.conf").slot(), None);
        assert_eq!(p("cairn-c.conf").slot(), None);
    }

    #[test]
    fn rejects_non_entries() {
        assert_eq!(
            EntryName::parse("loader.conf.bak"),
            Err(EntryNameError::NotConf("loader.conf.bak".into()))
        );
        assert_eq!(
            EntryName::parse("+3.conf"),
            Err(EntryNameError::EmptyId("+3.conf".into()))
        );
    }
}
