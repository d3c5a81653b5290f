//! `RemoteHypervisor`: the `Hypervisor` of cairnd, served by the helper process `cairn-virt` (which alone links libvirt), spawned at the first call and again after it dies.
//!
//! Calls from several threads share one helper: each request carries an id and its caller
//! waits for the response with that id. A thread of ours (named `cairn-virt`) starts the
//! helper, reads its lines and reaps it; it is that thread which the helper's parent-death
//! signal follows, so the helper lives exactly as long as its reader. When the helper dies,
//! the calls waiting get [`HvError::Connect`] (what a libvirtd restart gives too: the API
//! answers 503 and the monitor resubscribes), the subscriber gets [`HvEvent::Lost`], and the
//! next call starts a new helper, at once the first time, then after a growing pause while
//! it keeps dying young.

use crate::hypervisor::{
    DomainSample, HvError, HvEvent, Hypervisor, LibvirtError, NodeCapacity, RunState, SYSTEM_URI,
};
use crate::protocol::{encode, unexpected, Call, Line, Reply, Request};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the helper is installed on a node.
pub const HELPER_PATH: &str = "/usr/libexec/cairn/cairn-virt";

/// A helper that ran at least this long before dying is restarted at once; one that died
/// younger counts as a crash in a row.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The pause before starting the helper again after its second crash in a row; it doubles
/// with each further one, up to [`RESPAWN_MAX`]. Calls meanwhile fail at once.
pub const RESPAWN_MIN: Duration = Duration::from_millis(250);

/// The longest pause between two starts of a crashing helper.
pub const RESPAWN_MAX: Duration = Duration::from_secs(5);

/// A started helper: its request pipe, its answer pipe, and how to reap it once its answers
/// end (returns how it ended, e.g. `exit status: 1`).
pub struct Launched {
    pub input: Box<dyn Write + Send>,
    pub output: Box<dyn Read + Send>,
    pub wait: Box<dyn FnOnce() -> String + Send>,
}

/// Starts a helper (a process; in tests, also a thread serving a double).
pub trait Launch: Send + Sync {
    fn launch(&self) -> io::Result<Launched>;
}

/// The helper as a child process: stdin and stdout piped, stderr inherited (the journal).
pub struct Process {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Launch for Process {
    fn launch(&self) -> io::Result<Launched> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the helper's pipes were not made"));
        };
        let pid = child.id();
        Ok(Launched {
            input: Box::new(input),
            output: Box::new(output),
            wait: Box::new(move || match child.wait() {
                Ok(status) => format!("(pid {pid}) ended: {status}"),
                Err(e) => format!("(pid {pid}) cannot be reaped: {e}"),
            }),
        })
    }
}

/// The `Hypervisor` over the helper process.
pub struct RemoteHypervisor {
    launcher: Arc<dyn Launch>,
    /// What the errors name as the libvirt URI: the URI and the helper.
    shown: String,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<Arc<Conn>>,
    /// Helpers that died young in a row (or could not be started).
    crashes: u32,
    /// No helper is started before this.
    not_before: Option<Instant>,
}

impl RemoteHypervisor {
    /// The helper at `program`, which connects to its default URI (`qemu:///system`). Nothing
    /// is started until the first call.
    pub fn new(program: impl AsRef<Path>) -> RemoteHypervisor {
        let program = program.as_ref().to_path_buf();
        let shown = format!("{SYSTEM_URI} (through {})", program.display());
        RemoteHypervisor::with_launcher(
            Arc::new(Process {
                program,
                args: Vec::new(),
            }),
            shown,
        )
    }

    /// The helper at `program`, connecting to libvirt at `uri` (its one argument).
    pub fn with_uri(program: impl AsRef<Path>, uri: &str) -> RemoteHypervisor {
        let program = program.as_ref().to_path_buf();
        let shown = format!("{uri} (through {})", program.display());
        RemoteHypervisor::with_launcher(
            Arc::new(Process {
                program,
                args: vec![uri.to_string()],
            }),
            shown,
        )
    }

