//! The lab shell: a root `/bin/sh` on the node's ttyS1, driven over QEMU's unix socket with unique markers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::serial::connect_unix;

/// Longest command accepted (the tty's canonical line limit is 4095 bytes).
const MAX_COMMAND: usize = 3500;
const BEGIN: &str = "CAIRNLABB";
const END: &str = "CAIRNLABE";

/// A connected lab shell.
pub struct Shell {
    stream: UnixStream,
    pending: Vec<u8>,
    seq: u64,
    socket: PathBuf,
}

/// Output and exit code of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub code: i32,
    pub output: String,
}

impl Shell {
    /// Connects to the shell socket and waits until the node's shell answers.
    pub fn connect(socket: &Path, deadline: Deadline) -> Result<Shell, LabError> {
        let stream = connect_unix(socket, deadline, "the lab shell socket (ttyS1)")?;
        let mut shell = Shell {
            stream,
            pending: Vec::new(),
            seq: 0,
            socket: socket.to_path_buf(),
        };
        // Bytes sent before the node opens ttyS1 are lost, so probe until one answers, then
        // send one more probe and read up to it so that late answers of earlier probes are
        // consumed before the first real command.
        loop {
            let id = shell.next_id();
            shell.send(&format!("printf '%s_%s\\n' {BEGIN} {id}\n"))?;
            let marker = format!("{BEGIN}_{id}");
            let probe = deadline.capped(Duration::from_secs(2));
            match shell.read_until(&marker, probe) {
                Ok(_) => break,
                Err(LabError::ShellTimeout { .. }) if !deadline.expired() => continue,
                Err(LabError::ShellTimeout { .. }) => {
                    return Err(LabError::ShellNotReady {
                        socket: socket.to_path_buf(),
                        waited: deadline.total(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        let id = shell.next_id();
        shell.send(&format!("printf '%s_%s\\n' {BEGIN} {id}\n"))?;
        shell.read_until(
            &format!("{BEGIN}_{id}"),
            deadline.capped(Duration::from_secs(30)),
        )?;
        Ok(shell)
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}x{}", std::process::id(), self.seq)
    }

    fn send(&mut self, text: &str) -> Result<(), LabError> {
        self.stream
            .write_all(text.as_bytes())
            .map_err(|source| LabError::ShellIo {
                socket: self.socket.clone(),
                source,
            })
    }

    /// Reads until `marker` has been seen; returns everything before it and keeps the rest.
    fn read_until(&mut self, marker: &str, deadline: Deadline) -> Result<Vec<u8>, LabError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = find(&self.pending, marker.as_bytes()) {
                let rest = self.pending.split_off(pos + marker.len());
                let mut before = std::mem::replace(&mut self.pending, rest);
                before.truncate(pos);
                return Ok(before);
            }
            if deadline.expired() {
                return Err(LabError::ShellTimeout {
                    marker: marker.to_string(),
                    waited: deadline.total(),
                    tail: String::from_utf8_lossy(
                        &self.pending[self.pending.len().saturating_sub(300)..],
                    )
                    .into_owned(),
                });
            }
            self.stream
                .set_read_timeout(Some(deadline.remaining_at_least(Duration::from_millis(1))))
                .map_err(|source| LabError::ShellIo {
                    socket: self.socket.clone(),
                    source,
                })?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(LabError::ShellClosed {
                        socket: self.socket.clone(),
                    })
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(LabError::ShellIo {
                        socket: self.socket.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Runs `cmd` (a shell command line) on the node; returns its exit code and its combined
    /// stdout and stderr.
    pub fn run(&mut self, cmd: &str, deadline: Deadline) -> Result<CommandOutput, LabError> {
        if cmd.len() > MAX_COMMAND || cmd.contains('\n') {
            return Err(LabError::ShellCommand {
                cmd: cmd.chars().take(80).collect(),
            });
        }
        let id = self.next_id();
        // The markers are assembled by printf, so the tty's echo of this line never matches.
        let line = format!(
            "printf '\\n%s_%s\\n' {BEGIN} {id}; ( {cmd} ) </dev/null 2>&1; printf '\\n%s_%s:%s\\n' {END} {id} \"$?\"\n"
        );
        self.send(&line)?;
        self.read_until(&format!("{BEGIN}_{id}"), deadline)
            .map_err(|e| e.while_running(cmd))?;
        let body = self
            .read_until(&format!("{END}_{id}:"), deadline)
            .map_err(|e| e.while_running(cmd))?;
        let code_bytes = self
            .read_until("\n", deadline)
            .map_err(|e| e.while_running(cmd))?;
        let code_text = String::from_utf8_lossy(&code_bytes).trim().to_string();
        let code = code_text
            .parse::<i32>()
            .map_err(|_| LabError::ShellExitCode {
                cmd: cmd.to_string(),
                text: code_text.clone(),
            })?;
        Ok(CommandOutput {
            code,
            output: clean_output(&body),
        })
    }

    /// Runs `cmd` and fails unless it exits 0; returns its output.
    pub fn check(&mut self, cmd: &str, deadline: Deadline) -> Result<String, LabError> {
        let out = self.run(cmd, deadline)?;
        if out.code != 0 {
            return Err(LabError::ShellFailed {
                cmd: cmd.to_string(),
                code: out.code,
                output: out.output.chars().take(2000).collect(),
            });
        }
        Ok(out.output)
    }
}

/// Output between the markers: CRLF → LF, without the line break that precedes the end marker.
fn clean_output(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|&c| c != '\r')
        .collect();
    let text = text.strip_prefix('\n').unwrap_or(&text);
    // the line break printed before the end marker, then the command's own final one
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.to_string()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::process::{Command, Stdio};

    /// A fake node: relays the socket to a real `sh`, echoing input like a tty does, and
    /// ignoring the first `drop_first` lines as if ttyS1 had not been opened yet.
    fn fake_node(dir: &Path, drop_first: usize) -> PathBuf {
        let sock = dir.join("shell.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut sh = Command::new("sh")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut to_sh = sh.stdin.take().unwrap();
            let mut from_sh = sh.stdout.take().unwrap();
            let mut out = conn.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from_sh.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    // a tty turns LF into CRLF
                    let s = String::from_utf8_lossy(&buf[..n]).replace('\n', "\r\n");
                    if out.write_all(s.as_bytes()).is_err() {
                        break;
                    }
                }
            });
            let mut echo = conn.try_clone().unwrap();
            let reader = BufReader::new(conn);
            for (i, line) in reader.lines().enumerate() {
                let Ok(line) = line else { break };
                if i < drop_first {
                    continue;
                }
                let _ = echo.write_all(format!("{line}\r\n").as_bytes());
                if to_sh.write_all(format!("{line}\n").as_bytes()).is_err() {
                    break;
                }
            }
            drop(to_sh);
            let _ = sh.wait();
        });
        sock
    }

    #[test]
    fn runs_commands_with_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let sock = fake_node(dir.path(), 0);
        let mut sh = Shell::connect(&sock, Deadline::secs(10)).unwrap();
        let out = sh
            .run("echo hello; echo world", Deadline::secs(10))
            .unwrap();
        assert_eq!(
            out,
            CommandOutput {
                code: 0,
                output: "hello\nworld".into()
            }
        );
        let out = sh.run("printf nonl; exit 7", Deadline::secs(10)).unwrap();
        assert_eq!(
            out,
            CommandOutput {
                code: 7,
                output: "nonl".into()
            }
        );
        let out = sh.run("echo oops >&2; false", Deadline::secs(10)).unwrap();
        assert_eq!(out.code, 1);
        assert_eq!(out.output, "oops");
        assert!(matches!(
            sh.check("exit 3", Deadline::secs(10)),
            Err(LabError::ShellFailed { code: 3, .. })
        ));
        assert_eq!(
            sh.check("echo CAIRNLABE", Deadline::secs(10)).unwrap(),
            "CAIRNLABE"
        );
    }

    #[test]
    fn survives_lost_probes() {
        let dir = tempfile::tempdir().unwrap();
        let sock = fake_node(dir.path(), 2);
        let mut sh = Shell::connect(&sock, Deadline::secs(20)).unwrap();
        assert_eq!(sh.check("echo ok", Deadline::secs(10)).unwrap(), "ok");
    }

    #[test]
    fn times_out_saying_what_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let sock = fake_node(dir.path(), 0);
        let mut sh = Shell::connect(&sock, Deadline::secs(10)).unwrap();
        let err = sh
            .run("sleep 5", Deadline::after(Duration::from_millis(300)))
            .unwrap_err();
        assert!(err.to_string().contains("sleep 5"), "{err}");
    }

    #[test]
    fn rejects_multiline_commands() {
        let dir = tempfile::tempdir().unwrap();
        let sock = fake_node(dir.path(), 0);
        let mut sh = Shell::connect(&sock, Deadline::secs(10)).unwrap();
        assert!(matches!(
            sh.run("a\nb", Deadline::secs(1)),
            Err(LabError::ShellCommand { .. })
        ));
    }
}
