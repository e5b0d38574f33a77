//! /auth: register, and the token lifecycle: login, refresh, logout.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    db::users::User,
    domain::RevokeReason,
    domain::{ClientInfo, Email, NewPassword, Password},
    error::{ApiError, FieldError, both},
    factors::password,
    http::{
        csrf::{self, CsrfChecked},
        extract::Json,
        extractors::bearer_token,
    },
    session::{self, Actor, Issued, login::Proof, revoke::Target},
    state::AppState,
    telemetry::metrics::outcome_of,
    tokens::{cookies::PresentedCookie, refresh::RefreshToken},
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
    both(
        Email::parse("email", &body.email),
        parse_password("password", body.password),
    )
}

crate::problems!(RegisterErrors: ApiError::RegistrationClosed, ApiError::EmailTaken, ApiError::RateLimited { retry_after_secs: 1 });

/// Create an account.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth", request_body = Credentials,
    responses(
        RegisterErrors,
        (status = 201, description = "The new user", body = User),
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
    if crate::db::users::by_email(&state.db, &email)
        .await?
        .is_some()
    {
        return Err(ApiError::EmailTaken);
    }
    let hash = state.hasher.hash(password.expose()).await?;
    let user =
        session::account::create_user(&state.db, &email, &hash, &[], Actor::Subject, &client)
            .await?;
    // The account exists either way: a limited or failed send only means the user asks for
    // another link (POST /auth/email/verify/request).
    let sent = match session::email::may_send(&state, &client, &user.email) {
        Ok(()) => session::email::send_verification(&state, &user, &client).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(user_id = %user.id, error = %e, "no verification email at registration");
    }
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

/// The body of every response that carries a new access token.
#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    /// JWT (`typ: at+jwt`, AUTHD_SIGNING_ALG) to send as `Authorization: Bearer`.
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
pub(super) fn token_response(state: &AppState, issued: Issued) -> Response {
    let cookie = state.cookies.set(&issued.refresh, issued.cookie_max_age);
    let body = TokenBody {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        session_id: issued.session_id,
        user: issued.user,
    };
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    no_store(res.headers_mut());
    res
}

pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

crate::problems!(LoginErrors: ApiError::InvalidCredentials, ApiError::UserDisabled, ApiError::RateLimited { retry_after_secs: 1 });

/// Log in: an access token in the body, the refresh token in an HttpOnly cookie.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", request_body = Credentials,
    responses(
        LoginErrors,
        (status = 200, description = "Logged in", body = TokenBody,
         headers(("Set-Cookie" = String, description = "The refresh-token cookie"))),
    )
)]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    let result = try_login(&state, &client, &headers, body).await;
    state.metrics.login(match &result {
        Ok(_) => "ok",
        Err(e) => outcome_of(e),
    });
    result
}

async fn try_login(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    body: Credentials,
) -> Result<Response, ApiError> {
    let (email, password) = parse_credentials(body, Password::parse)?;
    let verified = password::verify_login(state, &email, &password, client).await?;
    let presented = presented_if_same_site(state, headers);
    let issued =
        session::login::login(state, Proof::Password(verified), client, &presented).await?;
    Ok(token_response(state, issued))
}

/// The refresh tokens this browser sent, whose sessions a new sign-in supersedes; only for a
/// request that passes the CSRF origin check, so a cross-site sign-in form cannot end them.
pub(super) fn presented_if_same_site(state: &AppState, headers: &HeaderMap) -> Vec<RefreshToken> {
    let same_site = csrf::check(
        headers,
        &state.config.issuer.origin,
        &state.config.allowed_origins,
    )
    .is_ok();
    if same_site {
        state.cookies.read(headers).into_tokens()
    } else {
        Vec::new()
    }
}

crate::problems!(RefreshErrors: ApiError::RefreshTokenMissing, ApiError::RefreshTokenInvalid, ApiError::RefreshTokenReused, ApiError::SessionRevoked, ApiError::SessionExpired, ApiError::UserDisabled, ApiError::CsrfRejected, ApiError::RateLimited { retry_after_secs: 1 });

/// Silent refresh: rotates the refresh cookie and issues a new access token.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", security(("refresh_cookie" = [])),
    responses(
        RefreshErrors,
        (status = 200, description = "Rotated", body = TokenBody,
         headers(("Set-Cookie" = String, description = "The successor refresh-token cookie"))),
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
    let presented = match state.cookies.read(headers) {
        PresentedCookie::Missing => {
            return (ApiError::RefreshTokenMissing.into_response(), "missing");
        }
        PresentedCookie::Malformed => {
            return (
                clear_cookie(state, ApiError::RefreshTokenInvalid.into_response()),
                "invalid",
            );
        }
        PresentedCookie::Tokens(t) => t,
    };
    match session::refresh::refresh(state, &presented, client).await {
        Ok((issued, kind)) => {
            tracing::info!(session_id = %issued.session_id, user_id = %issued.user.id, outcome = kind.as_str(), "refresh");
            (token_response(state, issued), kind.as_str())
        }
        Err(f) => {
            let label = outcome_of(&f.error);
            let res = f.error.into_response();
            if f.clear_cookie {
                (clear_cookie(state, res), label)
            } else {
                (res, label)
            }
        }
    }
}

fn clear_cookie(state: &AppState, mut res: Response) -> Response {
    res.headers_mut()
        .append(header::SET_COOKIE, state.cookies.clear());
    no_store(res.headers_mut());
    res
}

crate::problems!(LogoutErrors: ApiError::CsrfRejected);

/// Ends the session of the refresh cookie (or, without one, of the Bearer token). Idempotent.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth", security(("refresh_cookie" = []), ("bearer" = []), ()),
    responses(
        LogoutErrors,
        (status = 204, description = "Logged out; the cookie is cleared"),
    )
)]
async fn logout(
    _csrf: CsrfChecked,
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The sessions the cookies are current for (a stale or foreign cookie ends nothing) ...
    let presented = state.cookies.read(&headers).into_tokens();
    let mut sessions = session::revoke::current_sessions(&state, &presented).await?;
    // ... or, without one, the session a Bearer token with a valid signature names, expired or
    // not (revoking a revoked session again is a no-op).
    if sessions.is_empty()
        && let Ok(Some(token)) = bearer_token(&headers)
        && let Ok(claims) = state.jwt.verify_ignoring_expiry(token)
    {
        sessions.push(claims.sid);
    }
    for sid in sessions {
        match session::revoke::revoke(
            &state,
            Target::Session(sid),
            RevokeReason::Logout,
            Actor::Subject,
            &client,
            Some(sid),
        )
        .await
        {
            Ok(_) | Err(ApiError::SessionNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(clear_cookie(&state, StatusCode::NO_CONTENT.into_response()))
}
