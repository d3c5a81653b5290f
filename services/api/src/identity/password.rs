//! Password policy (length-based), argon2id hashing in PHC string form, and the queue of
//! password checks: at most [`CONCURRENT`] at a time, each over one block buffer kept for
//! the life of the process, so a login flood neither takes the CPUs nor grows the memory.

use super::error::IdentityError;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Shortest password accepted, in characters.
pub const MIN_LEN: usize = 12;
/// Longest password accepted, in characters (bounds hashing work).
pub const MAX_LEN: usize = 1024;
/// Password checks (and hashings) running at once; each holds a 19 MiB block buffer.
pub const CONCURRENT: usize = 1;
/// Checks waiting for their turn; beyond this the answer is 503 `busy`.
pub const MAX_WAITING: usize = 16;
/// The `Retry-After` of a 503 `busy`.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);
/// Largest argon2 memory a stored hash may ask for (in 1 KiB blocks): 64 MiB.
const MAX_BLOCKS: usize = 64 * 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot get random bytes for the salt")]
    Random(#[source] getrandom::Error),
    #[error("argon2 failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("argon2 failed: {0}")]
    Argon2(argon2::Error),
}

/// Check the policy; the error names `field` and says what is needed.
pub fn check_policy(field: &str, password: &str) -> Result<(), IdentityError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(IdentityError::Invalid {
            field: field.to_string(),
            message: format!(
                "the password must be at least {MIN_LEN} characters long (this one has {n}); a few unrelated words make a good one"
            ),
        });
    }
    if n > MAX_LEN {
        return Err(IdentityError::Invalid {
            field: field.to_string(),
            message: format!(
                "the password must be at most {MAX_LEN} characters long (this one has {n})"
            ),
        });
    }
    Ok(())
}

/// A block buffer for argon2 at the default parameters (m = 19456 KiB).
pub fn new_buffer() -> Vec<Block> {
    vec![Block::default(); Params::DEFAULT_M_COST as usize]
}

/// Hash with argon2id (m = 19 MiB, t = 2, p = 1) and a random 128-bit salt, working in
/// `memory` (a buffer from [`new_buffer`]).
pub fn hash_with(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(PasswordError::Random)?;
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    fit(memory, params.block_count()).map_err(PasswordError::Argon2)?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory[..])
        .map_err(PasswordError::Argon2)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

/// Grow `memory` to `blocks` when a hash needs more (bounded by [`MAX_BLOCKS`]).
fn fit(memory: &mut Vec<Block>, blocks: usize) -> Result<(), argon2::Error> {
    if blocks > MAX_BLOCKS {
        return Err(argon2::Error::MemoryTooMuch);
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Ok(())
}

/// Whether `password` matches the stored PHC string (false for a malformed one), working in
/// `memory`: the parameters and salt come from the string, the output is compared in
/// constant time.
pub fn verify_with(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(alg), Some(Ok(version)), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(h.algorithm),
        h.version.map(Version::try_from),
        Params::try_from(&h),
        h.salt,
        h.hash,
    ) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if fit(memory, params.block_count()).is_err() {
        tracing::warn!("a stored password hash asks for more memory than allowed");
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    if Argon2::new(alg, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    let expected = expected.as_bytes();
    out.len() == expected.len() && out.iter().zip(expected).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

/// [`hash_with`] in a buffer of its own (tests and tools; the server uses [`Checks`]).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    hash_with(password, &mut new_buffer())
}

/// [`verify_with`] in a buffer of its own (tests and tools; the server uses [`Checks`]).
pub fn verify(password: &str, phc: &str) -> bool {
    verify_with(password, phc, &mut new_buffer())
}

/// `busy`: the node is doing as many password checks as it will; try again after `wait`
/// (rounded up to whole seconds, at least one).
pub fn busy(wait: Duration) -> IdentityError {
    let secs = wait.as_nanos().div_ceil(1_000_000_000).max(1);
    IdentityError::Busy(Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)))
}

