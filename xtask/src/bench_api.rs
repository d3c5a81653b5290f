//! `cargo xtask bench-api`: wrk against a release cairnd pinned to one core on loopback:
//! p50/p99 latency and throughput of health and of a token-authenticated request, and RSS.
//! `--stalled` (with `stall.rs`) and `--login-flood` (with `login_flood.rs`) measure the
//! front door under the abuse of issue 13.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::paths::Paths;

/// Connections wrk keeps open.
pub const CONNECTIONS: u32 = 10;
/// The offered load: each connection waits this long after each answer, so 10 connections
/// offer just under 1,000 requests/s (wrk is closed-loop: a slower answer lowers the rate).
pub const PACED_DELAY_MS: u32 = 9;
/// How long each measurement runs.
pub const DURATION_S: u32 = 20;
/// How long cairnd may take to listen.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// One wrk run, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Non-2xx/3xx answers plus socket errors.
    pub errors: u64,
}

/// Parse a wrk duration (`812.00us`, `1.20ms`, `2.01s`, `1.00m`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Parse `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut p50 = None;
    let mut p99 = None;
    let mut rps = None;
    let mut requests = None;
    let mut errors = 0u64;
    for line in out.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = parse_duration_ms(v),
            ["99%", v] => p99 = parse_duration_ms(v),
            ["Requests/sec:", v] => rps = v.parse::<f64>().ok(),
            [n, "requests", "in", ..] => requests = n.parse::<u64>().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    match (rps, p50, p99, requests) {
        (Some(requests_per_s), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(WrkResult {
            requests_per_s,
            p50_ms,
            p99_ms,
            requests,
            errors,
        }),
        _ => bail!("cannot read wrk's output (need --latency):\n{out}"),
    }
}

/// The wrk Lua script: an optional bearer token and an optional per-request delay.
pub fn lua_script(token: Option<&str>, delay_ms: Option<u32>) -> String {
    let mut s = String::new();
    if let Some(t) = token {
        s.push_str(&format!(
            "wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"
        ));
    }
    if let Some(d) = delay_ms {
        s.push_str(&format!("function delay()\n  return {d}\nend\n"));
    }
    s
}

