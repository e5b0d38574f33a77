//! Refresh tokens and the rotation rules of API.md ("Rotation rules").
//!
//! A refresh token is 32 bytes from the OS CSPRNG, base64url (43 characters). Postgres stores only
//! its SHA-256. Its successor is `HMAC-SHA256(server secret, token)`, so a token presented twice
//! (two tabs, a retried request) maps to the same successor without any token being stored:
//!
//! 1. unused token of a live session → consumed atomically (one `UPDATE … WHERE used_at IS NULL`),
//!    successor issued;
//! 2. used token, first use within the grace window, successor not yet used → the same successor
//!    again (byte-identical cookie) and a fresh access token;
//! 3. any other used token → reuse: that one session is revoked;
//! 4. unknown → `refresh_token_invalid`; dead session / disabled user → its own code.

use std::{fmt, time::Duration};

use aws_lc_rs::{digest, hmac};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use rand::RngExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{
        sessions::{self, RevokeReason},
        users::User,
    },
    error::ApiError,
};

const TOKEN_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const TOKEN_CHARS: usize = 43;

pub type TokenHash = [u8; 32];

/// An opaque refresh token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill(&mut bytes);
        Self(B64.encode(bytes))
    }

    /// Accepts only what [`generate`](Self::generate) produces; anything else is not worth a
    /// database lookup.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != TOKEN_CHARS {
            return None;
        }
        let bytes = B64.decode(raw).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        let d = digest::digest(&digest::SHA256, self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// The server secret that derives successors. Shared by every instance (kept in the database).
pub struct SuccessorKey(hmac::Key);

impl SuccessorKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    pub fn successor(&self, token: &RefreshToken) -> RefreshToken {
        RefreshToken(B64.encode(hmac::sign(&self.0, token.0.as_bytes()).as_ref()))
    }
}

/// Which rule a successful refresh took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// Rule 1: the token was consumed now.
    Rotated,
    /// Rule 2: a concurrent or retried presentation within the grace window.
    Grace,
}

impl RefreshKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "ok",
            Self::Grace => "grace",
        }
    }
}

#[derive(Debug)]
pub struct Refreshed {
    pub kind: RefreshKind,
    pub session_id: Uuid,
    pub user: User,
    /// The cookie value to send back.
    pub successor: RefreshToken,
    /// Seconds until the session's idle expiry (the cookie's Max-Age).
    pub max_age_secs: i64,
}

/// A refresh that failed, with the session it revoked (reuse) and its owner, if any.
#[derive(Debug)]
pub struct RefreshFailure {
    pub error: ApiError,
    pub revoked_session: Option<(Uuid, Uuid)>,
}

impl From<ApiError> for RefreshFailure {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            revoked_session: None,
        }
    }
}

impl From<sqlx::Error> for RefreshFailure {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// Applies the rotation rules to a presented token.
pub async fn refresh(
    db: &PgPool,
    key: &SuccessorKey,
    presented: &RefreshToken,
    idle_ttl: Duration,
    grace: Duration,
    access_ttl: Duration,
) -> Result<Refreshed, RefreshFailure> {
    let hash = presented.hash();
    let successor = key.successor(presented);
    let successor_hash = successor.hash();

    // Rule 1, the hot path: one statement consumes, extends the session and inserts the successor.
    if let Some(row) = sessions::rotate(db, &hash, &successor_hash, idle_ttl, access_ttl).await? {
        return Ok(Refreshed {
            kind: RefreshKind::Rotated,
            session_id: row.session_id,
            user: row.user,
            successor,
            max_age_secs: row.max_age_secs,
        });
    }

    // Not consumable: find out why (a second, rarer query).
    let Some(state) = sessions::inspect_token(db, &hash, &successor_hash, grace).await? else {
        return Err(ApiError::RefreshTokenInvalid.into());
    };
    if state.session_revoked {
        return Err(ApiError::SessionRevoked.into());
    }
    if state.session_expired {
        return Err(ApiError::SessionExpired.into());
    }
    if state.user.disabled {
        return Err(ApiError::UserDisabled.into());
    }
    if state.used && state.within_grace && state.successor_exists && !state.successor_used {
        return Ok(Refreshed {
            kind: RefreshKind::Grace,
            session_id: state.session_id,
            user: state.user,
            successor,
            max_age_secs: state.max_age_secs,
        });
    }
    if !state.used {
        // Live, unused, yet not consumable: the session changed between the two statements
        // (revoked or expired concurrently). Ask the client to try again from scratch.
        return Err(ApiError::RefreshTokenInvalid.into());
    }
    // Rule 3: reuse. Revoke this one session; the user's other sessions are untouched.
    sessions::revoke(db, state.session_id, RevokeReason::RefreshTokenReused).await?;
    Err(RefreshFailure {
        error: ApiError::RefreshTokenReused,
        revoked_session: Some((state.session_id, state.user.id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_256_bits_and_parse_back() {
        let t = RefreshToken::generate();
        assert_eq!(t.as_str().len(), TOKEN_CHARS);
        assert_eq!(RefreshToken::parse(t.as_str()), Some(t.clone()));
        assert_ne!(RefreshToken::generate(), t);
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&"!".repeat(TOKEN_CHARS)).is_none());
    }

    #[test]
    fn successor_is_deterministic_and_keyed() {
        let t = RefreshToken::generate();
        let a = SuccessorKey::new(&[1u8; 32]);
        let b = SuccessorKey::new(&[2u8; 32]);
        assert_eq!(a.successor(&t), a.successor(&t));
        assert_ne!(a.successor(&t), b.successor(&t));
        assert!(RefreshToken::parse(a.successor(&t).as_str()).is_some());
    }

    #[test]
    fn debug_is_redacted() {
        assert!(!format!("{:?}", RefreshToken::generate()).contains('='));
        assert_eq!(
            format!("{:?}", RefreshToken::generate()),
            "RefreshToken([redacted])"
        );
    }
}
