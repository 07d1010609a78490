//! Reaching the PostgreSQL replica: the driver config from `[replica.postgres]` (whose rules
//! are `config::replica`'s), the password from the environment, TLS with rustls, and a
//! connection with bounded timeouts.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ReplicaError;
use crate::config::PostgresReplicaConfig;

/// Where the password comes from when `PGPASSWORD` is not set (systemd `LoadCredential=`).
pub const PASSWORD_CREDENTIAL: &str = "postgres_password";

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
        let mut config = pg.driver_config()?;
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
            let bad = |source: Box<dyn std::error::Error + Send + Sync>| ReplicaError::CaFile {
                path: path.clone(),
                source,
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.into()))?;
            for cert in certs {
                roots
                    .add(cert.map_err(|e| bad(e.into()))?)
                    .map_err(|e| bad(e.into()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ReplicaError::Tls)?
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
            let text =
                std::fs::read_to_string(&path).map_err(|source| ReplicaError::Credential {
                    path: path.clone(),
                    source,
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
