//! Join tokens: cluster endpoints + CA fingerprint + one-time secret + expiry in one string.
//!
//! Text form: `cairn1.` + base64url (no padding) of
//! `version(1) | expires_at(u64 BE) | fingerprint(32) | secret(32) | n(1) | n × endpoint | check(4)`
//! where an endpoint is `4 | ipv4(4) | port(2)` or `6 | ipv6(16) | port(2)` and `check` is the
//! first 4 bytes of SHA-256 over everything before it: a mistyped or tampered token is refused
//! at parse, before anything is sent anywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The prefix of every token's text form.
pub const TOKEN_PREFIX: &str = "cairn1.";
const VERSION: u8 = 1;
const CHECK_LEN: usize = 4;
/// At most this many endpoints in one token.
pub const MAX_ENDPOINTS: usize = 16;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all (prefix, characters, length, layout).
    #[error("not a Cairn join token: {0}")]
    Format(String),
    /// The checksum does not match: mistyped, truncated or tampered with.
    #[error("the join token is damaged (checksum mismatch): copy it again from the member")]
    Checksum,
    /// A token version this node does not know.
    #[error("join token version {0} is not supported")]
    Version(u8),
    /// The token's lifetime is over.
    #[error("the join token expired {ago_s} s ago (at {expired_at}, seconds since the epoch)")]
    Expired { expired_at: u64, ago_s: u64 },
    /// The member's CA is not the one the token names: stop before sending the secret.
    #[error("the member's CA fingerprint is {got}, the token expects {expected}: not sending the secret")]
    FingerprintMismatch { expected: String, got: String },
    /// A field cannot go into a token.
    #[error("invalid token field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The one-time secret of a token: 32 random bytes, text form base64url (43 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// 32 fresh random bytes.
    pub fn random() -> Result<Secret, TokenError> {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b).map_err(|e| TokenError::Invalid {
            field: "secret",
            reason: format!("no randomness: {e}"),
        })?;
        Ok(Secret(b))
    }

    /// The text the joining node sends (`JoinRequest::secret`).
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// SHA-256 (hex) of the text form: what a member stores in etcd.
    pub fn hash(&self) -> String {
        secret_hash(&self.to_text())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Cluster ports of members to ask (`ip:9443`).
    pub endpoints: Vec<SocketAddr>,
    /// `sha256:` + 64 lowercase hex digits (the CA certificate's DER).
    pub ca_fingerprint: String,
    pub secret: Secret,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

impl JoinToken {
    /// A new token with a fresh secret, expiring `ttl` after `now`.
    pub fn new(
        endpoints: Vec<SocketAddr>,
        ca_fingerprint: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<JoinToken, TokenError> {
        let t = JoinToken {
            endpoints,
            ca_fingerprint: ca_fingerprint.to_string(),
            secret: Secret::random()?,
            expires_at: epoch_s(now).saturating_add(ttl.as_secs()),
        };
        t.to_bytes()?;
        Ok(t)
    }

    /// The text form (`cairn1.…`). Fails only on fields [`JoinToken::new`] would refuse.
    pub fn encode(&self) -> Result<String, TokenError> {
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes()?)
        ))
    }

    /// Read a token (surrounding whitespace ignored) and refuse it if damaged or expired at
    /// `now`.
    pub fn parse(text: &str, now: SystemTime) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            TokenError::Format(format!("it does not start with {TOKEN_PREFIX:?}"))
        })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TokenError::Format(format!("bad base64url ({e})")))?;
        if bytes.len() < 1 + 8 + 32 + 32 + 1 + CHECK_LEN {
            return Err(TokenError::Format(format!(
                "too short ({} bytes)",
                bytes.len()
            )));
        }
        let (payload, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if !constant_time_eq(&Sha256::digest(payload)[..CHECK_LEN], check) {
            return Err(TokenError::Checksum);
        }
        if payload[0] != VERSION {
            return Err(TokenError::Version(payload[0]));
        }
        let mut r = Reader(&payload[1..]);
        let expires_at = u64::from_be_bytes(r.take::<8>()?);
        let fp = r.take::<32>()?;
        let secret = Secret(r.take::<32>()?);
        let [n] = r.take::<1>()?;
        let mut endpoints = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let ip = match r.take::<1>()? {
                [4] => IpAddr::from(r.take::<4>()?),
                [6] => IpAddr::from(r.take::<16>()?),
                [f] => return Err(TokenError::Format(format!("address family {f}"))),
            };
            endpoints.push(SocketAddr::new(ip, u16::from_be_bytes(r.take::<2>()?)));
        }
        if !r.0.is_empty() {
            return Err(TokenError::Format(format!("{} stray bytes", r.0.len())));
        }
        let token = JoinToken {
            endpoints,
            ca_fingerprint: format!("sha256:{}", crate::ca::hex(&fp)),
            secret,
            expires_at,
        };
        token.check_expiry(now)?;
        Ok(token)
    }

    /// Refuse the token if it expired at `now`.
    pub fn check_expiry(&self, now: SystemTime) -> Result<(), TokenError> {
        let now_s = epoch_s(now);
        if now_s >= self.expires_at {
            return Err(TokenError::Expired {
                expired_at: self.expires_at,
                ago_s: now_s - self.expires_at,
            });
        }
        Ok(())
    }

    /// Check a member's CA (PEM, fetched without trusting anything) against the token's
    /// fingerprint: the step before the secret is sent.
    pub fn check_ca_pem(&self, ca_pem: &str) -> Result<(), TokenError> {
        let got = crate::ca::fingerprint(ca_pem).map_err(|e| TokenError::Invalid {
            field: "ca_pem",
            reason: e.to_string(),
        })?;
        self.check_fingerprint(&got)
    }

    /// Compare a fingerprint (`sha256:…`) with the token's.
    pub fn check_fingerprint(&self, got: &str) -> Result<(), TokenError> {
        if constant_time_eq(
            got.to_ascii_lowercase().as_bytes(),
            self.ca_fingerprint.to_ascii_lowercase().as_bytes(),
        ) {
            Ok(())
        } else {
            Err(TokenError::FingerprintMismatch {
                expected: self.ca_fingerprint.clone(),
                got: got.to_string(),
            })
        }
    }

    fn to_bytes(&self) -> Result<Vec<u8>, TokenError> {
        let fp = parse_fingerprint(&self.ca_fingerprint)?;
        if self.endpoints.is_empty() || self.endpoints.len() > MAX_ENDPOINTS {
            return Err(TokenError::Invalid {
                field: "endpoints",
                reason: format!(
                    "{} endpoints, expected 1 to {MAX_ENDPOINTS}",
                    self.endpoints.len()
                ),
            });
        }
        let mut b = Vec::with_capacity(128);
        b.push(VERSION);
        b.extend_from_slice(&self.expires_at.to_be_bytes());
        b.extend_from_slice(&fp);
        b.extend_from_slice(&self.secret.0);
        b.push(u8::try_from(self.endpoints.len()).unwrap_or(u8::MAX));
        for ep in &self.endpoints {
            match ep.ip() {
                IpAddr::V4(v4) => {
                    b.push(4);
                    b.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    b.push(6);
                    b.extend_from_slice(&v6.octets());
                }
            }
            b.extend_from_slice(&ep.port().to_be_bytes());
        }
        let check = Sha256::digest(&b);
        b.extend_from_slice(&check[..CHECK_LEN]);
        Ok(b)
    }
}