    /// Helpers started by `launcher`; `shown` names them in errors.
    pub fn with_launcher(launcher: Arc<dyn Launch>, shown: String) -> RemoteHypervisor {
        RemoteHypervisor {
            launcher,
            shown,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live helper, started now if there is none (unless it is pausing after crashes).
    fn connection(&self) -> Result<Arc<Conn>, HvError> {
        let mut st = self.state();
        if let Some(conn) = &st.conn {
            match conn.ended() {
                None => return Ok(conn.clone()),
                Some(lived) => {
                    if lived < STABLE_AFTER {
                        st.crashes += 1;
                    } else {
                        st.crashes = 0;
                    }
                    st.not_before = pause(st.crashes).map(|p| Instant::now() + p);
                    st.conn = None;
                }
            }
        }
        if let Some(t) = st.not_before {
            let now = Instant::now();
            if now < t {
                return Err(lost(
                    &self.shown,
                    format!(
                        "the helper failed {} times in a row; next start in {} ms",
                        st.crashes,
                        (t - now).as_millis()
                    ),
                ));
            }
        }
        match start(self.launcher.clone(), self.shown.clone()) {
            Ok(conn) => {
                st.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                st.crashes += 1;
                st.not_before = pause(st.crashes).map(|p| Instant::now() + p);
                tracing::error!("cannot start the libvirt helper for {}: {e}", self.shown);
                Err(lost(&self.shown, format!("cannot start the helper: {e}")))
            }
        }
    }

    /// Send `call` and wait for its answer.
    fn call(&self, call: Call, subscriber: Option<Sender<HvEvent>>) -> Result<Reply, HvError> {
        let conn = self.connection()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        conn.expect(id, tx)?;
        let subscribing = subscriber.is_some();
        if let Some(s) = subscriber {
            // Before the request: an event may come before the answer.
            *conn.subscriber() = Some(s);
        }
        if let Err(e) = conn.send(&encode(&Request { id, call })) {
            conn.forget(id);
            return Err(lost(
                &self.shown,
                format!("cannot write to the helper: {e}"),
            ));
        }
        let out = rx
            .recv()
            .unwrap_or_else(|_| Err(lost(&self.shown, "the helper did not answer".into())));
        if subscribing && out.is_err() {
            conn.subscriber().take();
        }
        out
    }

    fn done(&self, call: Call) -> Result<(), HvError> {
        let method = call.method();
        match self.call(call, None)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(method, &other)),
        }
    }
}

impl Drop for RemoteHypervisor {
    fn drop(&mut self) {
        // Closing its stdin ends the helper; our reader thread reaps it.
        if let Some(conn) = self.state().conn.take() {
            conn.quit();
        }
    }
}

/// The pause before the next start after `crashes` crashes in a row: none after the first.
fn pause(crashes: u32) -> Option<Duration> {
    if crashes < 2 {
        return None;
    }
    let doublings = (crashes - 2).min(8);
    Some((RESPAWN_MIN * 2u32.pow(doublings)).min(RESPAWN_MAX))
}

/// The error of a call the helper cannot answer: libvirt is unreachable for now.
fn lost(shown: &str, why: String) -> HvError {
    HvError::Connect {
        uri: shown.to_string(),
        source: LibvirtError::new(why),
    }
}

/// One running helper.
struct Conn {
    shown: String,
    started: Instant,
    input: Mutex<Option<Box<dyn Write + Send>>>,
    pending: Mutex<Pending>,
    subscriber: Mutex<Option<Sender<HvEvent>>>,
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, Sender<Result<Reply, HvError>>>,
    /// Set when the helper is gone: how long it lived, and why it ended.
    ended: Option<(Duration, String)>,
    /// We closed it on purpose: no `Lost` then.
    quitting: bool,
}

