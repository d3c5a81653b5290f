//! ACPI power button: find the "Power Button" input device and read KEY_POWER presses.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Size of `struct input_event` on x86_64 (timeval 16 + type 2 + code 2 + value 4).
pub const INPUT_EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// How often to look for the device until it appears.
pub const SCAN_INTERVAL_MS: u64 = 1000;

/// True if the events in `buf` contain a KEY_POWER press.
pub fn has_power_press(buf: &[u8]) -> bool {
    buf.chunks_exact(INPUT_EVENT_SIZE).any(|e| {
        let ty = u16::from_ne_bytes([e[16], e[17]]);
        let code = u16::from_ne_bytes([e[18], e[19]]);
        let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
        ty == EV_KEY && code == KEY_POWER && value == 1
    })
}

/// `eventN` names whose device is called "Power Button", under a /sys/class/input directory.
pub fn find_power_buttons(sys_class_input: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(sys_class_input) else {
        return found;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") {
            continue;
        }
        let dev_name = std::fs::read_to_string(e.path().join("device/name")).unwrap_or_default();
        if dev_name.trim() == "Power Button" {
            found.push(name);
        }
    }
    found.sort();
    found
}

/// The power button watcher: a bounded poll for the device, then its event files.
pub struct PowerButton {
    sys_class_input: PathBuf,
    dev_input: PathBuf,
    files: Vec<File>,
    next_scan_ms: u64,
}

impl PowerButton {
    pub fn new(sys_class_input: &Path, dev_input: &Path) -> Self {
        PowerButton {
            sys_class_input: sys_class_input.to_path_buf(),
            dev_input: dev_input.to_path_buf(),
            files: Vec::new(),
            next_scan_ms: 0,
        }
    }

    /// When the next scan is due (none once the device is open).
    pub fn next_deadline(&self) -> Option<u64> {
        self.files.is_empty().then_some(self.next_scan_ms)
    }

    /// Looks for the device if due; returns the names opened.
    pub fn scan(&mut self, now_ms: u64) -> Vec<String> {
        if !self.files.is_empty() || now_ms < self.next_scan_ms {
            return Vec::new();
        }
        self.next_scan_ms = now_ms + SCAN_INTERVAL_MS;
        let mut opened = Vec::new();
        for ev in find_power_buttons(&self.sys_class_input) {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(self.dev_input.join(&ev));
            if let Ok(f) = f {
                self.files.push(f);
                opened.push(ev);
            }
        }
        opened
    }

    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.files.iter().map(|f| f.as_fd()).collect()
    }

    /// Reads pending events; true if the power key was pressed.
    pub fn read_pressed(&mut self) -> bool {
        let mut pressed = false;
        let mut buf = [0u8; INPUT_EVENT_SIZE * 16];
        for f in &mut self.files {
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => pressed |= has_power_press(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        pressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: u16, code: u16, value: i32) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&code.to_ne_bytes());
        v.extend_from_slice(&value.to_ne_bytes());
        v
    }

    #[test]
    fn detects_press_not_release() {
        let mut b = event(1, 116, 0);
        b.extend(event(0, 0, 0));
        assert!(!has_power_press(&b));
        b.extend(event(1, 116, 1));
        assert!(has_power_press(&b));
        assert!(!has_power_press(&event(1, 115, 1)));
    }

    #[test]
    fn finds_and_reads_device() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        let dev = d.path().join("dev");
        std::fs::create_dir_all(sys.join("event0/device")).unwrap();
        std::fs::write(
            sys.join("event0/device/name"),
            "AT Translated Set 2 keyboard\n",
        )
        .unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        let mut pb = PowerButton::new(&sys, &dev);
        assert!(pb.scan(0).is_empty());
        assert_eq!(pb.next_deadline(), Some(SCAN_INTERVAL_MS));
        assert!(pb.scan(500).is_empty(), "not due yet");
        std::fs::create_dir_all(sys.join("event3/device")).unwrap();
        std::fs::write(sys.join("event3/device/name"), "Power Button\n").unwrap();
        std::fs::write(dev.join("event3"), event(1, 116, 1)).unwrap();
        assert_eq!(pb.scan(1000), vec!["event3"]);
        assert_eq!(pb.next_deadline(), None);
        assert!(pb.read_pressed());
        assert!(!pb.read_pressed());
    }
}
