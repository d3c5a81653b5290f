//! `cairnctl smart check`: saved smartctl outputs judged offline by cairn-smart's rules,
//! as text and as JSON, from files and stdin, with a failing exit when a file is unreadable.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> String {
    format!(
        "{}/../smart/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Run cairnctl with a config dir that has no node: `smart check` must not need one.
fn cairnctl(args: &[&str], stdin: &[u8]) -> Output {
    let cfg = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .arg("--config-dir")
        .arg(cfg.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PACKED: &str = "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json";
const NO_SENSOR: &str = "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json";
const WORN: &str = "scsi-sas-ssd-worn-out-toshiba-kpm5xmug400g-edited.json";

#[test]
fn text_names_verdict_reasons_temperature_wear_and_hours_per_file() {
    let (a, b) = (fixture(PACKED), fixture(NO_SENSOR));
    let out = cairnctl(&["smart", "check", &a, &b], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains(&format!("{a}: warning (ST16000NM001G-2KK103)\n")),
        "{t}"
    );
    assert!(
        t.contains("  temperature 26 °C  endurance used -  power-on 13114 h\n"),
        "{t}"
    );
    assert!(
        t.contains("  warning  command_timeouts: 12 command timeouts (attribute 188)\n"),
        "{t}"
    );
    assert!(t.contains(&format!("{b}: healthy (TS32GMTS400)\n")), "{t}");
    assert!(
        t.contains("  temperature not available  endurance used 4 %  power-on 796 h\n"),
        "{t}"
    );
    assert!(t.contains("  info     no_temperature: "), "{t}");
}

#[test]
fn json_from_stdin_and_files_is_one_array_for_scripts() {
    let worn = std::fs::read(fixture(WORN)).unwrap();
    let packed = fixture(PACKED);
    let out = cairnctl(&["smart", "check", "-", &packed, "-o", "json"], &worn);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["file"], "-");
    assert_eq!(all[0]["verdict"], "failing");
    assert_eq!(all[0]["endurance_used_pct"], 100);
    assert_eq!(all[0]["reasons"][0]["code"], "endurance");
    assert_eq!(all[0]["reasons"][0]["level"], "failing");
    assert_eq!(all[1]["verdict"], "warning");
    assert_eq!(
        all[1]["reasons"][0]["message"],
        "12 command timeouts (attribute 188)"
    );
    assert_eq!(all[1]["temperature_c"], 26);
    assert!(all[1]["endurance_used_pct"].is_null());
    assert_eq!(all[1]["power_on_hours"], 13114);

    // The global -o works too, and a sensorless drive's temperature is null, not 0.
    let out = cairnctl(&["-o", "json", "smart", "check", &fixture(NO_SENSOR)], b"");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["temperature_c"].is_null(), "{v}");
}

#[test]
fn an_unreadable_file_fails_the_run_but_not_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sdz.json");
    let missing = missing.to_str().unwrap();
    let packed = fixture(PACKED);
    let out = cairnctl(&["smart", "check", missing, &packed], b"");
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains(&format!("{missing}: cannot read")), "{e}");
    assert!(e.contains("1 of 2 files could not be read"), "{e}");
    assert!(text(&out.stdout).contains(&format!("{packed}: warning")));

    let out = cairnctl(&["smart", "check", missing, "-o", "json"], b"");
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["file"], missing);
    assert!(v[0]["error"].as_str().unwrap().starts_with("cannot read"));

    // Readable but not smartctl's JSON: judged unavailable, the run succeeds.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "smartctl: command not found\n").unwrap();
    let out = cairnctl(&["smart", "check", junk.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": unavailable\n"));

    // No file at all is a usage error.
    let out = cairnctl(&["smart", "check"], b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("at least one FILE"));
}
