//! SMART evaluation against every real smartctl output in tests/fixtures/ (SOURCES.md there
//! says where each comes from and what the drive shows), each with its expected verdict and
//! the codes of the findings that decide it.

use cairn_smart::{interpret, Context, Counters, Outcome, Severity, Verdict};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (verdict, codes of the findings with severity ≥ warning, codes of info findings, temp).
fn judge(name: &str, ctx: &Context) -> (Verdict, Vec<String>, Vec<String>, Option<i64>) {
    let bytes = fixture(name);
    let exit = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["smartctl"]
        ["exit_status"]
        .as_i64()
        .map(|c| i32::try_from(c).unwrap());
    match interpret(&bytes, "", exit, ctx) {
        Outcome::Evaluated(_, e) => {
            let hard = e
                .reasons
                .iter()
                .filter(|r| r.severity >= Severity::Warning)
                .map(|r| r.code.clone())
                .collect();
            let info = e
                .reasons
                .iter()
                .filter(|r| r.severity == Severity::Info)
                .map(|r| r.code.clone())
                .collect();
            (e.verdict, hard, info, e.temperature_c)
        }
        Outcome::Unavailable(e) => (
            e.verdict,
            vec![],
            e.reasons.iter().map(|r| r.code.clone()).collect(),
            None,
        ),
        Outcome::Standby { mode } => panic!("{name}: standby ({mode})"),
    }
}

fn check(name: &str, verdict: Verdict, hard: &[&str], info: &[&str], temp: Option<i64>) {
    let (v, h, i, t) = judge(name, &Context::default());
    assert_eq!(v, verdict, "{name}: verdict (findings {h:?} {i:?})");
    assert_eq!(h, hard, "{name}: warning/failing findings");
    assert_eq!(i, info, "{name}: informational findings");
    assert_eq!(t, temp, "{name}: temperature");
}

#[test]
fn ata_hdd_healthy_wd_red_is_healthy() {
    check(
        "ata-hdd-healthy-wd-red-wd20efrx.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(34),
    );
}

#[test]
fn ata_hdd_wd_gold_at_49_c_is_over_the_hdd_default_of_45() {
    // No SCT limits in this capture (`--all`), so the HDD class default applies.
    check(
        "ata-hdd-healthy-wd-gold-wd181kryz.json",
        Verdict::Warning,
        &["temperature"],
        &[],
        Some(49),
    );
}

#[test]
fn ata_hdd_with_reallocated_pending_and_uncorrectable_sectors_warns() {
    check(
        "ata-hdd-reallocated-pending-uncorrectable-hgst-he6-hus726060ala640.json",
        Verdict::Warning,
        &[
            "reallocated_sectors",
            "pending_sectors",
            "offline_uncorrectable",
        ],
        &[],
        Some(29),
    );
}

#[test]
fn ata_hdd_with_304_reallocated_sectors_warns() {
    check(
        "ata-hdd-reallocated-seagate-st3500418as.json",
        Verdict::Warning,
        &["reallocated_sectors"],
        &[],
        Some(33),
    );
}

#[test]
fn ata_hdd_failing_now_behind_jmicron_is_failing() {
    check(
        "ata-hdd-failing-now-selftest-failed-usbjmicron-hitachi-hds721050dle630.json",
        Verdict::Failing,
        &[
            "health_check",
            "attribute_failing",
            "self_test_log",
            "reallocated_sectors",
            "pending_sectors",
        ],
        &["error_log", "usb_bridge"],
        Some(25),
    );
}

#[test]
fn ata_hdd_scorpio_failing_with_187_188_and_failed_self_test() {
    check(
        "ata-hdd-failing-now-selftest-failed-usbjmicron-wd-scorpio-wd3200bevt.json",
        Verdict::Failing,
        &[
            "health_check",
            "attribute_failing",
            "self_test_failed",
            "reallocated_sectors",
            "pending_sectors",
            "reported_uncorrect",
            "command_timeouts",
        ],
        &["attribute_failed_past", "error_log", "usb_bridge"],
        Some(27),
    );
}

