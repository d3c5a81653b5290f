//! The first-boot setup block on the console: addresses, URL, fingerprint, setup code.

use crate::addrs::{usable, AddressSource};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// First line of the block (the lab and users look for it).
pub const BEGIN: &str = "CAIRN SETUP";
/// Last line of the block.
pub const END: &str = "CAIRN SETUP END";
/// How often addresses are re-read while waiting for one.
pub const POLL: Duration = Duration::from_millis(250);

/// What the block shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInfo {
    pub hostname: String,
    pub addresses: Vec<IpAddr>,
    pub urls: Vec<String>,
    pub fingerprint: String,
    pub code: String,
    /// How long cairnd waited for an address when none came (printed as a hint).
    pub gave_up_after: Option<Duration>,
}

/// `https://HOST[:PORT]/` for an address.
pub fn url(ip: IpAddr, port: u16) -> String {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if port == 443 {
        format!("https://{host}/")
    } else {
        format!("https://{host}:{port}/")
    }
}

/// URLs users can open: a wildcard listener stands for the node's addresses of its family
/// (IPv6 listeners are v6-only), a specific listener for its own address.
pub fn urls(listeners: &[SocketAddr], node: &[IpAddr]) -> Vec<String> {
    let mut out = Vec::new();
    for l in listeners {
        let ips: Vec<IpAddr> = if l.ip().is_unspecified() {
            node.iter()
                .filter(|ip| ip.is_ipv4() == l.is_ipv4())
                .copied()
                .collect()
        } else {
            vec![l.ip()]
        };
        for ip in ips {
            let u = url(ip, l.port());
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

/// The block's text, one item per line, framed by blank lines.
pub fn format_block(info: &SetupInfo) -> String {
    let mut s = String::new();
    s.push('\n');
    s.push_str(BEGIN);
    s.push('\n');
    s.push_str(&format!("Hostname: {}\n", info.hostname));
    if info.addresses.is_empty() {
        s.push_str("Address: none yet\n");
    }
    for a in &info.addresses {
        s.push_str(&format!("Address: {a}\n"));
    }
    if info.urls.is_empty() {
        match info.gave_up_after {
            Some(d) => s.push_str(&format!(
                "URL: none (no network address within {} s; check the cable and DHCP)\n",
                d.as_secs()
            )),
            None => s.push_str("URL: none (no network address)\n"),
        }
    }
    for u in &info.urls {
        s.push_str(&format!("URL: {u}\n"));
    }
    s.push_str(&format!("Fingerprint: {}\n", info.fingerprint));
    s.push_str(&format!("Setup code: {}\n", info.code));
    s.push_str(END);
    s.push_str("\n\n");
    s
}

/// Read addresses until an IPv4 URL can be formed (a DHCPv4 lease usually arrives a few
/// seconds after IPv6 autoconfiguration, and IPv4 is what admins type) or `wait` has passed.
/// Returns the usable addresses, the URLs (whatever exists at the deadline, IPv6 included),
/// and whether it gave up without any URL.
pub async fn wait_for_urls(
    source: &dyn AddressSource,
    listeners: &[SocketAddr],
    wait: Duration,
) -> (Vec<IpAddr>, Vec<String>, bool) {
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        let addrs = read_usable(source);
        let u = urls(listeners, &addrs);
        let has_v4_url = addrs.iter().any(IpAddr::is_ipv4) && !u.is_empty();
        if has_v4_url || (!u.is_empty() && !listeners.iter().any(SocketAddr::is_ipv4)) {
            return (addrs, u, false);
        }
        let now = Instant::now();
        if now >= deadline {
            if u.is_empty() {
                tracing::warn!(
                    "no network address within {} s; printing the setup block without a URL",
                    wait.as_secs()
                );
            } else {
                tracing::warn!(
                    "no IPv4 address within {} s; printing the setup block with {}",
                    wait.as_secs(),
                    u.join(" ")
                );
            }
            let gave_up = u.is_empty();
            return (addrs, u, gave_up);
        }
        if !announced {
            tracing::info!(
                "no IPv4 address yet (DHCP may be running); waiting up to {} s for one",
                wait.as_secs()
            );
            announced = true;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// How often addresses are re-read after the block was printed.
pub const WATCH_POLL: Duration = Duration::from_secs(2);

/// The node's usable addresses now (an error is logged and counts as none).
fn read_usable(source: &dyn AddressSource) -> Vec<IpAddr> {
    match source.addresses() {
        Ok(a) => usable(a),
        Err(e) => {
            tracing::warn!("cannot list network addresses: {e}");
            Vec::new()
        }
    }
}

/// The new address list if it differs from what the block last showed.
pub fn changed(shown: &[IpAddr], now: Vec<IpAddr>) -> Option<Vec<IpAddr>> {
    (now != shown).then_some(now)
}

/// After the block was printed: re-read addresses and call `reprint` with the new addresses
/// and URLs whenever they change (a lease arrives late or changes), until the task is
/// aborted (setup completes or cairnd stops).
pub async fn watch_addresses(
    source: &dyn AddressSource,
    listeners: &[SocketAddr],
    mut shown: Vec<IpAddr>,
    mut reprint: impl FnMut(Vec<IpAddr>, Vec<String>),
) {
    loop {
        tokio::time::sleep(WATCH_POLL).await;
        if let Some(now) = changed(&shown, read_usable(source)) {
            let u = urls(listeners, &now);
            reprint(now.clone(), u);
            shown = now;
        }
    }
}

/// After the block was printed: call `reprint` with each setup code that replaces the shown
/// one (the API makes a new code after too many wrong entries), until the sender is gone.
pub async fn watch_codes(
    mut codes: tokio::sync::watch::Receiver<Option<String>>,
    mut reprint: impl FnMut(String),
) {
    while codes.changed().await.is_ok() {
        let code = codes.borrow_and_update().clone();
        if let Some(code) = code {
            reprint(code);
        }
    }
}

/// Write the block to the console device (or file) and to stdout. A console that cannot be
/// opened is logged, not fatal: stdout still reaches the journal.
pub fn print(console: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console)
        .and_then(|mut f| f.write_all(text.as_bytes()))
    {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!("cannot write the setup block to {}: {e}", console.display())
        }
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!("cannot write the setup block to stdout: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn urls_for_wildcards_and_specific() {
        let node = [ip("10.0.2.15"), ip("fec0::5")];
        assert_eq!(
            urls(&[sa("0.0.0.0:443"), sa("[::]:443")], &node),
            vec!["https://10.0.2.15/", "https://[fec0::5]/"]
        );
        assert_eq!(
            urls(&[sa("127.0.0.1:8443")], &node),
            vec!["https://127.0.0.1:8443/"]
        );
        assert!(urls(&[sa("0.0.0.0:443")], &[ip("fec0::5")]).is_empty());
    }

    #[test]
    fn block_format() {
        let info = SetupInfo {
            hostname: "cairn-abc123".into(),
            addresses: vec![ip("10.0.2.15")],
            urls: vec!["https://10.0.2.15/".into()],
            fingerprint: "SHA256:AB:CD".into(),
            code: "0123-4567-89AB".into(),
            gave_up_after: None,
        };
        assert_eq!(
            format_block(&info),
            "\nCAIRN SETUP\nHostname: cairn-abc123\nAddress: 10.0.2.15\nURL: https://10.0.2.15/\n\
             Fingerprint: SHA256:AB:CD\nSetup code: 0123-4567-89AB\nCAIRN SETUP END\n\n"
        );
    }

    #[test]
    fn block_without_address_says_so() {
        let info = SetupInfo {
            hostname: "h".into(),
            addresses: vec![],
            urls: vec![],
            fingerprint: "F".into(),
            code: "C".into(),
            gave_up_after: Some(Duration::from_secs(20)),
        };
        let text = format_block(&info);
        assert!(text.contains("Address: none yet\n"));
        assert!(text.contains("URL: none (no network address within 20 s;"));
    }

    struct LateAddress {
        calls: AtomicUsize,
        after: usize,
    }

    impl AddressSource for LateAddress {
        fn addresses(&self) -> std::io::Result<Vec<IpAddr>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let mut v = vec![ip("127.0.0.1"), ip("fe80::1")];
            if n >= self.after {
                v.push(ip("192.168.7.9"));
            }
            Ok(v)
        }
    }

    #[tokio::test]
    async fn waits_for_dhcp_address() {
        let src = LateAddress {
            calls: AtomicUsize::new(0),
            after: 2,
        };
        let (addrs, u, gave_up) =
            wait_for_urls(&src, &[sa("0.0.0.0:443")], Duration::from_secs(5)).await;
        assert!(!gave_up);
        assert_eq!(addrs, vec![ip("192.168.7.9")]);
        assert_eq!(u, vec!["https://192.168.7.9/"]);
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_at_deadline() {
        let src = LateAddress {
            calls: AtomicUsize::new(0),
            after: usize::MAX,
        };
        let start = Instant::now();
        let (addrs, u, gave_up) =
            wait_for_urls(&src, &[sa("0.0.0.0:443")], Duration::from_millis(600)).await;
        assert!(gave_up);
        assert!(addrs.is_empty() && u.is_empty());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn prints_to_console_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console");
        std::fs::write(&p, "earlier\n").unwrap();
        print(&p, "block\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "earlier\nblock\n");
    }

    struct V6ThenV4 {
        calls: AtomicUsize,
        v4_after: usize,
    }

    impl AddressSource for V6ThenV4 {
        fn addresses(&self) -> std::io::Result<Vec<IpAddr>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let mut v = vec![ip("fec0::5054:ff:fe12:3456")];
            if n >= self.v4_after {
                v.push(ip("10.0.2.15"));
            }
            Ok(v)
        }
    }

    #[tokio::test]
    async fn prefers_ipv4_over_an_earlier_ipv6_address() {
        let src = V6ThenV4 {
            calls: AtomicUsize::new(0),
            v4_after: 3,
        };
        let listeners = [sa("0.0.0.0:443"), sa("[::]:443")];
        let (addrs, u, gave_up) = wait_for_urls(&src, &listeners, Duration::from_secs(5)).await;
        assert!(!gave_up);
        assert_eq!(addrs[0], ip("10.0.2.15"));
        assert_eq!(u[0], "https://10.0.2.15/");
        assert_eq!(src.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn ipv6_only_is_printed_at_the_deadline() {
        let src = V6ThenV4 {
            calls: AtomicUsize::new(0),
            v4_after: usize::MAX,
        };
        let listeners = [sa("0.0.0.0:443"), sa("[::]:443")];
        let (_, u, gave_up) = wait_for_urls(&src, &listeners, Duration::from_millis(600)).await;
        assert!(!gave_up, "an IPv6 URL exists");
        assert_eq!(u, vec!["https://[fec0::5054:ff:fe12:3456]/"]);
    }

    #[tokio::test]
    async fn a_replaced_code_is_printed_again() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_codes(rx, move |c| seen_tx.send(c).unwrap()));
        tx.send_replace(Some("ABCD-EFGH-JKMN".to_string()));
        let got = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await;
        assert_eq!(got.unwrap().as_deref(), Some("ABCD-EFGH-JKMN"));
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn change_detection() {
        let shown = vec![ip("fec0::1")];
        assert_eq!(changed(&shown, vec![ip("fec0::1")]), None);
        assert_eq!(
            changed(&shown, vec![ip("10.0.2.15"), ip("fec0::1")]),
            Some(vec![ip("10.0.2.15"), ip("fec0::1")])
        );
    }
}
