//! The image library of a pool (ISOs and disk images in its share `images`): resumable uploads into hidden partial files, SHA-256 checked, renamed into view only when whole; list, delete, format detection.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The share of a pool that holds its image library.
pub const LIBRARY_SHARE: &str = "images";
/// The hidden directory of the library where uploads in progress live.
const UPLOADS_DIR: &str = ".uploads";
/// Longest image name.
const MAX_NAME: usize = 100;

/// A library failure; `field` names the request field at fault where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(
        "pool {pool} has no image library (its share `{LIBRARY_SHARE}`): start an upload to make it"
    )]
    NoLibrary { pool: String },
    #[error("no image named {name} on pool {pool}")]
    NotFound { pool: String, name: String },
    #[error("no upload {id} on pool {pool} (finished, cancelled or never started)")]
    NoUpload { pool: String, id: String },
    #[error("{what} named {name} already exists on pool {pool}")]
    Exists {
        pool: String,
        name: String,
        what: &'static str,
    },
    #[error("image {name} is used by VM {vm}: detach it or delete the VM first")]
    InUse { name: String, vm: String },
    #[error("offset: the upload is at byte {expected}, not {given}; resume from {expected}")]
    WrongOffset { expected: u64, given: u64 },
    #[error("body: the upload is {size} bytes long; this body goes past it to byte {end}")]
    TooLong { size: u64, end: u64 },
    #[error("upload {id} is being written by another request")]
    Busy { id: String },
    #[error("pool {pool} is full: {need} bytes needed, {free} free; the upload was removed")]
    NoSpace { pool: String, need: u64, free: u64 },
    #[error("sha256: the upload's SHA-256 is {actual}, not the {expected} given; the upload was removed")]
    Checksum { expected: String, actual: String },
    #[error("{op}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let op = op.into();
    move |source| ImageError::Io { op, source }
}

fn invalid(field: &str, reason: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What an image file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    Iso,
    Qcow2,
    Vmdk,
    Vhdx,
    Vdi,
    Raw,
}

/// Bytes of a file's head that [`detect_magic`] needs (an ISO's volume descriptor is at
/// 32 KiB + 1).
pub const MAGIC_LEN: usize = 0x8006;

/// The format by magic bytes: ISO 9660 (`CD001` at 0x8001), qcow2 (`QFI\xfb`), VMDK
/// (`KDMV`, or a descriptor file), VHDX (`vhdxfile`), VDI (signature `0xbeda107f` at 0x40);
/// anything else is raw.
pub fn detect_magic(head: &[u8]) -> ImageFormat {
    let at = |off: usize, m: &[u8]| head.get(off..off + m.len()) == Some(m);
    if at(0x8001, b"CD001") {
        ImageFormat::Iso
    } else if at(0, b"QFI\xfb") {
        ImageFormat::Qcow2
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        ImageFormat::Vmdk
    } else if at(0, b"vhdxfile") {
        ImageFormat::Vhdx
    } else if at(0x40, &0xbeda_107f_u32.to_le_bytes()) {
        ImageFormat::Vdi
    } else {
        ImageFormat::Raw
    }
}

/// The format named by `qemu-img info --output=json` (its `format` field).
pub fn format_from_qemu_info(json: &str) -> Result<ImageFormat, String> {
    #[derive(Deserialize)]
    struct Info {
        format: String,
    }
    let info: Info =
        serde_json::from_str(json).map_err(|e| format!("qemu-img info's JSON: {e}"))?;
    match info.format.as_str() {
        "qcow2" => Ok(ImageFormat::Qcow2),
        "vmdk" => Ok(ImageFormat::Vmdk),
        "vhdx" => Ok(ImageFormat::Vhdx),
        "vdi" => Ok(ImageFormat::Vdi),
        "raw" => Ok(ImageFormat::Raw),
        other => Err(format!(
            "qemu-img reports format {other:?}, which Cairn does not take"
        )),
    }
}

