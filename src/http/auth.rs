//! /auth: register, and the token lifecycle: login, refresh, logout.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    db::{
        self,
        events::{self, Event},
        sessions::RevokeReason,
        users::User,
    },
    domain::{Email, NewPassword, Password},
    error::{ApiError, FieldError},
    http::{
        csrf::CsrfChecked,
        extractors::{ClientInfo, bearer_token},
    },
    http::{extract::Json, openapi::Problem},
    state::AppState,
    telemetry::metrics::outcome_of,
    tokens::{
        cookies::PresentedCookie,
        refresh::{self, RefreshToken},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// Trimmed and compared case-insensitively; at most 254 characters.
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
    /// 8 to 128 characters (any Unicode); on registration, not a common password.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    password: String,
}

/// Parses both fields, reporting every problem at once.
fn parse_credentials<P>(
    body: Credentials,
    parse_password: impl FnOnce(&str, String) -> Result<P, FieldError>,
) -> Result<(Email, P), ApiError> {
    let email = Email::parse("email", &body.email);
    let password = parse_password("password", body.password);
    match (email, password) {
        (Ok(e), Ok(p)) => Ok((e, p)),
        (e, p) => Err(ApiError::Validation(
            e.err().into_iter().chain(p.err()).collect(),
        )),
    }
}

/// Create an account.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", request_body = Credentials,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 403, description = "`registration_closed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    if !state.config.open_registration {
        return Err(ApiError::RegistrationClosed);
    }
    if let Some(ip) = client.ip {
        state.limit(|rl| rl.register(ip))?;
    }
    let (email, password) = parse_credentials(body, NewPassword::parse)?;
    // Cheap check first, so a taken email costs no hashing; the unique index decides races.
    if db::users::by_email(&state.db, &email).await?.is_some() {
        return Err(ApiError::EmailTaken);
    }
    let hash = state.hasher.hash(password.expose()).await?;
    let mut tx = state.db.begin().await?;
    let user = db::users::insert(&mut *tx, &email, &hash, &[]).await?;
    events::record(
        &mut *tx,
        &Event::new("user_registered", Some(user.id), &client).actor(user.id),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

/// The body of every response that carries a new access token.
#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    /// EdDSA JWT (`typ: at+jwt`) to send as `Authorization: Bearer`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    session_id: Uuid,
    user: User,
}

/// 200 with a fresh access token, the refresh cookie, and no-store caching (RFC 6749 §5.1).
fn token_response(
    state: &AppState,
    session_id: Uuid,
    user: User,
    cookie: HeaderValue,
) -> Result<Response, ApiError> {
    let (access_token, expires_in) = state.jwt.sign(user.id, session_id, &user.roles, i64::MAX)?;
    let body = TokenBody {
        access_token,
        token_type: "Bearer",
        expires_in,
        session_id,
        user,
    };
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    no_store(res.headers_mut());
    Ok(res)
}

pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Log in: an access token in the body, the refresh token in an HttpOnly cookie.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenBody,
         headers(("Set-Cookie" = String, description = "The refresh-token cookie"))),
        (status = 401, description = "`invalid_credentials` or `user_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    let result = try_login(&state, client, body).await;
    state.metrics.login(match &result {
        Ok(_) => "ok",
        Err(e) => outcome_of(e),
    });
    result
}

