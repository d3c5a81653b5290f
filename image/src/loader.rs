//! systemd-boot configuration text: loader.conf, the two boot-counted slot entries and the
//! slots' uncounted "reset network to DHCP" entries.

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

    /// File name of the slot's reset-network entry. It has no boot counter: booting it
    /// neither uses up nor blesses the slot's tries, and cairnd (which blesses only the
    /// entry named by `LoaderBootCountPath` and reports only `*+0-N.conf` as failed) never
    /// renames it.
    pub fn net_reset_entry_file_name(self) -> String {
        format!("cairn-{}-net-reset.conf", self.letter())
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

/// The kernel command-line word that makes cairnd reset the management interface to DHCP
/// (`RESET_WORD` in cairnd's network domain).
pub const NET_RESET_WORD: &str = "cairn.net=reset";

/// Sort key of the reset entries. systemd-boot orders entries with tries left by sort key,
/// then version (descending): `cairn` sorts before `cairn-reset`, so a slot entry with
/// tries left always comes first and stays the default.
pub const NET_RESET_SORT_KEY: &str = "cairn-reset";

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

/// loader/entries/cairn-X-net-reset.conf: the slot's kernel with [`NET_RESET_WORD`], for the
/// console's boot menu (a key held at power-on shows it).
pub fn net_reset_entry(slot: Slot) -> String {
    format!(
        "title Cairn (slot {}, reset network to DHCP)\nsort-key {}\nversion {}\nlinux {}\n\
         initrd {}\noptions {} {}\n",
        slot.letter().to_uppercase(),
        NET_RESET_SORT_KEY,
        slot.version(),
        slot.kernel_path(),
        slot.initrd_path(),
        kernel_options(slot),
        NET_RESET_WORD
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
    fn net_reset_entry_of_slot_b_is_exact() {
        assert_eq!(
            net_reset_entry(Slot::B),
            "title Cairn (slot B, reset network to DHCP)\nsort-key cairn-reset\nversion 1\n\
             linux /cairn/b/vmlinuz\ninitrd /cairn/b/initrd\n\
             options cairn.slot=b console=tty0 console=ttyS0,115200 quiet cairn.net=reset\n"
        );
        assert_eq!(
            Slot::B.net_reset_entry_file_name(),
            "cairn-b-net-reset.conf"
        );
    }

    #[test]
    fn net_reset_entries_never_sort_before_a_slot_entry() {
        // systemd-boot compares sort keys with strcmp: the slots' key must be smaller.
        assert!("cairn" < NET_RESET_SORT_KEY);
        for slot in Slot::ALL {
            let name = slot.net_reset_entry_file_name();
            // No `+N` counter: systemd-boot never renames it, cairnd never blesses it.
            assert!(!name.contains('+'), "{name}");
            assert_ne!(name, slot.entry_file_name());
            // Same kernel and slot as the slot's own entry, the reset word added.
            let normal = entry(slot);
            let reset = net_reset_entry(slot);
            for key in ["version", "linux", "initrd"] {
                let line = |t: &str| t.lines().find(|l| l.starts_with(key)).map(String::from);
                assert_eq!(line(&normal), line(&reset), "{key}");
            }
            assert!(reset.contains(&format!("{} {NET_RESET_WORD}\n", kernel_options(slot))));
            assert!(!normal.contains(NET_RESET_WORD));
        }
    }

    #[test]
    fn loader_conf_has_no_default() {
        let conf = loader_conf();
        assert!(conf.contains("timeout 0"));
        assert!(!conf.contains("default"));
    }
}
