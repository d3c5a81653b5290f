//! SHA-256 certificate fingerprints in the `SHA256:AB:CD:…` form shown to users.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The SHA-256 digest of a certificate's DER encoding: what a client pins instead of
/// trusting a certificate authority.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Text that is not a SHA-256 fingerprint (neither 64 hex digits nor 32 bytes of base64).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FingerprintError {
    /// Hex digits (and colons) only, but not 64 of them.
    #[error("fingerprint must have 32 bytes (64 hex digits), got {0} hex digits")]
    Length(usize),
    /// A character that is neither a hex digit nor a colon (and the text is not base64).
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

impl fmt::Debug for Fingerprint {
    /// The displayed form: test failures and logs show what a user would compare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    /// Accepts the displayed form, with or without `SHA256:`, colons and case, and the
    /// base64 form `ssh` prints (`SHA256:A9Zt…`, padding optional).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s
            .strip_prefix("SHA256:")
            .or_else(|| s.strip_prefix("sha256:"))
            .unwrap_or(s);
        from_hex(s).or_else(|hex_error| {
            base64_decode(s)
                .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
                .map(Fingerprint)
                .ok_or(hex_error)
        })
    }
}

/// 64 hex digits, colons anywhere.
fn from_hex(s: &str) -> Result<Fingerprint, FingerprintError> {
    let mut digits = Vec::with_capacity(64);
    for c in s.chars() {
        match c {
            ':' => {}
            c => digits.push(
                c.to_digit(16)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or(FingerprintError::BadChar(c))?,
            ),
        }
    }
    if digits.len() != 64 {
        return Err(FingerprintError::Length(digits.len()));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(Fingerprint(out))
}

/// Standard or URL-safe base64, padding optional; `None` for any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
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
        assert_eq!(format!("{f:?}"), text);
    }

    #[test]
    fn parses_loose_forms() {
        let f = Fingerprint::of_der(b"abc");
        let hex: String = f.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.parse::<Fingerprint>().unwrap(), f);
        assert_eq!(format!("sha256:{hex}").parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn parses_every_spelling() {
        let fp = Fingerprint::of_der(b"certificate");
        let colon = fp.to_string();
        assert!(colon.starts_with("SHA256:"));
        assert_eq!(colon.parse(), Ok(fp));
        let hex: String = fp.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("SHA256:{hex}").parse(), Ok(fp));
        assert_eq!(hex.parse(), Ok(fp));
        // `echo -n certificate | sha256sum | xxd -r -p | base64`
        let b64 = "SHA256:A9Zt0Ig1wco/EozOrNHzGslBYwlrIPRFroQoW8CDLXI";
        assert_eq!(b64.parse(), Ok(fp), "{fp}");
        assert_eq!(format!("{b64}=").parse(), Ok(fp));
        assert!("SHA256:abcd".parse::<Fingerprint>().is_err());
        assert!("SHA256:!!!".parse::<Fingerprint>().is_err());
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
