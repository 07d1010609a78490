//! `tracing` output: human lines on a terminal, one JSON object per line for journald
//! and log shippers. `RUST_LOG` wins over `log.level`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The scheduler library narrates its own start ("Uninited", "Job creator created") at
    // INFO: noise in the journal. Its warnings stay, and a filter that names it wins.
    let named = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = match "tokio_cron_scheduler=warn".parse() {
        Ok(quiet) if !named.contains("tokio_cron_scheduler") => filter.add_directive(quiet),
        _ => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
}
