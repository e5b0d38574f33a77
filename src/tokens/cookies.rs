//! The one place the refresh-token cookie is built, read and cleared.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};

use crate::{
    config::{Config, SameSite},
    tokens::refresh::RefreshToken,
};

/// Longest Cookie header value we bother to parse.
const MAX_COOKIE_HEADER: usize = 8 * 1024;

#[derive(Clone, Debug)]
pub struct CookieSettings {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    same_site: CookieSameSite,
}

/// What the request carried under our cookie name.
#[derive(Debug)]
pub enum PresentedCookie {
    Missing,
    /// Present but not something authd issued.
    Malformed,
    Token(RefreshToken),
}

impl CookieSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            name: config.cookie_name.clone(),
            path: config.cookie_path.clone(),
            domain: config.cookie_domain.clone(),
            secure: config.cookie_secure,
            same_site: match config.cookie_samesite {
                SameSite::Strict => CookieSameSite::Strict,
                SameSite::Lax => CookieSameSite::Lax,
                SameSite::None => CookieSameSite::None,
            },
        }
    }

    fn build(&self, value: String, max_age_secs: i64) -> HeaderValue {
        let mut c = Cookie::build((self.name.clone(), value))
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(CookieDuration::seconds(max_age_secs.max(0)));
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        // Name, path and domain were validated at start and the value is base64url, so the
        // header is always valid; an empty value is the (harmless) fallback.
        HeaderValue::from_str(&c.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` carrying a refresh token that lives until the session's idle expiry.
    pub fn set(&self, token: &RefreshToken, max_age_secs: i64) -> HeaderValue {
        self.build(token.as_str().to_string(), max_age_secs)
    }

    /// `Set-Cookie` that deletes the cookie (same name, path and domain, `Max-Age=0`).
    pub fn clear(&self) -> HeaderValue {
        self.build(String::new(), 0)
    }

    /// Reads our cookie from the request's `Cookie` headers (first occurrence wins).
    pub fn read(&self, headers: &HeaderMap) -> PresentedCookie {
        for value in headers.get_all(header::COOKIE) {
            let Ok(s) = value.to_str() else { continue };
            if s.len() > MAX_COOKIE_HEADER {
                continue;
            }
            for c in Cookie::split_parse(s).flatten() {
                if c.name() == self.name {
                    return match RefreshToken::parse(c.value()) {
                        Some(t) => PresentedCookie::Token(t),
                        None => PresentedCookie::Malformed,
                    };
                }
            }
        }
        PresentedCookie::Missing
    }
}
