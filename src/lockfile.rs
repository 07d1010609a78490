//! Advisory locks on files, taken without waiting: a whole-file `flock` (the writer lock of
//! a mirror, an export's temporary files) and an open-file-description lock on one byte
//! (`F_OFD_SETLK`: the daemon's and the alert deliverer's locks in the writer's lock file,
//! independent of its `flock`). Both go with the open file: released when it is closed,
//! or when the process dies.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// Takes an exclusive `flock` of `file`: `Ok(false)` when another open file holds it.
pub(crate) fn flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor `file` owns for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    taken(rc)
}

/// Takes an exclusive open-file-description lock on byte `byte` of `file`: `Ok(false)`
/// when another open file holds it.
pub(crate) fn lock_byte(file: &File, byte: i64) -> io::Result<bool> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = libc::F_WRLCK as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = byte;
    range.l_len = 1;
    // SAFETY: F_OFD_SETLK on a descriptor `file` owns, with a valid flock that outlives
    // the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &range) };
    taken(rc)
}

/// A lock call's outcome: taken, held by another (`EWOULDBLOCK`, `EAGAIN`, `EACCES`), or
/// an error.
fn taken(rc: libc::c_int) -> io::Result<bool> {
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK | libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_against_another_open_file_until_its_file_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let open = || File::create(&path).unwrap();
        let (a, b) = (open(), open());
        assert!(flock(&a).unwrap());
        assert!(!flock(&b).unwrap(), "held by a");
        assert!(
            lock_byte(&b, 1).unwrap(),
            "a byte lock is apart from the flock"
        );
        assert!(!lock_byte(&a, 1).unwrap(), "held by b");
        assert!(lock_byte(&a, 2).unwrap(), "another byte");
        drop(a);
        assert!(flock(&b).unwrap(), "released with a");
        let c = open();
        assert!(lock_byte(&c, 2).unwrap(), "released with a");
    }
}