impl Conn {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscriber(&self) -> MutexGuard<'_, Option<Sender<HvEvent>>> {
        self.subscriber.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the helper lived, once it is gone.
    fn ended(&self) -> Option<Duration> {
        self.pending().ended.as_ref().map(|(lived, _)| *lived)
    }

    /// Wait for the answer to `id` on `tx`; fails if the helper is already gone.
    fn expect(&self, id: u64, tx: Sender<Result<Reply, HvError>>) -> Result<(), HvError> {
        let mut p = self.pending();
        if let Some((_, why)) = &p.ended {
            return Err(lost(&self.shown, why.clone()));
        }
        p.waiting.insert(id, tx);
        Ok(())
    }

    fn forget(&self, id: u64) {
        self.pending().waiting.remove(&id);
    }

    fn send(&self, line: &str) -> io::Result<()> {
        let mut input = self.input.lock().unwrap_or_else(|p| p.into_inner());
        let w = input
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "closed"))?;
        w.write_all(line.as_bytes())?;
        w.flush()
    }

    fn quit(&self) {
        self.pending().quitting = true;
        self.input.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Route every line of the helper's output until it ends.
    fn read(&self, output: Box<dyn Read + Send>) {
        for line in BufReader::new(output).lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("reading the libvirt helper: {e}");
                    break;
                }
            };
            match serde_json::from_str::<Line>(&line) {
                Ok(Line::Response(r)) => match self.pending().waiting.remove(&r.id) {
                    Some(tx) => {
                        let _ = tx.send(r.outcome.into());
                    }
                    None => tracing::warn!("the libvirt helper answered unknown request {}", r.id),
                },
                Ok(Line::Event(ev)) => {
                    if let Some(s) = self.subscriber().as_ref() {
                        let _ = s.send(ev);
                    }
                }
                Err(e) => tracing::warn!("the libvirt helper wrote a line we do not read: {e}"),
            }
        }
    }

    /// The helper is gone (`how`): fail the calls waiting, tell the subscriber.
    fn close(&self, how: String) {
        let why = format!("the libvirt helper {how}");
        let (waiting, quitting) = {
            let mut p = self.pending();
            p.ended = Some((self.started.elapsed(), why.clone()));
            (std::mem::take(&mut p.waiting), p.quitting)
        };
        if !quitting {
            tracing::warn!("{why}; it is started again at the next call");
        }
        for (_, tx) in waiting {
            let _ = tx.send(Err(lost(&self.shown, why.clone())));
        }
        self.input.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = self.subscriber().take() {
            if !quitting {
                let _ = s.send(HvEvent::Lost);
            }
        }
    }
}

