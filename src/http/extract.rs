//! Body, path and query extractors whose rejections are problem+json `ApiError`s.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::{ApiError, FieldError};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON body, always a JSON object (RFC 8259 text whose top-level value is an object).
///
/// Checked in this order, the first failure answering: content type not `application/json` or
/// `application/*+json` → 415 `unsupported_media_type`; more than [`MAX_BODY_BYTES`] → 413
/// `payload_too_large`; not JSON (a syntax error anywhere, invalid UTF-8, an empty body,
/// characters after the value) → 400 `invalid_json`; JSON but not an object (an array, `null`,
/// a string, a number, a boolean) → 400 `validation_failed` with field `body` "must be a JSON
/// object"; an object of the wrong shape (missing, unknown, duplicate or mistyped fields) → 400
/// `validation_failed` naming the field. See [`parse_json`]. Messages never echo the input.
pub struct Json<T>(pub T);

fn is_json_content_type(req: &Request) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.len() > 17
            && mime[..12].eq_ignore_ascii_case("application/")
            && mime.to_ascii_lowercase().ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("the body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a request body that must be a JSON object into `T` (a struct), with the errors of
/// [`Json`] (400 `invalid_json`, or 400 `validation_failed` with field `body` or the field's
/// path).
///
/// A non-object is a shape error like any other (`validation_failed`), not a syntax error: the
/// body is valid JSON, just not what the endpoint takes. It must be checked here because serde
/// reads a struct from a JSON array too (`["e@x.test","pw"]` would fill the fields in order).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // 1. Syntax, over the whole body (so a syntax error after a missing field is still
    //    `invalid_json`): the value model validates every string's UTF-8 and escapes, and
    //    `from_slice` refuses characters after the value.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| syntax_error(&e))?;
    // 2. The top level is an object.
    if !value.is_object() {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    // 3. Fields, from the bytes rather than from `value`, which keeps only the last of duplicate
    //    keys: `{"email":"a","email":"b"}` stays a `validation_failed` instead of a silent pick.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => ApiError::Validation(vec![data_error(&path, &inner.to_string())]),
            Category::Syntax | Category::Eof | Category::Io => syntax_error(&inner),
        }
    })
}

/// `invalid_json` with the position only (serde_json's own message may quote the input).
fn syntax_error(e: &serde_json::Error) -> ApiError {
    ApiError::InvalidJson(format!(
        "syntax error at line {} column {}",
        e.line(),
        e.column()
    ))
}

/// A field error from a serde data error, without echoing the offending value.
fn data_error(path: &str, message: &str) -> FieldError {
    for (prefix, what) in [
        ("missing field `", "is required"),
        ("duplicate field `", "is given more than once"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let name = rest.split('`').next().unwrap_or("");
            let field = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            return FieldError::new(field, what);
        }
    }
    let field = if path == "." || path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    };
    let what = if message.starts_with("invalid type") {
        "has the wrong type"
    } else if message.starts_with("unknown field") {
        "is not allowed"
    } else {
        "has an invalid value"
    };
    FieldError::new(field, what)
}

/// A raw path parameter; handlers turn it into the resource's id (a bad id is "not found").
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// A query string; a bad one is 400 `validation_failed`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q).map(Query).map_err(|_| {
            ApiError::validation("query", "is not a valid query string for this endpoint")
        })
    }
}

pub fn parse_uuid(raw: &str) -> Option<uuid::Uuid> {
    // Only the canonical hyphenated form: no braces, URNs or simple forms sneaking in.
    (raw.len() == 36)
        .then(|| uuid::Uuid::try_parse(raw).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        n: u32,
    }

    fn codes(bytes: &[u8]) -> (String, Option<Vec<FieldError>>) {
        match parse_json::<Body>(bytes) {
            Err(ApiError::Validation(f)) => ("validation_failed".into(), Some(f)),
            Err(e) => (e.code().into(), None),
            Ok(_) => ("ok".into(), None),
        }
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(codes(br#"{"email":"a","n":1}"#).0, "ok");
        assert_eq!(codes(br#"{"email":"a","n":1} x"#).0, "invalid_json");
        assert_eq!(codes(b"{").0, "invalid_json");
        assert_eq!(codes(b"\xff\xfe").0, "invalid_json");
        let (c, f) = codes(br#"{"email":"a"}"#);
        assert_eq!(c, "validation_failed");
        assert_eq!(f.unwrap()[0], FieldError::new("n", "is required"));
        let (_, f) = codes(br#"{"email":"secret-value-123","n":"x"}"#);
        let f = f.unwrap();
        assert_eq!(f[0].field, "n");
        assert!(!f[0].message.contains("secret"));
        let (_, f) = codes(br#"{"email":12345678,"n":1}"#);
        assert!(!f.unwrap()[0].message.contains("12345678"));
    }

    #[test]
    fn the_body_must_be_an_object() {
        let body = || vec![FieldError::new("body", "must be a JSON object")];
        for json in [
            &br#"["a@b.test",1]"#[..],
            b"[]",
            b"null",
            br#""a string""#,
            b"42",
            b"true",
        ] {
            assert_eq!(
                codes(json),
                ("validation_failed".into(), Some(body())),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn syntax_errors_anywhere_come_before_field_errors() {
        // A missing field, then garbage: the garbage wins.
        assert_eq!(codes(br#"{"email":"a"}}"#).0, "invalid_json");
        assert_eq!(codes(br#"{"email":"a"} {"#).0, "invalid_json");
        // A mistyped field, then a syntax error later in the object.
        assert_eq!(codes(br#"{"n":"x","email":}"#).0, "invalid_json");
        // Invalid UTF-8 or a lone surrogate in a later string.
        assert_eq!(codes(b"{\"n\":\"x\",\"email\":\"\xff\"}").0, "invalid_json");
        assert_eq!(codes(br#"{"n":"x","email":"\ud800"}"#).0, "invalid_json");
        assert_eq!(codes(b"").0, "invalid_json");
        assert_eq!(codes(b"  ").0, "invalid_json");
        match parse_json::<Body>(br#"{"email":"secret-value-123"} x"#) {
            Err(ApiError::InvalidJson(m)) => assert!(!m.contains("secret"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let (c, f) = codes(br#"{"email":"a","email":"b","n":1}"#);
        assert_eq!(c, "validation_failed");
        assert_eq!(
            f.unwrap()[0],
            FieldError::new("email", "is given more than once")
        );
    }

    #[test]
    fn uuids_must_be_canonical() {
        assert!(parse_uuid("0b5d7f0e-3c1a-4b8e-9a55-2f4c7d9e1a01").is_some());
        assert!(parse_uuid("0b5d7f0e3c1a4b8e9a552f4c7d9e1a01").is_none());
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
