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

use crate::error::FieldError;

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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authd",
        description = "Authentication for single-page apps: short-lived EdDSA access tokens in JSON bodies, \
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
                        "An access token from login or refresh (EdDSA JWT, `typ: at+jwt`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "authd_refresh",
                "The rotating refresh token (HttpOnly; Secure; SameSite=Strict; Path=/auth). \
                 Its name follows AUTHD_COOKIE_NAME.",
            ))),
        );
        components.add_security_scheme(
            INTROSPECTION_BASIC,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            INTROSPECTION_BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Adds the responses any operation can produce: a request deadline (408), an overloaded or
/// unreachable database (503), the internal error that should never happen (500), and for
/// operations with a body, the body errors (400, 413, 415). Run on the merged document.
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    {
        let problem = || {
            RefOr::T(
                ResponseBuilder::new()
                    .description("An error (RFC 9457 problem details)")
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
