//! Setup mistakes a person must fix (exit 2, which the unit's `RestartPreventExitStatus`
//! keeps systemd from restarting on): a database directory that does not exist, files or a
//! directory the service's user cannot write (a first `sync` run as root leaves files
//! owned by root). The message says what to run.

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether this process may write the existing file `path` (by its effective ids), asked
/// without opening it: the error an open for writing would meet.
pub(super) fn writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: faccessat reads the NUL-terminated path, which outlives the call.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Why `path` cannot be opened for writing, and the command that fixes it; `None` when
/// the error is not about permissions.
pub(super) fn not_writable(path: &Path, kind: std::io::ErrorKind) -> Option<String> {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    if !matches!(kind, PermissionDenied | ReadOnlyFilesystem) {
        return None;
    }
    Some(diagnose(path))
}

/// Names who owns `path` (or, when it does not exist, its directory) and who this
/// process is, with the `chown` that lets the service write.
pub(super) fn diagnose(path: &Path) -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = user_name(unsafe { libc::geteuid() });
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let owned = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| {
            format!(
                "{} is owned by {}:{} (mode {:o})",
                p.display(),
                user_name(m.uid()),
                group_name(m.gid()),
                m.mode() & 0o7777
            )
        })
    };
    let files = format!("{0} {0}-wal {0}-shm {0}.lock", path.display());
    match owned(path) {
        Some(file) => format!(
            "{file}, and orgmirror runs as {me}, who cannot write it (a first `orgmirror sync` \
             run as root leaves files root owns); run `chown {me}: {files}` (those that exist) \
             and make sure {me} can write {}",
            dir.display()
        ),
        None => format!(
            "{}, and orgmirror runs as {me}, who cannot create the database in it; run \
             `chown {me}: {}` or point database.path at a directory {me} can write",
            owned(dir).unwrap_or_else(|| format!("{} cannot be read", dir.display())),
            dir.display()
        ),
    }
}

fn user_name(uid: libc::uid_t) -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both ours and alive for the call;
    // the name read after points into `buf`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name is a NUL-terminated string inside `buf`.
        return unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
    }
    format!("uid {uid}")
}

fn group_name(gid: libc::gid_t) -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero group is a valid value of this plain C struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_name`, with getgrgid_r.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() && !grp.gr_name.is_null() {
        // SAFETY: gr_name is a NUL-terminated string inside `buf`.
        return unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned();
    }
    format!("gid {gid}")
}