/// SHA-256 (lowercase hex) of a secret's text form, as stored in `/cairn/join-tokens/<id>`.
pub fn secret_hash(secret_text: &str) -> String {
    crate::ca::hex(&Sha256::digest(secret_text.as_bytes()))
}

/// Whether the secret a joining node sent matches the stored hash (constant time).
pub fn verify_secret(secret_text: &str, stored_hash: &str) -> bool {
    constant_time_eq(
        secret_hash(secret_text).as_bytes(),
        stored_hash.to_ascii_lowercase().as_bytes(),
    )
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn parse_fingerprint(fp: &str) -> Result<[u8; 32], TokenError> {
    let bad = |reason: &str| TokenError::Invalid {
        field: "ca_fingerprint",
        reason: format!("{reason}: expected sha256: and 64 hex digits, got {fp:?}"),
    };
    let hex = fp
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("no sha256: prefix"))?;
    if hex.len() != 64 {
        return Err(bad("wrong length"));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad("not hex"))?;
    }
    Ok(out)
}

fn epoch_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        if self.0.len() < N {
            return Err(TokenError::Format("truncated".to_string()));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    fn eps() -> Vec<SocketAddr> {
        vec![
            "192.168.10.1:9443".parse().unwrap(),
            "[fd00::2]:9443".parse().unwrap(),
        ]
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn round_trip() {
        let t = JoinToken::new(eps(), &fp(), Duration::from_secs(3600), now()).unwrap();
        let text = t.encode().unwrap();
        assert!(text.starts_with("cairn1."));
        assert!(!text.contains(['+', '/', '=', ' ']));
        let back = JoinToken::parse(&format!("  {text}\n"), now()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.expires_at, 1_800_003_600);
        assert_eq!(back.secret.to_text().len(), 43);
    }

    #[test]
    fn secrets_are_fresh_and_hashes_verify() {
        let a = JoinToken::new(eps(), &fp(), Duration::from_secs(60), now()).unwrap();
        let b = JoinToken::new(eps(), &fp(), Duration::from_secs(60), now()).unwrap();
        assert_ne!(a.secret, b.secret);
        let h = a.secret.hash();
        assert_eq!(h.len(), 64);
        assert!(verify_secret(&a.secret.to_text(), &h));
        assert!(!verify_secret(&b.secret.to_text(), &h));
        assert!(!verify_secret("", &h));
        assert!(!format!("{:?}", a.secret).contains(&a.secret.to_text()));
    }

    #[test]
    fn any_changed_character_is_refused() {
        let t = JoinToken::new(eps(), &fp(), Duration::from_secs(3600), now()).unwrap();
        let text = t.encode().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (i, c) in text.char_indices() {
            // Two different replacements per position, from the token's own alphabet.
            for r in alphabet.chars().filter(|r| *r != c).take(2) {
                let mut bad = text.clone();
                bad.replace_range(i..i + c.len_utf8(), &r.to_string());
                assert!(
                    JoinToken::parse(&bad, now()).is_err(),
                    "position {i}: {c} -> {r} accepted"
                );
            }
        }
        // Truncated and extended.
        assert!(JoinToken::parse(&text[..text.len() - 1], now()).is_err());
        assert!(JoinToken::parse(&format!("{text}A"), now()).is_err());
    }

    #[test]
    fn tampered_payload_with_valid_base64_fails_the_checksum() {
        let t = JoinToken::new(eps(), &fp(), Duration::from_secs(3600), now()).unwrap();
        let mut bytes = t.to_bytes().unwrap();
        bytes[3] ^= 0x01; // the expiry
        let bad = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(JoinToken::parse(&bad, now()), Err(TokenError::Checksum));
    }

    #[test]
    fn format_errors_are_clear() {
        let e = JoinToken::parse("hello", now()).unwrap_err();
        assert!(e.to_string().contains("cairn1."), "{e}");
        let e = JoinToken::parse("cairn1.!!!", now()).unwrap_err();
        assert!(matches!(e, TokenError::Format(_)), "{e}");
        let e = JoinToken::parse("cairn1.AAAA", now()).unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
    }

    #[test]
    fn expiry() {
        let t = JoinToken::new(eps(), &fp(), Duration::from_secs(60), now()).unwrap();
        let text = t.encode().unwrap();
        assert!(JoinToken::parse(&text, now() + Duration::from_secs(59)).is_ok());
        let e = JoinToken::parse(&text, now() + Duration::from_secs(90)).unwrap_err();
        assert_eq!(
            e,
            TokenError::Expired {
                expired_at: 1_800_000_060,
                ago_s: 30
            }
        );
        assert!(e.to_string().contains("expired 30 s ago"));
    }

    #[test]
    fn wrong_fingerprint_is_refused() {
        let t = JoinToken::new(eps(), &fp(), Duration::from_secs(60), now()).unwrap();
        assert!(t.check_fingerprint(&fp()).is_ok());
        assert!(t
            .check_fingerprint(&fp().to_uppercase().replace("SHA256", "sha256"))
            .is_ok());
        let other = format!("sha256:{}", "cd".repeat(32));
        let e = t.check_fingerprint(&other).unwrap_err();
        assert!(matches!(e, TokenError::FingerprintMismatch { .. }));
        assert!(e.to_string().contains("not sending the secret"));

        let ca = crate::ca::create_ca("c1", SystemTime::now()).unwrap();
        let real = crate::ca::fingerprint(&ca.cert_pem).unwrap();
        let t = JoinToken::new(eps(), &real, Duration::from_secs(60), now()).unwrap();
        assert!(t.check_ca_pem(&ca.cert_pem).is_ok());
        let other_ca = crate::ca::create_ca("c1", SystemTime::now()).unwrap();
        assert!(matches!(
            t.check_ca_pem(&other_ca.cert_pem),
            Err(TokenError::FingerprintMismatch { .. })
        ));
    }

    #[test]
    fn bad_fields_are_refused_at_new() {
        let e = JoinToken::new(eps(), "md5:abc", Duration::from_secs(60), now()).unwrap_err();
        assert!(e.to_string().contains("ca_fingerprint"), "{e}");
        let e = JoinToken::new(vec![], &fp(), Duration::from_secs(60), now()).unwrap_err();
        assert!(e.to_string().contains("endpoints"), "{e}");
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