async fn try_login(
    state: &AppState,
    client: ClientInfo,
    body: Credentials,
) -> Result<Response, ApiError> {
    let (email, password) = parse_credentials(body, Password::parse)?;
    if let Some(ip) = client.ip {
        state.limit(|rl| rl.login(ip, &email))?;
    }
    let found = db::users::credentials_by_email(&state.db, &email).await?;
    // Unknown email and wrong password take the same path: one argon2 verification.
    let ok = state
        .hasher
        .verify(
            password.expose(),
            found.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await?;
    let user = match found {
        Some(c) if ok => c.user,
        other => {
            tracing::info!("login failed");
            let failed = Event::new("login_failed", other.map(|c| c.user.id), &client);
            events::record(
                &state.db,
                &failed.detail(json!({"reason": "invalid_credentials"})),
            )
            .await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    if user.disabled {
        let failed = Event::new("login_failed", Some(user.id), &client)
            .detail(json!({"reason": "user_disabled"}));
        events::record(&state.db, &failed).await?;
        return Err(ApiError::UserDisabled);
    }
    let token = RefreshToken::generate();
    let config = &state.config;
    let session = db::sessions::create(
        &state.db,
        user.id,
        &token.hash(),
        config.refresh_idle_ttl,
        config.session_max_age,
        client.user_agent.as_deref(),
        client.ip_string().as_deref(),
        config.access_ttl,
    )
    .await?;
    let ok = Event::new("login_succeeded", Some(user.id), &client)
        .session(session.id)
        .actor(user.id);
    events::record(&state.db, &ok).await?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "login");
    let cookie = state.cookies.set(&token, session.max_age_secs);
    token_response(state, session.id, user, cookie)
}

/// Silent refresh: rotates the refresh cookie and issues a new access token.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", security(("refresh_cookie" = [])),
    responses(
        (status = 200, description = "Rotated", body = TokenBody,
         headers(("Set-Cookie" = String, description = "The successor refresh-token cookie"))),
        (status = 401, description = "`refresh_token_missing`, `refresh_token_invalid`, `refresh_token_reused`, \
            `session_revoked`, `session_expired` or `user_disabled`; clears the cookie unless none was sent",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_rejected`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn refresh(
    _csrf: CsrfChecked,
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Response {
    let (res, outcome) = try_refresh(&state, &client, &headers).await;
    state.metrics.refresh(outcome);
    res
}

/// The response, and the outcome label for metrics.
async fn try_refresh(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
) -> (Response, &'static str) {
    if let Some(ip) = client.ip
        && let Err(e) = state.limit(|rl| rl.refresh(ip))
    {
        return (e.into_response(), "rate_limited");
    }
    let token = match state.cookies.read(headers) {
        PresentedCookie::Missing => {
            return (ApiError::RefreshTokenMissing.into_response(), "missing");
        }
        PresentedCookie::Malformed => {
            return (
                clear_cookie(state, ApiError::RefreshTokenInvalid.into_response()),
                "invalid",
            );
        }
        PresentedCookie::Token(t) => t,
    };
    let config = &state.config;
    let outcome = refresh::refresh(
        &state.db,
        &state.successor_key,
        &token,
        config.refresh_idle_ttl,
        config.refresh_grace,
        config.access_ttl,
    )
    .await;
    match outcome {
        Ok(r) => {
            tracing::info!(session_id = %r.session_id, user_id = %r.user.id, outcome = r.kind.as_str(), "refresh");
            let cookie = state.cookies.set(&r.successor, r.max_age_secs);
            let res = token_response(state, r.session_id, r.user, cookie)
                .unwrap_or_else(IntoResponse::into_response);
            (res, r.kind.as_str())
        }
        Err(f) => {
            if let Some((sid, uid)) = f.revoked_session {
                state.record_revoked(RevokeReason::RefreshTokenReused, &[sid]);
                let reused = Event::new("refresh_token_reused", Some(uid), client).session(sid);
                if let Err(e) = events::record(&state.db, &reused).await {
                    tracing::error!(error = %e, "recording an audit event failed");
                }
                tracing::warn!(session_id = %sid, "refresh token reuse detected; session revoked");
            }
            let label = outcome_of(&f.error);
            let status = f.error.status();
            let res = f.error.into_response();
            // Every 401 clears the cookie; a 503 leaves it, the token may still be good.
            let res = if status == StatusCode::UNAUTHORIZED {
                clear_cookie(state, res)
            } else {
                res
            };
            (res, label)
        }
    }
}

fn clear_cookie(state: &AppState, mut res: Response) -> Response {
    res.headers_mut()
        .append(header::SET_COOKIE, state.cookies.clear());
    no_store(res.headers_mut());
    res
}

/// Ends the session of the refresh cookie (or, without one, of the Bearer token). Idempotent.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth", security(("refresh_cookie" = []), ("bearer" = []), ()),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 403, description = "`csrf_rejected`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(
    _csrf: CsrfChecked,
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut session = None;
    if let PresentedCookie::Token(t) = state.cookies.read(&headers) {
        session = db::sessions::by_token(&state.db, &t.hash()).await?;
    }
    if session.is_none()
        && let Ok(Some(token)) = bearer_token(&headers)
    {
        // A revoked session's token still names the session (revoking again is a no-op).
        session = state.jwt.verify(token).ok().map(|c| (c.sid, c.sub));
    }
    if let Some((sid, uid)) = session {
        let mut tx = state.db.begin().await?;
        db::sessions::revoke(&mut *tx, sid, RevokeReason::Logout).await?;
        events::record(
            &mut *tx,
            &Event::new("logout", Some(uid), &client)
                .session(sid)
                .actor(uid),
        )
        .await?;
        tx.commit().await?;
        state.record_revoked(RevokeReason::Logout, &[sid]);
        tracing::info!(session_id = %sid, "logout");
    }
    Ok(clear_cookie(&state, StatusCode::NO_CONTENT.into_response()))
}
