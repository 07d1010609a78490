//! The progress line a run shows on a terminal: one per entity, its page, rows, requests
//! and quota.

use std::io::{IsTerminal, Write};

use crate::api::PageProgress;

/// A progress line per entity on stderr, only on a terminal.
pub(super) struct ProgressLine {
    enabled: bool,
    current: Option<&'static str>,
}

impl ProgressLine {
    pub(super) fn new(wanted: bool) -> ProgressLine {
        ProgressLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            current: None,
        }
    }

    pub(super) fn report(&mut self, p: &PageProgress) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.current.is_some_and(|c| c != p.entity) {
            let _ = writeln!(err);
        }
        self.current = Some(p.entity);
        let left = p
            .quota_remaining
            .map(|q| format!(", {q} requests left this hour"))
            .unwrap_or_default();
        let paced = if p.pacing_wait.is_zero() {
            String::new()
        } else {
            format!(", {:.0}s waiting for pacing", p.pacing_wait.as_secs_f64())
        };
        let _ = write!(
            err,
            "\r{:<6} page {:>4}, {:>7} rows, {} requests{left}{paced}\x1b[K",
            p.entity, p.page, p.rows, p.requests
        );
        let _ = err.flush();
    }

    pub(super) fn done(&mut self) {
        if self.enabled && self.current.take().is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}
