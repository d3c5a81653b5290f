//! The front door's connection limits (docs/decisions/0018): how many connections one client
//! address and everyone together may hold, the deadline of each phase of a connection, and
//! the bookkeeping behind them (open connections per address, requests in flight and writes
//! blocked per connection).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// How long a client may take for its TLS handshake. A real client needs one round trip and
/// a few milliseconds of CPU; 10 s covers a lossy link with retransmits.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's head (request line and headers), counted
/// from the moment the server waits for it: right after the handshake, or after the previous
/// answer on a kept-alive HTTP/1.1 connection (hyper starts its header timer there), so it
/// is also HTTP/1.1's keep-alive idle deadline. A client writes its head at once; 10 s
/// covers retransmits and ends slowloris-style trickles. Over HTTP/2 the first request must
/// arrive within this long after the handshake.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body (at most [`crate::exchange::MAX_BODY`], 64 KiB) may take in all: a
/// client that stalls is answered 408 and, over HTTP/1.1, disconnected. 30 s is 2 KiB/s.
/// An image upload's streamed body (`images::write_upload`) has no overall deadline: this is
/// the longest it may go without a byte.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with no request in progress for this long is closed (HTTP/2: GOAWAY). An
/// open event stream is a request in progress. A browser keeps one HTTP/2 connection to the
/// UI and reconnects after a minute of nothing at the price of one handshake.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection whose writes make no progress for this long (the client reads nothing of
/// what it asked for) is dropped: one stalled reader must not hold buffers forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 keep-alive: a PING after this long without frames from the client...
pub const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// ...which must be answered within this long, or the connection is closed. Together they
/// find a vanished peer within 30 s.
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection being closed for idleness may take to finish its graceful close
/// (GOAWAY, flush) before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Most connections open at once, from everyone. Each holds one file descriptor and a few
/// tens of KiB (TLS state, buffers); the server never uses more than half the process's
/// open-files limit (see [`Limits::fit_open_files`]): the rest is for state files, journald,
/// libvirt and the storage tools.
pub const MAX_CONNECTIONS: usize = 4096;
/// Most connections open at once from one client address (IPv6: one /64). A browser opens
/// at most 6 over HTTP/1.1 and 1 over HTTP/2, a script a handful; 1,000 leaves room for a
/// whole office behind one NAT address while one host cannot take a quarter of
/// [`MAX_CONNECTIONS`].
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 1000;
/// Longest request target (path and query) the API accepts (414 `uri_too_long`). The API's
/// own paths are under 200 bytes.
pub const MAX_URI: usize = 8 * 1024;
/// Most header bytes (names and values) a request may carry (431 `headers_too_large`).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields a request may carry (431 `headers_too_large`).
pub const MAX_HEADERS: usize = 100;
/// hyper's HTTP/1.1 read buffer limit: above the API's URI and header limits together, so
/// that a request over them reaches the API and gets its JSON 414/431; only beyond this
/// does hyper answer by itself (431, empty body).
pub const HTTP1_MAX_BUF: usize = 64 * 1024;
/// hyper's HTTP/1.1 header count limit, above [`MAX_HEADERS`] for the same reason.
pub const HTTP1_MAX_HEADERS: usize = 256;
/// The HTTP/2 header list size the server advertises (SETTINGS_MAX_HEADER_LIST_SIZE), above
/// [`MAX_HEADER_BYTES`] + [`MAX_URI`] for the same reason.
pub const HTTP2_MAX_HEADER_LIST: u32 = 64 * 1024;
/// Refused connections are logged at debug each; a warning at most this often.
pub const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(60);

/// The deadlines and caps of a server (defaults: the constants above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub handshake: Duration,
    pub headers: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub send: Duration,
    pub h2_ping_interval: Duration,
    pub h2_ping_timeout: Duration,
    pub close_grace: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: HANDSHAKE_TIMEOUT,
            headers: HEADER_TIMEOUT,
            body: BODY_TIMEOUT,
            idle: IDLE_TIMEOUT,
            send: SEND_TIMEOUT,
            h2_ping_interval: H2_PING_INTERVAL,
            h2_ping_timeout: H2_PING_TIMEOUT,
            close_grace: CLOSE_GRACE,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

impl Limits {
    /// The same limits with the total cap at most half of `open_files` (the process's
    /// open-files limit), so that a flood of connections never runs the process out of file
    /// descriptors, and the per-address cap at most a quarter of the total, so that one
    /// client never takes it all.
    pub fn fit_open_files(mut self, open_files: u64) -> Self {
        let budget = usize::try_from(open_files / 2).unwrap_or(usize::MAX).max(1);
        self.max_connections = self.max_connections.min(budget);
        self.max_connections_per_address = self
            .max_connections_per_address
            .min((self.max_connections / 4).max(1));
        self
    }
}

/// The process's soft open-files limit (`RLIMIT_NOFILE`), if it can be read.
pub fn open_files_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raise the soft open-files limit to the hard limit; returns (before, after).
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, soft.max(hard)))
}