/// The format of the file at `path`: an ISO by its magic (qemu-img calls it raw), else what
/// `qemu-img info` says, else (no qemu-img, or it failed) the magic bytes.
pub fn detect(path: &Path) -> std::io::Result<ImageFormat> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    File::open(path)?
        .take(MAGIC_LEN as u64)
        .read_to_end(&mut head)?;
    let magic = detect_magic(&head);
    if magic == ImageFormat::Iso {
        return Ok(magic);
    }
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            Ok(format_from_qemu_info(&String::from_utf8_lossy(&o.stdout)).unwrap_or(magic))
        }
        _ => Ok(magic),
    }
}

/// An image of the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub name: String,
    pub size_bytes: u64,
    pub format: ImageFormat,
    /// Set when the image was just uploaded (not kept for listing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What an upload was started with (stored beside its partial file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub id: String,
    pub name: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// An upload in progress: where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadStatus {
    #[serde(flatten)]
    pub meta: UploadMeta,
    pub pool: String,
    /// Bytes received so far: the next write starts here.
    pub offset: u64,
}

/// Where a pool's library directory is (normally the mount of its share `images`).
pub type DirFn = dyn Fn(&str) -> PathBuf + Send + Sync;

/// The running hash of an upload, kept while its bytes arrive in order.
struct RunningHash {
    offset: u64,
    hash: Sha256,
}

/// The image libraries of a node's pools.
pub struct Library {
    dir: Box<DirFn>,
    /// Uploads being written now (one writer each).
    busy: Mutex<HashSet<String>>,
    hashes: Mutex<HashMap<String, RunningHash>>,
}

/// Check an image name: 1–100 of `A-Za-z0-9._-+`, not starting with a dot.
pub fn check_name(field: &str, name: &str) -> Result<(), ImageError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(field, format!("1 to {MAX_NAME} characters")));
    }
    if name.starts_with('.') {
        return Err(invalid(field, "may not start with a dot"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        return Err(invalid(
            field,
            "letters, digits, '.', '_', '-' and '+' only",
        ));
    }
    Ok(())
}

fn check_sha256(s: &str) -> Result<String, ImageError> {
    let s = s.to_ascii_lowercase();
    if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("sha256", "64 hexadecimal digits"));
    }
    Ok(s)
}

