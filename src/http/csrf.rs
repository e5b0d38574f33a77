//! CSRF defence for the cookie-authenticated endpoints (/auth/refresh, /auth/logout).
//!
//! A browser always sends `Origin` on a cross-origin POST, and modern ones send
//! `Sec-Fetch-Site`. If `Origin` is present it must be authd's own origin or an allowed one
//! (exact match; `null` is refused); a `cross-site` fetch must come from an allowed origin.
//! Clients that send neither (curl, servers) are not browsers and pass.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};

use crate::{config::Origins, error::ApiError, state::AppState};

pub fn check(headers: &HeaderMap, own_origin: &str, allowed: &Origins) -> Result<(), ApiError> {
    let mut origins = headers.get_all("origin").iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v.to_str().map_err(|_| ApiError::CsrfRejected)?),
        (Some(_), Some(_)) => return Err(ApiError::CsrfRejected),
    };
    let is_allowed = |o: &str| o == own_origin || allowed.contains(o);
    if let Some(o) = origin
        && !is_allowed(o)
    {
        return Err(ApiError::CsrfRejected);
    }
    let cross_site = headers.get_all("sec-fetch-site").iter().any(|v| {
        v.to_str()
            .map(|s| s.trim().eq_ignore_ascii_case("cross-site"))
            .unwrap_or(true)
    });
    if cross_site && origin.is_none() {
        return Err(ApiError::CsrfRejected);
    }
    Ok(())
}

/// Extractor form: put it first in a handler's arguments so nothing runs before the check.
pub struct CsrfChecked;

impl FromRequestParts<AppState> for CsrfChecked {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check(
            &parts.headers,
            &state.config.issuer.origin,
            &state.config.allowed_origins,
        )?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn run(pairs: &[(&'static str, &'static str)]) -> bool {
        let allowed = Origins(vec!["https://app.example.test".into()]);
        check(&headers(pairs), "https://auth.example.test", &allowed).is_ok()
    }

    #[test]
    fn decisions() {
        assert!(run(&[]), "non-browser clients pass");
        assert!(run(&[("origin", "https://auth.example.test")]));
        assert!(run(&[
            ("origin", "https://app.example.test"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(run(&[
            ("origin", "https://app.example.test"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(run(&[("sec-fetch-site", "same-origin")]));
        assert!(!run(&[("origin", "https://app.example.test.evil.test")]));
        assert!(
            !run(&[("origin", "http://app.example.test")]),
            "scheme matters"
        );
        assert!(
            !run(&[("origin", "https://app.example.test:8443")]),
            "port matters"
        );
        assert!(!run(&[("origin", "null")]));
        assert!(!run(&[
            ("origin", "https://evil.test"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(
            !run(&[("sec-fetch-site", "cross-site")]),
            "cross-site without Origin"
        );
        assert!(!run(&[
            ("origin", "https://app.example.test"),
            ("origin", "https://evil.test")
        ]));
    }
}
