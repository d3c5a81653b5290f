//! Validation of node settings: hostname (RFC 1123 label), time zone, NTP servers.

use crate::error::ApiError;
use cairn_core::shown::quoted;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// Most NTP servers accepted.
pub const MAX_NTP_SERVERS: usize = 8;

/// A hostname: one RFC 1123 label (letters, digits, hyphens; 1–63; no hyphen at either
/// end), returned in lowercase.
pub fn hostname(field: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim().to_ascii_lowercase();
    label(&name).map_err(|why| {
        ApiError::invalid(
            field,
            format!(
                "{} is not a valid hostname: {why} (example: nas-01)",
                quoted(&name)
            ),
        )
    })?;
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} is not a valid hostname: it must contain a letter",
                quoted(&name)
            ),
        ));
    }
    Ok(name)
}

/// Why a label is not RFC 1123.
fn label(l: &str) -> Result<(), String> {
    if l.is_empty() {
        return Err("it is empty".into());
    }
    if l.len() > 63 {
        return Err(format!(
            "it has {} characters, at most 63 are allowed",
            l.len()
        ));
    }
    if let Some(c) = l
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed; use letters, digits and hyphens"
        ));
    }
    if l.starts_with('-') || l.ends_with('-') {
        return Err("it must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// A time zone name such as `Europe/Berlin` or `UTC`. When `zoneinfo` is a directory, the
/// zone must exist there as a TZif file.
pub fn timezone(field: &str, tz: &str, zoneinfo: Option<&Path>) -> Result<String, ApiError> {
    let tz = tz.trim();
    let bad = |why: &str| {
        ApiError::invalid(
            field,
            format!("{} is not a valid time zone: {why} (examples: UTC, Europe/Berlin, America/New_York)", quoted(tz)),
        )
    };
    if tz.is_empty() || tz.len() > 64 {
        return Err(bad("it must have 1 to 64 characters"));
    }
    let parts_ok = tz.split('/').all(|p| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
    });
    if !parts_ok || !tz.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("use a name from the tz database"));
    }
    if let Some(dir) = zoneinfo.filter(|d| d.is_dir()) {
        if !is_tzif(&dir.join(tz)) {
            return Err(bad(&format!("there is no such zone in {}", dir.display())));
        }
    }
    Ok(tz.to_string())
}

fn is_tzif(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"TZif"
}

