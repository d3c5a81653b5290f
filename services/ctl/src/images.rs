//! `cairnctl images …`: a pool's image library: list, upload a file (in segments at
//! increasing offsets, resumable, with speed and time left), delete.

use crate::cli::images::ImagesCommand;
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use crate::shares::human;
use anyhow::{bail, Context};
use hyper::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes sent per request: each is a PUT at the upload's offset, so a broken connection
/// loses at most one segment, and cairnctl holds at most one in memory.
pub const SEGMENT: usize = 8 << 20;
/// How many times in a row a segment may fail (connection lost) before giving up; the
/// upload stays on the node and the same command resumes it.
const RETRIES: u32 = 5;

fn base(pool: &str) -> String {
    format!("/api/v1/pools/{pool}/images")
}

/// Run an `images` command.
pub async fn run(s: &Session, cmd: ImagesCommand, output: Output) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::List { pool } => {
            let v = s
                .get_json(
                    &base(&pool),
                    &format!("cannot list the images of pool {pool}"),
                )
                .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", list_text(&v)),
            }
        }
        ImagesCommand::Delete { name, pool } => {
            let req = s.authed(Method::DELETE, &format!("{}/{name}", base(&pool)))?;
            let r = s.conn.send(req).await?;
            if r.status != 204 {
                return Err(api_error(&format!("cannot delete image {name}"), &r));
            }
            if output == Output::Text {
                println!("deleted image {name} of pool {pool}");
            }
        }
        ImagesCommand::Upload { file, pool, name } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .context("name the image with --name")?,
            };
            let image = upload(s, &file, &pool, &name, output).await?;
            match output {
                Output::Json => println!("{image}"),
                Output::Text => println!(
                    "uploaded {} to pool {pool}: {} ({}), sha256 {}",
                    image["name"].as_str().unwrap_or_default(),
                    human(image["size_bytes"].as_u64().unwrap_or(0)),
                    image["format"].as_str().unwrap_or("?"),
                    image["sha256"].as_str().unwrap_or("?")
                ),
            }
        }
    }
    Ok(())
}

/// The library as text: images, then uploads in progress.
pub fn list_text(v: &Value) -> String {
    let mut out = String::new();
    let images = v["images"].as_array().cloned().unwrap_or_default();
    if images.is_empty() {
        out.push_str("no images\n");
    } else {
        out.push_str(&format!("{:<40} {:>10}  {}\n", "NAME", "SIZE", "FORMAT"));
        for i in &images {
            out.push_str(&format!(
                "{:<40} {:>10}  {}\n",
                i["name"].as_str().unwrap_or_default(),
                human(i["size_bytes"].as_u64().unwrap_or(0)),
                i["format"].as_str().unwrap_or("?")
            ));
        }
    }
    for u in v["uploads"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "uploading {}: {} of {} (resume with `cairnctl images upload`)\n",
            u["name"].as_str().unwrap_or_default(),
            human(u["offset"].as_u64().unwrap_or(0)),
            human(u["size_bytes"].as_u64().unwrap_or(0))
        ));
    }
    out
}

/// The unfinished upload of `name` with `size` bytes in a library listing: (id, offset).
pub fn resumable(list: &Value, name: &str, size: u64) -> Option<(String, u64)> {
    list["uploads"].as_array()?.iter().find_map(|u| {
        (u["name"] == name && u["size_bytes"].as_u64() == Some(size)).then(|| {
            (
                u["id"].as_str().unwrap_or_default().to_string(),
                u["offset"].as_u64().unwrap_or(0),
            )
        })
    })
}

