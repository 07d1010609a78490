//! Reading a mirror from a directory this process cannot write (a BI user, `status` run
//! by another user): SQLite needs the `-shm` file to read a WAL database, and creates it
//! when missing, which such a reader cannot. When there is no `-wal` either (or it is
//! empty: every run ends with a truncating checkpoint), the database file alone is the
//! whole committed state, and it is opened `immutable`. Otherwise the directory is the
//! problem, and the error says so.

use std::path::Path;

use super::StoreError;

/// Whether `path` can be read without its `-wal` and `-shm` files; if not, `opening` (the
/// error of the ordinary open) with the directory named as the problem.
pub(super) fn without_shared_memory(path: &Path, opening: StoreError) -> Result<(), StoreError> {
    let wal = suffixed(path, "-wal");
    let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    if wal_empty {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Err(StoreError::DirectoryNotWritable {
        path: path.to_path_buf(),
        opening: Box::new(opening),
        dir: dir.to_path_buf(),
        shm: suffixed(path, "-shm"),
        wal,
    })
}

/// `file:PATH?immutable=1`, the path percent-encoded where a URI needs it.
pub(super) fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match *b {
            b'%' | b'?' | b'#' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn suffixed(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}
