//! The lab library's errors: one variant per failure site.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while running a node.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab cannot run here: {why}")]
    Unavailable { why: String },
    #[error("accelerator: {detail}")]
    Accel { detail: String },
    #[error("the host disk is full: {free_mib} MiB free in {}, a node needs {need_mib} MiB (waited {waited:?} for room)", path.display())]
    HostDiskFull {
        path: PathBuf,
        free_mib: u64,
        need_mib: u64,
        waited: Duration,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    ToolFailed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("talking to {program}")]
    ToolIo {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a temporary file")]
    TempFile {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a reader thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    #[error("no free TCP port on 127.0.0.1")]
    FreePort {
        #[source]
        source: std::io::Error,
    },
    #[error("bad regex {pattern:?}")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("the partition table of {image} is not sfdisk JSON")]
    PartitionTable {
        image: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{image} has no partition named {name}")]
    NoSuchPartition { image: PathBuf, name: String },
    #[error("no ext4 superblock at byte {offset} of {image}")]
    NotExt4 { image: PathBuf, offset: u64 },
    #[error("loader entry {entry} has no `{field}` line")]
    EntryField { entry: String, field: &'static str },
    #[error("the ESP has no loader entry for slot {slot}")]
    NoEntry { slot: char },
    #[error("node {node} is already running")]
    AlreadyRunning { node: String },
    #[error("node {node} is not running")]
    NotRunning { node: String },
    #[error("QEMU of node {node} exited at start ({status}); see {log}")]
    QemuExited {
        node: String,
        status: String,
        log: PathBuf,
    },
    #[error("node {node}: QEMU still running after {waited:?}")]
    StillRunning { node: String, waited: Duration },
    #[error("node {node}: cannot wait for QEMU")]
    Wait {
        node: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no connection to {what} {path} within {waited:?}")]
    Connect {
        what: &'static str,
        path: PathBuf,
        waited: Duration,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {waited:?} waiting for a serial line matching /{pattern}/ (log {log}); last lines: {last}")]
    SerialTimeout {
        pattern: String,
        waited: Duration,
        log: PathBuf,
        last: String,
    },
    #[error("QEMU exited while waiting for a serial line matching /{pattern}/ (log {log}); last lines: {last}")]
    SerialClosed {
        pattern: String,
        log: PathBuf,
        last: String,
    },
    #[error("node {node}: QEMU exited (its log ends: {qemu_says})")]
    NodeExited {
        node: String,
        qemu_says: String,
        #[source]
        source: Box<LabError>,
    },
    #[error(
        "kernel panic while waiting for a serial line matching /{pattern}/ (log {log}): {line}"
    )]
    KernelPanic {
        pattern: String,
        line: String,
        log: PathBuf,
    },
    #[error("setup block: {detail}")]
    SetupBlock { detail: String },
    #[error("the lab shell on {socket} did not answer within {waited:?} (is cairn.lab=1 on the kernel command line?)")]
    ShellNotReady { socket: PathBuf, waited: Duration },
    #[error("timed out after {waited:?} waiting for shell marker {marker}; last output: {tail:?}")]
    ShellTimeout {
        marker: String,
        waited: Duration,
        tail: String,
    },
    #[error("lab shell command `{cmd}`")]
    ShellRun {
        cmd: String,
        #[source]
        source: Box<LabError>,
    },
    #[error("lab shell socket {socket} failed")]
    ShellIo {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lab shell socket {socket} closed (QEMU exited?)")]
    ShellClosed { socket: PathBuf },
    #[error("lab shell commands must be one line under 3500 bytes: {cmd:?}")]
    ShellCommand { cmd: String },
    #[error("lab shell command `{cmd}` ended with a bad exit code {text:?}")]
    ShellExitCode { cmd: String, text: String },
    #[error("lab shell command `{cmd}` exited {code}: {output}")]
    ShellFailed {
        cmd: String,
        code: i32,
        output: String,
    },
    #[error("cairn-init svc status: {detail}")]
    ServiceStatus { detail: String },
    #[error("QMP socket {socket} failed")]
    QmpIo {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP protocol: {detail}")]
    QmpProtocol { detail: String },
    #[error("timed out after {waited:?} waiting for {what}")]
    QmpTimeout { what: String, waited: Duration },
    #[error("QMP connection closed by QEMU")]
    QmpClosed,
    #[error("QMP sent invalid JSON: {line}")]
    QmpJson {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("QMP {command} failed: {class}: {desc}")]
    QmpCommand {
        command: String,
        class: String,
        desc: String,
    },
    #[error("HTTPS request to {addr}")]
    Https {
        addr: SocketAddr,
        #[source]
        source: cairn_client::ClientError,
    },
    #[error("{method:?} is not an HTTP method")]
    HttpMethod { method: String },
    #[error("HTTPS response from {addr}: {detail}")]
    HttpResponse { addr: SocketAddr, detail: String },
    #[error("health answer is not JSON: {body}")]
    HealthJson {
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{method} {path} on {addr} answered {status}: {body}")]
    ApiStatus {
        addr: SocketAddr,
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{method} {path} on {addr} did not start a task: want 202 with a task id, got {status}: {body}")]
    TaskNotStarted {
        addr: SocketAddr,
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("the task of {method} {path}")]
    TaskOf {
        method: String,
        path: String,
        #[source]
        source: Box<LabError>,
    },
    #[error("{request} on {addr}: want 422 naming {field}, got {status}: {body}")]
    NotInvalid {
        addr: SocketAddr,
        /// Method, path and JSON body of the request.
        request: String,
        field: String,
        status: u16,
        body: String,
    },
    #[error("task {id} on {addr} {outcome}: {detail}")]
    Task {
        addr: SocketAddr,
        id: u64,
        outcome: &'static str,
        detail: String,
    },
    #[error("no healthy API answer from {addr} within {waited:?}; last: {last}")]
    ApiTimeout {
        addr: SocketAddr,
        waited: Duration,
        last: String,
    },
    #[error("cairnd on {addr}: its domains did not finish starting within {waited:?}; still starting: {starting}")]
    DomainsStarting {
        addr: SocketAddr,
        waited: Duration,
        starting: String,
    },
    #[error("cairnd on {addr}: the {domain} domain failed to start: {reason}")]
    DomainFailed {
        addr: SocketAddr,
        domain: String,
        reason: String,
    },
    #[error("{}: {detail}; nothing was written", path.display())]
    DocMarkers { path: PathBuf, detail: String },
}

impl LabError {
    /// Wraps a shell error with the command it happened in.
    pub(crate) fn while_running(self, cmd: &str) -> LabError {
        LabError::ShellRun {
            cmd: cmd.to_string(),
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_do_not_repeat_the_source() {
        let e = LabError::Spawn {
            program: "qemu".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(e.to_string(), "cannot start qemu");
        let w = LabError::ShellClosed {
            socket: "/s".into(),
        }
        .while_running("ls");
        assert_eq!(w.to_string(), "lab shell command `ls`");
        assert!(std::error::Error::source(&w).is_some());
    }
}
