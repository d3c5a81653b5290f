//! Password policy (length-based) and argon2id hashing in PHC string form.

use crate::error::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted, in characters.
pub const MIN_LEN: usize = 12;
/// Longest password accepted, in characters (bounds hashing work).
pub const MAX_LEN: usize = 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot get random bytes for the salt")]
    Random(#[source] getrandom::Error),
    #[error("argon2 failed: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Check the policy; the error names `field` and says what is needed.
pub fn check_policy(field: &str, password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(ApiError::invalid(
            field,
            format!(
                "the password must be at least {MIN_LEN} characters long (this one has {n}); a few unrelated words make a good one"
            ),
        ));
    }
    if n > MAX_LEN {
        return Err(ApiError::invalid(
            field,
            format!("the password must be at most {MAX_LEN} characters long (this one has {n})"),
        ));
    }
    Ok(())
}

/// Hash with argon2id (m = 19 MiB, t = 2, p = 1) and a random 128-bit salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(PasswordError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_length_based_with_clear_message() {
        let e = check_policy("password", "short pw").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("password"));
        assert!(
            e.message.contains("at least 12 characters"),
            "{}",
            e.message
        );
        assert!(e.message.contains("has 8"), "{}", e.message);
        assert!(check_policy("password", "correct horse").is_ok());
        assert!(check_policy("password", "ünïcödé-pässwörd").is_ok());
        assert!(check_policy("password", &"x".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn argon2id_round_trip_with_salt() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify("x", "not a hash"));
    }
}
