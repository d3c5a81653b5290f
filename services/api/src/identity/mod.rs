//! Identity and setup: users and their passwords (checked in a bounded queue), sessions,
//! API tokens, sign-in limits and the setup-code flow, behind [`Identity`]. Nothing here
//! knows HTTP: the edge reads credentials from the request, calls these methods and turns
//! an [`IdentityError`] into its answer.

pub mod checks;
pub mod error;
pub mod password;
pub mod sessions;
pub mod setup;
pub mod tokens;
pub mod users;

use crate::clock::Clock;
use crate::ratelimit::{Backoff, BackoffPolicy, Pace};
use cairn_core::store::StoreError;
pub use checks::{Credentials, Principal, Via};
pub use error::IdentityError;
use password::{Checks, Ticket};
use sessions::{NewSession, Sessions};
use setup::Setup;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokens::{Lookup, NewToken, Scope, TokenInfo, Tokens};
use users::Users;

/// Login attempts per address: five free, then 1 s doubling up to 30 s. While an address is
/// held back its next attempt (right password or not) is checked when the wait is over, so
/// an office behind one NAT address with a guesser in it waits at most 30 s per try
/// (decision 0019).
pub const LOGIN_BACKOFF: BackoffPolicy = BackoffPolicy {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
    forget_after: Duration::from_secs(3600),
};
/// Where the login limits are kept on STATE.
pub const LOGIN_LIMITS_FILE: &str = "login-limits.json";
/// Password checks from all addresses together: a burst of 20, then one per 500 ms.
pub const CHECK_BURST: u32 = 20;
/// See [`CHECK_BURST`].
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Who may do what on this node, and the first-boot setup.
pub struct Identity {
    users: Users,
    sessions: Arc<Sessions>,
    tokens: Arc<Tokens>,
    /// Failed password checks per address (kept on STATE).
    login_limiter: Backoff,
    /// Password checks from all addresses together.
    check_pace: Pace,
    /// The queue of password checks and hashings.
    passwords: Arc<Checks>,
    setup: Setup,
}

impl Identity {
    /// Users, tokens, sign-in limits and setup progress kept under `state_dir`; limits and
    /// expiries follow `clock`.
    pub fn open(state_dir: &Path, clock: Clock) -> Result<Self, StoreError> {
        Ok(Identity {
            setup: Setup::open_with_clock(state_dir, clock.clone())?,
            users: Users::open(state_dir)?,
            sessions: Arc::new(Sessions::default()),
            tokens: Arc::new(Tokens::open(state_dir, clock.clone())?),
            login_limiter: Backoff::persistent(
                LOGIN_BACKOFF,
                clock.clone(),
                &state_dir.join(LOGIN_LIMITS_FILE),
            )?,
            check_pace: Pace::new(CHECK_BURST, CHECK_INTERVAL, clock),
            passwords: Checks::new(password::CONCURRENT, password::MAX_WAITING),
        })
    }

    /// The setup state (code, progress, whether the node is claimed).
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The queue of password checks (its buffers are measured by tests).
    pub fn password_checks(&self) -> &Arc<Checks> {
        &self.passwords
    }

    /// How long sessions last.
    pub fn sessions_ttl(&self) -> Duration {
        sessions::TTL
    }

    /// Who sent a request: an API token or a session. A token that is not valid is an
    /// error, not a fallback to the session.
    pub fn authenticate(
        &self,
        creds: &Credentials<'_>,
    ) -> Result<Option<Principal>, IdentityError> {
        if let Some(auth) = creds.authorization {
            let secret = auth
                .strip_prefix("Bearer ")
                .ok_or(IdentityError::NotBearer)?;
            let t = match self.tokens.find(secret.trim()) {
                Lookup::Valid(t) => t,
                Lookup::Expired(t) => {
                    return Err(IdentityError::TokenExpired {
                        name: t.name,
                        expires: cairn_core::civil::format_utc(t.expires),
                    })
                }
                Lookup::Unknown => return Err(IdentityError::TokenUnknown),
            };
            return Ok(Some(Principal {
                user: t.user.clone(),
                via: Via::Token(t),
            }));
        }
        Ok(creds
            .session
            .and_then(|id| self.sessions.get(id))
            .map(|s| Principal {
                user: s.user.clone(),
                via: Via::Session(s),
            }))
    }

