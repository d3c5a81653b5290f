//! `cairnctl tasks` and `cairnctl task ID [--wait]`: long operations, with a live progress bar.

use crate::cli::Output;
use crate::session::Session;
use anyhow::Context;
use std::io::{IsTerminal, Write};

/// List the node's tasks.
pub async fn list(s: &Session, output: Output) -> anyhow::Result<()> {
    let v = s.get_json("/api/v1/tasks", "cannot list tasks").await?;
    match output {
        Output::Json => println!("{v}"),
        Output::Text => {
            let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.is_empty() {
                println!("no tasks");
            }
            for t in tasks {
                println!("{}", line(&t));
            }
        }
    }
    Ok(())
}

/// One task as a line: `ID  STATE  PROGRESS%  KIND  MESSAGE`.
pub fn line(t: &serde_json::Value) -> String {
    format!(
        "{:>5}  {:<9}  {:>3}%  {:<16}  {}",
        t["id"].as_u64().unwrap_or(0),
        t["state"].as_str().unwrap_or("?"),
        t["progress"].as_u64().unwrap_or(0),
        t["kind"].as_str().unwrap_or("?"),
        t["message"].as_str().unwrap_or("")
    )
}

/// A progress bar: `[#########...........]  45% message`.
pub fn bar(progress: u64, message: &str) -> String {
    const WIDTH: usize = 30;
    let p = progress.min(100) as usize;
    let filled = p * WIDTH / 100;
    format!(
        "[{}{}] {:>3}% {message}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        p
    )
}

fn finished(t: &serde_json::Value) -> bool {
    matches!(t["state"].as_str(), Some("succeeded" | "failed"))
}

/// Show a task; with `wait`, follow it live until it ends (failure is an error).
pub async fn show(s: &Session, id: &str, wait: bool, output: Output) -> anyhow::Result<()> {
    let path = format!("/api/v1/tasks/{id}");
    let mut task = s.get_json(&path, &format!("cannot get task {id}")).await?;
    if wait && !finished(&task) {
        let mut events = s.events().await?;
        // The task may have ended between the first look and the subscription.
        task = s.get_json(&path, &format!("cannot get task {id}")).await?;
        let tty = std::io::stderr().is_terminal();
        // The bar last drawn: events of other tasks (or updates that change nothing shown)
        // do not print the same line again.
        let mut last = String::new();
        while !finished(&task) {
            if output == Output::Text {
                draw(&task, tty, &mut last);
            }
            let ev = events
                .next()
                .await?
                .context("the node ended the event stream before the task finished")?;
            if ev.event != "task" {
                continue;
            }
            let t: serde_json::Value =
                serde_json::from_str(&ev.data).context("a task event is not JSON")?;
            if t["id"].as_u64().is_some() && t["id"].as_u64() == id.parse::<u64>().ok() {
                task = t;
            }
        }
        if output == Output::Text {
            draw(&task, tty, &mut last);
            if tty {
                eprintln!();
            }
        }
    }
    match output {
        Output::Json => println!("{task}"),
        Output::Text => println!("{}", line(&task)),
    }
    if task["state"] == "failed" {
        anyhow::bail!(
            "task {id} failed: {}",
            task["message"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// Redraw the bar in place on a terminal, or print one line per update otherwise; nothing
/// when it would show the same as `last` (which it then becomes).
fn draw(task: &serde_json::Value, tty: bool, last: &mut String) {
    let b = bar(
        task["progress"].as_u64().unwrap_or(0),
        task["message"].as_str().unwrap_or(""),
    );
    if b == *last {
        return;
    }
    last.clone_from(&b);
    let mut err = std::io::stderr();
    if tty {
        let _ = write!(err, "\r\x1b[2K{b}");
        let _ = err.flush();
    } else {
        let _ = writeln!(err, "{b}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars() {
        assert_eq!(bar(0, "x"), format!("[{}]   0% x", ".".repeat(30)));
        assert_eq!(
            bar(50, "half"),
            format!("[{}{}]  50% half", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(bar(150, ""), format!("[{}] 100% ", "#".repeat(30)));
    }

    #[test]
    fn task_line() {
        let t = json!({"id": 7, "state": "running", "progress": 42, "kind": "scrub", "message": "reading"});
        assert_eq!(
            line(&t),
            "    7  running     42%  scrub             reading"
        );
        assert!(!finished(&t));
        assert!(finished(&json!({"state": "failed"})));
    }
}
