//! The web UI: plain ES modules, CSS and an icon from `services/api/ui/`, embedded and served.

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{full, Body};
use crate::secret::hex;
use hyper::{header, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Path prefix of the UI's assets (everything but the page itself).
pub const PREFIX: &str = "/ui/";

/// The policy sent with every UI response: nothing but this origin, no framing, no plugins;
/// except that the page may ask another HTTPS origin whether it answers (`connect-src`): the
/// Network page probes the node's new management address before following it there.
pub const CSP: &str = "default-src 'self'; connect-src 'self' https:; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The page served at `/`.
pub const INDEX: &str = include_str!("../ui/index.html");

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!("../ui/", $name)),
        }
    };
}

/// Every asset under `/ui/` (a test checks this matches the files in `ui/`).
pub const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("events.js", JS),
    asset!("form.js", JS),
    asset!("setup.js", JS),
    asset!("login.js", JS),
    asset!("shell.js", JS),
    asset!("nodes.js", JS),
    asset!("alerts.js", JS),
    asset!("tasks.js", JS),
    asset!("empty.js", JS),
    asset!("storage.js", JS),
    asset!("shares.js", JS),
    asset!("vms.js", JS),
    asset!("images.js", JS),
    asset!("smart.js", JS),
    asset!("network.js", JS),
    asset!("netpending.js", JS),
    asset!("cluster.js", JS),
    asset!("account.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
];

/// Strong validators (quoted, truncated SHA-256 of the content), computed once.
fn etags() -> &'static HashMap<&'static str, String> {
    static TAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut m: HashMap<&'static str, String> =
            ASSETS.iter().map(|a| (a.name, etag_of(a.body))).collect();
        m.insert("", etag_of(INDEX.as_bytes()));
        m
    })
}

fn etag_of(body: &[u8]) -> String {
    let d = hex(&Sha256::digest(body));
    format!("\"{}\"", &d[..20])
}

/// Whether a path belongs to the UI (answers even before the node is set up).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path.starts_with(PREFIX)
}

/// `GET /`: the single page (hash-routed: setup, login and dashboard sections).
pub fn index(ctx: &Ctx<'_>) -> Response<Body> {
    serve(ctx, HTML, INDEX.as_bytes(), etags()[""].as_str())
}

/// `GET /ui/{file}`.
pub fn asset(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let name = ctx.param();
    let a = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(&format!("{PREFIX}{name}")))?;
    Ok(serve(ctx, a.content_type, a.body, etags()[a.name].as_str()))
}

/// The file, or 304 when the client already has this version. `no-cache` makes browsers
/// revalidate every time, so a node updated to a new slot never runs a stale UI.
fn serve(
    ctx: &Ctx<'_>,
    content_type: &'static str,
    body: &'static [u8],
    etag: &str,
) -> Response<Body> {
    let fresh = ctx
        .header(header::IF_NONE_MATCH.as_str())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        let mut r = Response::new(full(hyper::body::Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    if let Ok(v) = header::HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every file in `ui/` is embedded (and nothing embedded is missing from `ui/`).
    #[test]
    fn every_file_in_ui_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "index.html")
            .collect();
        let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(on_disk, embedded);
    }

    /// Every module import and every `/ui/` reference names an embedded asset.
    #[test]
    fn references_resolve() {
        let names: BTreeSet<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut texts: Vec<(&str, &str)> = vec![("index.html", INDEX)];
        for a in ASSETS.iter().filter(|a| a.content_type != "image/svg+xml") {
            texts.push((a.name, std::str::from_utf8(a.body).unwrap()));
        }
        let mut seen = 0;
        for (file, text) in texts {
            for marker in ["from './", "import('./", "\"/ui/"] {
                for (i, _) in text.match_indices(marker) {
                    let rest = &text[i + marker.len()..];
                    let end = rest.find(['\'', '"']).unwrap();
                    let target = &rest[..end];
                    assert!(names.contains(target), "{file} refers to missing {target}");
                    seen += 1;
                }
            }
        }
        assert!(seen > 10, "only {seen} references found");
    }

    #[test]
    fn ui_paths_pass_the_setup_gate() {
        for p in ["/", "/ui/app.js", "/ui/", "/ui/missing.js", "/ui/a/b"] {
            assert!(is_ui_path(p), "{p}");
        }
        for p in [
            "/api/v1/tasks",
            "/index.html",
            "/favicon.ico",
            "/uix/app.js",
            "/ui",
            "",
        ] {
            assert!(!is_ui_path(p), "{p}");
        }
    }

    #[test]
    fn no_inline_script_or_style_or_remote_url() {
        for (name, text) in std::iter::once(("index.html", INDEX)).chain(
            ASSETS
                .iter()
                .map(|a| (a.name, std::str::from_utf8(a.body).unwrap())),
        ) {
            if name.ends_with(".svg") {
                continue;
            }
            // The SVG namespace is a name, not a URL the page loads.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://"), "{name}");
            assert!(!text.contains("https://"), "{name}");
            if name.ends_with(".html") {
                assert!(!text.contains("style="), "{name}: inline style");
                assert!(!text.contains("<script>"), "{name}: inline script");
            }
            if name.ends_with(".js") {
                assert!(
                    !text.contains("innerHTML"),
                    "{name}: build DOM nodes instead"
                );
            }
        }
    }
}
