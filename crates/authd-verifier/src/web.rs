//! axum and tower glue: the [`AuthdClaims`] extractor, the [`AuthdLayer`] middleware, and the
//! 401 answer (RFC 6750 §3: `WWW-Authenticate: Bearer error="invalid_token"`, body an RFC 9457
//! problem with authd's `code`).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, HeaderValue, Request, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{Claims, Error, Verifier};

/// The Bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn verify_request(verifier: &Verifier, headers: &HeaderMap) -> Result<Claims, Error> {
    verifier
        .verify(bearer(headers).ok_or(Error::Missing)?)
        .await
}

impl Error {
    /// authd's stable error code for this rejection (API.md "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            Error::Missing => "unauthorized",
            Error::Expired => "token_expired",
            Error::Revoked => "session_revoked",
            _ => "invalid_token",
        }
    }
}

/// 401 with `WWW-Authenticate: Bearer` (plus `error="invalid_token"` when a token was
/// presented) and an `application/problem+json` body `{type, title, status, code}`.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let challenge = match self {
            Error::Missing => "Bearer",
            _ => r#"Bearer error="invalid_token""#,
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "code": self.code(),
        });
        let mut res = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// The verified caller, as a handler argument. Uses the claims [`AuthdLayer`] already
/// verified if it runs in front, else verifies the Bearer token with the [`Verifier`] from
/// the router state (`Verifier: FromRef<S>`). Rejection: [`Error`] (a 401).
#[derive(Debug, Clone)]
pub struct AuthdClaims(pub Claims);

impl<S> FromRequestParts<S> for AuthdClaims
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(Self(claims.clone()));
        }
        let verifier = Verifier::from_ref(state);
        verify_request(&verifier, &parts.headers).await.map(Self)
    }
}

/// A tower layer that lets through only requests with a valid Bearer token, putting its
/// [`Claims`] into the request extensions (read them with `Extension<Claims>` or
/// [`AuthdClaims`]); others get the [`Error`] 401 without reaching the inner service.
#[derive(Debug, Clone)]
pub struct AuthdLayer {
    verifier: Verifier,
}

impl AuthdLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthdLayer {
    type Service = AuthdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthdService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`AuthdLayer`] wraps around `S`.
#[derive(Debug, Clone)]
pub struct AuthdService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> tower::Service<Request<Body>> for AuthdService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match verify_request(&verifier, req.headers()).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}

impl Verifier {
    /// An [`AuthdLayer`] verifying with this verifier.
    pub fn layer(&self) -> AuthdLayer {
        AuthdLayer::new(self.clone())
    }
}
