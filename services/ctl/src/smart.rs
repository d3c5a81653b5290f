//! `cairnctl smart …`: every disk's SMART verdict, one disk's detail, self-tests with a
//! progress bar, and saved smartctl outputs judged offline by the service's own rules.

use crate::cli::smart::{SmartArgs, SmartCommand};
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use anyhow::{bail, Context};
use cairn_smart::{interpret_saved, Evaluation, Outcome, Severity, Verdict};
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Read;

/// A parsed `smart` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartCmd {
    List,
    Show(String),
    Test {
        disk: String,
        kind: String,
    },
    /// Judge saved smartctl outputs (`-`: standard input); no node involved.
    Check(Vec<String>),
}

/// The command a command line asks for.
pub fn command(args: SmartArgs) -> SmartCmd {
    match args.command {
        None | Some(SmartCommand::List) => SmartCmd::List,
        Some(SmartCommand::Show { disk }) => SmartCmd::Show(disk),
        Some(SmartCommand::Test { disk, kind }) => SmartCmd::Test { disk, kind },
        Some(SmartCommand::Check { files }) => SmartCmd::Check(files),
    }
}

/// One disk as a table line: `ID  VERDICT  TEMP  REASONS`.
pub fn line(d: &Value) -> String {
    let temp = d["temperature_c"]
        .as_i64()
        .map_or("-".to_string(), |t| format!("{t}°C"));
    let mut verdict = d["verdict"].as_str().unwrap_or("?").to_string();
    if d["standby"] == true {
        verdict.push_str(" (standby)");
    }
    let reasons: Vec<&str> = d["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "{:<40}  {:<11}  {:>5}  {}",
        d["id"].as_str().unwrap_or("?"),
        verdict,
        temp,
        reasons.join("; ")
    )
}

fn opt(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The detail as text.
pub fn detail_text(d: &Value) -> String {
    let mut out = String::new();
    let dev = &d["device"];
    out.push_str(&format!(
        "{}  {}\n  model {}  serial {}  firmware {}  {} ({})\n",
        opt(&d["id"]),
        opt(&d["dev"]),
        opt(&dev["model"]),
        opt(&dev["serial"]),
        opt(&dev["firmware"]),
        opt(&dev["protocol"]),
        opt(&dev["device_type"]),
    ));
    let temp = d["temperature_c"]
        .as_i64()
        .map_or("not available".to_string(), |t| format!("{t} °C"));
    out.push_str(&format!(
        "  verdict {}  temperature {temp} (limits {} / {} °C, {})  power-on {} h\n",
        opt(&d["verdict"]),
        opt(&d["temperature_limits"]["warning_c"]),
        opt(&d["temperature_limits"]["critical_c"]),
        opt(&d["temperature_limits"]["source"]),
        opt(&dev["power_on_hours"]),
    ));
    if let Some(used) = d["endurance"]["used_pct"].as_u64() {
        out.push_str(&format!(
            "  endurance used {used} % ({})\n",
            opt(&d["endurance"]["source"])
        ));
    }
    if d["standby"] == true {
        out.push_str(&format!(
            "  asleep ({}) at the last poll: not read; the data above was read at {} (Unix time)\n",
            opt(&d["standby_mode"]),
            opt(&d["checked_at"]),
        ));
    }
    for f in d["findings"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  [{}] {}\n",
            opt(&f["severity"]),
            opt(&f["text"])
        ));
    }
    if let Some(attrs) = d["attributes"].as_array().filter(|a| !a.is_empty()) {
        out.push_str(
            "attributes:\n   ID  NAME                       VALUE  WORST  THRESH  FAILED  RAW\n",
        );
        for a in attrs {
            out.push_str(&format!(
                "  {:>3}  {:<25}  {:>5}  {:>5}  {:>6}  {:<6}  {}\n",
                opt(&a["id"]),
                opt(&a["name"]),
                opt(&a["value"]),
                opt(&a["worst"]),
                opt(&a["thresh"]),
                opt(&a["when_failed"]),
                match a["count"].as_str() {
                    Some(c) => format!("{} (count {c})", opt(&a["raw_string"])),
                    None => opt(&a["raw_string"]),
                },
            ));
        }
    }
    if let Some(n) = d["nvme"].as_object() {
        out.push_str("NVMe health log:\n");
        for (k, v) in n {
            out.push_str(&format!("  {k:<26} {}\n", opt(v)));
        }
    }
    if let Some(s) = d["scsi"].as_object() {
        out.push_str("SCSI counters:\n");
        for (k, v) in s {
            out.push_str(&format!("  {k:<26} {}\n", opt(v)));
        }
    }
    out.push_str("self-tests (newest first):\n");
    let tests = d["self_tests"].as_array().cloned().unwrap_or_default();
    if tests.is_empty() {
        out.push_str("  none logged\n");
    }
    for t in tests {
        out.push_str(&format!(
            "  {:<18} {:<8} {:<32} at {} h\n",
            opt(&t["kind"]),
            opt(&t["result"]),
            opt(&t["status"]),
            opt(&t["hours"]),
        ));
    }
    let polls = d["history"]["polls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!("history: {} recent polls", polls.len()));
    let temps: Vec<String> = polls
        .iter()
        .rev()
        .take(12)
        .rev()
        .map(|p| opt(&p["temperature_c"]))
        .collect();
    if !temps.is_empty() {
        out.push_str(&format!(", temperatures {}", temps.join(" ")));
    }
    out.push('\n');
    let s = &d["settings"];
    out.push_str(&format!(
        "settings: polling {}  self-tests {} (short every {} d, long every {} d)\n",
        opt(&s["polling"]),
        opt(&s["self_tests"]),
        opt(&s["short_test_days"]),
        opt(&s["long_test_days"]),
    ));
    out
}