#[test]
fn ata_hdd_behind_sunplus_that_failed_in_the_past_is_healthy_with_notes() {
    check(
        "ata-hdd-usbsunplus-failed-past-exit96-samsung-hd204ui.json",
        Verdict::Healthy,
        &[],
        &[
            "attribute_failed_past",
            "crc_errors",
            "error_log",
            "usb_bridge",
        ],
        Some(27),
    );
}

#[test]
fn ata_hdd_jmicron_exit_4_is_healthy_and_says_a_command_failed() {
    check(
        "ata-hdd-usbjmicron-exit4-wd-scorpio-wd2500bevs.json",
        Verdict::Healthy,
        &[],
        &["command_failed", "usb_bridge"],
        Some(26),
    );
}

#[test]
fn ata_ssd_samsung_860_is_healthy() {
    check(
        "ata-ssd-samsung-860-evo.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(36),
    );
}

#[test]
fn ata_ssd_without_thresholds_is_healthy() {
    check(
        "ata-ssd-wd-red-sa500-wds400t1r0a.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(27),
    );
}

#[test]
fn ata_ssd_kingston_exit_4_is_healthy_and_says_a_command_failed() {
    check(
        "ata-ssd-kingston-sa400-exit4.json",
        Verdict::Healthy,
        &[],
        &["command_failed"],
        Some(38),
    );
}

#[test]
fn ata_ssd_with_old_crc_errors_and_aborted_self_tests_is_healthy() {
    // 199 = 131 on the first sample: recorded as a note; only growth is a cable warning.
    // Three "Aborted by host" self-tests are not failures.
    check(
        "ata-ssd-p3-2tb-smartctl75-exit64.json",
        Verdict::Healthy,
        &[],
        &["crc_errors", "error_log"],
        Some(31),
    );
}

#[test]
fn nvme_healthy_sabrent_is_healthy() {
    check(
        "nvme-healthy-sabrent-rocket4.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(48),
    );
}

#[test]
fn nvme_at_61_c_is_healthy_under_its_own_100_c_warning_threshold() {
    check(
        "nvme-healthy-smartctl75-peladn-512gb.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(61),
    );
}

#[test]
fn nvme_with_media_errors_warns() {
    check(
        "nvme-media-errors-samsung-970-evo.json",
        Verdict::Warning,
        &["media_errors"],
        &[],
        Some(35),
    );
}

#[test]
fn nvme_with_critical_warning_is_failing() {
    check(
        "nvme-critical-warning-failed-samsung-pm1725a-mzwll3t2hajq.json",
        Verdict::Failing,
        &["health_check", "nvme_critical_warning"],
        &[],
        Some(40),
    );
}

#[test]
fn nvme_75_percent_worn_is_still_healthy() {
    check(
        "nvme-worn-75pct-intel-p4500-ssdpe2kx020t7.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(19),
    );
}

#[test]
fn scsi_sas_hdd_healthy() {
    check(
        "scsi-sas-hdd-healthy-seagate-st600mp0036.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(29),
    );
}

#[test]
fn scsi_sas_ssd_healthy() {
    check(
        "scsi-sas-ssd-hgst-husmr3280ass200.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(27),
    );
}

#[test]
fn scsi_with_grown_defects_and_uncorrected_errors_warns() {
    check(
        "scsi-spi-grown-defects-seagate-st373453lc.json",
        Verdict::Warning,
        &["grown_defects", "uncorrected_errors"],
        &[],
        Some(33),
    );
}

#[test]
fn permission_denied_is_unavailable_with_the_reason() {
    let bytes = fixture("error-nvme-open-failed-permission-denied.json");
    let Outcome::Unavailable(e) = interpret(&bytes, "", Some(2), &Context::default()) else {
        panic!("expected unavailable");
    };
    assert_eq!(e.verdict, Verdict::Unavailable);
    assert!(
        e.reasons[0].text.contains("Permission denied"),
        "{:?}",
        e.reasons
    );
}

#[test]
fn every_fixture_is_covered_by_a_test_above() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let me = include_str!("fixtures.rs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            n += 1;
            assert!(
                me.contains(&format!("\"{name}\"")),
                "{name} has no test with its expected verdict"
            );
        }
    }
    assert_eq!(n, 39);
}

