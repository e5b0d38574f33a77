//! The one place the refresh-token cookie is built, read and cleared.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};

use crate::{
    config::{Config, SameSite},
    tokens::refresh::RefreshToken,
};

/// Most refresh tokens read from one request: a browser sends one cookie of our name per
/// (domain, path) it holds one for; more than a few is an attack or junk.
pub const MAX_PRESENTED: usize = 4;

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
    /// Present, but nothing authd could have issued.
    Malformed,
    /// The well-formed tokens among the cookies of our name, in header order, without
    /// duplicates, at most [`MAX_PRESENTED`]. Several are possible: a browser holds one cookie
    /// per (domain, path), e.g. one planted by a sibling subdomain, or one left behind by a
    /// change of AUTHD_COOKIE_PATH or AUTHD_COOKIE_DOMAIN. Which one is ours is decided by the
    /// session layer, never by order.
    Tokens(Vec<RefreshToken>),
}

impl PresentedCookie {
    /// The well-formed tokens (none when missing or malformed).
    pub fn into_tokens(self) -> Vec<RefreshToken> {
        match self {
            Self::Tokens(t) => t,
            Self::Missing | Self::Malformed => Vec::new(),
        }
    }
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

    /// Reads every cookie of our name from the request's `Cookie` headers, whatever their
    /// size (the server's header limit bounds them) and order.
    pub fn read(&self, headers: &HeaderMap) -> PresentedCookie {
        let mut seen = false;
        let mut tokens: Vec<RefreshToken> = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            // Cookie values are ASCII; a header with other bytes may still carry ours.
            let s = String::from_utf8_lossy(value.as_bytes());
            for c in Cookie::split_parse(s.as_ref()).flatten() {
                if c.name() != self.name {
                    continue;
                }
                seen = true;
                if let Some(t) = RefreshToken::parse(c.value())
                    && !tokens.contains(&t)
                    && tokens.len() < MAX_PRESENTED
                {
                    tokens.push(t);
                }
            }
        }
        match (seen, tokens.is_empty()) {
            (false, _) => PresentedCookie::Missing,
            (true, true) => PresentedCookie::Malformed,
            (true, false) => PresentedCookie::Tokens(tokens),
        }
    }
}
