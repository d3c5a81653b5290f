//! The narrow interface to external programs (cargo, cp, mksquashfs, cpio, zstd, readelf) and its recording double.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
pub use cairn_image::ToolCommand;

/// Runs external programs.
pub trait Runner {
    /// Runs `cmd` with its output shown on the terminal; a non-zero exit is an error.
    fn run(&mut self, cmd: &ToolCommand) -> Result<()>;
    /// Runs `cmd` and returns its stdout; a non-zero exit is an error carrying stderr.
    fn output(&mut self, cmd: &ToolCommand) -> Result<String>;
}

/// Runs the real programs.
#[derive(Debug, Default)]
pub struct SystemRunner;

fn command(cmd: &ToolCommand) -> Command {
    let mut command = Command::new(&cmd.program);
    command.args(&cmd.args);
    for (key, value) in &cmd.env {
        command.env(key, value);
    }
    command.stdin(if cmd.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command
}

fn feed(child: &mut std::process::Child, cmd: &ToolCommand) -> Result<()> {
    if let (Some(data), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
        stdin
            .write_all(data)
            .with_context(|| format!("writing stdin of `{}`", cmd.program))?;
    }
    Ok(())
}

impl Runner for SystemRunner {
    fn run(&mut self, cmd: &ToolCommand) -> Result<()> {
        let mut child = command(cmd)
            .spawn()
            .with_context(|| format!("starting `{}`", cmd.program))?;
        feed(&mut child, cmd)?;
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{}`", cmd.program))?;
        if !status.success() {
            bail!("`{}` failed with {status}", cmd.display());
        }
        Ok(())
    }

    fn output(&mut self, cmd: &ToolCommand) -> Result<String> {
        let mut child = command(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}`", cmd.program))?;
        feed(&mut child, cmd)?;
        let out = child
            .wait_with_output()
            .with_context(|| format!("waiting for `{}`", cmd.program))?;
        if !out.status.success() {
            bail!(
                "`{}` failed with {}: {}",
                cmd.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8(out.stdout).with_context(|| format!("output of `{}`", cmd.display()))
    }
}

/// Test double: records every command; `output` answers from queued replies keyed by program.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingRunner {
    pub calls: Vec<ToolCommand>,
    pub outputs: Vec<(String, String)>,
    pub fail: Option<String>,
}

#[cfg(test)]
impl RecordingRunner {
    /// Recorded commands as display lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls.iter().map(ToolCommand::display).collect()
    }

    fn record(&mut self, cmd: &ToolCommand) -> Result<()> {
        self.calls.push(cmd.clone());
        if self.fail.as_deref() == Some(cmd.program.as_str()) {
            bail!("`{}` failed with exit status: 1", cmd.display());
        }
        Ok(())
    }
}

#[cfg(test)]
impl Runner for RecordingRunner {
    fn run(&mut self, cmd: &ToolCommand) -> Result<()> {
        self.record(cmd)
    }

    fn output(&mut self, cmd: &ToolCommand) -> Result<String> {
        self.record(cmd)?;
        match self.outputs.iter().position(|(p, _)| *p == cmd.program) {
            Some(i) => Ok(self.outputs.remove(i).1),
            None => Ok(String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_runner_reports_exit_status_and_stderr() {
        let err = SystemRunner
            .output(&ToolCommand::new("sh").args(["-c", "echo nope >&2; exit 4"]))
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(SystemRunner
            .run(&ToolCommand::new("sh").args(["-c", "exit 2"]))
            .is_err());
        assert_eq!(
            SystemRunner
                .output(&ToolCommand::new("cat").stdin("in"))
                .unwrap(),
            "in"
        );
    }

    #[test]
    fn recording_runner_fails_the_chosen_program() {
        let mut r = RecordingRunner {
            fail: Some("b".into()),
            ..Default::default()
        };
        r.outputs.push(("a".into(), "x".into()));
        assert_eq!(r.output(&ToolCommand::new("a")).unwrap(), "x");
        assert!(r.run(&ToolCommand::new("b")).is_err());
        assert_eq!(r.lines(), ["a", "b"]);
    }
}
