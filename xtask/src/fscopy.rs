//! File-system helpers: copy a path out of a root tree keeping its symlink chain, list a tree for cpio.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Copies the in-root absolute `path` from `src_root` into `dest_root`, recreating every
/// symlink met on the way (in directories and the file itself) so the same path resolves
/// in the copy; returns the in-root path of the final regular file.
pub fn copy_resolving(src_root: &Path, path: &str, dest_root: &Path) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            _ => None,
        })
        .rev()
        .collect();
    let mut current = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == Path::new("..") {
            current.pop();
            continue;
        }
        let next = current.join(&part);
        let src = src_root.join(&next);
        let meta = fs::symlink_metadata(&src)
            .with_context(|| format!("{} (for {path}) is missing", src.display()))?;
        let dest = dest_root.join(&next);
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                bail!("{path}: too many symlinks under {}", src_root.display());
            }
            let target =
                fs::read_link(&src).with_context(|| format!("reading {}", src.display()))?;
            if fs::symlink_metadata(&dest).is_err() {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                symlink(&target, &dest).with_context(|| format!("linking {}", dest.display()))?;
            }
            let rest: Vec<PathBuf> = target
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(PathBuf::from(n)),
                    Component::ParentDir => Some(PathBuf::from("..")),
                    _ => None,
                })
                .collect();
            if target.is_absolute() {
                current = PathBuf::new();
            }
            pending.extend(rest.into_iter().rev());
        } else if meta.is_dir() {
            fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
            current = next;
        } else if pending.is_empty() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(&src, &dest)
                .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
            return Ok(next);
        } else {
            bail!("{path}: {} is not a directory", src.display());
        }
    }
    bail!("{path} is a directory, not a file")
}

/// Resolves the in-root absolute `path` inside `root`, following symlinks (absolute ones
/// relative to `root`); returns the in-root path of what it names, or an error if missing.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = components(Path::new(path));
    pending.reverse();
    let mut current = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == Path::new("..") {
            current.pop();
            continue;
        }
        let next = current.join(&part);
        let src = root.join(&next);
        let meta = fs::symlink_metadata(&src)
            .with_context(|| format!("{path}: {} is missing", src.display()))?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                bail!("{path}: too many symlinks under {}", root.display());
            }
            let target =
                fs::read_link(&src).with_context(|| format!("reading {}", src.display()))?;
            if target.is_absolute() {
                current = PathBuf::new();
            }
            let mut rest = components(&target);
            rest.reverse();
            pending.extend(rest);
        } else {
            current = next;
        }
    }
    Ok(current)
}

fn components(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// Every entry under `root` as a relative path, parents before children, sorted.
pub fn list_tree(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names.into_iter().rev() {
            let child = rel.join(name);
            if fs::symlink_metadata(root.join(&child))?.is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_through_merged_usr_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(s.join("usr/lib64")).unwrap();
        symlink("usr/lib64", s.join("lib64")).unwrap();
        symlink("usr/lib", s.join("lib")).unwrap();
        fs::write(s.join("usr/lib/x86_64-linux-gnu/ld-2.so"), b"ld").unwrap();
        symlink("ld-2.so", s.join("usr/lib/x86_64-linux-gnu/ld.so.2")).unwrap();
        symlink(
            "../lib/x86_64-linux-gnu/ld.so.2",
            s.join("usr/lib64/ld-linux.so.2"),
        )
        .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let d = dest.path();
        let file = copy_resolving(s, "/lib64/ld-linux.so.2", d).unwrap();
        assert_eq!(file, PathBuf::from("usr/lib/x86_64-linux-gnu/ld-2.so"));
        assert_eq!(fs::read(d.join("lib64/ld-linux.so.2")).unwrap(), b"ld");
        assert!(fs::symlink_metadata(d.join("lib64"))
            .unwrap()
            .file_type()
            .is_symlink());
        let again = copy_resolving(s, "/lib/x86_64-linux-gnu/ld-2.so", d).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn resolves_absolute_links_inside_the_root() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("usr/bin")).unwrap();
        fs::create_dir_all(s.join("lib/systemd")).unwrap();
        symlink("usr/bin", s.join("bin")).unwrap();
        fs::write(s.join("usr/bin/udevadm"), b"").unwrap();
        symlink("/bin/udevadm", s.join("lib/systemd/systemd-udevd")).unwrap();
        assert_eq!(
            resolve_in_root(s, "/lib/systemd/systemd-udevd").unwrap(),
            PathBuf::from("usr/bin/udevadm")
        );
        symlink("/bin/gone", s.join("lib/systemd/dangling")).unwrap();
        assert!(resolve_in_root(s, "/lib/systemd/dangling").is_err());
    }

    #[test]
    fn missing_paths_and_directories_are_errors() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("etc")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = copy_resolving(src.path(), "/etc/nope", dest.path()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(copy_resolving(src.path(), "/etc", dest.path()).is_err());
    }

    #[test]
    fn lists_parents_before_children() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("a"), b"").unwrap();
        fs::write(dir.path().join("b/c/d"), b"").unwrap();
        let list = list_tree(dir.path()).unwrap();
        let names: Vec<_> = list
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a", "b", "b/c", "b/c/d"]);
    }
}