    /// The signed-in user of a request with `method`; refuses a state-changing request with
    /// a session but without its CSRF token, and anything but reading with a read-only token.
    pub fn require(
        &self,
        method: &str,
        creds: &Credentials<'_>,
    ) -> Result<Principal, IdentityError> {
        let p = self
            .authenticate(creds)?
            .ok_or(IdentityError::SignInFirst)?;
        checks::allow(&p, method, creds.csrf)?;
        Ok(p)
    }

    /// A check that the principal's session or token is still valid (for long streams).
    pub fn still_valid(&self, p: &Principal) -> impl Fn() -> bool + Send + 'static {
        let sessions = self.sessions.clone();
        let tokens = self.tokens.clone();
        let via = p.via.clone();
        move || match &via {
            Via::Session(s) => sessions.is_live(&s.key),
            Via::Token(t) => tokens.is_live(&t.id),
        }
    }

    /// Start a new session for `user`.
    pub fn start_session(&self, user: &str) -> Result<NewSession, IdentityError> {
        self.sessions.create(user).map_err(IdentityError::Random)
    }

    /// Admit one password check from `peer`: refused while the address is held back, or
    /// when the node's overall pace or its queue of checks is full. Only then is the
    /// attempt counted for the address (a refused one is not), and the ticket holds the
    /// place in the queue.
    fn admit_check(&self, peer: IpAddr) -> Result<Ticket, IdentityError> {
        self.login_limiter
            .check(peer)
            .map_err(IdentityError::HeldBack)?;
        self.check_pace.take().map_err(IdentityError::Busy)?;
        let ticket = self.passwords.enter()?;
        self.login_limiter
            .begin(peer)
            .map_err(IdentityError::HeldBack)?;
        Ok(ticket)
    }

    /// Verify a password in turn, off the async threads (argon2 is deliberately slow). An
    /// unknown user is checked against a throwaway hash so timing does not tell which users
    /// exist.
    async fn check_password(
        &self,
        ticket: Ticket,
        user: &str,
        password: &str,
    ) -> Result<bool, IdentityError> {
        static DUMMY: OnceLock<Option<String>> = OnceLock::new();
        let stored = self.users.password_hash(user);
        let pw = password.to_string();
        ticket
            .run(move |mem| match stored {
                Some(hash) => Ok(password::verify_with(&pw, &hash, mem)),
                None => {
                    let dummy = DUMMY
                        .get_or_init(|| {
                            password::hash_with("no such user, no such password", mem).ok()
                        })
                        .as_deref()
                        .ok_or_else(|| {
                            IdentityError::Check("cannot prepare the password check".into())
                        })?;
                    let _ = password::verify_with(&pw, dummy, mem);
                    Ok(false)
                }
            })
            .await?
    }

    /// Log `user` in from `peer` with `password`: a new session; the session the client had
    /// (`old_session`, the cookie's value) is ended first, so the cookie is rotated.
    pub async fn login(
        &self,
        peer: IpAddr,
        user: &str,
        password: &str,
        old_session: Option<&str>,
    ) -> Result<NewSession, IdentityError> {
        let ticket = self.admit_check(peer)?;
        if !self.check_password(ticket, user, password).await? {
            // Not the user name: people type passwords into it.
            tracing::warn!(peer = %peer, "failed login");
            return Err(IdentityError::BadCredentials);
        }
        self.login_limiter.success(peer);
        if let Some(old) = old_session.and_then(|id| self.sessions.get(id)) {
            self.sessions.revoke_key(&old.key);
        }
        tracing::info!(peer = %peer, user = %user, "signed in");
        self.start_session(user)
    }

    /// End the principal's session (a token stays: revoke it instead).
    pub fn logout(&self, p: &Principal) {
        if let Via::Session(s) = &p.via {
            self.sessions.revoke_key(&s.key);
        }
    }

    /// Change the principal's password. Every API token of the user is revoked and every
    /// other session ended (all of them when a token made the change).
    pub async fn change_password(
        &self,
        peer: IpAddr,
        p: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), IdentityError> {
        password::check_policy("new_password", new)?;
        let ticket = self.admit_check(peer)?;
        if !self.check_password(ticket, &p.user, current).await? {
            return Err(IdentityError::WrongPassword);
        }
        self.login_limiter.success(peer);
        let hash = self.passwords.hash(new).await?;
        self.users
            .set_password_hash(&p.user, &hash)
            .map_err(IdentityError::SavePassword)?;
        let keep = match &p.via {
            Via::Session(s) => Some(s.key.as_str()),
            Via::Token(_) => None,
        };
        self.sessions.revoke_user(&p.user, keep);
        let revoked = self
            .tokens
            .revoke_user(&p.user)
            .map_err(IdentityError::RevokeAfterChange)?;
        tracing::info!(user = %p.user, revoked, "password changed; other sessions ended, API tokens revoked");
        Ok(())
    }

    /// The user's API tokens.
    pub fn list_tokens(&self, user: &str) -> Vec<TokenInfo> {
        self.tokens.list(user)
    }

    /// A new API token for the principal (its secret is returned once). From a session, or
    /// from an admin token: then the new one is its child (scope and expiry at most the
    /// parent's, revoked with it). `method` is the request's, for the read-only refusal.
    pub fn create_token(
        &self,
        p: &Principal,
        method: &str,
        name: &str,
        scope: Scope,
        days: u32,
    ) -> Result<(TokenInfo, String), IdentityError> {
        let parent = match &p.via {
            Via::Session(_) => None,
            Via::Token(t) if t.scope == Scope::ReadOnly => {
                return Err(IdentityError::ReadOnly(method.to_string()))
            }
            Via::Token(t) => Some(t),
        };
        if !(tokens::MIN_DAYS..=tokens::MAX_DAYS).contains(&days) {
            return Err(IdentityError::Invalid {
                field: "expires_days".into(),
                message: format!(
                    "a token lasts {} to {} days (this asks for {days})",
                    tokens::MIN_DAYS,
                    tokens::MAX_DAYS
                ),
            });
        }
        let trimmed = name.trim();
        if trimmed.is_empty() || name.chars().count() > 64 || trimmed.chars().any(char::is_control)
        {
            return Err(IdentityError::Invalid {
                field: "name".into(),
                message:
                    "the token name must have 1 to 64 printable characters (e.g. the machine it is for)"
                        .into(),
            });
        }
        let (info, token) = self.make_token(NewToken {
            user: &p.user,
            name: trimmed,
            scope,
            days,
            parent,
        })?;
        tracing::info!(
            user = %p.user,
            id = %info.id,
            name = %info.name,
            scope = info.scope.as_str(),
            parent = info.parent.as_deref().unwrap_or("-"),
            "API token created"
        );
        Ok((info, token))
    }

    /// Make a token as described, without the checks of a request (tests, tools).
    pub fn make_token(&self, new: NewToken<'_>) -> Result<(TokenInfo, String), IdentityError> {
        self.tokens.create(new).map_err(IdentityError::Token)
    }

    /// Revoke the user's token `id` and every token made from it; false when the user has
    /// no such token.
    pub fn revoke_token(&self, user: &str, id: &str) -> Result<bool, IdentityError> {
        let found = self
            .tokens
            .revoke(user, id)
            .map_err(IdentityError::Revoke)?;
        if found {
            tracing::info!(user = %user, %id, "API token revoked");
        }
        Ok(found)
    }

    /// Check a setup code typed by `peer` (rate-limited per address, limits kept across
    /// restarts; the code is replaced after [`setup::CODE_ROTATE_AFTER`] wrong ones from
    /// all addresses) and hand out a setup token; any earlier token stops working.
    pub fn enter_setup_code(
        &self,
        peer: IpAddr,
        code: &str,
    ) -> Result<(String, setup::SetupStatus), IdentityError> {
        self.setup.enter_code(peer, code)
    }

    /// Hash the admin password of the setup step (policy-checked, argon2id in the queue).
    pub async fn hash_new_password(
        &self,
        field: &str,
        password: &str,
    ) -> Result<String, IdentityError> {
        password::check_policy(field, password)?;
        self.passwords.hash(password).await
    }

    /// Complete setup under the setup token `token`: `apply_network` applies the chosen
    /// network (if any); the hostname and time settings go to `system`; then the
    /// configuration, hostname and admin are written before the `setup-done` marker (the
    /// commit point), the code is retired, and a session for the admin starts.
    pub fn complete_setup<E: From<IdentityError>>(
        &self,
        token: &str,
        system: &dyn crate::system::NodeSystem,
        apply_network: impl FnOnce(&cairn_net::spec::NetworkSpec) -> Result<(), E>,
    ) -> Result<NewSession, E> {
        self.setup
            .complete(token, &self.users, system, apply_network)?;
        Ok(self.start_session(users::ADMIN)?)
    }
}