/// One finding of an offline check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckedReason {
    pub code: String,
    /// `info`, `warning` or `failing`.
    pub level: Severity,
    pub message: String,
}

/// What an offline check says of one saved smartctl output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub file: String,
    pub verdict: Verdict,
    pub model: Option<String>,
    pub reasons: Vec<CheckedReason>,
    /// `None`: no reading, or a drive without a sensor (0 °C).
    pub temperature_c: Option<i64>,
    pub endurance_used_pct: Option<u64>,
    pub power_on_hours: Option<u64>,
}

fn reasons_of(e: &Evaluation) -> Vec<CheckedReason> {
    e.reasons
        .iter()
        .map(|r| CheckedReason {
            code: r.code.clone(),
            level: r.severity,
            message: r.text.clone(),
        })
        .collect()
}

/// Judge one saved `smartctl --json` output with cairn-smart's rules, as the node would on
/// its first poll of the drive (no baseline, no per-disk settings; the drive class from
/// smartctl's rotation rate).
pub fn judge(file: &str, bytes: &[u8]) -> Checked {
    let (verdict, model, eval) = match interpret_saved(bytes, &cairn_smart::Context::default()) {
        Outcome::Evaluated(doc, e) => (e.verdict, doc.model().map(str::to_string), e),
        Outcome::Unavailable(e) => (Verdict::Unavailable, None, e),
        Outcome::Standby { mode } => (
            Verdict::Unavailable,
            None,
            Evaluation::unavailable(
                "standby",
                format!("the disk was asleep ({mode}): smartctl did not read it"),
            ),
        ),
    };
    Checked {
        file: file.to_string(),
        verdict,
        model,
        reasons: reasons_of(&eval),
        temperature_c: eval.temperature_c,
        endurance_used_pct: eval.endurance.as_ref().map(|e| e.used_pct),
        power_on_hours: eval.power_on_hours,
    }
}

fn level_name(l: Severity) -> &'static str {
    match l {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Failing => "failing",
    }
}

/// One checked file as text.
pub fn checked_text(c: &Checked) -> String {
    let mut out = format!("{}: {}", c.file, c.verdict.as_str());
    if let Some(m) = &c.model {
        out.push_str(&format!(" ({m})"));
    }
    let temp = c
        .temperature_c
        .map_or("not available".to_string(), |t| format!("{t} °C"));
    let wear = c
        .endurance_used_pct
        .map_or("-".to_string(), |p| format!("{p} %"));
    let hours = c
        .power_on_hours
        .map_or("-".to_string(), |h| format!("{h} h"));
    out.push_str(&format!(
        "\n  temperature {temp}  endurance used {wear}  power-on {hours}\n"
    ));
    for r in &c.reasons {
        out.push_str(&format!(
            "  {:<7}  {}: {}\n",
            level_name(r.level),
            r.code,
            r.message
        ));
    }
    out
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        Ok(b)
    } else {
        std::fs::read(file)
    }
}