#[test]
fn every_truncation_of_every_fixture_is_unavailable_not_a_panic() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
            let Outcome::Unavailable(e) =
                interpret(&bytes[..cut], "", Some(0), &Context::default())
            else {
                panic!("{}: cut at {cut} was not unavailable", path.display());
            };
            assert_eq!(e.reasons[0].code, "unparsable", "{}", path.display());
        }
    }
}

#[test]
fn unknown_usb_bridge_is_unavailable() {
    // The shape smartctl 7.x prints for a bridge it cannot talk through (exit 1).
    let doc = br#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":1,
      "messages":[{"string":"/dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x508)]","severity":"error"},
      {"string":"Please specify device type with the -d option.","severity":"error"}]}}"#;
    let Outcome::Unavailable(e) = interpret(doc, "", Some(1), &Context::default()) else {
        panic!("expected unavailable");
    };
    assert_eq!(e.reasons[0].code, "usb_bridge");
    assert!(e.reasons[0].text.contains("0x152d:0x0578"));
}

#[test]
fn standby_is_recognised() {
    let doc = br#"{"smartctl":{"exit_status":2,"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}]},
      "device":{"name":"/dev/sda","type":"sat","protocol":"ATA"}}"#;
    assert!(matches!(
        interpret(doc, "", Some(2), &Context::default()),
        Outcome::Standby { .. }
    ));
}

#[test]
fn empty_output_is_unavailable_with_stderr() {
    let Outcome::Unavailable(e) =
        interpret(b"", "smartctl: not found", Some(127), &Context::default())
    else {
        panic!("expected unavailable");
    };
    assert!(e.reasons[0].text.contains("exit 127") && e.reasons[0].text.contains("not found"));
}

#[test]
fn smart_unsupported_or_disabled_without_health_data_is_unavailable() {
    // With health data, a "disabled" drive is evaluated (scsi_iec_disabled_… below).
    for (doc, code) in [
        (
            &br#"{"smart_support":{"available":false},"device":{"protocol":"ATA"}}"#[..],
            "unsupported",
        ),
        (
            br#"{"smart_support":{"available":true,"enabled":false},"device":{"protocol":"ATA"}}"#,
            "disabled",
        ),
        (
            br#"{"device":{"name":"/dev/vda"},"smartctl":{"exit_status":0}}"#,
            "no_data",
        ),
    ] {
        let Outcome::Unavailable(e) = interpret(doc, "", Some(0), &Context::default()) else {
            panic!("{code}: expected unavailable");
        };
        assert_eq!(e.reasons[0].code, code);
    }
}

#[test]
fn accepted_counts_silence_the_warning_until_they_grow() {
    let name = "ata-hdd-reallocated-seagate-st3500418as.json";
    let accepted = Counters {
        reallocated_sectors: Some(304),
        ..Counters::default()
    };
    let ctx = Context {
        baseline: Some(&accepted),
        ..Context::default()
    };
    assert_eq!(judge(name, &ctx).0, Verdict::Healthy);
    let fewer = Counters {
        reallocated_sectors: Some(300),
        ..Counters::default()
    };
    let ctx = Context {
        baseline: Some(&fewer),
        ..Context::default()
    };
    let (v, hard, _, _) = judge(name, &ctx);
    assert_eq!(
        (v, hard),
        (Verdict::Warning, vec!["reallocated_sectors".to_string()])
    );
}

#[test]
fn crc_growth_past_the_first_value_is_a_cable_warning() {
    let name = "ata-ssd-p3-2tb-smartctl75-exit64.json";
    let first = Counters {
        crc_errors: Some(120),
        ..Counters::default()
    };
    let ctx = Context {
        baseline: Some(&first),
        ..Context::default()
    };
    let (v, hard, _, _) = judge(name, &ctx);
    assert_eq!(
        (v, hard),
        (Verdict::Warning, vec!["crc_errors".to_string()])
    );
    let same = Counters {
        crc_errors: Some(131),
        ..Counters::default()
    };
    let ctx = Context {
        baseline: Some(&same),
        ..Context::default()
    };
    assert_eq!(judge(name, &ctx).0, Verdict::Healthy);
}