/// Why a connection was refused right after accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address already holds its share.
    PerAddress(usize),
    /// The server holds as many connections as it will.
    Total(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PerAddress(n) => write!(f, "its address already has {n} connections open"),
            Refusal::Total(n) => write!(f, "the server already has {n} connections open"),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct RefusalLog {
    last_warn: Option<Instant>,
    since_warn: u64,
}

/// Open connections, per client address and in total.
#[derive(Debug)]
pub struct Tracker {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
    all_closed: Notify,
    refusals: Mutex<RefusalLog>,
}

/// One open connection's place in the [`Tracker`]; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    tracker: Arc<Tracker>,
    key: IpAddr,
}

impl Tracker {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Tracker {
            max_total: limits.max_connections,
            max_per_address: limits.max_connections_per_address,
            counts: Mutex::new(Counts::default()),
            all_closed: Notify::new(),
            refusals: Mutex::new(RefusalLog {
                last_warn: None,
                since_warn: 0,
            }),
        })
    }

    /// Count a new connection from `ip`, or say why it must be refused.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = crate::ratelimit::key(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(Refusal::Total(c.total));
        }
        let n = c.per_address.entry(key).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refusal::PerAddress(*n));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            tracker: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Wait until no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.all_closed.notified();
            if self.total() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Log a refusal: at debug always, as a warning at most every [`REFUSAL_WARN_EVERY`].
    pub fn log_refusal(&self, peer: SocketAddr, why: Refusal) {
        tracing::debug!(%peer, "connection refused: {why}");
        let now = Instant::now();
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        r.since_warn += 1;
        if r.last_warn
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_WARN_EVERY)
        {
            tracing::warn!(
                "refused {} connection(s) over the connection limits ({} per address, {} in all) since the last warning; latest from {peer}: {why}",
                r.since_warn,
                self.max_per_address,
                self.max_total
            );
            r.last_warn = Some(now);
            r.since_warn = 0;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .tracker
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.key);
            }
        }
        c.total -= 1;
        if c.total == 0 {
            self.tracker.all_closed.notify_waiters();
        }
    }
}

/// What one connection is doing: requests in flight, when it last became idle, whether (and
/// since when) its writes are blocked. Times are milliseconds since the connection began.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    idle_since_ms: AtomicU64,
    /// 0: not blocked; otherwise 1 + the time the current blocked write began.
    write_blocked_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
        })
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// A request begins; it is in flight until the guard (kept with its response body) drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Requests begun on this connection.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How long the connection has had no request in flight (`None` while one is).
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::SeqCst);
        Some(Duration::from_millis(self.ms(now).saturating_sub(since)))
    }

    /// How long the current write has been blocked (`None` when writes are not blocked).
    pub fn write_blocked_for(&self, now: Instant) -> Option<Duration> {
        match self.write_blocked_ms.load(Ordering::Relaxed) {
            0 => None,
            b => Some(Duration::from_millis(self.ms(now).saturating_sub(b - 1))),
        }
    }

    fn note_write<T>(&self, r: &Poll<T>) {
        if r.is_pending() {
            if self.write_blocked_ms.load(Ordering::Relaxed) == 0 {
                let at = self.ms(Instant::now()).saturating_add(1);
                self.write_blocked_ms.store(at, Ordering::Relaxed);
            }
        } else {
            self.write_blocked_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// A request in flight on a connection (see [`Activity::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms
            .store(a.ms(Instant::now()), Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's byte stream, noting in its [`Activity`] when writes block.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.note_write(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.note_write(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.note_write(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.activity.note_write(&r);
        r
    }
}

/// A response body that keeps its request counted as in flight until it is dropped (an
/// event stream is in flight for as long as it runs).
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What ended a connection's watch (see [`watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended<E> {
    /// The connection finished by itself (or after a graceful close we asked for).
    Finished(Result<(), E>),
    /// Its writes were blocked for longer than the send deadline; dropped.
    SendTimeout,
    /// Asked to close gracefully, it was still open after the close grace; dropped.
    CloseTimeout,
}

/// Why [`watch`] asks a connection to close gracefully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Idle,
    Shutdown,
}

