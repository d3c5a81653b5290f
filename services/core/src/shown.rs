//! Rejected values as error messages show them: cut to [`MAX_CHARS`] characters with an
//! ellipsis, so a 64 KiB bad value does not come back in full (in an answer, a log line or
//! an alert). Every message that echoes a client's value goes through [`clip`] or [`quoted`].

use std::borrow::Cow;
use std::fmt;

/// Most characters of a rejected value an error message shows.
pub const MAX_CHARS: usize = 100;

/// `v` itself when it has at most [`MAX_CHARS`] characters, else its first [`MAX_CHARS`]
/// characters and `…`.
pub fn clip(v: &str) -> Cow<'_, str> {
    clip_to(v, MAX_CHARS)
}

/// `v` cut to `max` characters with `…` (not cut when it fits).
pub fn clip_to(v: &str, max: usize) -> Cow<'_, str> {
    match v.char_indices().nth(max) {
        None => Cow::Borrowed(v),
        Some((end, _)) => Cow::Owned(format!("{}…", &v[..end])),
    }
}

/// `v` clipped and quoted as `{:?}` shows a string (escapes included): `"nas_01"`,
/// `"aaaa…"`. Use it in `format!` like a value: `format!("{} is not …", quoted(v))`.
pub fn quoted(v: &str) -> Quoted<'_> {
    Quoted(clip(v))
}

/// A clipped value that displays quoted; see [`quoted`].
pub struct Quoted<'a>(Cow<'a, str>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A message from a parser or library that may quote a value in full (serde's ``invalid
/// type: string "…"``, ``unknown variant `…` ``): every `"…"` or `` `…` `` span in it is
/// clipped like [`clip`], the rest is kept.
pub fn clip_spans(msg: &str) -> Cow<'_, str> {
    if msg.chars().count() <= MAX_CHARS {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(MAX_CHARS * 4);
    let mut rest = msg;
    while let Some(start) = rest.find(['"', '`']) {
        let delim = rest.as_bytes()[start] as char;
        out.push_str(&rest[..=start]);
        let body = &rest[start + 1..];
        let end = span_end(body, delim);
        match end {
            Some(end) => {
                out.push_str(&clip(&body[..end]));
                out.push(delim);
                rest = &body[end + 1..];
            }
            None => {
                out.push_str(&clip(body));
                rest = "";
            }
        }
    }
    out.push_str(&clip(rest));
    Cow::Owned(out)
}

/// Where the span opened by `delim` ends in `body` (a `"` span skips `\"` escapes).
fn span_end(body: &str, delim: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if delim == '"' && escaped {
            escaped = false;
            continue;
        }
        if delim == '"' && c == '\\' {
            escaped = true;
        } else if c == delim {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept() {
        assert_eq!(clip("nas-01"), "nas-01");
        assert!(matches!(clip("nas-01"), Cow::Borrowed(_)));
        let exact = "a".repeat(MAX_CHARS);
        assert_eq!(clip(&exact), exact.as_str());
        assert_eq!(quoted("nas_01").to_string(), "\"nas_01\"");
        assert_eq!(quoted("a\"b").to_string(), r#""a\"b""#);
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        let long = "x".repeat(65 * 1024);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_CHARS + 1);
        assert!(c.ends_with("x…"));
        assert_eq!(
            quoted(&long).to_string(),
            format!("\"{}…\"", "x".repeat(MAX_CHARS))
        );
        // Characters, not bytes: a multi-byte value is never cut inside a character.
        let wide = "é".repeat(300);
        assert_eq!(clip(&wide), format!("{}…", "é".repeat(MAX_CHARS)));
        assert_eq!(clip_to("abcdef", 3), "abc…");
    }

    #[test]
    fn spans_in_library_messages_are_clipped() {
        let long = "y".repeat(70_000);
        let msg = format!("invalid type: string {long:?}, expected u16");
        let c = clip_spans(&msg);
        assert_eq!(
            c,
            format!(
                "invalid type: string \"{}…\", expected u16",
                "y".repeat(MAX_CHARS)
            )
        );
        let msg = format!("unknown variant `{long}`, expected `raid1` or `raid5`");
        assert_eq!(
            clip_spans(&msg),
            format!(
                "unknown variant `{}…`, expected `raid1` or `raid5`",
                "y".repeat(MAX_CHARS)
            )
        );
        // Escaped quotes stay inside their span.
        let msg = format!(
            "invalid value: string \"a\\\"{long}\", expected {}",
            "z".repeat(120)
        );
        let c = clip_spans(&msg);
        assert!(c.starts_with("invalid value: string \"a\\\"yyy"), "{c}");
        assert!(c.contains("…\", expected zzz"), "{c}");
        assert!(c.len() < 400, "{}", c.len());
        assert_eq!(clip_spans("short `x`"), "short `x`");
    }
}
