//! The API credentials: where they are read from, and how they are sent.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::{ApiConfig, AuthScheme, ConfigError};

/// Credentials in the environment that cannot be used (never their values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadCredentials {
    #[error("TOGGL_EMAIL must not contain ':'")]
    ColonInEmail,
    #[error("TOGGL_EMAIL is set but TOGGL_PASSWORD is not")]
    NoPassword,
    #[error("TOGGL_PASSWORD is set but TOGGL_EMAIL is not")]
    NoEmail,
    #[error("the API token is empty or contains whitespace or control characters")]
    Token,
}

/// The API credentials; never printed, never logged.
#[derive(Clone)]
pub enum Credentials {
    /// `TOGGL_API_TOKEN` or the systemd credential.
    Token(SecretString),
    /// `TOGGL_EMAIL` + `TOGGL_PASSWORD`.
    Login {
        email: String,
        password: SecretString,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token([redacted])"),
            Credentials::Login { .. } => f.write_str("Credentials::Login([redacted])"),
        }
    }
}

impl Credentials {
    /// From the process environment and `api.token_file`, in the documented order of
    /// precedence. Read afresh at every call: a run reads the key as it is now.
    pub fn load(api: &ApiConfig) -> Result<Credentials, ConfigError> {
        Credentials::from_lookup(|k| std::env::var(k).ok(), api.token_file.as_deref())
    }

    /// The same, reading variables through `var` (testable without touching the
    /// environment): `TOGGL_API_TOKEN`, then `token_file`, then `TOGGL_EMAIL` and
    /// `TOGGL_PASSWORD`, then `$CREDENTIALS_DIRECTORY/toggl_api_token`.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        token_file: Option<&Path>,
    ) -> Result<Credentials, ConfigError> {
        let nonempty = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if let Some(token) = nonempty("TOGGL_API_TOKEN") {
            return Credentials::token(token);
        }
        if let Some(path) = token_file {
            return Credentials::token_in(path);
        }
        match (nonempty("TOGGL_EMAIL"), nonempty("TOGGL_PASSWORD")) {
            (Some(email), Some(password)) => {
                if email.contains(':') {
                    return Err(BadCredentials::ColonInEmail.into());
                }
                return Ok(Credentials::Login {
                    email: email.trim().to_string(),
                    password: SecretString::from(password),
                });
            }
            (Some(_), None) => return Err(BadCredentials::NoPassword.into()),
            (None, Some(_)) => return Err(BadCredentials::NoEmail.into()),
            (None, None) => {}
        }
        if let Some(dir) = nonempty("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join("toggl_api_token");
            if path.exists() {
                return Credentials::token_in(&path);
            }
        }
        Err(ConfigError::NoCredentials)
    }

    /// The key in a file (surrounding whitespace ignored); an error names the file, never
    /// what it holds.
    fn token_in(path: &Path) -> Result<Credentials, ConfigError> {
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Credential {
            path: path.to_path_buf(),
            source,
        })?;
        let token = raw.trim();
        let problem = if token.is_empty() {
            Some("it is empty; write the API key in it")
        } else if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it holds more than one word; write only the API key in it")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ConfigError::CredentialFile {
                path: path.to_path_buf(),
                problem,
            }),
            None => Ok(Credentials::Token(SecretString::from(token.to_string()))),
        }
    }

    fn token(raw: String) -> Result<Credentials, ConfigError> {
        let token = raw.trim();
        if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(BadCredentials::Token.into());
        }
        Ok(Credentials::Token(SecretString::from(token.to_string())))
    }

    /// How these credentials go out under `scheme` (`auto` resolved).
    pub fn sent_as(&self, scheme: AuthScheme) -> SentAs {
        match (self, scheme) {
            (Credentials::Login { .. }, _) => SentAs::BasicLogin,
            (Credentials::Token(_), AuthScheme::Bearer) => SentAs::Bearer,
            (Credentials::Token(_), AuthScheme::Basic) => SentAs::BasicToken,
            (Credentials::Token(t), AuthScheme::Auto) => {
                if t.expose_secret().starts_with(FOCUS_KEY_PREFIX) {
                    SentAs::Bearer
                } else {
                    SentAs::BasicToken
                }
            }
        }
    }

    /// Whether the token looks like a Focus API key (`toggl_sk_…`).
    pub fn is_focus_key(&self) -> bool {
        matches!(self, Credentials::Token(t) if t.expose_secret().starts_with(FOCUS_KEY_PREFIX))
    }

    /// The `Authorization` header value for `scheme`.
    pub fn authorization(&self, scheme: AuthScheme) -> SecretString {
        let encode = |s: &str| base64(s.as_bytes());
        let value = match (self, self.sent_as(scheme)) {
            (Credentials::Token(t), SentAs::Bearer) => format!("Bearer {}", t.expose_secret()),
            (Credentials::Token(t), _) => {
                format!(
                    "Basic {}",
                    encode(&format!("{}:api_token", t.expose_secret()))
                )
            }
            (Credentials::Login { email, password }, _) => {
                format!(
                    "Basic {}",
                    encode(&format!("{email}:{}", password.expose_secret()))
                )
            }
        };
        SecretString::from(value)
    }
}

/// How a Focus API key starts.
pub const FOCUS_KEY_PREFIX: &str = "toggl_sk_";

/// How the credentials went out, for messages about a refusal (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentAs {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic <token>:api_token`.
    BasicToken,
    /// `Authorization: Basic <email>:<password>`.
    BasicLogin,
}

impl fmt::Display for SentAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SentAs::Bearer => "Bearer",
            SentAs::BasicToken => "Basic <token>:api_token",
            SentAs::BasicLogin => "Basic e-mail:password",
        })
    }
}

/// Standard base64 with padding (RFC 4648), for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