/// NTP servers: each an IP address or a DNS name; at most [`MAX_NTP_SERVERS`], no repeats.
/// Errors name the entry, e.g. `servers[1]`.
pub fn ntp_servers(field: &str, servers: &[String]) -> Result<Vec<String>, ApiError> {
    if servers.len() > MAX_NTP_SERVERS {
        return Err(ApiError::invalid(
            field,
            format!(
                "at most {MAX_NTP_SERVERS} NTP servers are allowed ({} given)",
                servers.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.parse::<IpAddr>().is_err() {
            dns_name(&s).map_err(|why| {
                ApiError::invalid(
                    &f,
                    format!(
                        "{} is not an IP address or host name: {why} (example: pool.ntp.org)",
                        quoted(&s)
                    ),
                )
            })?;
        }
        if out.contains(&s) {
            return Err(ApiError::invalid(
                &f,
                format!("{} is listed twice", quoted(&s)),
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// A server address: an IP address or a DNS name (lowercased).
pub fn host(field: &str, h: &str) -> Result<String, ApiError> {
    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.parse::<IpAddr>().is_ok() {
        return Ok(h);
    }
    dns_name(&h).map_err(|why| {
        ApiError::invalid(
            field,
            format!(
                "{} is not an IP address or host name: {why} (example: smtp.example.com)",
                quoted(&h)
            ),
        )
    })?;
    Ok(h)
}

/// A mail address `local@domain` (no display name; nothing that could break a header).
pub fn email(field: &str, addr: &str) -> Result<String, ApiError> {
    let a = addr.trim();
    let bad = |why: &str| {
        ApiError::invalid(
            field,
            format!(
                "{} is not a mail address: {why} (example: ops@example.com)",
                quoted(a)
            ),
        )
    };
    if a.len() > 254 {
        return Err(bad("it is longer than 254 characters"));
    }
    let (local, domain) = a.rsplit_once('@').ok_or_else(|| bad("it has no @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before @ must have 1 to 64 characters"));
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c))
    {
        return Err(bad("the part before @ has a character that is not allowed"));
    }
    dns_name(&domain.to_ascii_lowercase()).map_err(|why| bad(&format!("domain: {why}")))?;
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

fn dns_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    for l in name.split('.') {
        label(l).map_err(|why| format!("label {}: {why}", quoted(l)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname("hostname", " NAS-01 ").unwrap(), "nas-01");
        assert_eq!(hostname("hostname", &"a".repeat(63)).unwrap().len(), 63);
        for bad in [
            "",
            "-nas",
            "nas-",
            "nas.local",
            "nas_01",
            "n as",
            "1234",
            &"a".repeat(64),
        ] {
            let e = hostname("hostname", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("hostname"), "{bad}");
            assert_eq!(e.code, "invalid");
        }
        let e = hostname("hostname", "nas_01").unwrap_err();
        assert!(e.message.contains("'_' is not allowed"), "{}", e.message);
    }

    /// A huge rejected value comes back cut to 100 characters with an ellipsis.
    #[test]
    fn rejected_values_are_clipped() {
        let long = "x".repeat(65 * 1024);
        let clipped = format!("\"{}…\"", "x".repeat(100));
        for e in [
            hostname("hostname", &long).unwrap_err(),
            timezone("timezone", &long, None).unwrap_err(),
            host("host", &long).unwrap_err(),
            email("to[0]", &long).unwrap_err(),
            ntp_servers("servers", std::slice::from_ref(&long)).unwrap_err(),
        ] {
            assert!(e.message.len() < 400, "{}", &e.message[..400]);
            assert!(e.message.contains(&clipped), "{}", e.message);
        }
        // A valid but long name listed twice: 3 × 63 characters, shown cut.
        let name = ["x".repeat(63), "y".repeat(63), "z".repeat(63)].join(".");
        let e = ntp_servers("servers", &[name.clone(), name]).unwrap_err();
        assert!(e.message.ends_with("…\" is listed twice"), "{}", e.message);
    }

    #[test]
    fn timezones_by_shape() {
        assert_eq!(
            timezone("timezone", "Europe/Berlin", None).unwrap(),
            "Europe/Berlin"
        );
        assert_eq!(
            timezone("timezone", "Etc/GMT+5", None).unwrap(),
            "Etc/GMT+5"
        );
        for bad in [
            "",
            "../etc/passwd",
            "/etc/passwd",
            "Europe//Berlin",
            "Europe/..",
            "a b",
        ] {
            assert!(timezone("timezone", bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones_against_zoneinfo() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Europe")).unwrap();
        std::fs::write(dir.path().join("Europe/Berlin"), b"TZif2...").unwrap();
        std::fs::write(dir.path().join("zone.tab"), b"# not a zone").unwrap();
        let z = Some(dir.path());
        assert!(timezone("timezone", "Europe/Berlin", z).is_ok());
        let e = timezone("timezone", "Europe/Atlantis", z).unwrap_err();
        assert!(e.message.contains("no such zone"), "{}", e.message);
        assert!(timezone("timezone", "zone.tab", z).is_err(), "not TZif");
        assert!(timezone("timezone", "Europe", z).is_err(), "a directory");
    }

    #[test]
    fn real_zoneinfo_when_present() {
        let z = Path::new("/usr/share/zoneinfo");
        if z.join("UTC").exists() {
            assert!(timezone("timezone", "UTC", Some(z)).is_ok());
            assert!(timezone("timezone", "Mars/Olympus_Mons", Some(z)).is_err());
        }
    }

    #[test]
    fn hosts_and_mail_addresses() {
        assert_eq!(
            host("host", "SMTP.Example.com.").unwrap(),
            "smtp.example.com"
        );
        assert_eq!(host("host", "192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(
            host("host", "bad host").unwrap_err().field.as_deref(),
            Some("host")
        );
        assert_eq!(
            email("to[0]", " Ops@Example.COM ").unwrap(),
            "Ops@example.com"
        );
        for bad in [
            "ops",
            "@example.com",
            "a b@example.com",
            "a@",
            "a@ex ample.com",
            "a<b>@x.org",
            "a@x.org\r\nBcc: y@z.org",
        ] {
            let e = email("to[0]", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("to[0]"), "{bad}");
        }
    }

    #[test]
    fn ntp() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ntp_servers(
                "servers",
                &v(&["Pool.NTP.org.", "192.0.2.1", "2001:db8::1"])
            )
            .unwrap(),
            v(&["pool.ntp.org", "192.0.2.1", "2001:db8::1"])
        );
        assert!(ntp_servers("servers", &[]).unwrap().is_empty());
        let e = ntp_servers("servers", &v(&["pool.ntp.org", "bad_host"])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("servers[1]"));
        let e = ntp_servers("servers", &v(&["a.org", "A.org"])).unwrap_err();
        assert!(e.message.contains("twice"));
        assert!(ntp_servers("servers", &v(&["x.org"; 9])).is_err());
    }
}
