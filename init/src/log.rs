//! cairn-init's own log lines: `cairn-init: …` on the console and `<6>cairn-init: …` in /dev/kmsg.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

struct Sinks {
    console: Option<File>,
    kmsg: Option<File>,
}

static SINKS: Mutex<Option<Sinks>> = Mutex::new(None);

/// Longest line sent to /dev/kmsg (the kernel rejects records over ~1 KiB).
const KMSG_MAX: usize = 900;

/// Opens the log sinks: the console device (or file) and, if `kmsg`, /dev/kmsg.
/// Sinks that cannot be opened are skipped; lines then go to stderr.
pub fn init(console: &Path, kmsg: bool) {
    let console = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console)
        .ok();
    let kmsg = if kmsg {
        OpenOptions::new().write(true).open("/dev/kmsg").ok()
    } else {
        None
    };
    if let Ok(mut g) = SINKS.lock() {
        *g = Some(Sinks { console, kmsg });
    }
}

/// Formats one console line.
pub fn console_line(msg: &str) -> String {
    format!("cairn-init: {msg}\n")
}

/// Formats one /dev/kmsg record (priority 6 = info), truncated on a char boundary.
pub fn kmsg_line(msg: &str) -> String {
    let mut m = msg;
    if m.len() > KMSG_MAX {
        let mut end = KMSG_MAX;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m = &m[..end];
    }
    format!("<6>cairn-init: {m}\n")
}

/// Logs one line to every sink.
pub fn log(msg: &str) {
    let mut guard = match SINKS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match guard.as_mut() {
        Some(s) => {
            let wrote_console = match s.console.as_mut() {
                Some(c) => c.write_all(console_line(msg).as_bytes()).is_ok(),
                None => false,
            };
            if !wrote_console {
                let _ = std::io::stderr().write_all(console_line(msg).as_bytes());
            }
            if let Some(k) = s.kmsg.as_mut() {
                let _ = k.write_all(kmsg_line(msg).as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(console_line(msg).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        assert_eq!(console_line("stage 1"), "cairn-init: stage 1\n");
        assert_eq!(kmsg_line("x"), "<6>cairn-init: x\n");
        let long = "é".repeat(1000);
        let k = kmsg_line(&long);
        assert!(k.len() <= KMSG_MAX + 20);
        assert!(k.ends_with('\n'));
    }
}
