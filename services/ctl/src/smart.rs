//! `cairnctl smart …`: every disk's SMART verdict, one disk's detail, and self-tests with a
//! progress bar.

use crate::args::Output;
use crate::conn::api_error;
use crate::session::Session;
use anyhow::{bail, Context};
use hyper::Method;
use serde_json::{json, Value};

/// Usage of the `smart` command.
pub const USAGE: &str = "\
cairnctl smart                          every disk: id, verdict, temperature, reasons
cairnctl smart show DISK                attributes / NVMe log, self-test log, history, settings
cairnctl smart test DISK --kind short|long   run a self-test and follow its progress";

/// A parsed `smart` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartCmd {
    List,
    Show(String),
    Test { disk: String, kind: String },
}

/// The value of `-o`/`--output`.
fn output_value(v: &str) -> anyhow::Result<Output> {
    match v {
        "text" => Ok(Output::Text),
        "json" => Ok(Output::Json),
        _ => bail!("-o: {v:?} is not valid: expected text or json"),
    }
}

/// Parse the words after `smart`; also returns an `-o` given among them (like every other
/// verb, `cairnctl smart show DISK -o json` works).
pub fn parse(args: &[String]) -> anyhow::Result<(SmartCmd, Option<Output>)> {
    let mut pos: Vec<&str> = Vec::new();
    let mut kind: Option<String> = None;
    let mut output = None;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a.split_once('=') {
            Some(("--kind", v)) => kind = Some(v.to_string()),
            Some(("--output", v)) => output = Some(output_value(v)?),
            _ if a == "-o" || a == "--output" => {
                output = Some(output_value(
                    it.next().context("-o needs a value: text or json")?,
                )?)
            }
            _ if a == "--kind" => {
                kind = Some(
                    it.next()
                        .context("--kind needs a value: short or long")?
                        .into(),
                )
            }
            _ if a.starts_with('-') => {
                bail!("unknown flag {a:?} for smart (see `cairnctl smart help`)")
            }
            _ => pos.push(a),
        }
    }
    let cmd = match pos.as_slice() {
        [] | ["list"] => SmartCmd::List,
        ["show", d] => SmartCmd::Show(d.to_string()),
        ["test", d] => {
            let kind = kind.context("smart test needs --kind short|long")?;
            if kind != "short" && kind != "long" {
                bail!("--kind: {kind:?} is not valid: expected short or long");
            }
            SmartCmd::Test {
                disk: d.to_string(),
                kind,
            }
        }
        other => bail!("smart: cannot use {other:?}\n{USAGE}"),
    };
    Ok((cmd, output))
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
        .map_or("-".to_string(), |t| format!("{t} °C"));
    out.push_str(&format!(
        "  verdict {}  temperature {temp} (limits {} / {} °C, {})  power-on {} h\n",
        opt(&d["verdict"]),
        opt(&d["temperature_limits"]["warning_c"]),
        opt(&d["temperature_limits"]["critical_c"]),
        opt(&d["temperature_limits"]["source"]),
        opt(&dev["power_on_hours"]),
    ));
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
                opt(&a["raw_string"]),
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
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            t.contains("passed") && t.contains("temperatures 30 31"),
            "{t}"
        );
    }
}
