//! The built `cairn-virt` binary over its pipes: a URI that cannot connect answers with a clean error, and libvirt's built-in `test:///default` driver makes a real round trip.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Long enough for a loaded build host; a hang fails here rather than never.
const WITHIN: Duration = Duration::from_secs(20);

struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Helper {
    fn start(uri: &str) -> Helper {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-virt"))
            .arg(uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Helper {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, request: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line, or a failure naming what was awaited.
    fn next(&self, what: &str) -> Value {
        self.lines
            .recv_timeout(WITHIN)
            .unwrap_or_else(|e| panic!("no {what} from cairn-virt within {WITHIN:?}: {e}"))
    }

    /// The response to `id`, skipping event lines.
    fn response(&self, id: u64) -> Value {
        loop {
            let v = self.next(&format!("response {id}"));
            if let Some(r) = v.get("response") {
                assert_eq!(r["id"], id, "{v}");
                return r["outcome"].clone();
            }
        }
    }

    fn call(&mut self, id: u64, call: Value) -> Value {
        let mut request = call;
        request["id"] = json!(id);
        self.send(request);
        self.response(id)
    }

    /// Closes stdin and waits for the exit status.
    fn finish(mut self) -> std::process::ExitStatus {
        self.stdin.take();
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                t0.elapsed() < WITHIN,
                "cairn-virt did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_uri_that_cannot_connect_answers_with_a_connection_error() {
    let mut h = Helper::start("test:///nonexistent/cairn-virt-test.xml");
    let out = h.call(1, json!({"call": "states"}));
    let err = &out["err"]["connect"];
    assert_eq!(
        err["uri"], "test:///nonexistent/cairn-virt-test.xml",
        "{out}"
    );
    assert!(
        !err["source"]["message"].as_str().unwrap_or("").is_empty(),
        "{out}"
    );
    // Still serving: a bad request gets its own error, then the next call its answer.
    h.send(json!({"id": 2, "call": "fly"}));
    let bad = h.response(2);
    assert!(bad["err"]["protocol"].is_string(), "{bad}");
    let out = h.call(3, json!({"call": "capacity"}));
    assert!(out["err"]["connect"].is_object(), "{out}");
    assert!(h.finish().success());
}

#[test]
fn states_capacity_and_events_against_the_test_driver() {
    let mut h = Helper::start("test:///default");
    let cap = h.call(1, json!({"call": "capacity"}));
    let cap = &cap["ok"]["capacity"];
    assert!(cap["cpus"].as_u64().unwrap() > 0, "{cap}");
    assert!(cap["memory_mib"].as_u64().unwrap() > 0, "{cap}");
    // The test driver comes with one running domain, "test".
    let states = h.call(2, json!({"call": "states"}));
    assert_eq!(states["ok"]["states"]["test"], "running", "{states}");
    let out = h.call(
        3,
        json!({"call": "sample", "name": "test", "disk_paths": []}),
    );
    assert!(out["ok"]["sample"]["vcpus"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(
        h.call(4, json!({"call": "start", "name": "nope"})),
        json!({"err": {"not_defined": "nope"}})
    );
    // Events of the subscription arrive as event lines.
    assert_eq!(
        h.call(5, json!({"call": "subscribe"})),
        json!({"ok": "done"})
    );
    h.send(json!({"id": 6, "call": "destroy", "name": "test"}));
    let mut got_response = false;
    let mut got_event = false;
    while !(got_response && got_event) {
        let v = h.next("destroy's answer and its event");
        if let Some(r) = v.get("response") {
            assert_eq!(r["id"], 6, "{v}");
            assert_eq!(r["outcome"], json!({"ok": "done"}));
            got_response = true;
        } else if v["event"]["domain"]["name"] == "test" {
            assert_eq!(v["event"]["domain"]["event"], "stopped", "{v}");
            got_event = true;
        }
    }
    let states = h.call(7, json!({"call": "states"}));
    assert_eq!(states["ok"]["states"]["test"], "shut_off", "{states}");
    assert!(h.finish().success());
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn the_helper_dies_with_its_parent_even_with_stdin_open() {
    // A shell starts the helper on the shell's own stdin and stdout, prints its pid and
    // waits; the test holds stdin open, so only the parent's death can end the helper.
    let mut sh = Command::new("/bin/sh")
        .args([
            "-c",
            // A background command's stdin would be /dev/null; fd 3 keeps the pipe.
            "exec 3<&0; \"$0\" test:///default <&3 3<&- & echo $!; wait",
            env!("CARGO_BIN_EXE_cairn-virt"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = sh.stdin.take().unwrap();
    let mut out = BufReader::new(sh.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    // Its answer shows it is past its setup (the death signal is armed).
    writeln!(stdin, "{}", json!({"id": 1, "call": "capacity"})).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"id\":1"), "{line}");
    sh.kill().unwrap();
    sh.wait().unwrap();
    let t0 = Instant::now();
    while !gone(pid) {
        assert!(
            t0.elapsed() < WITHIN,
            "cairn-virt {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
}

#[test]
fn remote_hypervisor_over_the_real_helper() {
    use cairn_vm::hypervisor::{HvError, HvEvent, Hypervisor, Lifecycle, RunState};
    use cairn_vm::RemoteHypervisor;
    let hv = RemoteHypervisor::with_uri(env!("CARGO_BIN_EXE_cairn-virt"), "test:///default");
    assert!(hv.capacity().unwrap().cpus > 0);
    assert_eq!(hv.states().unwrap().get("test"), Some(&RunState::Running));
    let (tx, rx) = channel();
    hv.subscribe(tx).unwrap();
    hv.destroy("test").unwrap();
    loop {
        match rx.recv_timeout(WITHIN).expect("the stopped event") {
            HvEvent::Domain { name, event } if name == "test" => {
                assert_eq!(event, Lifecycle::Stopped);
                break;
            }
            _ => continue,
        }
    }
    assert_eq!(hv.sample("test", &[]).unwrap(), None);
    assert_eq!(
        hv.start("nope").unwrap_err(),
        HvError::NotDefined("nope".into())
    );
    // A URI that cannot connect: the variant the API turns into a 503.
    let down = RemoteHypervisor::with_uri(env!("CARGO_BIN_EXE_cairn-virt"), "test:///nonexistent");
    let e = down.states().unwrap_err();
    assert!(matches!(e, HvError::Connect { .. }), "{e:?}");
    let text = cairn_core::boot::error_chain(&e);
    assert!(text.contains("test:///nonexistent"), "{text}");
}
