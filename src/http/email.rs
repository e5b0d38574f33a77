//! /auth/email and /auth/password/{forgot,reset}: the account lifecycle by email (API.md
//! "Email"). Handlers parse, apply the send limits, and call `session::email` (or
//! `session::login` for a code sign-in).

use std::future::Future;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    db::{self, users::User},
    domain::{ClientInfo, Email, EventKind, NewPassword, Password},
    error::{ApiError, FieldError, both},
    factors::{email as email_factor, reauth},
    http::{
        auth::{TokenBody, presented_if_same_site, token_response},
        extract::Json,
        extractors::AuthUser,
    },
    mail::MessageKind,
    session::{self, email as flows, login::Proof},
    state::AppState,
    tokens::email::{Code, EmailToken},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_verification))
        .routes(routes!(verify))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(request_code))
        .routes(routes!(verify_code))
        .routes(routes!(change_email))
}

/// `202 {}`: accepted; whatever happens next happens by mail.
fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

fn parse_token(field: &str, raw: &str) -> Result<EmailToken, FieldError> {
    EmailToken::parse(raw.trim()).ok_or_else(|| {
        FieldError::new(
            field,
            "is not a token from one of our messages (43 characters)",
        )
    })
}

crate::problems!(RequestVerificationErrors: ApiError::UserNotFound, ApiError::RateLimited { retry_after_secs: 1 });

/// Mails a verification link to the caller's address (nothing if it is verified already).
#[utoipa::path(
    post, path = "/auth/email/verify/request", tag = "email", security(("bearer" = [])),
    responses(
        RequestVerificationErrors,
        (status = 202, description = "A link is on its way (if the address is not verified yet)", body = Object),
    )
)]
async fn request_verification(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> Result<Response, ApiError> {
    let user = db::users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    if !user.email_verified {
        flows::may_send(&state, &client, &user.email)?;
        flows::send_verification(&state, &user, &client).await?;
    }
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
struct TokenRequest {
    /// The token from the link's fragment (`#token=…`).
    #[schema(min_length = 43, max_length = 43)]
    token: String,
}

crate::problems!(VerifyErrors: ApiError::EmailTokenInvalid, ApiError::EmailTaken, ApiError::RateLimited { retry_after_secs: 1 });

/// Confirms an address: a verification link, or an email-change link (the account then
/// switches to the new address).
#[utoipa::path(
    post, path = "/auth/email/verify", tag = "email", request_body = TokenRequest,
    responses(
        VerifyErrors,
        (status = 200, description = "The user, with the address verified", body = User),
    )
)]
async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    let token = parse_token("token", &body.token)?;
    if let Some(ip) = client.ip {
        state.limit(|rl| rl.email_check(ip))?;
    }
    let user = flows::confirm_address(&state, &token, &client).await?;
    Ok(axum::Json(user).into_response())
}

#[derive(Deserialize, ToSchema)]
struct EmailRequest {
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: String,
}

crate::problems!(SendErrors: ApiError::RateLimited { retry_after_secs: 1 });

/// Forgot password: mails a reset link (valid 30 minutes) if the address has an account. The
/// answer is the same, in status, body and timing, whether or not it has one.
#[utoipa::path(
    post, path = "/auth/password/forgot", tag = "email", request_body = EmailRequest,
    responses(
        SendErrors,
        (status = 202, description = "If the address has an account, a link is on its way", body = Object),
    )
)]
async fn forgot_password(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<EmailRequest>,
) -> Result<Response, ApiError> {
    mail_in_background(
        state,
        client,
        body,
        MessageKind::PasswordReset,
        flows::mail_password_reset,
    )
}

/// Parses the address, applies the send limits, and hands `job` to the background: the answer
/// (202 `{}`) does not depend on whether the address has an account.
fn mail_in_background<F>(
    state: AppState,
    client: ClientInfo,
    body: EmailRequest,
    kind: MessageKind,
    job: impl FnOnce(AppState, Email, ClientInfo) -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let email = Email::parse("email", &body.email)?;
    flows::may_send(&state, &client, email.as_str())?;
    flows::in_background(&state, kind, job(state.clone(), email, client));
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
struct ResetRequest {
    /// The token from the reset link's fragment.
    #[schema(min_length = 43, max_length = 43)]
    token: String,
    /// 8 to 128 characters, not a common password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

crate::problems!(ResetErrors: ApiError::EmailTokenInvalid, ApiError::RateLimited { retry_after_secs: 1 });

/// Sets a new password through a reset link; every session of the user is revoked.
#[utoipa::path(
    post, path = "/auth/password/reset", tag = "email", request_body = ResetRequest,
    responses(
        ResetErrors,
        (status = 204, description = "The password is set; every session of the user is revoked"),
    )
)]
async fn reset_password(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let (token, new) = both(
        parse_token("token", &body.token),
        NewPassword::parse("new_password", body.new_password),
    )?;
    flows::reset_password(&state, &token, &new, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a sign-in code and link (valid 10 minutes) if the address has an account, or if
/// AUTHD_EMAIL_SIGNUP lets a code create one. The same answer either way.
#[utoipa::path(
    post, path = "/auth/email/code", tag = "email", request_body = EmailRequest,
    responses(
        SendErrors,
        (status = 202, description = "If the address may sign in, a code is on its way", body = Object),
    )
)]
async fn request_code(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<EmailRequest>,
) -> Result<Response, ApiError> {
    mail_in_background(
        state,
        client,
        body,
        MessageKind::SignInCode,
        flows::mail_sign_in_code,
    )
}

