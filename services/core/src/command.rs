//! Running external programs (mdadm, lvm, smartctl, …) behind a narrow trait, with a
//! recording test double so the logic above them is unit-tested without root.

use std::collections::VecDeque;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One program invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    /// Bytes written to the program's standard input, if any.
    pub stdin: Option<Vec<u8>>,
}

impl Invocation {
    /// `program` with `args`.
    pub fn new<I, S>(program: &str, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Invocation {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The same invocation with `input` on standard input.
    pub fn with_stdin(mut self, input: impl Into<Vec<u8>>) -> Invocation {
        self.stdin = Some(input.into());
        self
    }

    /// The command line as a shell would show it (for logs and errors).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// The exit code (None when killed by a signal).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    /// An output with exit code 0 and `stdout`.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> CommandOutput {
        CommandOutput {
            code: Some(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    /// An output with exit code `code` and `stderr`.
    pub fn failed(code: i32, stderr: impl Into<Vec<u8>>) -> CommandOutput {
        CommandOutput {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    /// Whether the program exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Why a program could not be run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the standard input of `{command}`")]
    Stdin {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for `{command}`")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed (exit {code:?}): {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

/// Runs programs. Implementations: [`SystemRunner`] (real) and [`RecordingRunner`] (tests).
pub trait CommandRunner: Send + Sync {
    /// Run `inv` to completion; a non-zero exit is *not* an error here (see [`run_ok`]).
    fn run(&self, inv: &Invocation) -> Result<CommandOutput, CommandError>;
}

/// Run `inv` and turn a non-zero exit into [`CommandError::Failed`].
pub fn run_ok(runner: &dyn CommandRunner, inv: &Invocation) -> Result<CommandOutput, CommandError> {
    let out = runner.run(inv)?;
    if out.success() {
        Ok(out)
    } else {
        Err(CommandError::Failed {
            command: inv.display(),
            code: out.code,
            stderr: out.stderr_text(),
        })
    }
}

/// Runs programs for real with `std::process`, with `LC_ALL=C` so output is parseable.
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, inv: &Invocation) -> Result<CommandOutput, CommandError> {
        let command = inv.display();
        let mut child = Command::new(&inv.program)
            .args(&inv.args)
            .env("LC_ALL", "C")
            .stdin(if inv.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CommandError::Spawn {
                command: command.clone(),
                source,
            })?;
        if let (Some(input), Some(mut pipe)) = (&inv.stdin, child.stdin.take()) {
            pipe.write_all(input)
                .map_err(|source| CommandError::Stdin {
                    command: command.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| CommandError::Wait { command, source })?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// A test double: records every invocation and answers from a script of expected calls.
///
/// Each scripted entry is (program, args prefix, output). A call takes the first remaining
/// entry whose program matches and whose args start with the prefix; an unscripted call gets
/// the default output (exit 0, empty) unless [`RecordingRunner::strict`] was set, in which
/// case it fails with exit 127.
#[derive(Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Invocation>>,
    script: Mutex<VecDeque<(String, Vec<String>, CommandOutput)>>,
    strict: bool,
}

impl RecordingRunner {
    /// A runner that answers every call with success and empty output.
    pub fn new() -> RecordingRunner {
        RecordingRunner::default()
    }

    /// A runner that fails calls that were not scripted.
    pub fn strict() -> RecordingRunner {
        RecordingRunner {
            strict: true,
            ..RecordingRunner::default()
        }
    }

    /// Answer the next call of `program` whose args start with `args_prefix` with `out`.
    pub fn expect(&self, program: &str, args_prefix: &[&str], out: CommandOutput) -> &Self {
        lock(&self.script).push_back((
            program.to_string(),
            args_prefix.iter().map(|s| s.to_string()).collect(),
            out,
        ));
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Invocation> {
        lock(&self.calls).clone()
    }

    /// Every call so far as command lines.
    pub fn command_lines(&self) -> Vec<String> {
        lock(&self.calls).iter().map(Invocation::display).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CommandRunner for RecordingRunner {
    fn run(&self, inv: &Invocation) -> Result<CommandOutput, CommandError> {
        lock(&self.calls).push(inv.clone());
        let mut script = lock(&self.script);
        let hit = script
            .iter()
            .position(|(p, prefix, _)| *p == inv.program && inv.args.starts_with(prefix));
        match hit.and_then(|i| script.remove(i)) {
            Some((_, _, out)) => Ok(out),
            None if self.strict => Ok(CommandOutput::failed(
                127,
                format!("unscripted call: {}", inv.display()),
            )),
            None => Ok(CommandOutput::ok(Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_runner_captures_output_and_exit_code() {
        let out = SystemRunner
            .run(&Invocation::new("sh", ["-c", "cat; echo err >&2; exit 3"]).with_stdin("in"))
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_text(), "in");
        assert_eq!(out.stderr_text(), "err");
    }

    #[test]
    fn run_ok_names_the_command_on_failure() {
        let e = run_ok(
            &SystemRunner,
            &Invocation::new("sh", ["-c", "echo no >&2; exit 2"]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("sh -c") && text.contains("exit Some(2)") && text.contains("no"));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = SystemRunner
            .run(&Invocation::new(
                "/nonexistent/cairn-tool",
                Vec::<String>::new(),
            ))
            .unwrap_err();
        assert!(matches!(e, CommandError::Spawn { .. }));
    }

    #[test]
    fn recording_runner_answers_from_its_script_in_order() {
        let r = RecordingRunner::strict();
        r.expect("mdadm", &["--detail"], CommandOutput::ok("one"))
            .expect("mdadm", &["--detail"], CommandOutput::ok("two"));
        let inv = Invocation::new("mdadm", ["--detail", "/dev/md0"]);
        assert_eq!(r.run(&inv).unwrap().stdout_text(), "one");
        assert_eq!(r.run(&inv).unwrap().stdout_text(), "two");
        assert_eq!(r.run(&inv).unwrap().code, Some(127));
        assert_eq!(r.command_lines().len(), 3);
        assert_eq!(r.command_lines()[0], "mdadm --detail /dev/md0");
    }
}
