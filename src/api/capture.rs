//! Recording what the API answered: each exchange (method, path and query, status, the
//! headers that matter, raw body), for `sync --capture DIR` (a bug report, an offline
//! fixture that `fake-api --replay DIR` serves back) and for `check`'s compatibility report.
//!
//! **A recording never holds a credential**: request headers are not recorded at all, only
//! the response headers named by [`kept_header`] are, and every recorded text and body is
//! scrubbed with the client's redaction ([`Client::redact`]).
//!
//! On disk, exchange `n` (from 1, in the order the answers arrived) is a file pair:
//! `NNNN.json` (an [`ExchangeFile`]) and `NNNN.body` (the body, byte for byte). An answer
//! whose body could not be read whole (too large, cut off) is not recorded: the run fails
//! on it or asks again. Files are written on the sending task: a capture is a diagnostic
//! run, and its small writes keep the order of the answers without a queue.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::transport::Request;
use super::Client;

/// One answer as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Below `api.base_url`, e.g. `/organizations/1001/users`.
    pub path: String,
    /// The encoded query string, without `?` (empty when none).
    pub query: String,
    pub status: u16,
    /// The kept response headers ([`kept_header`]), names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Exchange {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `GET /organizations/1001/users?page=1`.
    pub fn request_line(&self) -> String {
        request_line(&self.method, &self.path, &self.query)
    }
}

/// `METHOD path?query` (no `?` without a query).
pub fn request_line(method: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path}?{query}")
    }
}

/// The metadata file of one recorded exchange (`NNNN.json`); the body is beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeFile {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: String,
    pub status: u16,
    /// `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body's file name, beside this one.
    pub body_file: String,
}

/// A recording that could not be started, written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture directory {dir}: {message}")]
    Directory { dir: PathBuf, message: String },
    #[error("capture {file}: {message}")]
    File { file: PathBuf, message: String },
}

/// Where a client's exchanges go: a directory (`sync --capture`) and/or memory (`check`).
#[derive(Debug)]
pub struct Recorder {
    dir: Option<PathBuf>,
    keep: bool,
    inner: Mutex<RecorderState>,
}

#[derive(Debug, Default)]
struct RecorderState {
    written: usize,
    kept: Vec<Exchange>,
    /// The first write that failed; later exchanges are not written.
    failed: Option<String>,
}

impl Recorder {
    /// Records into `dir`, created (mode 0700) if missing; an existing directory must be
    /// empty, so that a recording is never mixed with another one.
    pub fn to_dir(dir: &Path) -> Result<Arc<Recorder>, CaptureError> {
        let problem = |message: String| CaptureError::Directory {
            dir: dir.to_path_buf(),
            message,
        };
        if dir.exists() {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| problem(format!("cannot be read: {e}")))?;
            if entries.next().is_some() {
                return Err(problem(
                    "is not empty: give a new directory, so that two recordings are not mixed"
                        .to_string(),
                ));
            }
        } else {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| problem(format!("cannot be created: {e}")))?;
        }
        Ok(Arc::new(Recorder {
            dir: Some(dir.to_path_buf()),
            keep: false,
            inner: Mutex::new(RecorderState::default()),
        }))
    }

    /// Keeps every exchange in memory ([`Recorder::exchanges`]).
    pub fn in_memory() -> Arc<Recorder> {
        Arc::new(Recorder {
            dir: None,
            keep: true,
            inner: Mutex::new(RecorderState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exchanges kept in memory, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().kept.clone()
    }

    /// How many exchanges were written to the directory.
    pub fn written(&self) -> usize {
        self.lock().written
    }

    /// The first write that failed, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// The directory recorded into.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn record(&self, exchange: Exchange) {
        let mut state = self.lock();
        if let Some(dir) = &self.dir {
            if state.failed.is_none() {
                match write_exchange(dir, state.written + 1, &exchange) {
                    Ok(()) => state.written += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "the capture stops: an exchange could not be written");
                        state.failed = Some(e.to_string());
                    }
                }
            }
        }
        if self.keep {
            state.kept.push(exchange);
        }
    }
}

/// Whether a response header is recorded: what a replay or a bug report needs (content
/// type, quota, paging, rate limiting, redirects, trace ids), nothing that could carry a
/// session (`Set-Cookie`) or is noise.
pub fn kept_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "content-type",
        "retry-after",
        "location",
        "link",
        "www-authenticate",
        "x-records",
        "x-pages",
        "x-page",
        "x-page-size",
        "x-total-count",
        "x-request-id",
        "x-trace-id",
    ];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || name.starts_with("x-toggl-")
}

/// Status and headers of an answer whose body is still to be read.
pub(super) struct Pending {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Client {
    /// Sends every answer this client receives from now on to `recorder` as well.
    pub fn record_with(&mut self, recorder: Arc<Recorder>) {
        self.recorder = Some(recorder);
    }