/// `cairnctl smart check FILE…`: every file judged (a file that cannot be read is named on
/// stderr, and in the JSON as `{"file", "error"}`); an error when any could not be read.
pub fn check(files: &[String], output: Output) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let mut unreadable = 0;
    for f in files {
        match read_input(f) {
            Ok(bytes) => {
                let c = judge(f, &bytes);
                if output == Output::Text {
                    print!("{}", checked_text(&c));
                }
                results.push(serde_json::to_value(&c)?);
            }
            Err(e) => {
                unreadable += 1;
                eprintln!("cairnctl: {f}: cannot read: {e}");
                results.push(json!({"file": f, "error": format!("cannot read: {e}")}));
            }
        }
    }
    if output == Output::Json {
        println!("{}", Value::Array(results));
    }
    if unreadable > 0 {
        bail!("{unreadable} of {} files could not be read", files.len());
    }
    Ok(())
}

async fn get(s: &Session, path: &str, doing: &str) -> anyhow::Result<Value> {
    let r = s.conn.send(s.authed(Method::GET, path)?).await?;
    if r.status.as_u16() != 200 {
        return Err(api_error(doing, &r));
    }
    Ok(r.json())
}

/// Run a `smart` command.
pub async fn run(s: &Session, cmd: SmartCmd, output: Output) -> anyhow::Result<()> {
    match cmd {
        SmartCmd::List => {
            let v = get(s, "/api/v1/smart", "cannot list SMART data").await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => {
                    let disks = v["disks"].as_array().cloned().unwrap_or_default();
                    if disks.is_empty() {
                        println!("no disks");
                    }
                    for d in disks {
                        println!("{}", line(&d));
                    }
                }
            }
        }
        SmartCmd::Show(disk) => {
            let v = get(
                s,
                &format!("/api/v1/smart/{disk}"),
                &format!("cannot get the SMART data of {disk}"),
            )
            .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", detail_text(&v)),
            }
        }
        SmartCmd::Test { disk, kind } => {
            let doing = format!("cannot start a {kind} self-test on {disk}");
            let req = s
                .authed(Method::POST, &format!("/api/v1/smart/{disk}/selftest"))?
                .json(&json!({ "kind": kind }));
            let r = s.conn.send(req).await?;
            if r.status.as_u16() != 202 {
                return Err(api_error(&doing, &r));
            }
            let id = r.json()["id"]
                .as_u64()
                .with_context(|| format!("{doing}: the answer has no task"))?;
            crate::tasks::show(s, &id.to_string(), true, output).await?;
        }
        SmartCmd::Check(files) => check(&files, output)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command};

    /// `cairnctl smart ARGS…` through the command tree: the command and any `-o`.
    fn parse(args: &[String]) -> anyhow::Result<(SmartCmd, Option<Output>)> {
        let argv = ["cairnctl", "smart"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned());
        let cli = Cli::parse_from_args(argv)?;
        match cli.command {
            Command::Smart(a) => Ok((command(a), cli.output)),
            other => anyhow::bail!("not a smart verb: {other:?}"),
        }
    }

    fn p(s: &[&str]) -> anyhow::Result<SmartCmd> {
        parse(&s.iter().map(|a| a.to_string()).collect::<Vec<_>>()).map(|(c, _)| c)
    }

    #[test]
    fn output_may_follow_the_verb() {
        let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse(&args(&["show", "nvme-X", "-o", "json"])).unwrap(),
            (SmartCmd::Show("nvme-X".into()), Some(Output::Json))
        );
        assert_eq!(
            parse(&args(&["--output=text"])).unwrap(),
            (SmartCmd::List, Some(Output::Text))
        );
        assert!(parse(&args(&["-o", "yaml"]))
            .unwrap_err()
            .to_string()
            .contains("text or json"));
    }

    #[test]
    fn parses_verbs_and_checks_the_kind() {
        assert_eq!(p(&[]).unwrap(), SmartCmd::List);
        assert_eq!(
            p(&["show", "ata-X"]).unwrap(),
            SmartCmd::Show("ata-X".into())
        );
        assert_eq!(
            p(&["test", "ata-X", "--kind=long"]).unwrap(),
            SmartCmd::Test {
                disk: "ata-X".into(),
                kind: "long".into()
            }
        );
        assert!(p(&["test", "ata-X"])
            .unwrap_err()
            .to_string()
            .contains("--kind"));
        assert!(p(&["test", "ata-X", "--kind", "quick"])
            .unwrap_err()
            .to_string()
            .contains("short or long"));
        assert!(p(&["frob"]).is_err());
        assert_eq!(
            p(&["check", "a.json", "-", "-o", "json"]).unwrap(),
            SmartCmd::Check(vec!["a.json".into(), "-".into()])
        );
        assert!(p(&["check"]).unwrap_err().to_string().contains("FILE"));
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../smart/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn check_uses_the_services_rules_on_a_saved_output() {
        let name = "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json";
        let c = judge(name, &fixture(name));
        assert_eq!(c.verdict, Verdict::Warning);
        assert_eq!(
            c.reasons,
            [CheckedReason {
                code: "command_timeouts".into(),
                level: Severity::Warning,
                message: "12 command timeouts (attribute 188)".into(),
            }]
        );
        assert_eq!((c.temperature_c, c.endurance_used_pct), (Some(26), None));
        let t = checked_text(&c);
        assert!(
            t.starts_with(&format!("{name}: warning (ST16000NM001G-2KK103)\n")),
            "{t}"
        );
        assert!(
            t.contains("temperature 26 °C  endurance used -  power-on ")
                && t.contains("  warning  command_timeouts: 12 command timeouts (attribute 188)\n"),
            "{t}"
        );
    }

    #[test]
    fn check_says_not_available_asleep_and_unreadable_json() {
        let name = "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json";
        let c = judge(name, &fixture(name));
        assert_eq!((c.temperature_c, c.endurance_used_pct), (None, Some(4)));
        assert!(checked_text(&c).contains("temperature not available  endurance used 4 %"));
        let v = serde_json::to_value(&c).unwrap();
        assert!(
            v["temperature_c"].is_null() && v["endurance_used_pct"] == 4,
            "{v}"
        );
        let c = judge("s", &fixture("standby-ata-os-smartctl75-built.json"));
        assert_eq!(
            (c.verdict, c.reasons[0].code.as_str()),
            (Verdict::Unavailable, "standby")
        );
        let c = judge("t", b"{\"smartctl\": {");
        assert_eq!(
            (c.verdict, c.reasons[0].code.as_str()),
            (Verdict::Unavailable, "unparsable")
        );
        assert!(
            c.reasons[0].message.contains("(a saved output)"),
            "no process, no exit code: {:?}",
            c.reasons
        );
    }

    #[test]
    fn a_table_line_and_a_detail() {
        let d = json!({"id": "nvme-X", "verdict": "warning", "temperature_c": 35, "standby": false,
            "reasons": ["7 NVMe media and data integrity errors"]});
        let l = line(&d);
        assert!(l.starts_with("nvme-X") && l.contains("warning") && l.contains("35°C"));
        assert!(l.ends_with("7 NVMe media and data integrity errors"));
        let detail = json!({"id": "ata-X", "dev": "/dev/sda", "verdict": "healthy", "temperature_c": 30,
            "device": {"model": "QEMU HARDDISK", "serial": "QM1"},
            "attributes": [{"id": 5, "name": "Reallocated_Sector_Ct", "value": 100, "worst": 100, "thresh": 36, "when_failed": "", "raw_string": "0"}],
            "self_tests": [{"kind": "Short offline", "result": "passed", "status": "Completed without error", "hours": 1}],
            "history": {"polls": [{"temperature_c": 30}, {"temperature_c": 31}]},
            "settings": {"polling": true, "self_tests": true, "short_test_days": 7, "long_test_days": 30}});
        let t = detail_text(&detail);
        assert!(t.contains("QEMU HARDDISK") && t.contains("Reallocated_Sector_Ct"));
        assert!(t.contains("temperature 30 °C (limits"), "{t}");
        assert!(!t.contains("endurance") && !t.contains("asleep"), "{t}");
        let asleep = json!({"id": "ata-Y", "verdict": "warning", "temperature_c": null,
            "standby": true, "standby_mode": "STANDBY_Y", "checked_at": 1700000000,
            "endurance": {"used_pct": 92, "source": "attribute 233 Media_Wearout_Indicator"},
            "attributes": [{"id": 188, "name": "Command_Timeout", "raw_string": "51540393996", "count": "12"}]});
        let a = detail_text(&asleep);
        assert!(a.contains("temperature not available (limits"), "{a}");
        assert!(
            a.contains("endurance used 92 % (attribute 233 Media_Wearout_Indicator)"),
            "{a}"
        );
        assert!(
            a.contains("asleep (STANDBY_Y) at the last poll: not read; the data above was read at 1700000000"),
            "{a}"
        );
        assert!(a.contains("51540393996 (count 12)"), "{a}");
        assert!(
            t.contains("passed") && t.contains("temperatures 30 31"),
            "{t}"
        );
    }
}
