//! The one error type of the HTTP API, rendered as `application/problem+json` (RFC 9457) with a
//! stable machine-readable `code`. Nothing internal (driver text, SQL, stack) reaches a body.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Two parsed fields, or `validation_failed` listing the errors of both at once (a client
/// learns every problem of a request in one round trip).
pub fn both<A, B>(a: Result<A, FieldError>, b: Result<B, FieldError>) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(ApiError::Validation(
            a.err().into_iter().chain(b.err()).collect(),
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("a Bearer access token is required")]
    Unauthorized,
    #[error("the access token is not valid")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the session has been revoked")]
    SessionRevoked,
    #[error("the session has expired")]
    SessionExpired,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    UserDisabled,
    #[error("no refresh token cookie was sent")]
    RefreshTokenMissing,
    #[error("the refresh token is not valid")]
    RefreshTokenInvalid,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("you are not allowed to do this")]
    Forbidden,
    #[error("cross-site request rejected")]
    CsrfRejected,
    #[error("registration is closed")]
    RegistrationClosed,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    #[error("no such session")]
    SessionNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("this email is already registered")]
    EmailTaken,
    #[error("this link or token is unknown, used or expired")]
    EmailTokenInvalid,
    #[error("the code is wrong, expired or no longer valid; request a new one")]
    EmailCodeInvalid,
    #[error("confirm your email address before signing in")]
    EmailNotVerified,
    #[error("the request took too long")]
    RequestTimeout,
    #[error("too many requests; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable,
    /// Unavailable because the database is; trips the fast-fail breaker (see `dbhealth`).
    #[error("the service is temporarily unavailable; retry later")]
    DatabaseUnavailable,
    /// Anything unexpected. The message is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }

    pub fn validation(field: &str, message: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Validation(_) | InvalidJson(_) | EmailTokenInvalid => StatusCode::BAD_REQUEST,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Unauthorized | InvalidToken | TokenExpired | SessionRevoked | SessionExpired
            | InvalidCredentials | UserDisabled | RefreshTokenMissing | RefreshTokenInvalid
            | RefreshTokenReused | EmailCodeInvalid => StatusCode::UNAUTHORIZED,
            Forbidden | CsrfRejected | RegistrationClosed | EmailNotVerified => {
                StatusCode::FORBIDDEN
            }
            NotFound | SessionNotFound | UserNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            EmailTaken => StatusCode::CONFLICT,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable | DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable problem code.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            Validation(_) => "validation_failed",
            InvalidJson(_) => "invalid_json",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            Unauthorized => "unauthorized",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            SessionRevoked => "session_revoked",
            SessionExpired => "session_expired",
            InvalidCredentials => "invalid_credentials",
            UserDisabled => "user_disabled",
            RefreshTokenMissing => "refresh_token_missing",
            RefreshTokenInvalid => "refresh_token_invalid",
            RefreshTokenReused => "refresh_token_reused",
            Forbidden => "forbidden",
            CsrfRejected => "csrf_rejected",
            RegistrationClosed => "registration_closed",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            SessionNotFound => "session_not_found",
            UserNotFound => "user_not_found",
            EmailTaken => "email_taken",
            EmailTokenInvalid => "email_token_invalid",
            EmailCodeInvalid => "email_code_invalid",
            EmailNotVerified => "email_not_verified",
            RequestTimeout => "request_timeout",
            RateLimited { .. } => "rate_limited",
            Unavailable | DatabaseUnavailable => "unavailable",
            Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'static str,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let problem = Problem {
            r#type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code: self.code(),
            detail: self.to_string(),
            errors: match &self {
                ApiError::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from((*retry_after_secs).max(1)),
                );
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::DatabaseUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if matches!(self, ApiError::DatabaseUnavailable) {
            res.extensions_mut().insert(DatabaseDown);
        }
        res
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::Validation(vec![err])
    }
}

impl From<crate::db::users::InsertError> for ApiError {
    fn from(err: crate::db::users::InsertError) -> Self {
        match err {
            crate::db::users::InsertError::EmailTaken => ApiError::EmailTaken,
            crate::db::users::InsertError::Db(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            // The pool could not hand out a connection in time, or the database is gone:
            // a retryable 503, not a 500.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::DatabaseUnavailable
            }
            sqlx::Error::Database(db) if is_unavailable_sqlstate(db.code().as_deref()) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::DatabaseUnavailable
            }
            _ => ApiError::Internal(err.to_string()),
        }
    }
}

/// SQLSTATEs that mean "the database cannot serve us right now": connection exceptions (08),
/// shutdown/crash (57P), too many connections (53300), and a database or login that is gone
/// (3D000, 28xxx) while we try to (re)connect.
fn is_unavailable_sqlstate(code: Option<&str>) -> bool {
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P") || c.starts_with("28") || c == "53300" || c == "3D000")
}

/// Marks a response whose 503 came from the database (read by the edge middleware).
#[derive(Clone, Copy, Debug)]
pub struct DatabaseDown;

/// A Bearer-authentication failure: the same problem, plus the RFC 6750 challenge.
#[derive(Debug)]
pub struct BearerRejection(pub ApiError);

impl IntoResponse for BearerRejection {
    fn into_response(self) -> Response {
        let challenge = match self.0 {
            ApiError::Unauthorized => Some("Bearer"),
            ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::SessionRevoked
            | ApiError::SessionExpired
            | ApiError::UserDisabled => Some(r#"Bearer error="invalid_token""#),
            ApiError::Forbidden => Some(r#"Bearer error="insufficient_scope""#),
            _ => None,
        };
        let mut res = self.0.into_response();
        if let Some(c) = challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        res
    }
}

impl From<ApiError> for BearerRejection {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}
