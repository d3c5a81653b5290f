//! A node's serial console (ttyS0): read from QEMU's unix socket, timestamped per line, copied to serial.log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::deadline::Deadline;
use crate::error::LabError;

/// What the kernel prints when it gives up (a wait then fails at once).
pub const KERNEL_PANIC: &str = "Kernel panic - not syncing";

/// One complete line of console output and when it arrived.
#[derive(Debug, Clone)]
pub struct SerialLine {
    pub at: Instant,
    pub text: String,
}

/// A line that matched a wait.
#[derive(Debug, Clone)]
pub struct SerialMatch {
    /// Index of the line (pass `index + 1` to continue after it).
    pub index: usize,
    pub at: Instant,
    pub text: String,
}

#[derive(Default)]
struct Buffer {
    lines: Vec<SerialLine>,
    partial: Vec<u8>,
    closed: bool,
}

impl Buffer {
    fn push_bytes(&mut self, bytes: &[u8], at: Instant) {
        for &b in bytes {
            if b == b'\n' {
                let raw = std::mem::take(&mut self.partial);
                self.lines.push(SerialLine {
                    at,
                    text: clean_line(&raw),
                });
            } else {
                self.partial.push(b);
            }
        }
    }

    fn close(&mut self, at: Instant) {
        if !self.partial.is_empty() {
            let raw = std::mem::take(&mut self.partial);
            self.lines.push(SerialLine {
                at,
                text: clean_line(&raw),
            });
        }
        self.closed = true;
    }
}

/// Text of a raw console line: lossy UTF-8, without carriage returns and NULs.
fn clean_line(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .filter(|&c| c != '\r' && c != '\0')
        .collect()
}

type Shared = Arc<(Mutex<Buffer>, Condvar)>;

/// The console of one QEMU run.
pub struct Serial {
    shared: Shared,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
}