/// Start a helper from a new thread that then reads its output and reaps it.
fn start(launcher: Arc<dyn Launch>, shown: String) -> io::Result<Arc<Conn>> {
    let (ready, started) = channel();
    std::thread::Builder::new()
        .name("cairn-virt".into())
        .spawn(move || {
            let Launched {
                input,
                output,
                wait,
            } = match launcher.launch() {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let conn = Arc::new(Conn {
                shown,
                started: Instant::now(),
                input: Mutex::new(Some(input)),
                pending: Mutex::new(Pending::default()),
                subscriber: Mutex::new(None),
            });
            let _ = ready.send(Ok(conn.clone()));
            conn.read(output);
            conn.close(wait());
        })?;
    started
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the helper's thread ended at once")))
}

impl Hypervisor for RemoteHypervisor {
    fn capacity(&self) -> Result<NodeCapacity, HvError> {
        match self.call(Call::Capacity, None)? {
            Reply::Capacity(c) => Ok(c),
            other => Err(unexpected("capacity", &other)),
        }
    }

    fn define(&self, xml: &str) -> Result<(), HvError> {
        self.done(Call::Define {
            xml: xml.to_string(),
        })
    }

    fn undefine(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Undefine { name: name.into() })
    }

    fn start(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Start { name: name.into() })
    }

    fn shutdown(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Shutdown { name: name.into() })
    }

    fn destroy(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Destroy { name: name.into() })
    }

    fn reboot(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Reboot { name: name.into() })
    }

    fn reset(&self, name: &str) -> Result<(), HvError> {
        self.done(Call::Reset { name: name.into() })
    }

    fn sample(&self, name: &str, disk_paths: &[String]) -> Result<Option<DomainSample>, HvError> {
        let call = Call::Sample {
            name: name.into(),
            disk_paths: disk_paths.to_vec(),
        };
        match self.call(call, None)? {
            Reply::Sample(s) => Ok(s),
            other => Err(unexpected("sample", &other)),
        }
    }

    fn states(&self) -> Result<BTreeMap<String, RunState>, HvError> {
        match self.call(Call::States, None)? {
            Reply::States(s) => Ok(s),
            other => Err(unexpected("states", &other)),
        }
    }

    fn subscribe(&self, tx: Sender<HvEvent>) -> Result<(), HvError> {
        match self.call(Call::Subscribe, Some(tx))? {
            Reply::Done => Ok(()),
            other => Err(unexpected("subscribe", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{DiskIo, Lifecycle};
    use crate::serve::serve;
    use crate::service::double::{wait_until, FakeHv};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A request pipe that reads as ended on the other side once dropped.
    struct HalfClose(UnixStream);

    impl Write for HalfClose {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    impl Drop for HalfClose {
        fn drop(&mut self) {
            let _ = self.0.shutdown(Shutdown::Write);
        }
    }

    /// The helper as a thread serving a double over a socket pair: the same protocol,
    /// both ends, without libvirt.
    struct InProcess {
        hv: Arc<FakeHv>,
        launches: AtomicUsize,
    }

    impl Launch for InProcess {
        fn launch(&self) -> io::Result<Launched> {
            self.launches.fetch_add(1, SeqCst);
            let (ours, theirs) = UnixStream::pair()?;
            let hv = self.hv.clone();
            let input = BufReader::new(theirs.try_clone()?);
            let output = theirs.try_clone()?;
            let server = std::thread::spawn(move || {
                let _ = serve(&*hv, input, output);
                let _ = theirs.shutdown(Shutdown::Both);
            });
            Ok(Launched {
                input: Box::new(HalfClose(ours.try_clone()?)),
                output: Box::new(ours),
                wait: Box::new(move || match server.join() {
                    Ok(()) => "ended".into(),
                    Err(_) => "panicked".into(),
                }),
            })
        }
    }

    fn in_process() -> (Arc<FakeHv>, Arc<InProcess>, RemoteHypervisor) {
        let hv = Arc::new(FakeHv::default());
        let launcher = Arc::new(InProcess {
            hv: hv.clone(),
            launches: AtomicUsize::new(0),
        });
        let remote = RemoteHypervisor::with_launcher(launcher.clone(), "test://double".into());
        (hv, launcher, remote)
    }

    const XML: &str = "<domain><name>web</name></domain>";

    #[test]
    fn every_call_makes_the_round_trip_with_its_errors_and_events() {
        let (hv, launcher, remote) = in_process();
        // Lazily: nothing runs before the first call.
        assert_eq!(launcher.launches.load(SeqCst), 0);
        assert_eq!(
            remote.capacity().unwrap(),
            NodeCapacity {
                cpus: 2,
                memory_mib: 2048
            }
        );
        let (tx, rx) = channel();
        remote.subscribe(tx).unwrap();
        remote.define(XML).unwrap();
        assert_eq!(
            remote.states().unwrap(),
            [("web".to_string(), RunState::ShutOff)].into()
        );
        assert_eq!(remote.sample("web", &[]).unwrap(), None);
        remote.start("web").unwrap();
        let disks = vec!["/dev/a".to_string(), "/dev/b".to_string()];
        let s = remote.sample("web", &disks).unwrap().expect("running");
        assert_eq!(s.run_id, Some(1));
        assert_eq!(s.rss_kib, Some(40 * 1024));
        assert_eq!(
            s.disks.get("/dev/b"),
            Some(&DiskIo {
                read_bytes: 1024,
                written_bytes: 4096
            })
        );
        remote.reboot("web").unwrap();
        remote.reset("web").unwrap();
        remote.shutdown("web").unwrap();
        remote.start("web").unwrap();
        remote.destroy("web").unwrap();
        remote.undefine("web").unwrap();
        assert_eq!(
            hv.calls.lock().unwrap().clone(),
            [
                "subscribe",
                "define web",
                "start web",
                "reboot web",
                "reset web",
                "shutdown web",
                "start web",
                "destroy web",
                "undefine web"
            ]
        );
        // Errors keep their variant: the service acts on it.
        assert_eq!(
            remote.undefine("web").unwrap_err(),
            HvError::NotDefined("web".into())
        );
        assert_eq!(
            remote.start("gone").unwrap_err(),
            HvError::NotDefined("gone".into())
        );
        *hv.fail_define.lock().unwrap() = Some("web".into());
        assert!(matches!(remote.define(XML), Err(HvError::NotDefined(n)) if n == "web"));
        *hv.refuse_subscribe.lock().unwrap() = 1;
        let (tx2, _rx2) = channel();
        assert!(remote.subscribe(tx2).is_err());
        // Events reach the subscriber, `Lost` included.
        let (tx, rx2) = channel();
        remote.subscribe(tx).unwrap();
        hv.send(HvEvent::Domain {
            name: "web".into(),
            event: Lifecycle::Started,
        });
        hv.send(HvEvent::Lost);
        let within = Duration::from_secs(5);
        assert_eq!(
            rx2.recv_timeout(within).unwrap(),
            HvEvent::Domain {
                name: "web".into(),
                event: Lifecycle::Started
            }
        );
        assert_eq!(rx2.recv_timeout(within).unwrap(), HvEvent::Lost);
        // The replaced subscriber got nothing.
        assert!(rx.try_recv().is_err());
        // One helper served it all.
        assert_eq!(launcher.launches.load(SeqCst), 1);
    }

    #[test]
    fn concurrent_calls_get_their_own_answers_and_a_slow_one_holds_up_none() {
        let (hv, _launcher, remote) = in_process();
        for name in ["a", "b", "c", "d"] {
            remote
                .define(&format!("<domain><name>{name}</name></domain>"))
                .unwrap();
            remote.start(name).unwrap();
            hv.cpu_ns
                .lock()
                .unwrap()
                .insert(name.into(), u64::from(name.as_bytes()[0]));
        }
        // Samples from many threads at once: each gets its own domain's counters.
        std::thread::scope(|s| {
            for round in 0..8 {
                for name in ["a", "b", "c", "d"] {
                    let remote = &remote;
                    s.spawn(move || {
                        let got = remote.sample(name, &[]).unwrap().unwrap();
                        assert_eq!(
                            got.cpu_time_ns,
                            u64::from(name.as_bytes()[0]),
                            "round {round}"
                        );
                    });
                }
            }
        });
        // Four power-offs at once run at once in the helper; a state read meanwhile is
        // answered while they still run.
        *hv.destroy_takes.lock().unwrap() = Duration::from_secs(1);
        std::thread::scope(|s| {
            for name in ["a", "b", "c", "d"] {
                let remote = &remote;
                s.spawn(move || remote.destroy(name).unwrap());
            }
            wait_until("four power-offs at once", Duration::from_secs(5), || {
                hv.destroying.load(SeqCst) == 4
            });
            let states = remote.states().unwrap();
            assert_eq!(states.len(), 4);
            assert_eq!(hv.destroying.load(SeqCst), 4, "states waited for destroy");
        });
        assert_eq!(hv.most_destroying.load(SeqCst), 4);
        assert!(remote
            .states()
            .unwrap()
            .values()
            .all(|s| *s == RunState::ShutOff));
    }

    fn shell(dir: &Path, script: &str) -> RemoteHypervisor {
        RemoteHypervisor::with_launcher(
            Arc::new(Process {
                program: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    script.into(),
                    "helper".into(),
                    dir.to_string_lossy().into_owned(),
                ],
            }),
            "test:///sh".into(),
        )
    }

    fn launches(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("launches"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Answers `$x`'s id with the outcome `$2`.
    const REPLY: &str = r#"reply() { id=$(printf '%s\n' "$1" | sed 's/.*"id":\([0-9]*\).*/\1/'); printf '{"response":{"id":%s,"outcome":{"ok":%s}}}\n' "$id" "$2"; }
echo x >> "$1/launches"
"#;

    #[test]
    fn a_helper_that_dies_mid_call_fails_the_call_loses_the_events_and_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        // The first helper accepts the subscription, then dies in the middle of the next
        // call; the second one answers every call.
        let script = format!(
            r#"{REPLY}
if [ "$(wc -l < "$1/launches")" -eq 1 ]; then read x; reply "$x" '"done"'; read x; exit 1; fi
while read x; do reply "$x" '{{"states":{{"x":"running"}}}}'; done"#
        );
        let remote = shell(dir.path(), &script);
        let (tx, rx) = channel();
        remote.subscribe(tx).unwrap();
        let e = remote.states().unwrap_err();
        let text = cairn_core::boot::error_chain(&e);
        assert!(matches!(e, HvError::Connect { .. }), "{e:?}");
        assert!(text.contains("exit status: 1"), "{text}");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(HvEvent::Lost));
        assert_eq!(launches(dir.path()), 1);
        // The next call starts a new helper, at once.
        assert_eq!(
            remote.states().unwrap(),
            [("x".to_string(), RunState::Running)].into()
        );
        assert_eq!(launches(dir.path()), 2);
        // Several calls share it.
        remote.states().unwrap();
        assert_eq!(launches(dir.path()), 2);
    }

    #[test]
    fn a_crashing_helper_is_restarted_once_at_once_then_after_a_pause() {
        let dir = tempfile::tempdir().unwrap();
        let remote = shell(dir.path(), &format!("{REPLY}\nread x; exit 3"));
        for want in [1, 2] {
            let e = remote.states().unwrap_err();
            assert!(matches!(e, HvError::Connect { .. }), "{e:?}");
            assert_eq!(launches(dir.path()), want);
        }
        // Two young deaths in a row: the third call fails at once, without a start.
        let e = remote.capacity().unwrap_err();
        let text = cairn_core::boot::error_chain(&e);
        assert!(text.contains("next start in"), "{text}");
        assert_eq!(launches(dir.path()), 2);
        assert_eq!(pause(2), Some(RESPAWN_MIN));
        assert_eq!(pause(3), Some(RESPAWN_MIN * 2));
        assert_eq!(pause(40), Some(RESPAWN_MAX));
        assert_eq!(pause(1), None);
    }

    #[test]
    fn a_missing_helper_is_a_connection_error() {
        let remote = RemoteHypervisor::new("/nonexistent/cairn-virt");
        let e = remote.states().unwrap_err();
        let text = cairn_core::boot::error_chain(&e);
        assert!(matches!(e, HvError::Connect { .. }), "{e:?}");
        assert!(
            text.contains("qemu:///system (through /nonexistent/cairn-virt)")
                && text.contains("cannot start the helper"),
            "{text}"
        );
    }

    #[test]
    fn dropping_the_client_ends_the_helper() {
        let (_hv, launcher, remote) = in_process();
        remote.states().unwrap();
        let conn = remote.state().conn.clone().unwrap();
        drop(remote);
        wait_until("the helper ended", Duration::from_secs(5), || {
            conn.ended().is_some()
        });
        assert_eq!(launcher.launches.load(SeqCst), 1);
    }
}
