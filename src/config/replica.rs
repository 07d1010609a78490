//! `[replica]`: the replica's config and the rules of `[replica.postgres]` (no password in
//! the URL; TLS unless the host is loopback or a Unix socket), checked when the config is
//! read. `crate::replica` connects with [`PostgresReplicaConfig::driver_config`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tokio_postgres::config::{Host, SslMode};

use super::{ConfigError, Seconds};

/// `[replica]`: copies of the mirror elsewhere (none by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaConfig {
    /// `[replica.postgres]`: replicate every committed run into PostgreSQL.
    pub postgres: Option<PostgresReplicaConfig>,
}

/// `[replica.postgres]`. The password is never in the file: `PGPASSWORD` or
/// `$CREDENTIALS_DIRECTORY/postgres_password` (see `crate::replica`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresReplicaConfig {
    /// `postgres://user@host:port/db` (TLS required unless the host is loopback or a socket).
    pub url: String,
    /// The PostgreSQL schema the replica's tables and views live in.
    #[serde(default = "default_replica_schema")]
    pub schema: String,
    /// How long reaching the server may take before the replication is given up for this run.
    #[serde(default = "default_replica_connect_timeout")]
    pub connect_timeout: Seconds,
    /// PEM file of the CA that signed the server's certificate, when it is not a public one.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_replica_schema() -> String {
    "orgmirror".to_string()
}

fn default_replica_connect_timeout() -> Seconds {
    Seconds(5.0)
}

/// Checks `[replica.postgres]` without touching the environment or the network; the error
/// names the key.
pub fn validate(pg: &PostgresReplicaConfig) -> Result<(), ConfigError> {
    pg.driver_config().map(|_| ())
}

impl PostgresReplicaConfig {
    /// `url` and `schema` with every other key at its default.
    pub(crate) fn at(url: &str, schema: &str) -> PostgresReplicaConfig {
        PostgresReplicaConfig {
            url: url.to_string(),
            schema: schema.to_string(),
            connect_timeout: default_replica_connect_timeout(),
            ca_file: None,
        }
    }

    /// The URL as a driver config, with TLS made mandatory for remote hosts.
    pub fn driver_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        parse(self)
    }
}

fn parse(pg: &PostgresReplicaConfig) -> Result<tokio_postgres::Config, ConfigError> {
    let invalid = |field: &'static str, message: String| ConfigError::Invalid { field, message };
    let url_key = "replica.postgres.url";
    let text = pg.url.trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(invalid(
            url_key,
            "must be a URL such as \"postgres://orgmirror@db.example.com/reporting\"".to_string(),
        ));
    }
    let mut config: tokio_postgres::Config = text.parse().map_err(|e| {
        invalid(
            url_key,
            format!("`{}` is not a PostgreSQL URL: {e}", redact(text)),
        )
    })?;
    if config.get_password().is_some() {
        return Err(invalid(url_key, "must not contain a password; set PGPASSWORD or provide $CREDENTIALS_DIRECTORY/postgres_password"
                .to_string(),
        ));
    }
    if config.get_user().is_none() {
        return Err(invalid(
            url_key,
            "names no user (postgres://USER@host/db)".to_string(),
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(invalid(url_key, "names no host".to_string()));
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
            return Err(invalid(url_key, format!(
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
        return Err(invalid(
            "replica.postgres.schema",
            format!(
                "`{}` is not a plain schema name (lowercase letters, digits and _, at most 63)",
                pg.schema
            ),
        ));
    }
    if pg.connect_timeout.0 <= 0.0 {
        return Err(invalid(
            "replica.postgres.connect_timeout",
            "must be greater than zero".to_string(),
        ));
    }
    if let Some(ca) = &pg.ca_file {
        if !ca.is_file() {
            return Err(invalid(
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let Err(ConfigError::Invalid { field, message }) =
            validate(&pg("postgres://u@db.example.com/db?sslmode=disable"))
        else {
            panic!("clear text to a remote host")
        };
        assert_eq!(field, "replica.postgres.url");
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

    fn field_of(refused: Result<(), ConfigError>) -> &'static str {
        match refused {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
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
            assert_eq!(field_of(validate(&pg(url))), key, "{url}");
        }
        let mut bad_schema = pg("postgres://u@127.0.0.1/db");
        bad_schema.schema = "Org; DROP".to_string();
        assert_eq!(field_of(validate(&bad_schema)), "replica.postgres.schema");
    }
}