fn check_id(pool: &str, id: &str) -> Result<(), ImageError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ImageError::NoUpload {
            pool: pool.into(),
            id: id.chars().take(64).collect(),
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Free bytes of the filesystem holding `dir` (for an unprivileged writer).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// One upload open for writing (see [`Library::writer`]); gives the upload back when dropped.
pub struct Writer {
    lib: Arc<Library>,
    pool: String,
    meta: UploadMeta,
    part: PathBuf,
    file: File,
    offset: u64,
    hash: Option<RunningHash>,
}

impl Library {
    /// A library whose pool directories `dir` gives.
    pub fn new(dir: Box<DirFn>) -> Arc<Library> {
        Arc::new(Library {
            dir,
            busy: Mutex::new(HashSet::new()),
            hashes: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `pool` has its library directory (its share `images` is there and mounted).
    pub fn has_library(&self, pool: &str) -> bool {
        (self.dir)(pool).is_dir()
    }

    /// The library directory of `pool`; it must exist (the share is there and mounted).
    fn pool_dir(&self, pool: &str) -> Result<PathBuf, ImageError> {
        let d = (self.dir)(pool);
        if d.is_dir() {
            Ok(d)
        } else {
            Err(ImageError::NoLibrary { pool: pool.into() })
        }
    }

    fn uploads_dir(&self, pool: &str) -> Result<PathBuf, ImageError> {
        Ok(self.pool_dir(pool)?.join(UPLOADS_DIR))
    }

    /// The images of `pool`, by name.
    pub fn list(&self, pool: &str) -> Result<Vec<Image>, ImageError> {
        let dir = self.pool_dir(pool)?;
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io(format!("read {}", dir.display())))? {
            let e = e.map_err(io(format!("read {}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            let mut head = Vec::with_capacity(MAGIC_LEN);
            if let Ok(f) = File::open(e.path()) {
                let _ = f.take(MAGIC_LEN as u64).read_to_end(&mut head);
            }
            out.push(Image {
                name,
                size_bytes: md.len(),
                format: detect_magic(&head),
                sha256: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The uploads in progress on `pool`.
    pub fn uploads(&self, pool: &str) -> Result<Vec<UploadStatus>, ImageError> {
        let dir = self.uploads_dir(pool)?;
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                if let Ok(s) = self.status(pool, id) {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        Ok(out)
    }

    /// Start an upload of `size` bytes to become image `name`; refused when the name is
    /// taken (by an image or another upload) or the pool has not that much room.
    pub fn start(
        &self,
        pool: &str,
        name: &str,
        size: u64,
        sha256: Option<&str>,
    ) -> Result<UploadStatus, ImageError> {
        check_name("name", name)?;
        if size == 0 {
            return Err(invalid("size_bytes", "an image has at least one byte"));
        }
        let sha256 = sha256.map(check_sha256).transpose()?;
        let dir = self.pool_dir(pool)?;
        if dir.join(name).exists() {
            return Err(ImageError::Exists {
                pool: pool.into(),
                name: name.into(),
                what: "an image",
            });
        }
        if self.uploads(pool)?.iter().any(|u| u.meta.name == name) {
            return Err(ImageError::Exists {
                pool: pool.into(),
                name: name.into(),
                what: "an upload",
            });
        }
        let free = free_bytes(&dir).map_err(io(format!("statvfs {}", dir.display())))?;
        if free < size {
            return Err(ImageError::NoSpace {
                pool: pool.into(),
                need: size,
                free,
            });
        }
        let up = dir.join(UPLOADS_DIR);
        std::fs::create_dir_all(&up).map_err(io(format!("create {}", up.display())))?;
        let meta = UploadMeta {
            id: crate::ids::new_uuid(),
            name: name.into(),
            size_bytes: size,
            sha256,
        };
        let part = up.join(format!("{}.part", meta.id));
        File::create(&part).map_err(io(format!("create {}", part.display())))?;
        let json = serde_json::to_vec(&meta).unwrap_or_default();
        cairn_core::write_atomic(&up.join(format!("{}.json", meta.id)), &json, 0o600).map_err(
            |e| ImageError::Io {
                op: format!("write the upload record in {}", up.display()),
                source: std::io::Error::other(e.to_string()),
            },
        )?;
        Ok(UploadStatus {
            meta,
            pool: pool.into(),
            offset: 0,
        })
    }

    fn paths(&self, pool: &str, id: &str) -> Result<(PathBuf, PathBuf), ImageError> {
        check_id(pool, id)?;
        let up = self.uploads_dir(pool)?;
        Ok((up.join(format!("{id}.json")), up.join(format!("{id}.part"))))
    }

    /// Where upload `id` of `pool` is.
    pub fn status(&self, pool: &str, id: &str) -> Result<UploadStatus, ImageError> {
        let (json, part) = self.paths(pool, id)?;
        let no = || ImageError::NoUpload {
            pool: pool.into(),
            id: id.into(),
        };
        let text = std::fs::read(&json).map_err(|_| no())?;
        let meta: UploadMeta = serde_json::from_slice(&text).map_err(|_| no())?;
        let offset = std::fs::metadata(&part).map_err(|_| no())?.len();
        Ok(UploadStatus {
            meta,
            pool: pool.into(),
            offset,
        })
    }

    /// Cancel upload `id`: its partial file and record are removed.
    pub fn cancel(&self, pool: &str, id: &str) -> Result<(), ImageError> {
        self.status(pool, id)?;
        if self.lock_busy().contains(id) {
            return Err(ImageError::Busy { id: id.into() });
        }
        self.remove_upload(pool, id);
        Ok(())
    }

    fn remove_upload(&self, pool: &str, id: &str) {
        if let Ok((json, part)) = self.paths(pool, id) {
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(json);
        }
        self.lock_hashes().remove(id);
    }

    fn lock_busy(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_hashes(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningHash>> {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open upload `id` for writing at `offset`, which must be where it is (a 409 naming
    /// `offset` otherwise, with the right one). One writer per upload at a time.
    pub fn writer(
        self: &Arc<Self>,
        pool: &str,
        id: &str,
        offset: u64,
    ) -> Result<Writer, ImageError> {
        let status = self.status(pool, id)?;
        if !self.lock_busy().insert(id.to_string()) {
            return Err(ImageError::Busy { id: id.into() });
        }
        // From here on the upload is ours; dropping `w` gives it back.
        let (_, part) = self.paths(pool, id)?;
        let file = match OpenOptions::new().append(true).open(&part) {
            Ok(f) => f,
            Err(e) => {
                self.lock_busy().remove(id);
                return Err(io(format!("open {}", part.display()))(e));
            }
        };
        let hash = self.lock_hashes().remove(id);
        let w = Writer {
            lib: self.clone(),
            pool: pool.into(),
            meta: status.meta,
            part,
            file,
            offset: status.offset,
            // A running hash is good only if it covers exactly the bytes on disk.
            hash: match hash {
                Some(h) if h.offset == status.offset => Some(h),
                _ if status.offset == 0 => Some(RunningHash {
                    offset: 0,
                    hash: Sha256::new(),
                }),
                _ => None,
            },
        };
        if offset != status.offset {
            return Err(ImageError::WrongOffset {
                expected: status.offset,
                given: offset,
            });
        }
        Ok(w)
    }

    /// Delete image `name` of `pool`; `user` names a VM that uses it (then it is refused).
    pub fn delete(&self, pool: &str, name: &str, user: Option<String>) -> Result<(), ImageError> {
        check_name("name", name)?;
        let path = self.pool_dir(pool)?.join(name);
        if !path.is_file() {
            return Err(ImageError::NotFound {
                pool: pool.into(),
                name: name.into(),
            });
        }
        if let Some(vm) = user {
            return Err(ImageError::InUse {
                name: name.into(),
                vm,
            });
        }
        std::fs::remove_file(&path).map_err(io(format!("remove {}", path.display())))
    }
}

impl Writer {
    /// Where the upload is now.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The upload's declared size.
    pub fn size(&self) -> u64 {
        self.meta.size_bytes
    }

    /// Append `data`. Past the declared size: refused, nothing written. A full disk removes
    /// the upload (nothing is left, and its space comes back).
    pub fn write(&mut self, data: &[u8]) -> Result<(), ImageError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let end = self.offset.saturating_add(len);
        if end > self.meta.size_bytes {
            return Err(ImageError::TooLong {
                size: self.meta.size_bytes,
                end,
            });
        }
        let mut rest = data;
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => return Err(self.failed(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    if let Some(h) = &mut self.hash {
                        h.hash.update(&rest[..n]);
                        h.offset += n as u64;
                    }
                    self.offset += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
        Ok(())
    }

    fn failed(&mut self, e: std::io::Error) -> ImageError {
        if e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32) {
            self.hash = None;
            let free = self
                .part
                .parent()
                .and_then(|d| free_bytes(d).ok())
                .unwrap_or(0);
            let need = self.meta.size_bytes - self.offset;
            self.lib.remove_upload(&self.pool, &self.meta.id);
            return ImageError::NoSpace {
                pool: self.pool.clone(),
                need,
                free,
            };
        }
        io(format!("write {}", self.part.display()))(e)
    }

    /// Whether every byte has arrived.
    pub fn complete(&self) -> bool {
        self.offset == self.meta.size_bytes
    }

    /// Finish a complete upload: flushed to disk, SHA-256 computed (re-read when the upload
    /// was resumed after a restart) and checked if one was given, then renamed into the
    /// library under its name (never over another image). A wrong checksum removes it.
    pub fn finish(mut self) -> Result<Image, ImageError> {
        self.file
            .sync_all()
            .map_err(io(format!("sync {}", self.part.display())))?;
        let actual = match self.hash.take() {
            Some(h) if h.offset == self.offset => hex(&h.hash.finalize()),
            _ => hash_file(&self.part)?,
        };
        if let Some(expected) = &self.meta.sha256 {
            if *expected != actual {
                self.lib.remove_upload(&self.pool, &self.meta.id);
                return Err(ImageError::Checksum {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let dir = self.lib.pool_dir(&self.pool)?;
        let target = dir.join(&self.meta.name);
        // A hard link never replaces an existing name; then the partial name goes.
        match std::fs::hard_link(&self.part, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ImageError::Exists {
                    pool: self.pool.clone(),
                    name: self.meta.name.clone(),
                    what: "an image",
                })
            }
            Err(e) => return Err(io(format!("link {}", target.display()))(e)),
        }
        self.lib.remove_upload(&self.pool, &self.meta.id);
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        let format = detect(&target).map_err(io(format!("read {}", target.display())))?;
        Ok(Image {
            name: self.meta.name.clone(),
            size_bytes: self.offset,
            format,
            sha256: Some(actual),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(h) = self.hash.take() {
            if !self.complete() {
                self.lib.lock_hashes().insert(self.meta.id.clone(), h);
            }
        }
        self.lib.lock_busy().remove(&self.meta.id);
    }
}

/// The SHA-256 of a file, in lowercase hex.
pub fn hash_file(path: &Path) -> Result<String, ImageError> {
    let mut f = File::open(path).map_err(io(format!("open {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io(format!("read {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib() -> (tempfile::TempDir, Arc<Library>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("tank/images")).unwrap();
        let root = t.path().to_path_buf();
        let l = Library::new(Box::new(move |pool| root.join(pool).join(LIBRARY_SHARE)));
        (t, l)
    }

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    fn visible(t: &tempfile::TempDir) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(t.path().join("tank/images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_upload_resumes_at_its_offset_and_appears_only_when_whole() {
        let (t, l) = lib();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let up = l
            .start("tank", "disk.img", 100_000, Some(&sha(&data)))
            .unwrap();
        assert_eq!(up.offset, 0);
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        w.write(&data[..30_000]).unwrap();
        drop(w); // the connection broke
        assert_eq!(l.status("tank", &up.meta.id).unwrap().offset, 30_000);
        assert!(visible(&t).is_empty(), "half an upload is not an image");
        assert_eq!(l.list("tank").unwrap(), vec![]);
        assert_eq!(l.uploads("tank").unwrap().len(), 1);
        let mut w = l.writer("tank", &up.meta.id, 30_000).unwrap();
        w.write(&data[30_000..]).unwrap();
        assert!(w.complete());
        let img = w.finish().unwrap();
        assert_eq!(img.sha256.as_deref(), Some(sha(&data).as_str()));
        assert_eq!(img.size_bytes, 100_000);
        assert_eq!(visible(&t), vec!["disk.img"]);
        assert_eq!(
            std::fs::read(t.path().join("tank/images/disk.img")).unwrap(),
            data
        );
        assert!(l.uploads("tank").unwrap().is_empty());
        assert!(matches!(
            l.status("tank", &up.meta.id),
            Err(ImageError::NoUpload { .. })
        ));
    }

    #[test]
    fn a_resume_after_a_restart_rehashes_the_partial_file() {
        let (t, l) = lib();
        let data = b"hello, library".to_vec();
        let up = l.start("tank", "a.iso", 14, Some(&sha(&data))).unwrap();
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        w.write(&data[..5]).unwrap();
        drop(w);
        // A new library (cairnd restarted): no running hash.
        let root = t.path().to_path_buf();
        let l2 = Library::new(Box::new(move |pool| root.join(pool).join(LIBRARY_SHARE)));
        let mut w = l2.writer("tank", &up.meta.id, 5).unwrap();
        w.write(&data[5..]).unwrap();
        assert_eq!(w.finish().unwrap().sha256.unwrap(), sha(&data));
    }

    #[test]
    fn a_wrong_offset_names_the_right_one_and_writes_nothing() {
        let (_t, l) = lib();
        let up = l.start("tank", "x.img", 10, None).unwrap();
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        w.write(b"abcd").unwrap();
        drop(w);
        for given in [0, 3, 5, 11] {
            match l.writer("tank", &up.meta.id, given) {
                Err(ImageError::WrongOffset {
                    expected: 4,
                    given: g,
                }) => assert_eq!(g, given),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("offset {given} taken"),
            }
        }
        let e = l.writer("tank", &up.meta.id, 0).err().unwrap();
        assert!(e.to_string().starts_with("offset:"), "{e}");
        assert_eq!(l.status("tank", &up.meta.id).unwrap().offset, 4);
        // The refused writer gave the upload back.
        assert!(l.writer("tank", &up.meta.id, 4).is_ok());
    }

    #[test]
    fn one_writer_at_a_time_and_nothing_past_the_size() {
        let (_t, l) = lib();
        let up = l.start("tank", "x.img", 10, None).unwrap();
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        assert!(matches!(
            l.writer("tank", &up.meta.id, 0),
            Err(ImageError::Busy { .. })
        ));
        assert!(matches!(
            l.cancel("tank", &up.meta.id),
            Err(ImageError::Busy { .. })
        ));
        w.write(b"12345678").unwrap();
        let e = w.write(b"abc").unwrap_err();
        assert!(
            matches!(e, ImageError::TooLong { size: 10, end: 11 }),
            "{e}"
        );
        assert_eq!(w.offset(), 8, "a refused write writes nothing");
        drop(w);
        l.cancel("tank", &up.meta.id).unwrap();
        assert!(l.uploads("tank").unwrap().is_empty());
    }

    #[test]
    fn a_wrong_checksum_removes_the_upload() {
        let (t, l) = lib();
        let up = l.start("tank", "x.iso", 3, Some(&"AB".repeat(32))).unwrap();
        assert_eq!(up.meta.sha256.as_deref(), Some("ab".repeat(32).as_str()));
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        w.write(b"abc").unwrap();
        let e = w.finish().unwrap_err();
        assert!(e.to_string().starts_with("sha256:"), "{e}");
        assert!(visible(&t).is_empty());
        assert!(l.uploads("tank").unwrap().is_empty());
    }

    #[test]
    fn starts_are_checked() {
        let (t, l) = lib();
        let field = |r: Result<UploadStatus, ImageError>| match r {
            Err(ImageError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(l.start("tank", "", 1, None)), "name");
        assert_eq!(field(l.start("tank", ".hidden", 1, None)), "name");
        assert_eq!(field(l.start("tank", "../etc", 1, None)), "name");
        assert_eq!(field(l.start("tank", "a b", 1, None)), "name");
        assert_eq!(field(l.start("tank", "a", 0, None)), "size_bytes");
        assert_eq!(field(l.start("tank", "a", 1, Some("xyz"))), "sha256");
        assert!(matches!(
            l.start("nope", "a", 1, None),
            Err(ImageError::NoLibrary { .. })
        ));
        assert!(matches!(
            l.start("tank", "a", u64::MAX, None),
            Err(ImageError::NoSpace { .. })
        ));
        l.start("tank", "a", 1, None).unwrap();
        assert!(matches!(
            l.start("tank", "a", 1, None),
            Err(ImageError::Exists {
                what: "an upload",
                ..
            })
        ));
        std::fs::write(t.path().join("tank/images/b"), b"x").unwrap();
        assert!(matches!(
            l.start("tank", "b", 1, None),
            Err(ImageError::Exists {
                what: "an image",
                ..
            })
        ));
        assert!(matches!(
            l.status("tank", "../../x"),
            Err(ImageError::NoUpload { .. })
        ));
    }

    #[test]
    fn delete_is_refused_while_a_vm_uses_the_image() {
        let (t, l) = lib();
        std::fs::write(t.path().join("tank/images/d.iso"), b"x").unwrap();
        let e = l.delete("tank", "d.iso", Some("web".into())).unwrap_err();
        assert!(e.to_string().contains("VM web"), "{e}");
        assert_eq!(visible(&t), vec!["d.iso"]);
        l.delete("tank", "d.iso", None).unwrap();
        assert!(visible(&t).is_empty());
        assert!(matches!(
            l.delete("tank", "d.iso", None),
            Err(ImageError::NotFound { .. })
        ));
    }

    /// A full disk (a small tmpfs when the test may mount one, else `/dev/full`): a clear
    /// error, and nothing left, visible or hidden.
    #[test]
    fn a_full_disk_removes_the_upload() {
        let (t, l) = lib();
        let up = l.start("tank", "big.img", 1000, None).unwrap();
        let mut w = l.writer("tank", &up.meta.id, 0).unwrap();
        // Stand in for the filesystem filling up: writes go to /dev/full (ENOSPC).
        w.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let e = w.write(&[0u8; 100]).unwrap_err();
        assert!(
            matches!(&e, ImageError::NoSpace { pool, need: 1000, .. } if pool == "tank"),
            "{e}"
        );
        assert!(e.to_string().contains("pool tank is full"), "{e}");
        drop(w);
        assert!(visible(&t).is_empty());
        assert!(l.uploads("tank").unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(t.path().join("tank/images/.uploads"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn formats_by_magic_bytes() {
        let mut iso = vec![0u8; MAGIC_LEN];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect_magic(&iso), ImageFormat::Iso);
        assert_eq!(detect_magic(b"QFI\xfb\0\0\0\x03"), ImageFormat::Qcow2);
        assert_eq!(detect_magic(b"KDMV\x01\0\0\0"), ImageFormat::Vmdk);
        assert_eq!(detect_magic(b"vhdxfile"), ImageFormat::Vhdx);
        let mut vdi = vec![0u8; 0x48];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(detect_magic(&vdi), ImageFormat::Vdi);
        assert_eq!(detect_magic(b""), ImageFormat::Raw);
        assert_eq!(detect_magic(&[0u8; 512]), ImageFormat::Raw);
    }

    #[test]
    fn formats_from_qemu_img_info() {
        let info = r#"{"virtual-size": 1048576, "filename": "a.qcow2", "format": "qcow2",
            "actual-size": 200704, "dirty-flag": false}"#;
        assert_eq!(format_from_qemu_info(info), Ok(ImageFormat::Qcow2));
        for (f, want) in [
            ("vmdk", ImageFormat::Vmdk),
            ("vhdx", ImageFormat::Vhdx),
            ("vdi", ImageFormat::Vdi),
            ("raw", ImageFormat::Raw),
        ] {
            let j = format!(r#"{{"format": "{f}"}}"#);
            assert_eq!(format_from_qemu_info(&j), Ok(want));
        }
        assert!(format_from_qemu_info(r#"{"format": "dmg"}"#)
            .unwrap_err()
            .contains("dmg"));
        assert!(format_from_qemu_info("not json").is_err());
    }

    /// With qemu-img on the machine, a qcow2 it made is detected through its info.
    #[test]
    fn detect_reads_an_iso_and_a_real_qcow2() {
        let t = tempfile::tempdir().unwrap();
        let mut iso = vec![0u8; MAGIC_LEN + 100];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        std::fs::write(t.path().join("a.iso"), &iso).unwrap();
        assert_eq!(detect(&t.path().join("a.iso")).unwrap(), ImageFormat::Iso);
        let q = t.path().join("a.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&q)
            .arg("1M")
            .status();
        if made.is_ok_and(|s| s.success()) {
            assert_eq!(detect(&q).unwrap(), ImageFormat::Qcow2);
        }
        std::fs::write(t.path().join("r.img"), [0u8; 4096]).unwrap();
        assert_eq!(detect(&t.path().join("r.img")).unwrap(), ImageFormat::Raw);
    }
}
