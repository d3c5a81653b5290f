//! Random secrets (session ids, tokens, CSRF tokens), their SHA-256 digests and comparison.

use sha2::{Digest, Sha256};

/// Why no secret could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot get random bytes from the kernel")]
pub struct RandomError(#[source] pub getrandom::Error);

/// 256 random bits as 64 lowercase hex digits.
pub fn random_hex() -> Result<String, RandomError> {
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf).map_err(RandomError)?;
    Ok(hex(&buf))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a secret as hex: what is stored instead of the secret.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compare two strings in time independent of where they differ.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_64_hex_and_differs() {
        let a = random_hex().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex().unwrap());
    }

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn comparison() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
    }
}
