//! The narrow interface to the external tools (sfdisk, mkfs.vfat, mtools, dd) and a recording double.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::ImageError;

/// One invocation of an external program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    pub program: String,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
}

impl ToolCommand {
    /// A command with no arguments, environment additions or stdin.
    pub fn new(program: &str) -> Self {
        Self {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Feeds these bytes to the program's stdin.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// The command as a shell-like line, for messages and logs.
    pub fn display(&self) -> String {
        let mut line = self.program.clone();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }
}

/// Runs external programs; returns their stdout on success.
pub trait Tools {
    /// Runs `cmd` to completion; a non-zero exit is an error carrying stderr.
    fn run(&mut self, cmd: &ToolCommand) -> Result<Vec<u8>, ImageError>;
}

/// Runs the real programs from PATH.
#[derive(Debug, Default)]
pub struct SystemTools;

impl Tools for SystemTools {
    fn run(&mut self, cmd: &ToolCommand) -> Result<Vec<u8>, ImageError> {
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for (key, value) in &cmd.env {
            command.env(key, value);
        }
        let program = || cmd.program.clone();
        let mut child = command.spawn().map_err(|source| ImageError::ToolSpawn {
            program: program(),
            source,
        })?;
        if let (Some(data), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
            stdin
                .write_all(data)
                .map_err(|source| ImageError::ToolStdin {
                    program: program(),
                    source,
                })?;
        }
        let output = child
            .wait_with_output()
            .map_err(|source| ImageError::ToolWait {
                program: program(),
                source,
            })?;
        if !output.status.success() {
            return Err(ImageError::ToolFailed {
                command: cmd.display(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(output.stdout)
    }
}

/// Test double: records every command and answers with queued outputs (empty when none queued).
#[derive(Debug, Default)]
pub struct RecordingTools {
    pub calls: Vec<ToolCommand>,
    pub replies: Vec<(String, Result<Vec<u8>, String>)>,
}

impl RecordingTools {
    /// Queues the reply for the next call of `program` (a failure when `reply` is `Err`).
    pub fn reply(&mut self, program: &str, reply: Result<Vec<u8>, String>) {
        self.replies.push((program.to_string(), reply));
    }

    /// The recorded commands as display lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls.iter().map(ToolCommand::display).collect()
    }
}

impl Tools for RecordingTools {
    fn run(&mut self, cmd: &ToolCommand) -> Result<Vec<u8>, ImageError> {
        self.calls.push(cmd.clone());
        let Some(index) = self.replies.iter().position(|(p, _)| *p == cmd.program) else {
            return Ok(Vec::new());
        };
        match self.replies.remove(index).1 {
            Ok(stdout) => Ok(stdout),
            Err(stderr) => Err(ImageError::ToolFailed {
                command: cmd.display(),
                status: "exit status: 1".to_string(),
                stderr,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tools_pass_stdin_and_capture_stdout() {
        let out = SystemTools
            .run(&ToolCommand::new("cat").stdin("hello"))
            .unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn system_tools_report_failure_with_stderr() {
        let err = SystemTools
            .run(&ToolCommand::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
    }

    #[test]
    fn recording_tools_answer_queued_replies_per_program() {
        let mut tools = RecordingTools::default();
        tools.reply("b", Err("nope".into()));
        tools.reply("a", Ok(b"x".to_vec()));
        assert_eq!(tools.run(&ToolCommand::new("a")).unwrap(), b"x");
        assert_eq!(tools.run(&ToolCommand::new("a")).unwrap(), b"");
        assert!(tools.run(&ToolCommand::new("b").arg("1")).is_err());
        assert_eq!(tools.lines(), vec!["a", "a", "b 1"]);
    }
}
