//! Reaching the PostgreSQL replica: the `[replica.postgres]` URL's rules (no password in
//! it; TLS unless the host is loopback or a Unix socket), the password from the
//! environment, TLS with rustls, and a connection with bounded timeouts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::{Host, SslMode};

use super::ReplicaError;
use crate::config::PostgresReplicaConfig;

/// Where the password comes from when `PGPASSWORD` is not set (systemd `LoadCredential=`).
pub const PASSWORD_CREDENTIAL: &str = "postgres_password";

/// Checks `[replica.postgres]` without touching the environment or the network; the error
/// names the key.
pub fn validate(pg: &PostgresReplicaConfig) -> Result<(), (&'static str, String)> {
    parse(pg).map(|_| ())
}

/// The URL as a driver config, with TLS made mandatory for remote hosts.
fn parse(pg: &PostgresReplicaConfig) -> Result<tokio_postgres::Config, (&'static str, String)> {
    let url_key = "replica.postgres.url";
    let text = pg.url.trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err((
            url_key,
            "must be a URL such as \"postgres://orgmirror@db.example.com/reporting\"".to_string(),
        ));
    }
    let mut config: tokio_postgres::Config = text.parse().map_err(|e| {
        (
            url_key,
            format!("`{}` is not a PostgreSQL URL: {e}", redact(text)),
        )
    })?;
    if config.get_password().is_some() {
        return Err((
            url_key,
            "must not contain a password; set PGPASSWORD or provide $CREDENTIALS_DIRECTORY/postgres_password"
                .to_string(),
        ));
    }
    if config.get_user().is_none() {
        return Err((
            url_key,
            "names no user (postgres://USER@host/db)".to_string(),
        ));
    }
    if config.get_hosts().is_empty() {
        return Err((url_key, "names no host".to_string()));
    }
    let remote: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            Host::Tcp(name) if !is_loopback(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !remote.is_empty() {
        if config.get_ssl_mode() == SslMode::Disable {
            return Err((
                url_key,
                format!(
                    "sslmode=disable to {}: the password would travel in clear text; TLS is required except to loopback or a Unix socket",
                    remote.join(", ")
                ),
            ));
        }
        config.ssl_mode(SslMode::Require);
    } else if !text.contains("sslmode=") {
        // Loopback or a socket: no TLS unless the URL asks for it. (The driver's default,
        // prefer, would try TLS and fail on a local server's self-signed certificate, where
        // libpq's prefer does not verify it.)
        config.ssl_mode(SslMode::Disable);
    }
    let schema_ok = {
        let s = pg.schema.as_bytes();
        !s.is_empty()
            && s.len() <= 63
            && (s[0].is_ascii_lowercase() || s[0] == b'_')
            && s.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
    };
    if !schema_ok {
        return Err((
            "replica.postgres.schema",
            format!(
                "`{}` is not a plain schema name (lowercase letters, digits and _, at most 63)",
                pg.schema
            ),
        ));
    }
    if pg.connect_timeout.0 <= 0.0 {
        return Err((
            "replica.postgres.connect_timeout",
            "must be greater than zero".to_string(),
        ));
    }
    if let Some(ca) = &pg.ca_file {
        if !ca.is_file() {
            return Err((
                "replica.postgres.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    Ok(config)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL with anything after `:` in its user part hidden (only for messages about a URL
/// that is refused anyway).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &user[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A configured replica, ready to connect.
pub struct Target {
    config: tokio_postgres::Config,
    pub schema: String,
    /// `postgres://user@host/db`, for messages (never holds a password).
    pub display: String,
    ca_file: Option<std::path::PathBuf>,
    timeout: Duration,
}

impl Target {
    /// From the config and the process environment (the password).
    pub fn from_config(pg: &PostgresReplicaConfig) -> Result<Target, ReplicaError> {
        Target::with_password(pg, password_from(|k| std::env::var(k).ok())?)
    }

    fn with_password(
        pg: &PostgresReplicaConfig,
        password: Option<SecretString>,
    ) -> Result<Target, ReplicaError> {
        let mut config = parse(pg)
            .map_err(|(field, message)| ReplicaError::Config(format!("{field}: {message}")))?;
        if let Some(p) = &password {
            config.password(p.expose_secret().as_bytes());
        }
        let timeout = pg.connect_timeout.duration();
        config
            .application_name("orgmirror")
            .connect_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        // A server that stops answering mid-copy fails the attempt instead of hanging it.
        config.tcp_user_timeout(Duration::from_secs(60));
        Ok(Target {
            display: pg.url.trim().to_string(),
            schema: pg.schema.clone(),
            ca_file: pg.ca_file.clone(),
            config,
            timeout,
        })
    }

    /// Connects (within `connect_timeout`), with `search_path` on the replica's schema and
    /// the session in UTC.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ReplicaError> {
        let tls = self.tls()?;
        let connecting = self.config.connect(tls);
        // The driver's timeout covers each host's socket; this bounds name lookups too.
        let (client, connection) =
            match tokio::time::timeout(self.timeout + Duration::from_secs(1), connecting).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(self.connect_error(error_text(&e))),
                Err(_) => {
                    return Err(self.connect_error(format!(
                        "no answer within replica.postgres.connect_timeout ({} s)",
                        self.timeout.as_secs_f64()
                    )))
                }
            };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(|e| self.error("cannot set up the session", e))?;
        Ok(client)
    }

    fn connect_error(&self, message: String) -> ReplicaError {
        ReplicaError::Connect {
            target: self.display.clone(),
            message,
        }
    }

    /// An error of the replica's server, with what was being done.
    pub fn error(&self, context: &str, source: tokio_postgres::Error) -> ReplicaError {
        ReplicaError::Postgres {
            target: self.display.clone(),
            context: context.to_string(),
            message: error_text(&source),
        }
    }

    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ReplicaError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            use rustls::pki_types::pem::PemObject;
            let bad = |message: String| {
                ReplicaError::Config(format!(
                    "replica.postgres.ca_file: {}: {message}",
                    path.display()
                ))
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ReplicaError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// The message of a driver error with its causes (the driver's own Display stops at "db error").
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    text
}

/// `PGPASSWORD`, then `$CREDENTIALS_DIRECTORY/postgres_password`; none is fine (a server
/// that trusts the host or the socket's peer).
pub fn password_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, ReplicaError> {
    if let Some(p) = var("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Ok(Some(SecretString::from(p)));
    }
    if let Some(dir) = var("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty()) {
        let path = std::path::Path::new(&dir).join(PASSWORD_CREDENTIAL);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ReplicaError::Config(format!("cannot read credential {}: {e}", path.display()))
            })?;
            let password = text.trim_end_matches(['\n', '\r']).to_string();
            return Ok(Some(SecretString::from(password)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Seconds;

    fn pg(url: &str) -> PostgresReplicaConfig {
        PostgresReplicaConfig {
            url: url.to_string(),
            schema: "orgmirror".to_string(),
            connect_timeout: Seconds(5.0),
            ca_file: None,
        }
    }

    #[test]
    fn tls_is_required_except_to_loopback_or_a_socket() {
        for ok in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db?sslmode=disable",
            "postgres://u@[::1]:5/db",
            "postgresql://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u@db.example.com/db",
            "postgres://u@db.example.com/db?sslmode=require",
        ] {
            assert!(validate(&pg(ok)).is_ok(), "{ok}: {:?}", validate(&pg(ok)));
        }
        let (key, message) = validate(&pg("postgres://u@db.example.com/db?sslmode=disable"))
            .expect_err("clear text to a remote host");
        assert_eq!(key, "replica.postgres.url");
        assert!(message.contains("clear text"), "{message}");
        // Prefer (the default) becomes Require for a remote host.
        let parsed = parse(&pg("postgres://u@db.example.com/db")).unwrap();
        assert_eq!(parsed.get_ssl_mode(), SslMode::Require);
        // To loopback: TLS only when the URL asks for it.
        let parsed = parse(&pg("postgres://u@127.0.0.1/db")).unwrap();
        assert_eq!(parsed.get_ssl_mode(), SslMode::Disable);
        let parsed = parse(&pg("postgres://u@localhost/db?sslmode=require")).unwrap();
        assert_eq!(parsed.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_showing_it() {
        let err = crate::config::Config::parse(
            "[api]\norganization_id = 1\nworkspace_id = 2\n[replica.postgres]\nurl = \"postgres://u:hunter2@db.example.com/db\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("replica.postgres.url") && err.contains("PGPASSWORD"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        for (url, key) in [
            ("mysql://u@h/db", "replica.postgres.url"),
            ("postgres://h/db", "replica.postgres.url"),
        ] {
            assert_eq!(validate(&pg(url)).unwrap_err().0, key, "{url}");
        }
        let mut bad_schema = pg("postgres://u@127.0.0.1/db");
        bad_schema.schema = "Org; DROP".to_string();
        assert_eq!(
            validate(&bad_schema).unwrap_err().0,
            "replica.postgres.schema"
        );
    }

    #[test]
    fn the_password_comes_from_pgpassword_then_the_credential_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PASSWORD_CREDENTIAL), "from-file\n").unwrap();
        let d = dir.path().to_string_lossy().to_string();
        let both = |k: &str| match k {
            "PGPASSWORD" => Some("from-env".to_string()),
            "CREDENTIALS_DIRECTORY" => Some(d.clone()),
            _ => None,
        };
        let p = password_from(both).unwrap().unwrap();
        assert_eq!(p.expose_secret(), "from-env");
        let file_only = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone());
        let p = password_from(file_only).unwrap().unwrap();
        assert_eq!(p.expose_secret(), "from-file");
        assert!(password_from(|_| None).unwrap().is_none());
    }
}