    /// The status and kept headers of an answer, when this client records.
    pub(super) fn capture_start(&self, status: u16, headers: &HeaderMap) -> Option<Pending> {
        self.recorder.as_ref()?;
        let headers = headers
            .iter()
            .filter(|(name, _)| kept_header(name.as_str()))
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), self.redact(value))
            })
            .collect();
        Some(Pending { status, headers })
    }

    /// Records an answer with its body (as read: a body cut short is recorded cut short).
    pub(super) fn capture_finish(&self, pending: Option<Pending>, req: &Request, body: &[u8]) {
        let (Some(pending), Some(recorder)) = (pending, &self.recorder) else {
            return;
        };
        recorder.record(Exchange {
            method: req.method_name.to_string(),
            path: self.redact(req.path.clone()),
            query: self.redact(req.query.as_str().to_string()),
            status: pending.status,
            headers: pending.headers,
            body: self.redact_bytes(body).into_owned(),
        });
    }

    /// [`Client::redact`] on bytes that need not be UTF-8.
    fn redact_bytes<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out = Cow::Borrowed(body);
        for secret in &self.secrets() {
            let secret = secret.expose_secret().as_bytes();
            if secret.len() < 4 {
                continue;
            }
            if out.windows(secret.len()).any(|w| w == secret) {
                out = Cow::Owned(replace_bytes(&out, secret, b"[redacted]"));
            }
        }
        out
    }
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn write_exchange(dir: &Path, n: usize, exchange: &Exchange) -> Result<(), CaptureError> {
    let body_file = format!("{n:04}.body");
    let meta = ExchangeFile {
        method: exchange.method.clone(),
        path: exchange.path.clone(),
        query: exchange.query.clone(),
        status: exchange.status,
        headers: exchange.headers.clone(),
        body_file: body_file.clone(),
    };
    let mut text = serde_json::to_vec_pretty(&meta).map_err(|e| CaptureError::File {
        file: dir.join(format!("{n:04}.json")),
        message: e.to_string(),
    })?;
    text.push(b'\n');
    // The body first: a metadata file is only ever beside a complete body.
    write_private(&dir.join(&body_file), &exchange.body)?;
    write_private(&dir.join(format!("{n:04}.json")), &text)
}

/// Writes a file readable by its owner only: a recording holds the organization's data.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CaptureError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let problem = |e: std::io::Error| CaptureError::File {
        file: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file = options.open(path).map_err(problem)?;
    file.write_all(bytes).map_err(problem)?;
    Ok(())
}

/// Reads a recording written by [`Recorder::to_dir`], in order.
pub fn read_dir(dir: &Path) -> Result<Vec<Exchange>, CaptureError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CaptureError::Directory {
        dir: dir.to_path_buf(),
        message: format!("cannot be read: {e}"),
    })?;
    let mut metas: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CaptureError::Directory {
            dir: dir.to_path_buf(),
            message: format!("cannot be read: {e}"),
        })?;
        let path = entry.path();
        let number = path
            .extension()
            .filter(|ext| *ext == "json")
            .and(path.file_stem())
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(n) = number {
            metas.push((n, path));
        }
    }
    if metas.is_empty() {
        return Err(CaptureError::Directory {
            dir: dir.to_path_buf(),
            message: "holds no recorded exchange (NNNN.json files written by `sync --capture`)"
                .to_string(),
        });
    }
    metas.sort();
    metas
        .into_iter()
        .map(|(_, meta_path)| {
            let problem = |message: String| CaptureError::File {
                file: meta_path.clone(),
                message,
            };
            let text = std::fs::read(&meta_path).map_err(|e| problem(e.to_string()))?;
            let meta: ExchangeFile =
                serde_json::from_slice(&text).map_err(|e| problem(e.to_string()))?;
            if meta.body_file.contains('/') || meta.body_file.contains("..") {
                return Err(problem(format!(
                    "body_file {:?} must name a file beside it",
                    meta.body_file
                )));
            }
            let body_path = dir.join(&meta.body_file);
            let body = std::fs::read(&body_path).map_err(|e| CaptureError::File {
                file: body_path.clone(),
                message: e.to_string(),
            })?;
            Ok(Exchange {
                method: meta.method,
                path: meta.path,
                query: meta.query,
                status: meta.status,
                headers: meta.headers,
                body,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_headers_that_matter_are_kept() {
        for name in [
            "Content-Type",
            "X-Toggl-Quota-Remaining",
            "x-toggl-quota-resets-in",
            "X-Records",
            "X-Pages",
            "X-Page",
            "X-Page-Size",
            "Retry-After",
        ] {
            assert!(kept_header(name), "{name}");
        }
        for name in ["authorization", "set-cookie", "cookie", "date", "server"] {
            assert!(!kept_header(name), "{name}");
        }
    }

    #[test]
    fn a_recording_reads_back_as_written_and_refuses_to_mix() {
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("capture");
        let recorder = Recorder::to_dir(&capture).unwrap();
        let exchanges = [
            Exchange {
                method: "GET".into(),
                path: "/organizations/1/roles".into(),
                query: String::new(),
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"items":[]}"#.to_vec(),
            },
            Exchange {
                method: "GET".into(),
                path: "/organizations/1/users".into(),
                query: "page=1&per_page=200".into(),
                status: 400,
                headers: vec![],
                body: vec![0xff, 0, b'x'],
            },
        ];
        for e in &exchanges {
            recorder.record(e.clone());
        }
        assert_eq!(recorder.written(), 2);
        assert_eq!(read_dir(&capture).unwrap(), exchanges);
        assert!(matches!(
            Recorder::to_dir(&capture),
            Err(CaptureError::Directory { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(capture.join("0001.body"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bytes_are_replaced_wherever_they_are() {
        assert_eq!(
            replace_bytes(b"abSECRETcdSECRET", b"SECRET", b"[r]"),
            b"ab[r]cd[r]".to_vec()
        );
        assert_eq!(
            replace_bytes(b"SECRE", b"SECRET", b"[r]"),
            b"SECRE".to_vec()
        );
    }
}