#[test]
fn temperature_settings_override_the_drives_limits() {
    let name = "nvme-healthy-smartctl75-peladn-512gb.json"; // 61 °C, drive warns at 100
    let ctx = Context {
        warning_c: Some(55),
        critical_c: Some(65),
        ..Context::default()
    };
    assert_eq!(judge(name, &ctx).0, Verdict::Warning);
    let ctx = Context {
        warning_c: Some(50),
        critical_c: Some(60),
        ..Context::default()
    };
    assert_eq!(judge(name, &ctx).0, Verdict::Failing);
}

/// The evaluation of a fixture (panics unless it was evaluated).
fn evaluation(name: &str) -> cairn_smart::Evaluation {
    let bytes = fixture(name);
    match interpret(&bytes, "", None, &Context::default()) {
        Outcome::Evaluated(_, e) => e,
        other => panic!("{name}: not evaluated: {other:?}"),
    }
}

fn text_of(e: &cairn_smart::Evaluation, code: &str) -> String {
    e.reasons
        .iter()
        .find(|r| r.code == code)
        .unwrap_or_else(|| panic!("no {code} finding in {:?}", e.reasons))
        .text
        .clone()
}

// Issue 14, class 1: SCSI drives with SMART (informational exceptions) "disabled" still
// report health data, and it is judged.

#[test]
fn scsi_iec_disabled_seagate_is_judged_not_unavailable() {
    check(
        "scsi-spi-iec-disabled-seagate-st373453lc.json",
        Verdict::Healthy,
        &[],
        &["smart_disabled"],
        Some(34),
    );
}

#[test]
fn scsi_iec_disabled_wd_sas_is_judged_not_unavailable() {
    check(
        "scsi-sas-iec-disabled-wd-wd4001fyyg.json",
        Verdict::Healthy,
        &[],
        &["smart_disabled"],
        Some(29),
    );
}

#[test]
fn a_growing_defect_list_on_an_iec_disabled_drive_is_noticed() {
    // The real disabled capture with its grown defect list raised from 0 to 12.
    let doc = String::from_utf8(fixture("scsi-spi-iec-disabled-seagate-st373453lc.json"))
        .unwrap()
        .replacen(
            "\"scsi_grown_defect_list\": 0",
            "\"scsi_grown_defect_list\": 12",
            1,
        );
    assert!(
        doc.contains("\"scsi_grown_defect_list\": 12"),
        "fixture layout changed"
    );
    let Outcome::Evaluated(_, e) = interpret(doc.as_bytes(), "", None, &Context::default()) else {
        panic!("not evaluated");
    };
    assert_eq!(e.verdict, Verdict::Warning);
    assert_eq!(text_of(&e, "grown_defects"), "12 grown defects (SCSI)");
}

// Class 2: packed raw values (Seagate 188).

#[test]
fn seagate_188_packed_unsplit_counts_12_timeouts_not_51540393996() {
    check(
        "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json",
        Verdict::Warning,
        &["command_timeouts"],
        &[],
        Some(26),
    );
    let e = evaluation("ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json");
    assert_eq!(e.counters.command_timeouts, Some(12));
    assert_eq!(
        text_of(&e, "command_timeouts"),
        "12 command timeouts (attribute 188)"
    );
}

#[test]
fn seagate_188_split_by_smartctl_counts_the_low_word() {
    check(
        "ata-hdd-seagate-188-packed-split-st2000nm0008.json",
        Verdict::Warning,
        &["command_timeouts"],
        &[],
        Some(19),
    );
    let e = evaluation("ata-hdd-seagate-188-packed-split-st2000nm0008.json");
    assert_eq!(
        text_of(&e, "command_timeouts"),
        "2 command timeouts (attribute 188)"
    );
}

#[test]
fn seagate_constellation_188_packed_unsplit_counts_4() {
    check(
        "ata-hdd-seagate-188-packed-constellation-st3000nm0033.json",
        Verdict::Warning,
        &["reallocated_sectors", "command_timeouts"],
        &[],
        Some(22),
    );
    let e = evaluation("ata-hdd-seagate-188-packed-constellation-st3000nm0033.json");
    assert_eq!(e.counters.command_timeouts, Some(4));
}