impl Serial {
    /// Connects to QEMU's console socket (QEMU waits for this connection before it starts the
    /// guest) and copies everything to `log` (appended).
    pub fn attach(socket: &Path, log: &Path, deadline: Deadline) -> Result<Serial, LabError> {
        let stream = connect_unix(socket, deadline, "the serial console socket")?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| LabError::Io {
                what: "open serial log",
                path: log.to_path_buf(),
                source,
            })?;
        let shared: Shared = Arc::new((Mutex::new(Buffer::default()), Condvar::new()));
        let reader_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name("serial-reader".into())
            .spawn(move || read_loop(stream, file, reader_shared))
            .map_err(|source| LabError::Thread { source })?;
        Ok(Serial {
            shared,
            reader: Some(reader),
            log: log.to_path_buf(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of complete lines so far (a cursor for `wait_from`).
    pub fn mark(&self) -> usize {
        self.lock().lines.len()
    }

    /// Copy of all lines so far.
    pub fn lines(&self) -> Vec<SerialLine> {
        self.lock().lines.clone()
    }

    /// Whether QEMU closed the console (it exited).
    pub fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits for the first line at index ≥ `from` matching `re`.
    pub fn wait_from(
        &self,
        re: &Regex,
        from: usize,
        deadline: Deadline,
    ) -> Result<SerialMatch, LabError> {
        let (lock, cvar) = &*self.shared;
        let mut buf = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = from;
        loop {
            while next < buf.lines.len() {
                let line = &buf.lines[next];
                if re.is_match(&line.text) {
                    return Ok(SerialMatch {
                        index: next,
                        at: line.at,
                        text: line.text.clone(),
                    });
                }
                // A panicked kernel never prints what we wait for: fail now, not at the deadline.
                if line.text.contains(KERNEL_PANIC) {
                    return Err(LabError::KernelPanic {
                        pattern: re.as_str().to_string(),
                        line: line.text.clone(),
                        log: self.log.clone(),
                    });
                }
                next += 1;
            }
            if buf.closed {
                return Err(LabError::SerialClosed {
                    pattern: re.as_str().to_string(),
                    log: self.log.clone(),
                    last: last_lines(&buf.lines, 5),
                });
            }
            if deadline.expired() {
                return Err(LabError::SerialTimeout {
                    pattern: re.as_str().to_string(),
                    waited: deadline.total(),
                    log: self.log.clone(),
                    last: last_lines(&buf.lines, 5),
                });
            }
            buf = cvar
                .wait_timeout(buf, deadline.remaining_at_least(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// All lines at index ≥ `from` matching `re` (no waiting).
    pub fn find_all(&self, re: &Regex, from: usize) -> Vec<SerialMatch> {
        let buf = self.lock();
        buf.lines
            .iter()
            .enumerate()
            .skip(from)
            .filter(|(_, l)| re.is_match(&l.text))
            .map(|(i, l)| SerialMatch {
                index: i,
                at: l.at,
                text: l.text.clone(),
            })
            .collect()
    }

    /// Waits until QEMU closed the console (it exited or was killed).
    pub fn wait_closed(&self, deadline: Deadline) -> bool {
        let (lock, cvar) = &*self.shared;
        let mut buf = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !buf.closed && !deadline.expired() {
            buf = cvar
                .wait_timeout(buf, deadline.remaining_at_least(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        buf.closed
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        // The reader ends when QEMU closes the socket; the node kills QEMU before dropping us.
        if self.closed() {
            if let Some(h) = self.reader.take() {
                let _ = h.join();
            }
        }
    }
}

fn last_lines(lines: &[SerialLine], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join(" ⏎ ")
}

fn read_loop(mut stream: UnixStream, mut log: File, shared: Shared) {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let now = Instant::now();
                let _ = log.write_all(&buf[..n]);
                let (lock, cvar) = &*shared;
                lock.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_bytes(&buf[..n], now);
                cvar.notify_all();
            }
        }
    }
    let _ = log.flush();
    let (lock, cvar) = &*shared;
    lock.lock()
        .unwrap_or_else(|e| e.into_inner())
        .close(Instant::now());
    cvar.notify_all();
}

/// Connects to a unix socket QEMU is about to create, retrying until `deadline`.
pub fn connect_unix(
    path: &Path,
    deadline: Deadline,
    what: &'static str,
) -> Result<UnixStream, LabError> {
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(source) if deadline.expired() => {
                return Err(LabError::Connect {
                    what,
                    path: path.to_path_buf(),
                    waited: deadline.total(),
                    source,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20).min(deadline.remaining())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn pair(dir: &Path) -> (UnixStream, Serial) {
        let sock = dir.join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let log = dir.join("serial.log");
        let handle = std::thread::spawn(move || listener.accept().unwrap().0);
        let serial = Serial::attach(&sock, &log, Deadline::secs(5)).unwrap();
        (handle.join().unwrap(), serial)
    }

    #[test]
    fn waits_for_lines_and_logs_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qemu, serial) = pair(dir.path());
        qemu.write_all(b"Linux version 6.1\r\ncairn-init: stage 1\r\npartial")
            .unwrap();
        let re = Regex::new("stage 1").unwrap();
        let m = serial.wait_from(&re, 0, Deadline::secs(5)).unwrap();
        assert_eq!(m.index, 1);
        assert_eq!(m.text, "cairn-init: stage 1");
        // the partial line is not matched until it completes
        let re2 = Regex::new("partial line").unwrap();
        let err = serial.wait_from(&re2, 0, Deadline::after(Duration::from_millis(50)));
        assert!(
            matches!(err, Err(LabError::SerialTimeout { .. })),
            "{err:?}"
        );
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("partial line"), "{msg}");
        qemu.write_all(b" line\n").unwrap();
        let m = serial.wait_from(&re2, 0, Deadline::secs(5)).unwrap();
        assert_eq!(m.text, "partial line");
        drop(qemu);
        assert!(serial.wait_closed(Deadline::secs(5)));
        let log = std::fs::read_to_string(dir.path().join("serial.log")).unwrap();
        assert!(log.contains("cairn-init: stage 1\r\npartial line"));
    }

    #[test]
    fn reports_closed_console() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qemu, serial) = pair(dir.path());
        qemu.write_all(b"last words").unwrap();
        drop(qemu);
        let re = Regex::new("never").unwrap();
        let err = serial.wait_from(&re, 0, Deadline::secs(5)).unwrap_err();
        assert!(matches!(err, LabError::SerialClosed { .. }));
        assert!(err.to_string().contains("last words"), "{err}");
    }

    #[test]
    fn kernel_panic_fails_the_wait_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qemu, serial) = pair(dir.path());
        qemu.write_all(b"[    2.53] Kernel panic - not syncing: Attempted to kill init!\n")
            .unwrap();
        let re = Regex::new("all services ready").unwrap();
        let started = Instant::now();
        let err = serial.wait_from(&re, 0, Deadline::secs(30)).unwrap_err();
        assert!(matches!(err, LabError::KernelPanic { .. }), "{err:?}");
        assert!(err.to_string().contains("Attempted to kill init"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // waiting for the panic itself works
        let m = serial
            .wait_from(&Regex::new("Kernel panic").unwrap(), 0, Deadline::secs(5))
            .unwrap();
        assert_eq!(m.index, 0);
    }

    #[test]
    fn find_all_from_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qemu, serial) = pair(dir.path());
        qemu.write_all(b"BOOT FAILED: a\nok\nBOOT FAILED: b\n")
            .unwrap();
        let re = Regex::new("BOOT FAILED").unwrap();
        serial
            .wait_from(&Regex::new("FAILED: b").unwrap(), 0, Deadline::secs(5))
            .unwrap();
        assert_eq!(serial.find_all(&re, 0).len(), 2);
        assert_eq!(serial.find_all(&re, 1).len(), 1);
        assert_eq!(serial.mark(), 3);
    }
}