/// `{email, code}` (the code typed from the message) or `{token}` (its link).
#[derive(Deserialize, ToSchema)]
struct CodeSignIn {
    #[schema(example = "ada@example.com", format = "email", max_length = 254)]
    email: Option<String>,
    /// The 6-digit code (spaces and dashes are ignored).
    #[schema(example = "042424")]
    code: Option<String>,
    /// The token from the sign-in link's fragment (instead of `email` and `code`).
    #[schema(min_length = 43, max_length = 43)]
    token: Option<String>,
}

crate::problems!(CodeSignInErrors: ApiError::EmailCodeInvalid, ApiError::UserDisabled, ApiError::RateLimited { retry_after_secs: 1 });

/// Signs in with an emailed code or link: a new session, exactly like a password login.
#[utoipa::path(
    post, path = "/auth/email/code/verify", tag = "email", request_body = CodeSignIn,
    responses(
        CodeSignInErrors,
        (status = 200, description = "Signed in", body = TokenBody,
         headers(("Set-Cookie" = String, description = "The refresh-token cookie"))),
    )
)]
async fn verify_code(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Json(body): Json<CodeSignIn>,
) -> Result<Response, ApiError> {
    let grant = match (body.email, body.code, body.token) {
        (Some(email), Some(code), None) => {
            let email = Email::parse("email", &email);
            let code = Code::parse(&code).ok_or_else(|| {
                FieldError::new("code", "must be the 6-digit code from the message")
            });
            let (email, code) = both(email, code)?;
            email_factor::verify_code(&state, &email, &code, &client).await?
        }
        (None, None, Some(token)) => {
            let token = parse_token("token", &token)?;
            email_factor::verify_link(&state, &token, &client).await?
        }
        _ => {
            return Err(ApiError::validation(
                "body",
                "send either `email` and `code`, or `token`",
            ));
        }
    };
    let presented = presented_if_same_site(&state, &headers);
    let result = session::login::login(&state, Proof::EmailCode(grant), &client, &presented).await;
    state.metrics.login(match &result {
        Ok(_) => "ok",
        Err(e) => crate::telemetry::metrics::outcome_of(e),
    });
    Ok(token_response(&state, result?))
}

#[derive(Deserialize, ToSchema)]
struct EmailChange {
    #[schema(example = "ada@example.org", format = "email", max_length = 254)]
    new_email: String,
    /// Required unless this session signed in with an emailed code less than 5 minutes ago
    /// (accounts created by a code have no password).
    #[schema(min_length = 8, max_length = 128)]
    current_password: Option<String>,
}

crate::problems!(EmailChangeErrors: ApiError::InvalidCredentials, ApiError::EmailTaken, ApiError::UserDisabled, ApiError::UserNotFound, ApiError::RateLimited { retry_after_secs: 1 });

/// Asks to change the account's address: a confirmation link to the new address, a notice to
/// the old one; the switch happens when the link is confirmed (`POST /auth/email/verify`).
/// Re-authentication: the current password, or a code sign-in of this session within 5 minutes.
#[utoipa::path(
    post, path = "/auth/email/change", tag = "email", security(("bearer" = [])), request_body = EmailChange,
    responses(
        EmailChangeErrors,
        (status = 202, description = "A confirmation link is on its way to the new address", body = Object),
    )
)]
async fn change_email(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Json(body): Json<EmailChange>,
) -> Result<Response, ApiError> {
    let new_email = Email::parse("new_email", &body.new_email);
    let current = body
        .current_password
        .map(|p| Password::parse("current_password", p))
        .transpose();
    let (new_email, current) = both(new_email, current)?;
    reauth::verify(
        &state,
        auth.user_id,
        auth.session_id,
        current.as_ref(),
        &client,
        EventKind::EmailChangeFailed,
    )
    .await?;
    let user = db::users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    if user.disabled {
        return Err(ApiError::UserDisabled);
    }
    flows::request_email_change(&state, &user, auth.session_id, &new_email, &client).await?;
    Ok(accepted())
}