/// cairnd's resident set size in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Daemon {
    child: Child,
    url: String,
    dir: tempfile_dir::Dir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private temporary directory removed on drop (xtask has no tempfile dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> std::io::Result<Dir> {
            let base = std::env::temp_dir();
            for i in 0..100u32 {
                let p = base.join(format!("{prefix}-{}-{i}", std::process::id()));
                if std::fs::create_dir(&p).is_ok() {
                    return Ok(Dir(p));
                }
            }
            Err(std::io::Error::other("cannot create a temporary directory"))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start_cairnd(cairnd: &Path) -> Result<Daemon> {
    let dir = tempfile_dir::Dir::new("cairn-bench-api")?;
    let d = dir.path();
    fs::write(d.join("cmdline"), "quiet\n")?;
    let log = fs::File::create(d.join("log"))?;
    let p = |rel: &str| d.join(rel).display().to_string();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(cairnd)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "stderr",
            "--esp-mount",
            "never",
        ])
        .args(["--apply-hostname", "never", "--address-wait-s", "0"])
        .args(["--state-dir", &p("state"), "--console", &p("console")])
        .args(["--cmdline", &p("cmdline"), "--efivars-dir", &p("efi")])
        .args([
            "--esp-dir",
            &p("esp"),
            "--boot-failures",
            &p("failures.jsonl"),
        ])
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting cairnd under taskset -c 0 (util-linux)")?;
    let mut daemon = Daemon {
        child,
        url: String::new(),
        dir,
    };
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(daemon.dir.path().join("log")).unwrap_or_default();
        if let Some(rest) = text.split("listening on ").nth(1) {
            let addr = rest.split([',', ' ', '\n']).next().unwrap_or_default();
            daemon.url = format!("https://{addr}");
            return Ok(daemon);
        }
        if let Some(status) = daemon.child.try_wait()? {
            bail!("cairnd exited ({status}) before listening:\n{text}");
        }
        if started.elapsed() > START_DEADLINE {
            bail!("cairnd did not log `listening on` within {START_DEADLINE:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTPS call through curl: (status, body).
fn curl(url: &str, method: &str, headers: &[String], body: Option<&str>) -> Result<(u16, String)> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sk",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "60",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = cmd.arg(url).output().context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().unwrap_or(0);
    Ok((code, body.to_string()))
}

fn field(body: &str, name: &str) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    v[name]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {name} in {body}"))
}

/// Claim the node through the setup API and create an API token.
fn claim(d: &Daemon) -> Result<String> {
    let code = fs::read_to_string(d.dir.path().join("state/setup-code"))?;
    let url = |p: &str| format!("{}{p}", d.url);
    let (s, b) = curl(
        &url("/api/v1/setup/code"),
        "POST",
        &[],
        Some(&format!("{{\"code\":\"{}\"}}", code.trim())),
    )?;
    ensure!(s == 200, "setup code: {s} {b}");
    let token = format!("x-setup-token: {}", field(&b, "setup_token")?);
    for (step, body) in [
        ("password", r#"{"password":"benchmark password"}"#),
        ("hostname", r#"{"hostname":"bench"}"#),
        ("timezone", r#"{"timezone":"UTC"}"#),
        ("ntp", r#"{"servers":[]}"#),
    ] {
        let (s, b) = curl(
            &url(&format!("/api/v1/setup/{step}")),
            "PUT",
            std::slice::from_ref(&token),
            Some(body),
        )?;
        ensure!(s == 200, "setup {step}: {s} {b}");
    }
    let jar = d.dir.path().join("jar").display().to_string();
    let complete = |extra: &[String]| {
        let mut h = vec![token.clone()];
        h.extend_from_slice(extra);
        Command::new("curl")
            .args(["-sk", "-c", &jar, "-X", "POST", "-w", "\n%{http_code}"])
            .args(h.iter().flat_map(|h| ["-H", h.as_str()]))
            .arg(url("/api/v1/setup/complete"))
            .output()
    };
    let mut out = String::from_utf8_lossy(&complete(&[])?.stdout).into_owned();
    if out.ends_with("409") && out.contains("\"network\"") {
        let (s, b) = curl(
            &url("/api/v1/setup/network"),
            "PUT",
            std::slice::from_ref(&token),
            Some(r#"{"mode":"dhcp"}"#),
        )?;
        ensure!(s == 200, "setup network: {s} {b}");
        out = String::from_utf8_lossy(&complete(&[])?.stdout).into_owned();
    }
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    ensure!(code == "200", "setup complete: {code} {body}");
    let csrf = field(body, "csrf_token")?;
    let out = Command::new("curl")
        .args(["-sk", "-b", &jar, "-H", &format!("x-csrf-token: {csrf}")])
        .args(["-H", "content-type: application/json"])
        .args(["--data-binary", r#"{"name":"bench"}"#])
        .arg(url("/api/v1/auth/tokens"))
        .output()?;
    field(&String::from_utf8_lossy(&out.stdout), "token")
}

/// Run wrk on core 1 while sampling cairnd's RSS; returns the result and the peak RSS.
fn wrk(
    d: &Daemon,
    path: &str,
    token: Option<&str>,
    delay: Option<u32>,
) -> Result<(WrkResult, u64)> {
    let script = d.dir.path().join(format!("bench-{}.lua", delay.is_some()));
    fs::File::create(&script)?.write_all(lua_script(token, delay).as_bytes())?;
    let pid = d.child.id();
    let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{DURATION_S}s"))
        .arg(format!("--timeout={}s", 5))
        .arg("-s")
        .arg(&script)
        .arg(format!("{}{path}", d.url))
        .output()
        .context("running wrk (apt-get install wrk; ./dev installs it)")?;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "wrk failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((parse_wrk(&text)?, peak.load(Ordering::Relaxed)))
}

/// Stalled connections held open in `--stalled` mode.
pub const STALLED: usize = 1000;
/// `--stalled` target: health's p99 with [`STALLED`] stalled connections at most this many
/// times its p99 with none.
pub const STALLED_P99_TARGET_RATIO: f64 = 2.0;

/// Build a release cairnd and start it.
fn build_and_start(paths: &Paths) -> Result<Daemon> {
    let status = Command::new(crate::cargo_build::cargo())
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "cairnd"])
        .status()?;
    ensure!(status.success(), "cargo build --release -p cairnd failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.root.join("target"));
    start_cairnd(&target.join("release/cairnd"))
}

/// `--stalled`: paced `GET /api/v1/health` with no stalled connection, then with
/// [`STALLED`] connections from 127.0.0.2 stalled mid-body (kept at that count), then
/// without again; prints the rows, and the ratio of the p99s.
pub fn run_stalled(paths: &Paths) -> Result<()> {
    let d = build_and_start(paths)?;
    claim(&d)?;
    let addr: std::net::SocketAddr = d
        .url
        .trim_start_matches("https://")
        .parse()
        .context("cairnd's address")?;
    println!(
        "bench-api --stalled: release cairnd pinned to CPU 0, wrk on CPU 1 ({CONNECTIONS} connections from 127.0.0.1, paced: {PACED_DELAY_MS} ms between requests, {DURATION_S} s per row); stalled: {STALLED} TLS connections from {} that sent a request head promising 100 bytes of body and 7 of them, re-opened as cairnd closes them",
        crate::stall::SOURCE
    );
    println!(
        "{:<44} {:>10} {:>9} {:>9} {:>8} {:>12} {:>12}",
        "GET /api/v1/health, paced",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "peak RSS MiB",
        "stalled min"
    );
    let row = |name: &str, r: &WrkResult, peak: u64, stalled: &str| {
        println!(
            "{name:<44} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>12.1} {:>12}",
            r.requests_per_s,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            peak as f64 / 1024.0,
            stalled
        );
    };
    let (quiet, peak) = wrk(&d, "/api/v1/health", None, Some(PACED_DELAY_MS))?;
    row("no stalled connections", &quiet, peak, "0");
    ensure!(quiet.errors == 0, "{} failed requests", quiet.errors);
    let holder = crate::stall::Holder::start(addr, STALLED)?;
    holder.reset_min();
    let (stalled, peak) = wrk(&d, "/api/v1/health", None, Some(PACED_DELAY_MS))?;
    let min = holder.min_open();
    row(
        &format!("{STALLED} stalled connections"),
        &stalled,
        peak,
        &min.to_string(),
    );
    drop(holder);
    ensure!(stalled.errors == 0, "{} failed requests", stalled.errors);
    let ratio = stalled.p99_ms / quiet.p99_ms;
    println!(
        "p99 with {STALLED} stalled / without: {:.3} ms / {:.3} ms = {ratio:.2} (target <= {STALLED_P99_TARGET_RATIO}: {})",
        stalled.p99_ms,
        quiet.p99_ms,
        if ratio <= STALLED_P99_TARGET_RATIO { "met" } else { "NOT met" }
    );
    Ok(())
}

/// cairnd's peak RSS while `f` runs (sampled every 20 ms) and `f`'s result.
fn sampling_peak<T>(pid: u32, f: impl FnOnce() -> T) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (out, peak.load(Ordering::Relaxed))
}

/// How long the RSS is left to settle after a flood before it is read again.
const SETTLE: Duration = Duration::from_secs(5);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Print one flood's figures; whether its RSS after stayed within the bound of `before`.
fn report_flood(
    name: &str,
    pid: u32,
    before: u64,
    flood: &crate::login_flood::Flood,
    peak: u64,
    after: u64,
) -> bool {
    use crate::login_flood::{within_bound, LOGINS, RSS_BOUND_KIB};
    let c = &flood.counts;
    println!("{name}:");
    println!(
        "  answers: {} x 401 (checked), {} x 429, {} x 503 busy, {} other, {} no answer ({} of {LOGINS}); {} 503/429 waited out and retried",
        c.checked,
        c.held_back,
        c.busy,
        c.other,
        c.failed,
        c.total(),
        c.retried
    );
    for e in &flood.errors {
        println!("  no answer: {e}");
    }
    println!("  wall time: {:.2} s", flood.wall.as_secs_f64());
    println!(
        "  RSS peak during the flood (sampled every 20 ms): {:.1} MiB",
        mib(peak)
    );
    let ok = within_bound(before, after);
    println!(
        "  RSS once all answers are in: {:.1} MiB (delta {:+.1} MiB; target <= +{} MiB: {})",
        mib(after),
        mib(after) - mib(before),
        RSS_BOUND_KIB / 1024,
        if ok { "PASS" } else { "MISSED" }
    );
    std::thread::sleep(SETTLE);
    let settled = rss_kib(pid).unwrap_or(0);
    println!(
        "  RSS {} s later: {:.1} MiB (delta {:+.1} MiB)",
        SETTLE.as_secs(),
        mib(settled),
        mib(settled) - mib(before)
    );
    println!(
        "  VmHWM (cairnd's RSS peak since start): {:.1} MiB",
        mib(crate::login_flood::proc_kib(pid, "VmHWM:").unwrap_or(0))
    );
    ok
}

/// `--login-flood`: cairnd's RSS before and after [`crate::login_flood::LOGINS`] failed
/// logins in rounds of 8 from addresses of their own (127.0.1.x), taking whatever answer
/// comes (many 503 `busy`), then after as many again from 127.0.2.x that wait out every
/// `Retry-After` until each is checked by argon2.
pub fn run_login_flood(paths: &Paths) -> Result<()> {
    use crate::login_flood::{flood, LOGINS, PARALLEL, RETRY_DEADLINE, WRONG_LOGIN};
    let d = build_and_start(paths)?;
    claim(&d)?;
    let pid = d.child.id();
    let addr: std::net::SocketAddr = d
        .url
        .trim_start_matches("https://")
        .parse()
        .context("cairnd's address")?;
    println!(
        "bench-api --login-flood: release cairnd pinned to CPU 0; {LOGINS} x POST /api/v1/auth/login {WRONG_LOGIN} over TLS, {PARALLEL} at a time (each round waits for its answers), each from a loopback address of its own; one connection per attempt"
    );
    // Let setup's password hashing and the token's creation settle.
    std::thread::sleep(SETTLE);
    let before = rss_kib(pid).context("cairnd's VmRSS")?;
    println!(
        "RSS before: {:.1} MiB (VmHWM so far {:.1} MiB)",
        mib(before),
        mib(crate::login_flood::proc_kib(pid, "VmHWM:").unwrap_or(0))
    );
    let (first, peak) = sampling_peak(pid, || flood(addr, 1, false));
    let first = first?;
    let after = rss_kib(pid).unwrap_or(0);
    let ok1 = report_flood(
        "flood 1, from 127.0.1.1-64, answers taken as they come",
        pid,
        before,
        &first,
        peak,
        after,
    );
    let (second, peak) = sampling_peak(pid, || flood(addr, 2, true));
    let second = second?;
    let after = rss_kib(pid).unwrap_or(0);
    let ok2 = report_flood(
        &format!(
            "flood 2, from 127.0.2.1-64, each client waits out every Retry-After (deadline {} s)",
            RETRY_DEADLINE.as_secs()
        ),
        pid,
        before,
        &second,
        peak,
        after,
    );
    println!(
        "result: RSS after within 50 MiB of before: flood 1 {}, flood 2 {}",
        if ok1 { "PASS" } else { "MISSED" },
        if ok2 { "PASS" } else { "MISSED" }
    );
    Ok(())
}

/// Build a release cairnd, claim it, measure, print the table.
pub fn run(paths: &Paths) -> Result<()> {
    let d = build_and_start(paths)?;
    let token = claim(&d)?;
    let idle = rss_kib(d.child.id()).unwrap_or(0);
    println!(
        "bench-api: release cairnd pinned to CPU 0 (taskset -c 0), wrk on CPU 1, {CONNECTIONS} connections, {DURATION_S} s per row; paced rows wait {PACED_DELAY_MS} ms per connection between requests (~1,000 req/s offered)"
    );
    println!(
        "{:<44} {:>10} {:>9} {:>9} {:>8} {:>12}",
        "request / load", "req/s", "p50 ms", "p99 ms", "errors", "peak RSS MiB"
    );
    let rows = [
        (
            "GET /api/v1/health, paced",
            "/api/v1/health",
            None,
            Some(PACED_DELAY_MS),
        ),
        (
            "GET /api/v1/auth/me (token), paced",
            "/api/v1/auth/me",
            Some(token.as_str()),
            Some(PACED_DELAY_MS),
        ),
        (
            "GET /api/v1/health, saturated",
            "/api/v1/health",
            None,
            None,
        ),
        (
            "GET /api/v1/auth/me (token), saturated",
            "/api/v1/auth/me",
            Some(token.as_str()),
            None,
        ),
    ];
    for (name, path, tok, delay) in rows {
        let (r, peak) = wrk(&d, path, tok, delay)?;
        println!(
            "{name:<44} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>12.1}",
            r.requests_per_s,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            peak as f64 / 1024.0
        );
        ensure!(r.errors == 0, "{name}: {} failed requests", r.errors);
    }
    println!("idle RSS after setup: {:.1} MiB", idle as f64 / 1024.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 20s test @ https://127.0.0.1:40000/api/v1/health
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us  301.10us   9.87ms   91.00%
    Req/Sec   970.12     40.00     1.02k    70.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    2.31ms
  19402 requests in 20.00s, 5.10MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    970.05
Transfer/sec:    261.00KB
";

    #[test]
    fn wrk_output_is_parsed() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 19402);
        assert_eq!(r.requests_per_s, 970.05);
        assert!((r.p50_ms - 0.75).abs() < 1e-9);
        assert!((r.p99_ms - 2.31).abs() < 1e-9);
        assert_eq!(r.errors, 3);
        let with_socket_errors = WRK.replace(
            "  Non-2xx or 3xx responses: 3\n",
            "  Socket errors: connect 0, read 2, write 0, timeout 1\n",
        );
        assert_eq!(parse_wrk(&with_socket_errors).unwrap().errors, 3);
        assert!(parse_wrk("Running 1s test").is_err());
    }

    #[test]
    fn durations_and_scripts() {
        assert!((parse_duration_ms("2.01s").unwrap() - 2010.0).abs() < 1e-9);
        assert_eq!(parse_duration_ms("1.00m"), Some(60_000.0));
        assert_eq!(parse_duration_ms("5"), None);
        let s = lua_script(Some("cairn_x"), Some(9));
        assert!(s.contains("wrk.headers[\"Authorization\"] = \"Bearer cairn_x\""));
        assert!(s.contains("return 9"));
        assert_eq!(lua_script(None, None), "");
    }
}
