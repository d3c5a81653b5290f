//! Shared-library closure of a dynamically linked program inside the rootfs, found with readelf.

use std::path::Path;

use anyhow::{bail, Result};

use crate::runner::{Runner, ToolCommand};

/// Where the Debian dynamic loader looks, relative to the root.
pub const LIBRARY_DIRS: [&str; 4] = [
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib",
    "usr/lib",
];

/// `NEEDED` entries of `readelf -d` output.
pub fn parse_needed(dynamic: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let start = l.find('[')? + 1;
            let end = l[start..].find(']')? + start;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// The program interpreter from `readelf -l` output.
pub fn parse_interpreter(headers: &str) -> Option<String> {
    let marker = "Requesting program interpreter: ";
    let line = headers.lines().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    Some(rest.trim_end_matches(']').trim().to_string())
}

/// Absolute in-root paths of the loader and every library `program` (an in-root absolute
/// path) needs, transitively; the program itself first.
pub fn closure(runner: &mut dyn Runner, root: &Path, program: &str) -> Result<Vec<String>> {
    let mut files = vec![program.to_string()];
    let mut queue = vec![program.to_string()];
    let headers = runner.output(&readelf("-l", root, program))?;
    if let Some(interp) = parse_interpreter(&headers) {
        files.push(interp);
    }
    while let Some(file) = queue.pop() {
        let dynamic = runner.output(&readelf("-d", root, &file))?;
        for lib in parse_needed(&dynamic) {
            let Some(found) = LIBRARY_DIRS
                .iter()
                .map(|d| format!("/{d}/{lib}"))
                .find(|p| root.join(&p[1..]).exists())
            else {
                bail!(
                    "{file} needs {lib}, which is in none of {LIBRARY_DIRS:?} under {}",
                    root.display()
                );
            };
            if !files.contains(&found) {
                files.push(found.clone());
                queue.push(found);
            }
        }
    }
    Ok(files)
}

fn readelf(flag: &str, root: &Path, file: &str) -> ToolCommand {
    ToolCommand::new("readelf")
        .args([flag, "--wide"])
        .arg(root.join(file.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;
    use std::fs;

    const DYNAMIC: &str = "\nDynamic section at offset 0x2dd8 contains 27 entries:\n  Tag        Type                         Name/Value\n 0x0000000000000001 (NEEDED)             Shared library: [libext2fs.so.2]\n 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n 0x000000000000000c (INIT)               0x2000\n";
    const HEADERS: &str = "  INTERP         0x000318 0x0000000000000318\n      [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]\n";

    #[test]
    fn parses_readelf_output() {
        assert_eq!(parse_needed(DYNAMIC), ["libext2fs.so.2", "libc.so.6"]);
        assert_eq!(
            parse_interpreter(HEADERS).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(parse_interpreter("no interp"), None);
    }

    #[test]
    fn follows_libraries_transitively_and_fails_on_missing_ones() {
        let root = tempfile::tempdir().unwrap();
        let libdir = root.path().join("usr/lib/x86_64-linux-gnu");
        fs::create_dir_all(&libdir).unwrap();
        fs::write(libdir.join("libext2fs.so.2"), b"").unwrap();
        fs::write(libdir.join("libc.so.6"), b"").unwrap();
        let mut r = RecordingRunner::default();
        r.outputs.push(("readelf".into(), HEADERS.into()));
        r.outputs.push(("readelf".into(), DYNAMIC.into()));
        r.outputs.push((
            "readelf".into(),
            " (NEEDED) Shared library: [libc.so.6]\n".into(),
        ));
        let files = closure(&mut r, root.path(), "/usr/sbin/mke2fs").unwrap();
        assert_eq!(
            files,
            [
                "/usr/sbin/mke2fs",
                "/lib64/ld-linux-x86-64.so.2",
                "/usr/lib/x86_64-linux-gnu/libext2fs.so.2",
                "/usr/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
        let mut r = RecordingRunner::default();
        r.outputs.push(("readelf".into(), String::new()));
        r.outputs.push((
            "readelf".into(),
            " (NEEDED) Shared library: [libgone.so.1]\n".into(),
        ));
        let err = closure(&mut r, root.path(), "/usr/sbin/mke2fs").unwrap_err();
        assert!(err.to_string().contains("libgone.so.1"), "{err}");
    }
}
