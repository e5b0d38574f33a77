//! The OpenAPI 3.1 document. Paths come from the `#[utoipa::path]` annotations of the handlers,
//! which are also what `utoipa_axum::routes!` builds the router from, so the document and the
//! routes cannot drift apart. Served at `GET /openapi.json`.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        Components, RefOr, Required, ResponseBuilder,
        content::ContentBuilder,
        security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
    },
};

use std::collections::BTreeMap;

use crate::error::{ApiError, FieldError};

/// An error, as every non-2xx response carries it (RFC 9457).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    pub r#type: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `session_revoked`.
    pub code: String,
    pub detail: String,
    /// Present on `validation_failed`.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

pub const BEARER: &str = "bearer";
pub const REFRESH_COOKIE: &str = "refresh_cookie";
pub const INTROSPECTION_BASIC: &str = "introspection_basic";
pub const INTROSPECTION_BEARER: &str = "introspection_bearer";
pub const RESOURCE_BEARER: &str = "resource_bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authd",
        description = "Authentication for single-page apps: short-lived signed access tokens (EdDSA, ES256 or RS256) in JSON bodies, \
                       rotating refresh tokens in an HttpOnly cookie, instant revocation.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Register, log in, refresh, log out"),
        (name = "sessions", description = "The caller's own sessions (devices) and history"),
        (name = "admin", description = "User administration; needs the `admin` role"),
        (name = "resource servers", description = "Token verification for other APIs"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from login or refresh (JWT signed with EdDSA, ES256 or RS256, `typ: at+jwt`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            INTROSPECTION_BASIC,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            INTROSPECTION_BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            RESOURCE_BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// One `application/problem+json` response described by `description`.
fn problem_response(description: String) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build(),
            )
            .build(),
    )
}

/// The problem responses of `errors`, one per status, each listing its codes: the single
/// source is [`ApiError::status`] and [`ApiError::code`], so the document cannot disagree with
/// what the handlers send. Used through [`problems!`](crate::problems).
pub fn problem_responses(
    errors: &[ApiError],
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut by_status: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for e in errors {
        let codes = by_status
            .entry(e.status().as_u16().to_string())
            .or_default();
        if !codes.contains(&e.code()) {
            codes.push(e.code());
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status, problem_response(describe(&codes))))
        .collect()
}

fn describe(codes: &[&str]) -> String {
    let quoted: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    quoted.join(", ")
}

/// Declares a type listing an operation's own errors for `#[utoipa::path(responses(..))]`:
/// `problems!(LoginErrors: ApiError::InvalidCredentials, ApiError::UserDisabled);`. Errors
/// every operation of a kind shares (Bearer failures, the admin role, body and server errors)
/// are added to the document by [`add_common_responses`].
#[macro_export]
macro_rules! problems {
    ($name:ident: $($err:expr),+ $(,)?) => {
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                #[allow(unused_imports)]
                use $crate::error::ApiError;
                $crate::http::openapi::problem_responses(&[$($err),+])
            }
        }
    };
}

/// Adds the responses whole kinds of operations share: a request deadline (408), an
/// overloaded or unreachable database (503), the internal error that should never happen
/// (500); for operations with a body, the body errors (400, 413, 415); for Bearer-protected
/// ones, the Bearer failures (401); for admin ones, `forbidden` (403). Codes an operation
/// declares itself (with [`problems!`](crate::problems)) are kept and the shared ones appended.
/// Run on the merged document.
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    {
        let problem = || problem_response("An error (RFC 9457 problem details)".into());
        let bearer = [
            ApiError::Unauthorized,
            ApiError::InvalidToken,
            ApiError::TokenExpired,
            ApiError::SessionRevoked,
        ];
        let add = |responses: &mut BTreeMap<String, RefOr<utoipa::openapi::Response>>,
                   errors: &[ApiError]| {
            for (status, shared) in problem_responses(errors) {
                match responses.get_mut(&status) {
                    Some(RefOr::T(own)) => {
                        if let RefOr::T(shared) = shared {
                            own.description =
                                format!("{}, {}", own.description, shared.description);
                        }
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert(status, shared);
                    }
                }
            }
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let secured_by = |scheme: &str| {
                    op.security.iter().flatten().any(|req| {
                        serde_json::to_value(req)
                            .ok()
                            .and_then(|v| v.as_object().map(|o| o.contains_key(scheme)))
                            .unwrap_or(false)
                    })
                };
                let bearer_only = secured_by(BEARER) && !secured_by(REFRESH_COOKIE);
                let admin = op.tags.iter().flatten().any(|t| t == "admin");
                if bearer_only {
                    add(&mut op.responses.responses, &bearer);
                }
                if admin {
                    add(&mut op.responses.responses, &[ApiError::Forbidden]);
                }
                for status in ["408", "500", "503"] {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(problem);
                }
                if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                    body.required = Some(Required::True);
                    for status in ["400", "413", "415"] {
                        op.responses
                            .responses
                            .entry(status.to_string())
                            .or_insert_with(problem);
                    }
                }
            }
        }
    }
}

/// The refresh cookie's security scheme, as this server is configured to set it.
pub fn describe_refresh_cookie(
    openapi: &mut utoipa::openapi::OpenApi,
    config: &crate::config::Config,
) {
    let mut attributes = vec!["HttpOnly".to_string()];
    if config.cookie_secure {
        attributes.push("Secure".into());
    }
    attributes.push(format!("SameSite={:?}", config.cookie_samesite));
    attributes.push(format!("Path={}", config.cookie_path));
    if let Some(domain) = &config.cookie_domain {
        attributes.push(format!("Domain={domain}"));
    }
    let components = openapi.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        REFRESH_COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            config.cookie_name.clone(),
            format!(
                "The rotating refresh token ({}); set by login and refresh, never readable by \
                 JavaScript.",
                attributes.join("; ")
            ),
        ))),
    );
}

/// The document, serialized once.
pub fn document(openapi: &utoipa::openapi::OpenApi) -> Vec<u8> {
    serde_json::to_vec(openapi).unwrap_or_default()
}

pub fn json_response(body: &axum::body::Bytes) -> Response {
    let mut res = body.clone().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
