//! The helper's side of the protocol: serves any `Hypervisor` over a line reader and writer (stdin/stdout in `cairn-virt`), one thread per request so a slow call does not hold up the others.

use crate::hypervisor::{HvError, HvEvent, Hypervisor};
use crate::protocol::{encode, id_of, Call, Line, Outcome, Reply, Request, Response};
use std::io::{self, BufRead, Write};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

/// The writer every answer and event goes through, one whole line at a time.
type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// Serve `hv` until `input` ends: answer each request line with one response line of the
/// same id, from a thread of its own (responses come in the order calls finish), and write
/// the events of a `subscribe` as event lines. Returns once every request read has been
/// answered (events keep being forwarded, from a detached thread, until `hv` drops the
/// subscription). Fails only when `input` cannot be read.
pub fn serve(
    hv: &dyn Hypervisor,
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    let out: Out = Arc::new(Mutex::new(Box::new(output)));
    let (events, rx) = channel::<HvEvent>();
    let events_out = out.clone();
    std::thread::Builder::new()
        .name("hv-events".into())
        .spawn(move || {
            for ev in rx {
                if write_line(&events_out, &Line::Event(ev)).is_err() {
                    break;
                }
            }
        })?;
    std::thread::scope(|s| -> io::Result<()> {
        for line in input.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let req = match serde_json::from_str::<Request>(&line) {
                Ok(req) => req,
                Err(e) => {
                    match id_of(&line) {
                        Some(id) => {
                            let outcome =
                                Outcome::Err(HvError::Protocol(format!("bad request: {e}")));
                            let _ = write_line(&out, &Line::Response(Response { id, outcome }));
                        }
                        None => tracing::warn!("ignoring a line that is not a request: {e}"),
                    }
                    continue;
                }
            };
            let out = &out;
            let events = events.clone();
            std::thread::Builder::new()
                .name(format!("hv-{}", req.call.method()))
                .spawn_scoped(s, move || {
                    let outcome = answer(hv, req.call, events).into();
                    let response = Line::Response(Response {
                        id: req.id,
                        outcome,
                    });
                    // A failed write means the caller is gone; nothing is left to tell.
                    let _ = write_line(out, &response);
                })?;
        }
        Ok(())
    })
}

/// Make `call` on `hv`.
pub fn answer(hv: &dyn Hypervisor, call: Call, events: Sender<HvEvent>) -> Result<Reply, HvError> {
    let done = |r: Result<(), HvError>| r.map(|()| Reply::Done);
    match call {
        Call::Capacity => hv.capacity().map(Reply::Capacity),
        Call::Define { xml } => done(hv.define(&xml)),
        Call::Undefine { name } => done(hv.undefine(&name)),
        Call::Start { name } => done(hv.start(&name)),
        Call::Shutdown { name } => done(hv.shutdown(&name)),
        Call::Destroy { name } => done(hv.destroy(&name)),
        Call::Reboot { name } => done(hv.reboot(&name)),
        Call::Reset { name } => done(hv.reset(&name)),
        Call::Sample { name, disk_paths } => hv.sample(&name, &disk_paths).map(Reply::Sample),
        Call::States => hv.states().map(Reply::States),
        Call::Subscribe => done(hv.subscribe(events)),
    }
}

fn write_line(out: &Out, line: &Line) -> io::Result<()> {
    let text = encode(line);
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    w.write_all(text.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::double::FakeHv;
    use std::io::{BufReader, Cursor};
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    /// A writer that sends each line it is given to a channel.
    struct Lines(Sender<String>, Vec<u8>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.extend_from_slice(buf);
            while let Some(at) = self.1.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.1.drain(..=at).collect();
                let _ = self
                    .0
                    .send(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn serve_lines(hv: &FakeHv, input: &str) -> Receiver<String> {
        let (tx, rx) = channel();
        serve(
            hv,
            BufReader::new(Cursor::new(input.to_string())),
            Lines(tx, Vec::new()),
        )
        .unwrap();
        rx
    }

    fn next(rx: &Receiver<String>) -> Line {
        let text = rx.recv_timeout(Duration::from_secs(5)).expect("a line");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_bad_line_with_an_id_gets_a_protocol_error_and_one_without_is_skipped() {
        let hv = FakeHv::default();
        let rx = serve_lines(
            &hv,
            "garbage\n\n{\"id\":4,\"call\":\"fly\"}\n{\"id\":5,\"call\":\"states\"}\n",
        );
        let mut got = [next(&rx), next(&rx)];
        got.sort_by_key(|l| match l {
            Line::Response(r) => r.id,
            Line::Event(_) => 0,
        });
        match &got[0] {
            Line::Response(Response {
                id: 4,
                outcome: Outcome::Err(HvError::Protocol(m)),
            }) => assert!(m.contains("bad request"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            got[1],
            Line::Response(Response {
                id: 5,
                outcome: Outcome::Ok(Reply::States(Default::default()))
            })
        );
        // Nothing else: the output is dropped once serving ends (no subscription holds it).
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
