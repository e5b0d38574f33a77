//! Request authentication. Handlers take these as arguments and never parse headers themselves.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use uuid::Uuid;

pub use crate::domain::ClientInfo;
use crate::{
    error::{ApiError, BearerRejection},
    state::AppState,
    tokens::keys,
};

/// A request with a valid access token of a session that is not revoked.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<String>,
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive), if any.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidToken); // two Authorization headers: ambiguous
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::InvalidToken),
    }
}

impl AuthUser {
    /// Verifies a Bearer token and checks that its session is not revoked (in memory while
    /// the deny-list is live, else in the database).
    pub async fn authenticate(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = match state.jwt.verify(token) {
            Err(ApiError::InvalidToken)
                if state.jwt.has_unknown_kid(token) && keys::reload_keys_throttled(state).await =>
            {
                state.jwt.verify(token)?
            }
            other => other?,
        };
        let span = tracing::Span::current();
        span.record("user_id", tracing::field::display(claims.sub));
        span.record("session_id", tracing::field::display(claims.sid));
        if state.revocations.is_revoked(&state.db, claims.sid).await? {
            return Err(ApiError::SessionRevoked);
        }
        Ok(Self {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
        })
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = BearerRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?.ok_or(ApiError::Unauthorized)?;
        Ok(Self::authenticate(state, token).await?)
    }
}

/// An [`AuthUser`] whose account has the `admin` role now (403 `forbidden` otherwise). The
/// roles are read from the database on every admin request, never from the token: a demoted
/// admin's tokens lose their rights at once, on every instance (ASVS 5.0 8.3.2).
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = BearerRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let access = crate::db::users::access_of(&state.db, user.user_id)
            .await
            .map_err(ApiError::from)?;
        match access {
            Some(a) if !a.disabled && crate::domain::has_admin_role(&a.roles) => Ok(Self(user)),
            _ => Err(ApiError::Forbidden.into()),
        }
    }
}

/// The client IP: the peer address, or with `trust_forwarded_for` the last `X-Forwarded-For`
/// hop (the one our own proxy appended). Unparsable hops fall back to the peer address.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let last_hop = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
            .and_then(|s| s.parse::<IpAddr>().ok());
        if last_hop.is_some() {
            return last_hop;
        }
    }
    peer
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = client_ip(&parts.headers, peer, state.config.trust_forwarded_for);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(crate::domain::MAX_USER_AGENT_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Ok(Self { ip, user_agent })
    }
}