/// Drive `conn` until it ends, enforcing the idle, first-request and send deadlines of
/// `limits`: `close` asks it to close gracefully (when idle, or when `stop` completes).
pub async fn watch<C, E, S>(
    conn: Pin<&mut C>,
    activity: &Activity,
    limits: &Limits,
    stop: S,
    mut close: impl FnMut(Pin<&mut C>, CloseReason),
) -> Ended<E>
where
    C: Future<Output = Result<(), E>>,
    S: Future<Output = ()>,
{
    let mut conn = conn;
    tokio::pin!(stop);
    let mut stopping = false;
    let mut closing: Option<Instant> = None;
    let check = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(check);
    loop {
        tokio::select! {
            r = conn.as_mut() => return Ended::Finished(r),
            _ = &mut stop, if !stopping => {
                stopping = true;
                close(conn.as_mut(), CloseReason::Shutdown);
            }
            _ = &mut check => {
                let now = Instant::now();
                // Each branch says when its deadline could pass next; the connection wakes
                // only then (a stalled connection costs one wake-up per deadline, not a
                // timer tick a second).
                let mut next = limits.send / 2; // a write that blocks from now on
                if let Some(d) = activity.write_blocked_for(now) {
                    if d >= limits.send {
                        return Ended::SendTimeout;
                    }
                    next = next.min(limits.send - d);
                }
                match closing {
                    Some(at) => {
                        let d = now.duration_since(at);
                        if d >= limits.close_grace {
                            return Ended::CloseTimeout;
                        }
                        next = next.min(limits.close_grace - d);
                    }
                    None => {
                        // Before the first request the head deadline applies; after it,
                        // the idle one.
                        let limit = if activity.requests() == 0 {
                            limits.headers
                        } else {
                            limits.idle
                        };
                        if let Some(d) = activity.idle_for(now) {
                            if d >= limit {
                                closing = Some(now);
                                if !stopping {
                                    close(conn.as_mut(), CloseReason::Idle);
                                }
                                next = next.min(limits.close_grace);
                            } else {
                                next = next.min(limit - d);
                            }
                        } else {
                            // In flight: an idle spell starting now is seen within twice
                            // the deadline.
                            next = next.min(limit);
                        }
                    }
                }
                check.as_mut().reset(tokio::time::Instant::from_std(now) + next.max(MIN_CHECK));
            }
        }
    }
}

/// The shortest wait between two checks of a connection's deadlines.
const MIN_CHECK: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limits(total: usize, per: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per,
            ..Limits::default()
        }
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let t = Tracker::new(&limits(5, 2));
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let a1 = t.open(a).unwrap();
        let _a2 = t.open(a).unwrap();
        assert_eq!(t.open(a).unwrap_err(), Refusal::PerAddress(2));
        let _b1 = t.open(b).unwrap();
        drop(a1);
        let _a3 = t.open(a).unwrap();
        let _b2 = t.open(b).unwrap();
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        let _c1 = t.open(c).unwrap();
        assert_eq!(t.total(), 5);
        assert_eq!(t.open(c).unwrap_err(), Refusal::Total(5));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = Tracker::new(&limits(10, 1));
        let one: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        let _s = t.open(one.into()).unwrap();
        assert!(t.open(same_64.into()).is_err());
        assert!(t.open(other_64.into()).is_ok());
    }

    #[tokio::test]
    async fn all_closed_waits_for_the_last_slot() {
        let t = Tracker::new(&limits(10, 10));
        let s = t.open(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(s);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn caps_fit_the_open_files_limit() {
        let caps = |n| {
            let l = Limits::default().fit_open_files(n);
            (l.max_connections, l.max_connections_per_address)
        };
        assert_eq!(caps(65536), (4096, 1000));
        assert_eq!(caps(8192), (4096, 1000));
        assert_eq!(caps(4096), (2048, 512));
        assert_eq!(caps(1024), (512, 128));
        assert_eq!(caps(0), (1, 1));
    }

    #[test]
    fn in_flight_requests_hold_off_idleness() {
        let a = Activity::new();
        let now = Instant::now();
        assert!(a.idle_for(now).is_some());
        let g = a.begin();
        assert_eq!(a.idle_for(now), None);
        assert_eq!(a.requests(), 1);
        drop(g);
        assert!(a.idle_for(Instant::now()).unwrap() < Duration::from_secs(5));
        assert_eq!(a.write_blocked_for(now), None);
        a.note_write(&Poll::<()>::Pending);
        assert!(a.write_blocked_for(Instant::now()).is_some());
        a.note_write(&Poll::Ready(()));
        assert_eq!(a.write_blocked_for(Instant::now()), None);
    }

    #[tokio::test]
    async fn a_write_blocked_past_the_send_deadline_drops_the_connection() {
        let a = Activity::new();
        let _request = a.begin();
        a.note_write(&Poll::<()>::Pending);
        let limits = Limits {
            send: Duration::from_millis(50),
            ..Limits::default()
        };
        let conn = std::future::pending::<Result<(), ()>>();
        tokio::pin!(conn);
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            watch(
                conn.as_mut(),
                &a,
                &limits,
                std::future::pending(),
                |_, _| panic!("not idle"),
            ),
        )
        .await
        .unwrap();
        assert_eq!(ended, Ended::SendTimeout);
    }

    #[tokio::test]
    async fn an_idle_connection_is_asked_to_close_then_dropped_after_the_grace() {
        let a = Activity::new();
        drop(a.begin());
        let limits = Limits {
            idle: Duration::from_millis(50),
            close_grace: Duration::from_millis(50),
            ..Limits::default()
        };
        let conn = std::future::pending::<Result<(), ()>>();
        tokio::pin!(conn);
        let mut asked = Vec::new();
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            watch(
                conn.as_mut(),
                &a,
                &limits,
                std::future::pending(),
                |_, why| asked.push(why),
            ),
        )
        .await
        .unwrap();
        assert_eq!(ended, Ended::CloseTimeout);
        assert_eq!(asked, vec![CloseReason::Idle]);
    }
}
