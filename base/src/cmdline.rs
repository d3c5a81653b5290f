//! Kernel command line parsing (`cairn.slot=`, `cairn.init=`, `cairn.lab=`).

use std::fmt;

use crate::slot::{BadSlot, Slot};

/// Why a command-line option could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// No `cairn.slot=` word: stage 1 does not know which root to mount.
    MissingSlot,
    /// `cairn.slot=` names neither slot.
    BadSlot(BadSlot),
    /// `cairn.init=` is not an absolute path (the rejected value).
    BadInit(String),
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::MissingSlot => {
                f.write_str("cairn.slot missing from the kernel command line")
            }
            CmdlineError::BadSlot(_) => {
                f.write_str("kernel command line option cairn.slot is invalid")
            }
            CmdlineError::BadInit(p) => write!(
                f,
                "kernel command line option cairn.init must be an absolute path, got {p:?}"
            ),
        }
    }
}

impl std::error::Error for CmdlineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CmdlineError::BadSlot(e) => Some(e),
            CmdlineError::MissingSlot | CmdlineError::BadInit(_) => None,
        }
    }
}

/// A parsed kernel command line: words, each either `key=value` or a bare flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    words: Vec<(String, Option<String>)>,
}

impl KernelCmdline {
    /// Split like the kernel does: whitespace separates words, double quotes group
    /// (`key="a b"`) and are removed.
    pub fn parse(text: &str) -> Self {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_quotes = false;
        let mut have_word = false;
        for c in text.chars() {
            match c {
                '"' => {
                    in_quotes = !in_quotes;
                    have_word = true;
                }
                c if c.is_whitespace() && !in_quotes => {
                    if have_word {
                        words.push(split_word(&cur));
                        cur.clear();
                        have_word = false;
                    }
                }
                c => {
                    cur.push(c);
                    have_word = true;
                }
            }
        }
        if have_word {
            words.push(split_word(&cur));
        }
        KernelCmdline { words }
    }

    /// The value of the last `key=value` word for `key` (the kernel's "last one wins").
    pub fn get(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .rev()
            .find(|(k, v)| k == key && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether the exact word (`quiet`, or `cairn.lab=1`) is present.
    pub fn has_word(&self, word: &str) -> bool {
        let (k, v) = split_word(word);
        self.words.iter().any(|(wk, wv)| *wk == k && *wv == v)
    }

    /// The slot stage 1 mounts (`cairn.slot=a|b`, required).
    pub fn slot(&self) -> Result<Slot, CmdlineError> {
        self.get("cairn.slot")
            .ok_or(CmdlineError::MissingSlot)?
            .parse()
            .map_err(CmdlineError::BadSlot)
    }

    /// What stage 1 executes after switch_root (`cairn.init=`, default `/sbin/init`).
    pub fn init(&self) -> Result<&str, CmdlineError> {
        match self.get("cairn.init") {
            None => Ok("/sbin/init"),
            Some(p) if p.starts_with('/') => Ok(p),
            Some(p) => Err(CmdlineError::BadInit(p.to_string())),
        }
    }

    /// Whether this is a lab node (`cairn.lab=1`).
    pub fn lab(&self) -> bool {
        self.get("cairn.lab") == Some("1")
    }
}

fn split_word(w: &str) -> (String, Option<String>) {
    match w.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (w.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical_line() {
        let c = KernelCmdline::parse(
            "BOOT_IMAGE=/cairn/b/vmlinuz cairn.slot=b console=tty0 console=ttyS0,115200 quiet\n",
        );
        assert_eq!(c.slot().unwrap(), Slot::B);
        assert_eq!(c.get("console"), Some("ttyS0,115200"));
        assert!(c.has_word("quiet"));
        assert!(!c.has_word("cairn.lab=1"));
        assert!(!c.lab());
        assert_eq!(c.init().unwrap(), "/sbin/init");
    }

    #[test]
    fn quotes_group_words() {
        let c = KernelCmdline::parse(r#"a="x y" cairn.init="/lib/systemd/systemd" cairn.lab=1"#);
        assert_eq!(c.get("a"), Some("x y"));
        assert_eq!(c.init().unwrap(), "/lib/systemd/systemd");
        assert!(c.lab());
        assert!(c.has_word("cairn.lab=1"));
    }

    #[test]
    fn last_value_wins_and_flags_have_no_value() {
        let c = KernelCmdline::parse("cairn.slot=a cairn.slot=b cairn.slot");
        assert_eq!(c.slot().unwrap(), Slot::B);
    }

    #[test]
    fn missing_and_bad_slot_are_errors() {
        assert_eq!(
            KernelCmdline::parse("quiet").slot(),
            Err(CmdlineError::MissingSlot)
        );
        let err = KernelCmdline::parse("cairn.slot=c").slot().unwrap_err();
        assert!(matches!(err, CmdlineError::BadSlot(_)));
        assert_eq!(
            KernelCmdline::parse("cairn.init=sbin/init").init(),
            Err(CmdlineError::BadInit("sbin/init".into()))
        );
    }

    #[test]
    fn empty_line() {
        let c = KernelCmdline::parse("  \n");
        assert_eq!(c, KernelCmdline::default());
    }

    #[test]
    fn slot_parsing_as_stage_1_needs_it() {
        let slot = |line: &str| KernelCmdline::parse(line).slot();
        assert_eq!(slot("quiet cairn.slot=b console=ttyS0"), Ok(Slot::B));
        assert_eq!(slot("cairn.slot=a cairn.slot=b"), Ok(Slot::B));
        assert_eq!(slot("quiet"), Err(CmdlineError::MissingSlot));
        assert_eq!(
            slot("cairn.slot=c"),
            Err(CmdlineError::BadSlot(BadSlot("c".into())))
        );
        assert_eq!(
            slot("cairn.slot="),
            Err(CmdlineError::BadSlot(BadSlot(String::new())))
        );
        assert_eq!(Slot::A.root_partlabel(), "cairn-root-a");
        assert_eq!(
            CmdlineError::MissingSlot.to_string(),
            "cairn.slot missing from the kernel command line"
        );
    }

    #[test]
    fn init_parsing() {
        let init = |line: &str| KernelCmdline::parse(line).init().map(str::to_string);
        assert_eq!(init("quiet").unwrap(), "/sbin/init");
        assert_eq!(
            init("cairn.init=/lib/systemd/systemd").unwrap(),
            "/lib/systemd/systemd"
        );
        assert!(init("cairn.init=systemd").is_err());
    }
}
