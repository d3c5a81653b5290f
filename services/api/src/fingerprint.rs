//! SHA-256 certificate fingerprints in the `SHA256:AB:CD:…` form shown to users.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The SHA-256 digest of a certificate's DER encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Text that is not a SHA-256 fingerprint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FingerprintError {
    #[error("fingerprint must have 32 bytes (64 hex digits), got {0} hex digits")]
    Length(usize),
    #[error("fingerprint contains {0:?}, which is not a hex digit or ':'")]
    BadChar(char),
}

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    /// `SHA256:` then uppercase hex pairs separated by colons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    /// Accepts the displayed form, with or without `SHA256:`, colons and case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s
            .strip_prefix("SHA256:")
            .or_else(|| s.strip_prefix("sha256:"))
            .unwrap_or(s);
        let mut digits = Vec::with_capacity(64);
        for c in s.chars() {
            match c {
                ':' => {}
                c => digits.push(c.to_digit(16).ok_or(FingerprintError::BadChar(c))? as u8),
            }
        }
        if digits.len() != 64 {
            return Err(FingerprintError::Length(digits.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            out[i] = pair[0] << 4 | pair[1];
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_format() {
        // SHA-256 of the empty string.
        let f = Fingerprint::of_der(b"");
        let text = f.to_string();
        assert_eq!(
            text,
            "SHA256:E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn parses_loose_forms() {
        let f = Fingerprint::of_der(b"abc");
        let hex: String = f.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.parse::<Fingerprint>().unwrap(), f);
        assert_eq!(format!("sha256:{hex}").parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            "SHA256:AB:CD".parse::<Fingerprint>(),
            Err(FingerprintError::Length(4))
        );
        assert_eq!(
            "SHA256:AG".parse::<Fingerprint>(),
            Err(FingerprintError::BadChar('G'))
        );
    }
}
