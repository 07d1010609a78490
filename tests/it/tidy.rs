//! What the compiler cannot state about the shipped code, read from the source tree.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("a source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A file's shipped code: nothing of a test-only file, and a file's text up to its first
/// `#[cfg(test)]` (the tests module each file ends with).
fn shipped_text(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "tests.rs" || path.components().any(|c| c.as_os_str() == "tests") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("a source file");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The files of `src/` outside `owner` whose shipped code names `krate`.
fn naming_outside(krate: &str, owner: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .filter(|p| !p.starts_with(src.join(owner)) && p != &src.join(format!("{owner}.rs")))
        .filter(|p| {
            shipped_text(p)
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| l.contains(&format!("{krate}::")) || l.contains(&format!("use {krate}")))
        })
        .map(|p| p.strip_prefix(&src).unwrap_or(&p).display().to_string())
        .collect()
}

/// Only `store` opens the mirror, so every query of it is one of `Store`'s named methods and
/// its text lives in `src/store/`. The PostgreSQL driver is `replica`'s, but for `config`,
/// which reads `[replica.postgres] url` with the driver's own parser.
#[test]
fn only_store_names_rusqlite_and_only_replica_tokio_postgres() {
    assert_eq!(naming_outside("rusqlite", "store"), Vec::<String>::new());
    assert_eq!(
        naming_outside("libsqlite3_sys", "store"),
        Vec::<String>::new()
    );
    let mut postgres = naming_outside("tokio_postgres", "replica");
    postgres.retain(|f| !f.starts_with("config"));
    assert_eq!(postgres, Vec::<String>::new());
}
