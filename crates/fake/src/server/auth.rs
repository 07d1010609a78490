//! Which credentials a request carries, and the refusal of those the fake does not accept.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;

use super::Reply;
use crate::handle::FakeState;
use crate::options::FakeProfile;
use crate::{KEY_EXPIRED, KEY_REVOKED};

/// What credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    /// The accepted key or token (which may have run out).
    Key,
    /// The accepted e-mail and password.
    Login,
    /// A key or token that a newer one replaced.
    Revoked,
    /// Nothing the fake accepts.
    Refused,
}

/// Which credential the request carries.
fn presented(s: &FakeState, headers: &HeaderMap) -> Presented {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Presented::Refused;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    let key_or_revoked = |given: &str, key: &str| {
        if !key.is_empty() && given == key {
            Presented::Key
        } else if s.revoked.iter().any(|old| old == given) {
            Presented::Revoked
        } else {
            Presented::Refused
        }
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        // The focus profile takes an API key as Bearer; the seed's fake took its token.
        let key = match s.profile {
            FakeProfile::Focus => &s.api_key,
            FakeProfile::Seed => &s.token,
        };
        return key_or_revoked(rest, key);
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Presented::Refused;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
        return Presented::Refused;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Presented::Refused;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return Presented::Refused;
    };
    if password == "api_token" {
        return key_or_revoked(user, &s.token);
    }
    if !s.email.is_empty() && user.eq_ignore_ascii_case(&s.email) && password == s.password {
        Presented::Login
    } else {
        Presented::Refused
    }
}

/// The refusal of a request's credentials, or `None` when they are accepted (a key's
/// use is counted against its expiry).
pub(super) fn refuse_credentials(s: &mut FakeState, headers: &HeaderMap) -> Option<Reply> {
    let profile = s.profile;
    // The reference page knows only 403 for credentials it refuses.
    let refused = |reason: &str| match profile {
        FakeProfile::Seed => Reply::text(
            StatusCode::FORBIDDEN,
            format!("User does not have access: {reason}"),
        ),
        FakeProfile::Focus => Reply::error(profile, StatusCode::UNAUTHORIZED, reason),
    };
    match presented(s, headers) {
        Presented::Login => None,
        Presented::Key if s.key_expired() => Some(refused(KEY_EXPIRED)),
        Presented::Key => {
            s.key_uses += 1;
            None
        }
        Presented::Revoked => Some(refused(KEY_REVOKED)),
        Presented::Refused => Some(match profile {
            FakeProfile::Seed => refused("missing or invalid credentials"),
            FakeProfile::Focus => refused("invalid or missing API key"),
        }),
    }
}
