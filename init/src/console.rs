//! Console setup: stdin, stdout and stderr of PID 1 on the console device.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `console` and makes it fds 0, 1 and 2.
pub fn setup(console: &Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console)?;
    for fd in 0..=2 {
        // SAFETY: dup2 of a valid open fd onto 0..=2; nothing else owns those numbers
        // in a way that a replacement could break (std's handles refer to the numbers).
        if unsafe { libc::dup2(f.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
