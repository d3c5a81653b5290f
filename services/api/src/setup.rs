//! First-boot setup: the one-time code, then admin password, hostname, time zone and NTP
//! servers, each validated and persisted so an interrupted setup resumes; completing it
//! applies them, writes the node config and the `setup-done` marker and retires the code.

use crate::auth::{begin_attempt, start_session};
use crate::clock::Clock;
use crate::error::ApiError;
use crate::password;
use crate::ratelimit::{Backoff, BackoffPolicy};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::secret::{ct_eq, digest, random_hex, RandomError};
use crate::store::{self, StoreError};
use crate::system::NodeSystem;
use crate::users::{Users, ADMIN};
use crate::validate;
use hyper::{Response, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// The code cairnd prints on the console (under the state directory).
pub const CODE_FILE: &str = "setup-code";
/// Written when setup completes; the console block and the API check it.
pub const DONE_MARKER: &str = "setup-done";
/// Setup progress, so an interrupted setup resumes.
pub const PROGRESS_FILE: &str = "setup.json";
/// The node configuration setup produces.
pub const NODE_FILE: &str = "node.json";
/// The hostname cairn-init sets at boot (boot contract).
pub const HOSTNAME_FILE: &str = "hostname";
/// Header carrying the token that verifying the code returns.
pub const TOKEN_HEADER: &str = "x-setup-token";

/// Setup code attempts per address: three free, then 1 s doubling up to 5 min.
pub const CODE_BACKOFF: BackoffPolicy = BackoffPolicy {
    free: 3,
    base: Duration::from_secs(1),
    max: Duration::from_secs(300),
    forget_after: Duration::from_secs(3600),
};
/// Where the setup code's limits (held-back addresses, wrong entries) are kept on STATE.
pub const CODE_LIMITS_FILE: &str = "setup-code-limits.json";
/// Wrong codes from all addresses together after which the code is replaced by a new one
/// (shown on the console): a guesser with many addresses gets at most this many tries at
/// one code (decision 0019).
pub const CODE_ROTATE_AFTER: u32 = 20;

/// Crockford's base32 alphabet of the setup code: no I, L, O, U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Format 12 random bytes as a code: each byte's low 5 bits pick a symbol (32 divides 256,
/// so the choice is uniform), in three groups of four.
pub fn format_code(random: &[u8; 12]) -> String {
    let mut s = String::with_capacity(14);
    for (i, b) in random.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[(b & 31) as usize] as char);
    }
    s
}

/// A new random code (`XXXX-XXXX-XXXX`) from the kernel's CSPRNG.
pub fn generate_code() -> Result<String, RandomError> {
    let mut buf = [0u8; 12];
    getrandom::getrandom(&mut buf).map_err(RandomError)?;
    Ok(format_code(&buf))
}

/// The node configuration kept on STATE (applied by the domains that own each part).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    pub hostname: String,
    pub timezone: String,
    pub ntp_servers: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// SHA-256 of the setup token handed out when the code was verified.
    token_hash: Option<String>,
    password_hash: Option<String>,
    hostname: Option<String>,
    timezone: Option<String>,
    ntp_servers: Option<Vec<String>>,
    /// The management network step (optional: without it the factory DHCP stays).
    #[serde(default)]
    network: Option<cairn_net::spec::NetworkSpec>,
}

/// What has been set so far (never the password).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgressView {
    pub password_set: bool,
    pub hostname: Option<String>,
    pub timezone: Option<String>,
    pub ntp_servers: Option<Vec<String>>,
    /// The network spec the management step chose (applied when setup completes).
    #[serde(default)]
    pub network: Option<cairn_net::spec::NetworkSpec>,
}

/// `GET /api/v1/setup` and the answer of each step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupStatus {
    pub claimed: bool,
    /// Present for a client holding a valid setup token.
    pub progress: Option<ProgressView>,
}

/// The setup state of this node.
pub struct Setup {
    dir: PathBuf,
    claimed: AtomicBool,
    progress: Mutex<Progress>,
    limiter: Backoff,
    /// A code that replaced the one on the console (cairnd prints the block again).
    new_code: watch::Sender<Option<String>>,
}