#[test]
fn a_baseline_accepted_at_the_packed_value_no_longer_hides_growth() {
    // Acknowledged as the count: healthy. A baseline of the packed number is not a count
    // any more: the service migrates it (service::tests), the rules compare counts.
    let name = "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json";
    let accepted = Counters {
        command_timeouts: Some(12),
        ..Counters::default()
    };
    let ctx = Context {
        baseline: Some(&accepted),
        ..Context::default()
    };
    assert_eq!(judge(name, &ctx).0, Verdict::Healthy);
}

#[test]
fn micron_188_is_not_packed_and_its_wear_is_shown() {
    check(
        "ata-ssd-wear-1pct-command-timeouts-micron-5300-mtfddak960tds.json",
        Verdict::Warning,
        &["command_timeouts"],
        &[],
        Some(23),
    );
    let e = evaluation("ata-ssd-wear-1pct-command-timeouts-micron-5300-mtfddak960tds.json");
    assert_eq!(e.counters.command_timeouts, Some(8));
}

// Class 3: no temperature sensor.

#[test]
fn a_drive_without_a_sensor_has_no_temperature_not_0_c() {
    check(
        "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json",
        Verdict::Healthy,
        &[],
        &["no_temperature"],
        None,
    );
}

#[test]
fn a_raid_volume_reporting_0_c_and_nothing_else_is_unavailable_without_a_temperature() {
    check(
        "scsi-no-temperature-intel-raid1-volume.json",
        Verdict::Unavailable,
        &[],
        &["no_data"],
        None,
    );
}

#[test]
fn a_0_c_drive_under_a_low_temperature_setting_is_not_judged_by_temperature() {
    let name = "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json";
    let ctx = Context {
        warning_c: Some(-20),
        critical_c: Some(-10),
        ..Context::default()
    };
    let (v, hard, _, t) = judge(name, &ctx);
    assert_eq!((v, hard, t), (Verdict::Healthy, vec![], None));
}

// Class 4: SSD wear on SATA and SAS, one rule for all.

#[test]
fn sata_ssd_wear_is_healthy_below_90_percent() {
    for (name, temp) in [
        ("ata-ssd-wear-85pct-intel-s3500-ssdsc2bb016t4.json", 23),
        ("ata-ssd-wear-10pct-samsung-sm843t-mz7wd240hafv.json", 27),
        ("ata-ssd-wear-4pct-transcend-ts32gmts400.json", 26),
    ] {
        check(name, Verdict::Healthy, &[], &[], Some(temp));
    }
}

#[test]
fn kingston_kc400_wear_is_read_from_231_raw_and_its_retired_block_warns() {
    // 231 SSD_Life_Left: normalised 100, raw 74 (life left): 26 % used, under 90 %. The
    // drive has retired one block (attribute 5), which is the warning.
    check(
        "ata-ssd-wear-26pct-kingston-kc400-skc400s371t.json",
        Verdict::Warning,
        &["reallocated_sectors"],
        &[],
        Some(31),
    );
}

#[test]
fn sata_ssd_at_92_percent_warns() {
    check(
        "ata-ssd-wear-92pct-intel-s3500-ssdsc2bb016t4-edited.json",
        Verdict::Warning,
        &["endurance"],
        &[],
        Some(23),
    );
    let e = evaluation("ata-ssd-wear-92pct-intel-s3500-ssdsc2bb016t4-edited.json");
    assert!(
        text_of(&e, "endurance").contains("attribute 233 Media_Wearout_Indicator"),
        "{:?}",
        e.reasons
    );
}

#[test]
fn scsi_ssd_endurance_is_shown_and_worn_out_is_failing() {
    check(
        "scsi-sas-ssd-endurance-0pct-toshiba-kpm5xmug400g.json",
        Verdict::Healthy,
        &[],
        &[],
        Some(30),
    );
    check(
        "scsi-sas-ssd-worn-out-toshiba-kpm5xmug400g-edited.json",
        Verdict::Failing,
        &["endurance"],
        &[],
        Some(30),
    );
}

