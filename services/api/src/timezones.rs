//! `GET /api/v1/timezones`: the zone names of the node's tz database, for the setup page.

use crate::request::Ctx;
use crate::response::{json, Body};
use hyper::{Response, StatusCode};
use std::path::Path;

/// The zone list documents of the tz database, most useful first.
const TABLES: &[&str] = &["zone1970.tab", "zone.tab"];

#[derive(Debug, serde::Serialize)]
struct Zones {
    /// Sorted zone names; empty when the node has no tz database (any valid name is taken).
    zones: Vec<String>,
}

/// Zone names from the first table found in `dir`, plus `UTC`, each checked to exist.
pub fn zones(dir: &Path) -> Vec<String> {
    let Some(text) = TABLES
        .iter()
        .find_map(|t| std::fs::read_to_string(dir.join(t)).ok())
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(2))
        .map(str::trim)
        .filter(|z| crate::validate::timezone("timezone", z, Some(dir)).is_ok())
        .map(str::to_string)
        .collect();
    if dir.join("UTC").is_file() {
        out.push("UTC".into());
    }
    out.sort();
    out.dedup();
    out
}

/// Handle `GET /api/v1/timezones`.
pub fn get(ctx: &Ctx<'_>) -> Response<Body> {
    let zones = ctx
        .state
        .system
        .zoneinfo_dir()
        .map(|d| self::zones(&d))
        .unwrap_or_default();
    json(StatusCode::OK, &Zones { zones })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_table_and_keeps_only_real_zones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("Europe")).unwrap();
        std::fs::create_dir_all(d.join("America")).unwrap();
        for z in ["Europe/Berlin", "America/New_York", "UTC"] {
            std::fs::write(d.join(z), b"TZif2").unwrap();
        }
        std::fs::write(
            d.join("zone1970.tab"),
            "# comment\nDE\t+5230+01322\tEurope/Berlin\nUS\t+404251-0740023\tAmerica/New_York\tEastern\nXX\t+00+00\tMars/Base\n",
        )
        .unwrap();
        assert_eq!(
            zones(d),
            vec!["America/New_York", "Europe/Berlin", "UTC"],
            "sorted, UTC added, missing zone left out"
        );
        assert!(zones(&d.join("nowhere")).is_empty());
    }
}