/// The queue of password checks: [`CONCURRENT`] run at once on blocking threads, each in a
/// block buffer that is reused (never freed and allocated again, which with glibc's
/// per-thread arenas kept ~19 MiB per blocking thread), at most [`MAX_WAITING`] wait.
pub struct Checks {
    permits: Arc<Semaphore>,
    buffers: Mutex<Vec<Vec<Block>>>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// A place in the queue (counted as waiting until it runs or is dropped).
pub struct Ticket {
    checks: Arc<Checks>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.checks.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Checks {
    pub fn new(concurrent: usize, max_waiting: usize) -> Arc<Self> {
        Arc::new(Checks {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            buffers: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            max_waiting,
        })
    }

    /// Take a place in the queue; `busy` when it is full.
    pub fn enter(self: &Arc<Self>) -> Result<Ticket, IdentityError> {
        let n = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket {
            checks: self.clone(),
        };
        if n >= self.max_waiting {
            return Err(busy(BUSY_RETRY));
        }
        Ok(ticket)
    }

    /// Block buffers made so far (at most the number of permits).
    pub fn buffers_made(&self) -> usize {
        self.buffers.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Hash a new password in turn.
    pub async fn hash(self: &Arc<Self>, password: &str) -> Result<String, IdentityError> {
        let pw = password.to_string();
        self.enter()?
            .run(move |mem| hash_with(&pw, mem))
            .await?
            .map_err(|e| IdentityError::Check(e.to_string()))
    }
}

impl Ticket {
    /// Wait for a permit, then run `f` on a blocking thread with a block buffer. The permit
    /// and buffer go with the work: a client that hangs up does not free them early.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, IdentityError> {
        let checks = self.checks.clone();
        let permit = checks
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| IdentityError::Check("the password check queue is closed".into()))?;
        drop(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = checks.buffers.lock().ok().and_then(|mut b| b.pop());
            let mut mem = taken.unwrap_or_else(new_buffer);
            let out = f(&mut mem);
            // Nobody queued behind this check: give the buffer's pages back to the kernel
            // (the buffer itself stays, so the next check faults in zeroed pages instead of
            // allocating), so an idle cairnd does not keep 19 MiB resident after a sign-in.
            if checks.waiting.load(Ordering::SeqCst) == 0 {
                release_pages(&mut mem);
            }
            if let Ok(mut b) = checks.buffers.lock() {
                b.push(mem);
            }
            out
        })
        .await
        .map_err(|e| IdentityError::Check(format!("password check failed: {e}")))
    }
}

/// The page-aligned interior of `buf`: (start, length), or None when it holds no whole page.
fn whole_pages(buf: &mut [Block]) -> Option<(*mut libc::c_void, usize)> {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let start = buf.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buf);
    let first = start.checked_next_multiple_of(page)?;
    let last = end - end % page;
    (last > first).then(|| (first as *mut libc::c_void, last - first))
}

