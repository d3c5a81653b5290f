//! systemd-boot configuration text: loader.conf and the two boot-counted slot entries.

/// A boot slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// Lower-case letter used in paths and on the kernel command line.
    pub fn letter(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }

    /// Entry version: the higher version sorts first, so A (2) is preferred over B (1).
    pub fn version(self) -> u32 {
        match self {
            Self::A => 2,
            Self::B => 1,
        }
    }

    /// ESP path of the slot's kernel.
    pub fn kernel_path(self) -> String {
        format!("/cairn/{}/vmlinuz", self.letter())
    }

    /// ESP path of the slot's initramfs.
    pub fn initrd_path(self) -> String {
        format!("/cairn/{}/initrd", self.letter())
    }

    /// Entry file name with 3 boot tries left.
    pub fn entry_file_name(self) -> String {
        format!("cairn-{}+3.conf", self.letter())
    }
}

/// Number of boot tries a fresh entry gets.
pub const BOOT_TRIES: u32 = 3;

/// loader/loader.conf: no menu delay, no command-line editing, no `default` (order decides).
pub fn loader_conf() -> String {
    "timeout 0\neditor no\n".to_string()
}

/// The kernel command line of a slot.
pub fn kernel_options(slot: Slot) -> String {
    format!(
        "cairn.slot={} console=tty0 console=ttyS0,115200 quiet",
        slot.letter()
    )
}

/// loader/entries/cairn-X+3.conf.
pub fn entry(slot: Slot) -> String {
    format!(
        "title Cairn (slot {})\nsort-key cairn\nversion {}\nlinux {}\ninitrd {}\noptions {}\n",
        slot.letter().to_uppercase(),
        slot.version(),
        slot.kernel_path(),
        slot.initrd_path(),
        kernel_options(slot)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_a_matches_the_contract() {
        assert_eq!(
            entry(Slot::A),
            "title Cairn (slot A)\nsort-key cairn\nversion 2\nlinux /cairn/a/vmlinuz\n\
             initrd /cairn/a/initrd\noptions cairn.slot=a console=tty0 console=ttyS0,115200 quiet\n"
        );
        assert_eq!(Slot::A.entry_file_name(), "cairn-a+3.conf");
    }

    #[test]
    fn slot_a_is_preferred_by_version() {
        assert!(Slot::A.version() > Slot::B.version());
        assert!(entry(Slot::B).contains("cairn.slot=b"));
        assert!(entry(Slot::B).contains("linux /cairn/b/vmlinuz"));
    }

    #[test]
    fn loader_conf_has_no_default() {
        let conf = loader_conf();
        assert!(conf.contains("timeout 0"));
        assert!(!conf.contains("default"));
    }
}