impl Setup {
    /// Load from `state_dir`: claimed if the marker exists, else the saved progress.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(state_dir, Clock::system())
    }

    /// [`Setup::open`] with the clock of the code's limits given.
    pub fn open_with_clock(state_dir: &Path, clock: Clock) -> Result<Self, StoreError> {
        let claimed = state_dir.join(DONE_MARKER).exists();
        let progress = if claimed {
            Progress::default()
        } else {
            store::load_or_quarantine(&state_dir.join(PROGRESS_FILE))?.unwrap_or_default()
        };
        Ok(Setup {
            dir: state_dir.to_path_buf(),
            claimed: AtomicBool::new(claimed),
            progress: Mutex::new(progress),
            limiter: Backoff::persistent(CODE_BACKOFF, clock, &state_dir.join(CODE_LIMITS_FILE))?,
            new_code: watch::channel(None).0,
        })
    }

    /// Codes that replace the one shown (after [`CODE_ROTATE_AFTER`] wrong entries): the
    /// receiver sees each new code, already stored in [`CODE_FILE`].
    pub fn new_codes(&self) -> watch::Receiver<Option<String>> {
        self.new_code.subscribe()
    }

    /// Wrong codes counted towards the next replacement.
    pub fn wrong_codes(&self) -> u32 {
        self.limiter.total()
    }

    /// Count a wrong code; at [`CODE_ROTATE_AFTER`] of them make, store and announce a new
    /// code (the old one stops working; a setup token already handed out stays valid).
    fn wrong_code(&self) {
        if !self.limiter.count_failure(CODE_ROTATE_AFTER) {
            return;
        }
        let path = self.dir.join(CODE_FILE);
        let stored = generate_code().map_err(|e| e.to_string()).and_then(|code| {
            cairn_core::write_atomic(&path, format!("{code}\n").as_bytes(), 0o600)
                .map(|()| code)
                .map_err(|e| e.to_string())
        });
        match stored {
            Ok(code) => {
                tracing::warn!(
                    "{CODE_ROTATE_AFTER} wrong setup codes from all addresses: the code is replaced by a new one, shown on the console"
                );
                self.new_code.send_replace(Some(code));
            }
            Err(e) => tracing::error!(
                "cannot replace the setup code after {CODE_ROTATE_AFTER} wrong entries ({}): {e}",
                path.display()
            ),
        }
    }

    /// Whether setup has completed.
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, p: &Progress) -> Result<(), ApiError> {
        store::save(&self.dir.join(PROGRESS_FILE), p).map_err(internal)
    }

    fn unclaimed(&self) -> Result<(), ApiError> {
        if self.is_claimed() {
            return Err(ApiError::conflict(
                "already_set_up",
                "this node is already set up; sign in instead",
            ));
        }
        Ok(())
    }

    /// Check the setup token of a step; the progress lock is held by the caller.
    fn check_token(&self, p: &Progress, ctx: &Ctx<'_>) -> Result<(), ApiError> {
        let sent = ctx.header(TOKEN_HEADER).unwrap_or_default();
        if sent.is_empty() {
            return Err(ApiError::unauthorized(if self.is_claimed() {
                "this node is already set up; sign in instead"
            } else {
                "enter the setup code first: its answer is the X-Setup-Token for the other steps"
            }));
        }
        self.unclaimed()?;
        match &p.token_hash {
            Some(h) if ct_eq(h, &digest(sent)) => Ok(()),
            _ => Err(ApiError::unauthorized(
                "enter the setup code first (X-Setup-Token is missing, or a newer code entry replaced it)",
            )),
        }
    }

    /// The node configuration setup wrote (None before setup completes).
    pub fn node_config(&self) -> Result<Option<NodeConfig>, ApiError> {
        store::load(&self.dir.join(NODE_FILE)).map_err(internal)
    }

    /// Replace the stored node configuration (atomically; later changes of its settings).
    pub fn save_node_config(&self, config: &NodeConfig) -> Result<(), ApiError> {
        store::save(&self.dir.join(NODE_FILE), config).map_err(internal)
    }

    fn status(&self, p: &Progress, with_progress: bool) -> SetupStatus {
        SetupStatus {
            claimed: self.is_claimed(),
            progress: with_progress.then(|| ProgressView {
                password_set: p.password_hash.is_some(),
                hostname: p.hostname.clone(),
                timezone: p.timezone.clone(),
                ntp_servers: p.ntp_servers.clone(),
                network: p.network.clone(),
            }),
        }
    }
}