#[test]
fn endurance_used_is_normalised_for_every_ssd_and_absent_for_hard_disks() {
    let used = |name: &str| evaluation(name).endurance.map(|e| e.used_pct);
    for (name, want) in [
        (
            "ata-ssd-wear-85pct-intel-s3500-ssdsc2bb016t4.json",
            Some(85),
        ),
        (
            "ata-ssd-wear-92pct-intel-s3500-ssdsc2bb016t4-edited.json",
            Some(92),
        ),
        (
            "ata-ssd-wear-10pct-samsung-sm843t-mz7wd240hafv.json",
            Some(10),
        ),
        (
            "ata-ssd-wear-26pct-kingston-kc400-skc400s371t.json",
            Some(26),
        ),
        ("ata-ssd-wear-4pct-transcend-ts32gmts400.json", Some(4)),
        (
            "ata-ssd-wear-1pct-command-timeouts-micron-5300-mtfddak960tds.json",
            Some(1),
        ),
        ("ata-ssd-samsung-860-evo.json", Some(19)),
        ("ata-ssd-kingston-sa400-exit4.json", Some(2)),
        ("ata-ssd-p3-2tb-smartctl75-exit64.json", Some(0)),
        ("ata-ssd-wd-red-sa500-wds400t1r0a.json", Some(0)),
        (
            "scsi-sas-ssd-endurance-0pct-toshiba-kpm5xmug400g.json",
            Some(0),
        ),
        (
            "scsi-sas-ssd-worn-out-toshiba-kpm5xmug400g-edited.json",
            Some(100),
        ),
        ("scsi-sas-ssd-hgst-husmr3280ass200.json", Some(0)),
        ("nvme-worn-75pct-intel-p4500-ssdpe2kx020t7.json", Some(75)),
        ("nvme-healthy-sabrent-rocket4.json", Some(4)),
        ("ata-hdd-healthy-wd-red-wd20efrx.json", None),
        ("scsi-sas-hdd-healthy-seagate-st600mp0036.json", None),
    ] {
        assert_eq!(used(name), want, "{name}");
    }
}

// Class 5: sleeping drives, in every spelling smartctl has.

#[test]
fn every_standby_spelling_is_asleep_not_an_open_failure() {
    for (name, mode) in [
        ("standby-ata-standby-y-smartctl73-built.json", "STANDBY_Y"),
        (
            "standby-scsi-standby-by-timer-smartctl74-built.json",
            "STANDBY BY TIMER",
        ),
        ("standby-ata-os-smartctl75-built.json", "STANDBY (OS)"),
    ] {
        let bytes = fixture(name);
        match interpret(&bytes, "", Some(2), &Context::default()) {
            Outcome::Standby { mode: m } => assert_eq!(m, mode, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The other names ataprint.cpp and scsiprint.cpp print, and a custom exit code
    // (`-n standby,3`): the message decides, not the exit status.
    for mode in [
        "STANDBY",
        "SLEEP",
        "IDLE",
        "IDLE_A",
        "IDLE_B",
        "IDLE_C",
        "LOW POWER",
        "STANDBY BY COMMAND",
        "IDLE BY TIMER",
        "STANDBY_Y BY TIMER",
    ] {
        let doc = format!(
            r#"{{"smartctl":{{"exit_status":3,"messages":[{{"string":"Device is in {mode} mode, exit(3)","severity":"information"}}]}}}}"#
        );
        match interpret(doc.as_bytes(), "", Some(3), &Context::default()) {
            Outcome::Standby { mode: m } => assert_eq!(m, mode),
            other => panic!("{mode}: {other:?}"),
        }
    }
    // Plain text on stderr, no JSON at all.
    assert!(matches!(
        interpret(
            b"",
            "Device is in STANDBY (OS) mode, exit(2)\n",
            Some(2),
            &Context::default()
        ),
        Outcome::Standby { .. }
    ));
    // An open failure that is not a sleeping drive stays one.
    let bytes = fixture("error-nvme-open-failed-permission-denied.json");
    assert!(matches!(
        interpret(&bytes, "", Some(2), &Context::default()),
        Outcome::Unavailable(_)
    ));
}