/// A progress line: done of total, percent, speed, time left (`-` until known).
pub fn progress_line(done: u64, total: u64, sent_now: u64, elapsed: Duration) -> String {
    let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let secs = elapsed.as_secs_f64();
    // f64 of byte counts: the precision lost is far below a byte per second.
    #[allow(clippy::cast_precision_loss)]
    let speed = if secs > 0.0 {
        sent_now as f64 / secs
    } else {
        0.0
    };
    let left = if speed > 0.0 {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let s = (total.saturating_sub(done) as f64 / speed).ceil() as u64;
        format!("{}:{:02} left", s / 60, s % 60)
    } else {
        "-".to_string()
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_s = human(speed as u64);
    format!(
        "{} of {} ({pct}%), {per_s}/s, {left}",
        human(done),
        human(total)
    )
}

/// The SHA-256 of a file, lowercase hex.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Upload `file` as image `name` of `pool`, resuming an unfinished upload of the same name
/// and size; returns the image the node answered with.
async fn upload(
    s: &Session,
    file: &Path,
    pool: &str,
    name: &str,
    output: Output,
) -> anyhow::Result<Value> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size == 0 {
        bail!("{} is empty", file.display());
    }
    let doing = format!("cannot upload {} to pool {pool}", file.display());
    let list = s.get_json(&base(pool), &doing).await?;
    let (id, mut offset) = match resumable(&list, name, size) {
        Some((id, offset)) => {
            if output == Output::Text {
                eprintln!("resuming the upload of {name} at {}", human(offset));
            }
            (id, offset)
        }
        None => {
            if output == Output::Text {
                eprintln!("computing the SHA-256 of {}…", file.display());
            }
            let path = file.to_path_buf();
            let sha = tokio::task::spawn_blocking(move || sha256_file(&path)).await??;
            let req = s
                .authed(Method::POST, &base(pool))?
                .json(&json!({"name": name, "size_bytes": size, "sha256": sha}));
            let r = s.conn.send(req).await?;
            if r.status != 201 {
                return Err(api_error(&doing, &r));
            }
            let v = r.json();
            (v["id"].as_str().unwrap_or_default().to_string(), 0)
        }
    };
    let url = format!("{}/uploads/{id}", base(pool));
    let mut f =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let started = Instant::now();
    let first = offset;
    let mut failures = 0;
    let mut buf = vec![0u8; SEGMENT];
    loop {
        let n = usize::try_from((size - offset).min(SEGMENT as u64)).unwrap_or(SEGMENT);
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut buf[..n])
            .with_context(|| format!("cannot read {}", file.display()))?;
        let req = s
            .authed(Method::PUT, &format!("{url}?offset={offset}"))?
            .header("content-type", "application/octet-stream");
        let req = cairn_client::ClientRequest {
            body: Some(buf[..n].to_vec()),
            ..req
        };
        match s.conn.send(req).await {
            Ok(r) if r.status == 201 => {
                if output == Output::Text {
                    eprintln!(
                        "\r{}",
                        progress_line(size, size, size - first, started.elapsed())
                    );
                }
                return Ok(r.json());
            }
            Ok(r) if r.status == 200 => {
                offset = r.json()["offset"].as_u64().unwrap_or(offset + n as u64);
                failures = 0;
            }
            Ok(r) if r.status == 409 && r.json()["code"] == "wrong_offset" => {
                offset = where_is(s, &url, &doing).await?;
            }
            Ok(r) => return Err(api_error(&doing, &r)),
            Err(e) => {
                failures += 1;
                if failures > RETRIES {
                    return Err(e.context(format!(
                        "{doing}: the upload stopped at {}; run the same command again to resume",
                        human(offset)
                    )));
                }
                // The node keeps what arrived: ask where it is, then go on from there.
                match where_is(s, &url, &doing).await {
                    Ok(o) => offset = o,
                    Err(_) => continue,
                }
            }
        }
        if output == Output::Text {
            eprint!(
                "\r{}   ",
                progress_line(offset, size, offset - first, started.elapsed())
            );
            let _ = std::io::stderr().flush();
        }
    }
}

/// Where the upload at `url` is (its offset).
async fn where_is(s: &Session, url: &str, doing: &str) -> anyhow::Result<u64> {
    let v = s.get_json(url, doing).await?;
    v["offset"]
        .as_u64()
        .with_context(|| format!("{doing}: the node's answer has no offset: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_upload_of_the_same_name_and_size_is_resumed() {
        let list = json!({"images": [], "uploads": [
            {"id": "a", "name": "x.iso", "size_bytes": 10, "offset": 4, "pool": "tank"},
            {"id": "b", "name": "y.iso", "size_bytes": 20, "offset": 7, "pool": "tank"}]});
        assert_eq!(resumable(&list, "y.iso", 20), Some(("b".into(), 7)));
        assert_eq!(resumable(&list, "y.iso", 21), None);
        assert_eq!(resumable(&list, "z.iso", 20), None);
    }

    #[test]
    fn progress_gives_speed_and_time_left() {
        let mib = 1 << 20;
        let l = progress_line(30 * mib, 100 * mib, 20 * mib, Duration::from_secs(2));
        assert!(l.contains("(30%)"), "{l}");
        assert!(l.contains("/s"), "{l}");
        // 70 MiB left at 10 MiB/s.
        assert!(l.ends_with("0:07 left"), "{l}");
        let l = progress_line(0, 100, 0, Duration::ZERO);
        assert!(l.ends_with(", -"), "{l}");
    }

    #[test]
    fn the_list_shows_images_and_uploads() {
        let v = json!({"images": [{"name": "d.iso", "size_bytes": 2048, "format": "iso"}],
            "uploads": [{"id": "a", "name": "x.img", "size_bytes": 4096, "offset": 1024}]});
        let t = list_text(&v);
        assert!(t.contains("d.iso"), "{t}");
        assert!(t.contains("iso"), "{t}");
        assert!(t.contains("uploading x.img"), "{t}");
        assert_eq!(
            list_text(&json!({"images": [], "uploads": []})),
            "no images\n"
        );
    }
}