fn internal(e: StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Normalise a typed code: case, spaces and hyphens do not matter, and the letters Crockford
/// base32 leaves out are read as the digits they look like.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// `GET /api/v1/setup`: whether the node is set up, and (with a setup token) the progress.
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let setup = &ctx.state.setup;
    let p = setup.lock();
    let with = setup.check_token(&p, ctx).is_ok();
    Ok(json(StatusCode::OK, &setup.status(&p, with)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

#[derive(serde::Serialize)]
struct CodeResponse {
    /// Send as `X-Setup-Token` on the following setup steps.
    setup_token: String,
    #[serde(flatten)]
    status: SetupStatus,
}

/// `POST /api/v1/setup/code`: check the console's code (rate-limited per address, limits
/// kept across restarts; the code is replaced after [`CODE_ROTATE_AFTER`] wrong ones from
/// all addresses) and hand out a setup token; any earlier token stops working.
pub fn code(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let setup = &ctx.state.setup;
    setup.unclaimed()?;
    let req: CodeRequest = ctx.json()?;
    begin_attempt(&setup.limiter, ctx)?;
    let path = setup.dir.join(CODE_FILE);
    let stored = std::fs::read_to_string(&path).map_err(|e| {
        ApiError::internal(format!(
            "cannot read the setup code from {}: {e}; restart cairnd to make a new one",
            path.display()
        ))
    })?;
    if normalize_code(&req.code).len() != 12
        || !ct_eq(&normalize_code(&req.code), &normalize_code(stored.trim()))
    {
        tracing::warn!(peer = %ctx.peer, "wrong setup code");
        setup.wrong_code();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_code",
            "that is not the setup code shown on the node's console (12 characters, like 6DDJ-P6FE-XZ1W)",
        )
        .with_field("code"));
    }
    setup.limiter.success(ctx.peer);
    let token = random_hex().map_err(|e| ApiError::internal(e.to_string()))?;
    let mut p = setup.lock();
    let mut next = p.clone();
    next.token_hash = Some(digest(&token));
    setup.save(&next)?;
    *p = next;
    tracing::info!(peer = %ctx.peer, "setup code accepted");
    Ok(json(
        StatusCode::OK,
        &CodeResponse {
            setup_token: token,
            status: setup.status(&p, true),
        },
    ))
}

/// Apply one validated change to the progress under the token, persist, answer the status.
fn step(ctx: &Ctx<'_>, change: impl FnOnce(&mut Progress)) -> Result<Response<Body>, ApiError> {
    let setup = &ctx.state.setup;
    let mut p = setup.lock();
    setup.check_token(&p, ctx)?;
    let mut next = p.clone();
    change(&mut next);
    setup.save(&next)?;
    *p = next;
    Ok(json(StatusCode::OK, &setup.status(&p, true)))
}

fn token_first(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let setup = &ctx.state.setup;
    let p = setup.lock();
    setup.check_token(&p, ctx)
}

/// The setup token check, for setup steps that live in a domain's module (network).
pub(crate) fn check_setup_token(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    token_first(ctx)
}

/// Record the management network step (validated by the network module).
pub(crate) fn set_network(
    ctx: &Ctx<'_>,
    spec: cairn_net::spec::NetworkSpec,
) -> Result<Response<Body>, ApiError> {
    step(ctx, |p| p.network = Some(spec))
}

/// The network spec chosen so far, if any.
pub(crate) fn network_choice(
    ctx: &Ctx<'_>,
) -> Result<Option<cairn_net::spec::NetworkSpec>, ApiError> {
    let setup = &ctx.state.setup;
    let p = setup.lock();
    setup.check_token(&p, ctx)?;
    Ok(p.network.clone())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

/// `PUT /api/v1/setup/password`: the admin password (policy-checked, stored as argon2id).
pub async fn password(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    token_first(ctx)?;
    let req: PasswordRequest = ctx.json()?;
    password::check_policy("password", &req.password)?;
    let hash = ctx.state.passwords.hash(&req.password).await?;
    step(ctx, |p| p.password_hash = Some(hash))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HostnameRequest {
    hostname: String,
}

/// `PUT /api/v1/setup/hostname`.
pub fn hostname(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    token_first(ctx)?;
    let req: HostnameRequest = ctx.json()?;
    let name = validate::hostname("hostname", &req.hostname)?;
    step(ctx, |p| p.hostname = Some(name))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TimezoneRequest {
    timezone: String,
}

/// `PUT /api/v1/setup/timezone`.
pub fn timezone(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    token_first(ctx)?;
    let req: TimezoneRequest = ctx.json()?;
    let zoneinfo = ctx.state.system.zoneinfo_dir();
    let tz = validate::timezone("timezone", &req.timezone, zoneinfo.as_deref())?;
    step(ctx, |p| p.timezone = Some(tz))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NtpRequest {
    servers: Vec<String>,
}

/// `PUT /api/v1/setup/ntp`.
pub fn ntp(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    token_first(ctx)?;
    let req: NtpRequest = ctx.json()?;
    let servers = validate::ntp_servers("servers", &req.servers)?;
    step(ctx, |p| p.ntp_servers = Some(servers))
}

/// `POST /api/v1/setup/complete`: apply and commit. Every file is written before the
/// `setup-done` marker, the commit point, so a crash before it leaves setup resumable and
/// retrying redoes the same writes. Then the code is removed and the admin is signed in.
pub fn complete(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let state = ctx.state;
    let setup = &state.setup;
    let mut p = setup.lock();
    setup.check_token(&p, ctx)?;
    let missing = |field: &str, what: &str| {
        ApiError::conflict("setup_incomplete", format!("set the {what} first")).with_field(field)
    };
    let hash = p
        .password_hash
        .clone()
        .ok_or_else(|| missing("password", "admin password"))?;
    let config = NodeConfig {
        hostname: p
            .hostname
            .clone()
            .ok_or_else(|| missing("hostname", "hostname"))?,
        timezone: p
            .timezone
            .clone()
            .ok_or_else(|| missing("timezone", "time zone"))?,
        ntp_servers: p
            .ntp_servers
            .clone()
            .ok_or_else(|| missing("ntp", "NTP servers"))?,
    };
    if let Some(spec) = &p.network {
        // Applied and confirmed at once: the admin reaches the node at the address they
        // chose (the console's `cairn.net=reset` brings DHCP back if that was wrong).
        let net = state
            .domains
            .network
            .as_ref()
            .ok_or_else(|| crate::domains::unavailable("network"))?;
        net.apply_confirmed(spec)
            .map_err(crate::network_error::api_error)?;
    }
    commit(
        &setup.dir,
        &config,
        &hash,
        &state.users,
        state.system.as_ref(),
    )?;
    setup.claimed.store(true, Ordering::SeqCst);
    *p = Progress::default();
    drop(p);
    for f in [CODE_FILE, PROGRESS_FILE, CODE_LIMITS_FILE] {
        if let Err(e) = store::remove(&setup.dir.join(f)) {
            tracing::warn!("setup is done but {e}");
        }
    }
    tracing::info!(peer = %ctx.peer, hostname = %config.hostname, "setup complete; node claimed");
    start_session(state, ADMIN)
}

/// Write the node's configuration, hostname and admin, then the marker.
fn commit(
    dir: &Path,
    config: &NodeConfig,
    password_hash: &str,
    users: &Users,
    system: &dyn NodeSystem,
) -> Result<(), ApiError> {
    system.set_hostname(&config.hostname).map_err(|e| {
        ApiError::internal(format!(
            "cannot set the hostname to {}: {e}",
            config.hostname
        ))
    })?;
    system
        .apply_time(&config.timezone, &config.ntp_servers)
        .map_err(|e| ApiError::internal(format!("cannot apply the time settings: {e}")))?;
    store::save(&dir.join(NODE_FILE), config).map_err(internal)?;
    cairn_core::write_atomic(
        &dir.join(HOSTNAME_FILE),
        format!("{}\n", config.hostname).as_bytes(),
        0o644,
    )
    .map_err(|e| ApiError::internal(format!("cannot store the hostname: {e}")))?;
    users
        .set_password_hash(ADMIN, password_hash)
        .map_err(internal)?;
    let marker = format!("{}\n", crate::events::now_s());
    cairn_core::write_atomic(&dir.join(DONE_MARKER), marker.as_bytes(), 0o644)
        .map_err(|e| ApiError::internal(format!("cannot mark setup as done: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_normalisation() {
        assert_eq!(normalize_code("6ddj-p6fe-xz1w"), "6DDJP6FEXZ1W");
        assert_eq!(normalize_code(" 6DDJ P6FE XZIW "), "6DDJP6FEXZ1W");
        assert_eq!(normalize_code("OOLL"), "0011");
    }

    #[test]
    fn open_reads_marker_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let s = Setup::open(dir.path()).unwrap();
        assert!(!s.is_claimed());
        let p = Progress {
            hostname: Some("nas".into()),
            ..Progress::default()
        };
        s.save(&p).unwrap();
        let again = Setup::open(dir.path()).unwrap();
        assert_eq!(again.lock().hostname.as_deref(), Some("nas"), "resumes");
        std::fs::write(dir.path().join(DONE_MARKER), "").unwrap();
        let done = Setup::open(dir.path()).unwrap();
        assert!(done.is_claimed());
        assert_eq!(done.unclaimed().unwrap_err().code, "already_set_up");
    }

    #[test]
    fn wrong_codes_from_all_addresses_replace_the_code_once_per_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CODE_FILE), "6DDJ-P6FE-XZ1W\n").unwrap();
        let s = Setup::open_with_clock(dir.path(), Clock::manual(1_000_000)).unwrap();
        let mut codes = s.new_codes();
        for _ in 1..CODE_ROTATE_AFTER {
            s.wrong_code();
        }
        assert!(!codes.has_changed().unwrap());
        let reopened = Setup::open(dir.path()).unwrap();
        assert_eq!(
            reopened.wrong_codes(),
            CODE_ROTATE_AFTER - 1,
            "kept on STATE"
        );
        s.wrong_code();
        assert!(codes.has_changed().unwrap());
        let new = codes.borrow_and_update().clone().unwrap();
        let stored = std::fs::read_to_string(dir.path().join(CODE_FILE)).unwrap();
        assert_eq!(stored, format!("{new}\n"));
        assert_ne!(new, "6DDJ-P6FE-XZ1W");
        assert_eq!(normalize_code(&new).len(), 12);
        assert_eq!(s.wrong_codes(), 0);
    }

    struct FailingSystem;
    impl NodeSystem for FailingSystem {
        fn set_hostname(&self, _: &str) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc_eperm()))
        }
        fn zoneinfo_dir(&self) -> Option<PathBuf> {
            None
        }
    }

    fn libc_eperm() -> i32 {
        1
    }

    /// Records what setup applied; fails applying the time when told to.
    #[derive(Default)]
    struct RecordingSystem {
        applied: Mutex<Vec<(String, Vec<String>)>>,
        fail_time: bool,
    }
    impl NodeSystem for RecordingSystem {
        fn set_hostname(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn zoneinfo_dir(&self) -> Option<PathBuf> {
            None
        }
        fn apply_time(&self, tz: &str, servers: &[String]) -> std::io::Result<()> {
            if self.fail_time {
                return Err(std::io::Error::other("chronyd did not restart"));
            }
            self.applied
                .lock()
                .unwrap()
                .push((tz.to_string(), servers.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn commit_applies_the_time_settings_before_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path()).unwrap();
        let cfg = NodeConfig {
            hostname: "nas".into(),
            timezone: "Europe/Berlin".into(),
            ntp_servers: vec!["10.0.2.2".into()],
        };
        let failing = RecordingSystem {
            fail_time: true,
            ..RecordingSystem::default()
        };
        let e = commit(dir.path(), &cfg, "h", &users, &failing).unwrap_err();
        assert!(
            e.message.contains("chronyd did not restart"),
            "{}",
            e.message
        );
        assert!(!dir.path().join(DONE_MARKER).exists());
        assert!(!dir.path().join(NODE_FILE).exists());

        let system = RecordingSystem::default();
        commit(dir.path(), &cfg, "h", &users, &system).unwrap();
        assert_eq!(
            *system.applied.lock().unwrap(),
            vec![("Europe/Berlin".to_string(), vec!["10.0.2.2".to_string()])]
        );
        let s = Setup::open(dir.path()).unwrap();
        assert_eq!(s.node_config().unwrap(), Some(cfg.clone()));
        let changed = NodeConfig {
            timezone: "UTC".into(),
            ..cfg
        };
        s.save_node_config(&changed).unwrap();
        assert_eq!(s.node_config().unwrap(), Some(changed));
    }

    #[test]
    fn failed_hostname_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path()).unwrap();
        let cfg = NodeConfig {
            hostname: "nas".into(),
            timezone: "UTC".into(),
            ntp_servers: vec![],
        };
        let e = commit(dir.path(), &cfg, "h", &users, &FailingSystem).unwrap_err();
        assert!(
            e.message.contains("cannot set the hostname"),
            "{}",
            e.message
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
