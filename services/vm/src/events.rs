//! libvirt domain lifecycle events through FFI (the `virt` crate has no safe API for them): the crate's only `unsafe` code, behind [`start_event_loop`] and [`Subscription`].
//!
//! libvirt delivers events from its default event loop, which must be registered before a
//! connection is opened and run by a thread of ours. A [`Subscription`] is a connection of its
//! own with a lifecycle callback and a close callback; both send into a channel, so callers
//! only see [`HvEvent`]s.

use crate::hv_types::{HvError, HvEvent, LibvirtError, Lifecycle};
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
        .map_err(|e| HvError::EventLoop {
            source: LibvirtError::new(e.to_string()),
        })
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
            source: source.into(),
        })?;
        let failed = |source: virt::error::Error| HvError::Subscribe {
            uri: uri.to_string(),
            source: source.into(),
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
                // An enum value of libvirt's (0): it fits in a C int.
                sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE.cast_signed(),
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
