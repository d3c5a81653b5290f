//! libvirt domain lifecycle events through FFI (the `virt` crate has no safe API for them): the crate's only `unsafe` code, behind [`start_event_loop`] and [`Subscription`].
//!
//! libvirt delivers events from its default event loop, which must be registered before a
//! connection is opened and run by a thread of ours. A [`Subscription`] is a connection of its
//! own with a lifecycle callback and a close callback; both send into a channel, so callers
//! only see [`HvEvent`]s.

use crate::hypervisor::{HvError, HvEvent, Lifecycle};
use std::ffi::{c_int, c_void, CStr};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use virt::connect::Connect;
use virt::sys;

/// Why a failure to start the event loop happened (kept for every later caller).
type LoopError = Arc<dyn std::error::Error + Send + Sync>;

/// The outcome of registering libvirt's default event loop (done once per process).
static EVENT_LOOP: OnceLock<Result<(), LoopError>> = OnceLock::new();

/// Register libvirt's default event loop implementation and run it on the thread
/// `libvirt-events`, once per process. Call it before the process opens its first libvirt
/// connection (the remote driver only watches its socket, and so only sees libvirtd go away,
/// when a loop was registered before it connected).
pub fn start_event_loop() -> Result<(), HvError> {
    EVENT_LOOP
        .get_or_init(|| {
            virt::event::event_register_default_impl().map_err(|e| Arc::new(e) as LoopError)?;
            std::thread::Builder::new()
                .name("libvirt-events".into())
                .spawn(|| loop {
                    // Blocks until a watched file descriptor or timer fires, then runs its
                    // callbacks (ours among them).
                    if let Err(e) = virt::event::event_run_default_impl() {
                        tracing::warn!("libvirt event loop: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .map(drop)
                .map_err(|e| Arc::new(e) as LoopError)
        })
        .clone()
        .map_err(|source| HvError::EventLoop { source })
}

/// Domain lifecycle events of one libvirt connection, sent to a channel until dropped.
pub struct Subscription {
    conn: Connect,
    callback_id: c_int,
}

impl Subscription {
    /// Open a connection to `uri` and send every domain lifecycle event on it to `tx`, then
    /// [`HvEvent::Lost`] once when the connection closes (libvirtd stopped or restarted).
    pub fn open(uri: &str, tx: Sender<HvEvent>) -> Result<Subscription, HvError> {
        start_event_loop()?;
        let mut conn = Connect::open(Some(uri)).map_err(|source| HvError::Connect {
            uri: uri.to_string(),
            source,
        })?;
        let failed = |source| HvError::Subscribe {
            uri: uri.to_string(),
            source,
        };
        let close_tx = Box::into_raw(Box::new(tx.clone())).cast::<c_void>();
        // SAFETY: `conn` is an open connection. `on_close` has libvirt's
        // `virConnectCloseFunc` signature; `close_tx` is a leaked `Box<Sender<HvEvent>>` that
        // libvirt passes back to `on_close` and releases with `free_sender` when the callback
        // is unregistered (on failure libvirt keeps nothing: it is then leaked, never freed
        // twice).
        let rc = unsafe {
            sys::virConnectRegisterCloseCallback(
                conn.as_ptr(),
                Some(on_close),
                close_tx,
                Some(free_sender),
            )
        };
        if rc < 0 {
            let e = virt::error::Error::last_error();
            let _ = conn.close();
            return Err(failed(e));
        }
        let event_tx = Box::into_raw(Box::new(tx)).cast::<c_void>();
        // SAFETY: the lifecycle event calls back with `virConnectDomainEventCallback`'s
        // signature, which `on_lifecycle` has; registering it through the generic type is
        // what libvirt's own `VIR_DOMAIN_EVENT_CALLBACK` cast does, and both are `extern "C"`
        // function pointers of the same size.
        let generic: sys::virConnectDomainEventGenericCallback = Some(unsafe {
            std::mem::transmute::<
                unsafe extern "C" fn(
                    sys::virConnectPtr,
                    sys::virDomainPtr,
                    c_int,
                    c_int,
                    *mut c_void,
                ) -> c_int,
                unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void),
            >(on_lifecycle)
        });
        // SAFETY: `conn` is open; a null domain means every domain; `event_tx` is a leaked
        // `Box<Sender<HvEvent>>` handed back to `on_lifecycle` and released by `free_sender`
        // when the callback is deregistered (leaked on failure, as above).
        let id = unsafe {
            sys::virConnectDomainEventRegisterAny(
                conn.as_ptr(),
                std::ptr::null_mut(),
                sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
                generic,
                event_tx,
                Some(free_sender),
            )
        };
        if id < 0 {
            let e = virt::error::Error::last_error();
            // SAFETY: `on_close` was registered on this open connection just above.
            unsafe { sys::virConnectUnregisterCloseCallback(conn.as_ptr(), Some(on_close)) };
            let _ = conn.close();
            return Err(failed(e));
        }
        Ok(Subscription {
            conn,
            callback_id: id,
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // SAFETY: both callbacks were registered on `self.conn`, which is still open (closed
        // only below). Failures (a connection libvirtd already dropped) leave nothing to undo.
        unsafe {
            sys::virConnectUnregisterCloseCallback(self.conn.as_ptr(), Some(on_close));
            sys::virConnectDomainEventDeregisterAny(self.conn.as_ptr(), self.callback_id);
        }
        let _ = self.conn.close();
    }
}

/// libvirt's lifecycle callback: the domain's name and event to the channel.
unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    if opaque.is_null() || dom.is_null() {
        return 0;
    }
    // SAFETY: `opaque` is the `Box<Sender<HvEvent>>` registered with this callback; libvirt
    // frees it (through `free_sender`) only after deregistration, never during a call.
    let tx = unsafe { &*opaque.cast::<Sender<HvEvent>>() };
    // SAFETY: `dom` is valid for the duration of the callback; the name it returns belongs
    // to it and is copied before returning.
    let name = unsafe { sys::virDomainGetName(dom) };
    if name.is_null() {
        return 0;
    }
    // SAFETY: a non-null name from libvirt is a NUL-terminated C string.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let _ = tx.send(HvEvent::Domain {
        name,
        event: Lifecycle::from_raw(event),
    });
    0
}

/// libvirt's close callback: the connection is gone.
unsafe extern "C" fn on_close(_conn: sys::virConnectPtr, _reason: c_int, opaque: *mut c_void) {
    if opaque.is_null() {
        return;
    }
    // SAFETY: `opaque` is the `Box<Sender<HvEvent>>` registered with this callback, alive
    // until libvirt calls `free_sender` for it.
    let tx = unsafe { &*opaque.cast::<Sender<HvEvent>>() };
    let _ = tx.send(HvEvent::Lost);
}

/// Releases a callback's sender when libvirt drops the callback.
unsafe extern "C" fn free_sender(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: `opaque` came from `Box::into_raw` of a `Box<Sender<HvEvent>>` and libvirt
        // calls this once per registration, after the callback can no longer run.
        drop(unsafe { Box::from_raw(opaque.cast::<Sender<HvEvent>>()) });
    }
}

#[cfg(test)]
mod tests {
    //! Real events from libvirt's built-in `test:///default` driver.
    use super::*;
    use crate::hypervisor::Hypervisor;
    use crate::libvirt::Libvirt;
    use crate::spec::VmRecord;
    use crate::xml::{domain_xml, Accelerator};
    use std::sync::mpsc::{channel, Receiver};
    use std::time::Instant;

    fn record(name: &str) -> VmRecord {
        serde_json::from_value(serde_json::json!({
            "name": name, "uuid": crate::ids::new_uuid(), "vcpus": 1, "memory_mib": 64,
            "disks": [], "nics": [], "boot": ["disk"], "cpu_model": "qemu64",
            "machine": "pc", "autostart": false,
        }))
        .unwrap()
    }

    /// The next event for domain `name`, waiting up to `within`.
    fn next_for(rx: &Receiver<HvEvent>, name: &str, within: Duration) -> Lifecycle {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(HvEvent::Domain { name: n, event }) if n == name => return event,
                Ok(_) => continue,
                Err(e) => panic!("no event for domain {name} within {within:?}: {e}"),
            }
        }
    }

    #[test]
    fn lifecycle_events_arrive_from_the_test_driver() {
        let lv = Libvirt::open("test:///default").unwrap();
        let (tx, rx) = channel();
        lv.subscribe(tx).unwrap();
        let xml = domain_xml(&record("ev1"), Accelerator::Tcg, "/q", "/tmp/ev1.log");
        let within = Duration::from_secs(5);
        lv.define(&xml).unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Defined);
        let t0 = Instant::now();
        lv.start("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Started);
        eprintln!("start -> event: {:?}", t0.elapsed());
        lv.destroy("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Stopped);
        assert_eq!(Lifecycle::Stopped.state(), Some(crate::RunState::ShutOff));
        lv.undefine("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Undefined);
    }

    #[test]
    fn a_new_subscription_replaces_the_old_one() {
        let lv = Libvirt::open("test:///default").unwrap();
        let (tx1, rx1) = channel();
        lv.subscribe(tx1).unwrap();
        let (tx2, rx2) = channel();
        lv.subscribe(tx2).unwrap();
        let xml = domain_xml(&record("ev2"), Accelerator::Tcg, "/q", "/tmp/ev2.log");
        lv.define(&xml).unwrap();
        assert_eq!(
            next_for(&rx2, "ev2", Duration::from_secs(5)),
            Lifecycle::Defined
        );
        // The first subscription was dropped: its lifecycle callback is gone. (The test
        // driver keeps no close callback, so the close callback's sender stays leaked and
        // the channel open.)
        let got = rx1.recv_timeout(Duration::from_millis(300));
        assert!(got.is_err(), "the old subscription still delivers: {got:?}");
        lv.undefine("ev2").unwrap();
    }
}
