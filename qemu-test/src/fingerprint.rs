//! SHA-256 certificate fingerprints as printed by cairnd (`SHA256:` + hex pairs or base64).

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses `SHA256:AB:CD:…`, `SHA256:abcd…` (hex) or `SHA256:base64…` (as ssh prints it).
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let t = text.trim();
        let t = t
            .strip_prefix("SHA256:")
            .or_else(|| t.strip_prefix("sha256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|&c| c != ':').collect();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
            }
            return Some(Fingerprint(out));
        }
        let bytes = base64_decode(t)?;
        <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Standard or URL-safe base64, padding optional.
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
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        let fp = Fingerprint::of_der(b"certificate");
        let colon = fp.to_string();
        assert!(colon.starts_with("SHA256:"));
        assert_eq!(Fingerprint::parse(&colon), Some(fp));
        let hex: String = fp.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Fingerprint::parse(&format!("SHA256:{hex}")), Some(fp));
        assert_eq!(Fingerprint::parse(&hex), Some(fp));
        // `echo -n certificate | sha256sum | xxd -r -p | base64`
        let b64 = "SHA256:A9Zt0Ig1wco/EozOrNHzGslBYwlrIPRFroQoW8CDLXI";
        assert_eq!(Fingerprint::parse(b64), Some(fp), "{fp}");
        assert_eq!(Fingerprint::parse(&format!("{b64}=")), Some(fp));
        assert_eq!(Fingerprint::parse("SHA256:abcd"), None);
        assert_eq!(Fingerprint::parse("SHA256:!!!"), None);
    }
}