/// Tell the kernel it may drop the whole pages of `buf` (they read as zero afterwards,
/// which argon2 does not mind: it writes every block before it reads it).
fn release_pages(buf: &mut [Block]) {
    if let Some((addr, len)) = whole_pages(buf) {
        // SAFETY: `addr..addr+len` lies inside `buf`, which we borrow mutably, so no one
        // else reads it; MADV_DONTNEED on private anonymous memory only zeroes it.
        let rc = unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) };
        if rc != 0 {
            tracing::debug!(
                "madvise on the password buffer failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// How many bytes of `buf`'s whole pages are resident (mincore), for tests and benchmarks.
pub fn resident_bytes(buf: &mut [Block]) -> std::io::Result<usize> {
    let Some((addr, len)) = whole_pages(buf) else {
        return Ok(0);
    };
    // SAFETY: as in `whole_pages`.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .map_err(|_| std::io::Error::other("no page size"))?;
    let mut vec = vec![0u8; len / page];
    // SAFETY: `addr` is page-aligned and `addr..addr+len` is mapped (it lies inside `buf`);
    // `vec` has one byte per page of that range.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|b| *b & 1 == 1).count() * page)
}

impl Checks {
    /// Resident bytes of the kept block buffers (see [`resident_bytes`]).
    pub fn resident_buffer_bytes(&self) -> std::io::Result<usize> {
        let mut buffers = self
            .buffers
            .lock()
            .map_err(|_| std::io::Error::other("buffers lock poisoned"))?;
        buffers
            .iter_mut()
            .map(|b| resident_bytes(b))
            .try_fold(0, |a, r| r.map(|n| a + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    #[test]
    fn policy_is_length_based_with_clear_message() {
        let e = ApiError::from(check_policy("password", "short pw").unwrap_err());
        assert_eq!(e.field.as_deref(), Some("password"));
        assert!(
            e.message.contains("at least 12 characters"),
            "{}",
            e.message
        );
        assert!(e.message.contains("has 8"), "{}", e.message);
        assert!(check_policy("password", "correct horse").is_ok());
        assert!(check_policy("password", "ünïcödé-pässwörd").is_ok());
        assert!(check_policy("password", &"x".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn argon2id_round_trip_with_salt() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn hashes_of_the_argon2_defaults_still_verify_and_vice_versa() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let mut mem = new_buffer();
        assert!(verify_with("correct horse battery", &old, &mut mem));
        assert!(!verify_with("correct horse batterz", &old, &mut mem));
        let new = hash_with("correct horse battery", &mut mem).unwrap();
        let parsed = PasswordHash::new(&new).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert_eq!(mem.len(), Params::DEFAULT_M_COST as usize, "no growth");
    }

    #[tokio::test]
    async fn checks_run_one_at_a_time_in_one_buffer_and_the_queue_is_bounded() {
        let checks = Checks::new(1, 2);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let first = checks.enter().unwrap();
        let running = tokio::spawn(first.run(move |_| {
            started_tx.send(()).unwrap();
            go_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        }));
        tokio::time::timeout(Duration::from_secs(20), started_rx)
            .await
            .unwrap()
            .unwrap();
        let a = checks.enter().unwrap();
        let b = checks.enter().unwrap();
        let e = ApiError::from(checks.enter().err().expect("the queue is full"));
        assert_eq!((e.status.as_u16(), e.code), (503, "busy"));
        assert_eq!(e.retry_after, Some(BUSY_RETRY));
        drop(b);
        let waiting = tokio::spawn(a.run(|mem| mem.len()));
        go_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        let len = waiting.await.unwrap().unwrap();
        assert_eq!(len, Params::DEFAULT_M_COST as usize);
        assert_eq!(checks.buffers_made(), 1, "one buffer, reused");
        let h = checks.hash("correct horse battery").await.unwrap();
        assert!(verify("correct horse battery", &h));
        assert_eq!(checks.buffers_made(), 1);
    }

    /// After a check with nobody waiting, the kept buffer holds (almost) no resident pages:
    /// an idle cairnd does not keep argon2's 19 MiB after a sign-in.
    #[tokio::test]
    async fn an_idle_queue_gives_the_buffer_pages_back() {
        let checks = Checks::new(1, 4);
        let h = checks.hash("correct horse battery").await.unwrap();
        assert_eq!(checks.buffers_made(), 1);
        let resident = checks.resident_buffer_bytes().unwrap();
        assert!(resident < 1 << 20, "{resident} bytes still resident");
        // While it is in use, the buffer is resident (the measurement sees pages at all).
        let used = checks
            .enter()
            .unwrap()
            .run(move |mem| {
                let ok = verify_with("correct horse battery", &h, mem);
                (ok, resident_bytes(mem).unwrap())
            })
            .await
            .unwrap();
        assert!(used.0);
        assert!(used.1 > 16 << 20, "{} bytes resident while in use", used.1);
    }
}
