//! Where an export is written before it is in place, and what a killed one left behind.
//!
//! Every temporary file or directory an export makes is named `.orgmirror-export-*.tmp`
//! and held under an exclusive `flock` while it is written. The next export removes the
//! ones nobody holds (an export that was killed), so debris never piles up, and never
//! touches one that a running export is writing.

use std::fs::File;
use std::path::{Path, PathBuf};

use tracing::info;

use super::ExportError;

/// The prefix of every temporary name an export uses.
pub const PREFIX: &str = ".orgmirror-export-";
/// Their suffix.
pub const SUFFIX: &str = ".tmp";

/// Holds `file` (a temporary file, or a directory opened read-only) for this process:
/// [`remove_stale`] leaves it alone while the lock is held.
pub fn hold(file: &File) -> std::io::Result<()> {
    if crate::lockfile::flock(file)? {
        Ok(())
    } else {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

/// Removes from `dir` the temporary files and directories of exports that were killed
/// (named like ours, held by no process). Best effort: what cannot be removed stays.
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0usize;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let path = entry.path();
        // Taking the lock proves no live export holds it.
        let Ok(held) = File::open(&path) else {
            continue;
        };
        if hold(&held).is_err() {
            continue;
        }
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    // The rollback journal SQLite keeps beside a copy being written (`VACUUM INTO`):
    // stale once its copy is gone.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(copy) = name
                .to_str()
                .filter(|n| n.starts_with(PREFIX))
                .and_then(|n| n.strip_suffix("-journal"))
            else {
                continue;
            };
            if copy.ends_with(SUFFIX)
                && !dir.join(copy).exists()
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        info!(dir = %dir.display(), removed, "removed what killed exports left behind");
    }
}

/// A directory the CSV files are written into, beside their destination, held (see
/// [`hold`]) until it is swapped in; removed if dropped before.
pub struct StagedDir {
    dir: tempfile::TempDir,
    _held: File,
}

impl StagedDir {
    /// A new staging directory in `parent`, with `mode`.
    pub fn new(parent: &Path, mode: u32) -> Result<StagedDir, ExportError> {
        use std::os::unix::fs::PermissionsExt;
        let failed = |e| ExportError::io("create a temporary directory in", parent)(e);
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(SUFFIX)
            .tempdir_in(parent)
            .map_err(failed)?;
        let held = File::open(dir.path()).map_err(failed)?;
        hold(&held).map_err(failed)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
            .map_err(failed)?;
        Ok(StagedDir { dir, _held: held })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Puts the staged directory at `target` in one step: a new `target` by a rename;
    /// an existing one (holding only `ours`, files an export writes) exchanged atomically
    /// with it, the old set then removed. Readers see the old set or the new, never a mix.
    pub fn swap_into(self, target: &Path, ours: &[String]) -> Result<(), ExportError> {
        let failed = |e| ExportError::io("put the CSV files in place at", target)(e);
        if !target.exists() {
            let staged = self.dir.keep();
            return std::fs::rename(&staged, target).map_err(failed);
        }
        if !target.is_dir() {
            return Err(ExportError::CsvNotADirectory {
                dir: target.to_path_buf(),
            });
        }
        let foreign: Vec<String> = std::fs::read_dir(target)
            .map_err(failed)?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !ours.contains(n))
            .collect();
        if !foreign.is_empty() {
            return Err(ExportError::CsvForeignFiles {
                dir: target.to_path_buf(),
                files: foreign,
            });
        }
        exchange(self.dir.path(), target).map_err(failed)?;
        // The old set is now at the staging path: dropping the TempDir removes it.
        drop(self);
        Ok(())
    }
}

/// Exchanges two paths atomically (`renameat2(RENAME_EXCHANGE)`); where the filesystem
/// cannot, moves `b` aside and `a` into place (a moment without `b`, never a mix).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two NUL-terminated paths that outlive the call; AT_FDCWD resolves them
    // relative to the working directory, as std's rename does.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        return Err(err);
    }
    let mut aside = a.as_os_str().to_owned();
    aside.push(format!("-old{SUFFIX}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(b, &aside)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&aside, a)
}
