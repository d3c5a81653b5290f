//! Why identity refused or failed, one variant per refusal or failure, for the edge to
//! answer with its own status and code.

use super::tokens::TokenError;
use cairn_core::store::StoreError;
use std::time::Duration;

/// Why identity refused or failed; the edge answers each with its own status and code.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// An `Authorization` header that is not `Bearer TOKEN`.
    #[error("Authorization must be `Bearer TOKEN`")]
    NotBearer,
    /// A bearer token past its expiry.
    #[error("the API token {name:?} expired on {expires}; run `cairnctl login` again")]
    TokenExpired {
        /// The token's name.
        name: String,
        /// When it expired, in UTC.
        expires: String,
    },
    /// A bearer token that is not (or no longer) known.
    #[error("the API token is not valid (revoked?); run `cairnctl login` again")]
    TokenUnknown,
    /// No session and no token.
    #[error("sign in first (session cookie or Authorization: Bearer TOKEN)")]
    SignInFirst,
    /// A state-changing request with a session but without its CSRF token.
    #[error("the CSRF token is missing or wrong")]
    Csrf,
    /// A read-only token used for anything but reading; the method it tried.
    #[error("this API token is read-only: it may only read (GET, HEAD), not {0}; use an admin token (`cairnctl login` without --read-only) or sign in")]
    ReadOnly(String),
    /// The address is held back after failed attempts; how long it must wait.
    #[error("too many failed attempts; try again in {0:?}")]
    HeldBack(Duration),
    /// The node's pace or queue of password checks is full; how long to wait.
    #[error("the node is checking too many passwords right now; try again in {} s", .0.as_secs())]
    Busy(Duration),
    /// Login with a wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// A password change with a wrong current password.
    #[error("the current password is wrong")]
    WrongPassword,
    /// A value that breaks a rule; `field` names it.
    #[error("{message}")]
    Invalid {
        /// The request field.
        field: String,
        /// What is wrong and what is needed.
        message: String,
    },
    /// A token could not be made.
    #[error(transparent)]
    Token(TokenError),
    /// A token could not be revoked.
    #[error("cannot revoke the token")]
    Revoke(#[source] StoreError),
    /// The password changed but the user's tokens stayed.
    #[error("the password was changed but its API tokens could not be revoked")]
    RevokeAfterChange(#[source] StoreError),
    /// The new password hash could not be stored.
    #[error("cannot store the password")]
    SavePassword(#[source] StoreError),
    /// No random bytes for a session or setup token.
    #[error("cannot make a secret")]
    Random(#[source] crate::secret::RandomError),
    /// The password check queue or its worker failed.
    #[error("{0}")]
    Check(String),
    /// Setup is done; its steps are closed.
    #[error("this node is already set up; sign in instead")]
    AlreadySetUp,
    /// A setup step without the setup token; whether setup is done already.
    #[error("{}", if *.0 { "this node is already set up; sign in instead" } else { "enter the setup code first: its answer is the X-Setup-Token for the other steps" })]
    SetupTokenMissing(bool),
    /// A setup step with a token that is not the current one.
    #[error(
        "enter the setup code first (X-Setup-Token is missing, or a newer code entry replaced it)"
    )]
    SetupTokenWrong,
    /// A wrong setup code.
    #[error("that is not the setup code shown on the node's console (12 characters, like 6DDJ-P6FE-XZ1W)")]
    WrongCode,
    /// The stored setup code could not be read.
    #[error("cannot read the setup code from {path}: {reason}; restart cairnd to make a new one")]
    ReadCode {
        /// The code file.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// Completing setup before a step was done; the step's field and what it sets.
    #[error("set the {what} first")]
    SetupIncomplete {
        /// The step's field.
        field: &'static str,
        /// What the step sets, in words.
        what: &'static str,
    },
    /// Setup progress or the node configuration could not be read or stored.
    #[error(transparent)]
    SetupStore(StoreError),
    /// The hostname could not be set on the system.
    #[error("cannot set the hostname to {hostname}: {source}")]
    SetHostname {
        /// The hostname setup chose.
        hostname: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The time zone and NTP servers could not be applied.
    #[error("cannot apply the time settings: {0}")]
    ApplyTime(std::io::Error),
    /// A file setup writes when it completes could not be written.
    #[error("cannot {what}: {source}")]
    SetupWrite {
        /// What was being done.
        what: &'static str,
        /// The write's error.
        source: cairn_core::AtomicWriteError,
    },
}
