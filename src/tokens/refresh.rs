//! Refresh tokens (the rules that rotate them are in `session::refresh`).
//!
//! A refresh token is 32 bytes from the OS CSPRNG, base64url (43 characters). Postgres stores only
//! its SHA-256. Its successor is `HMAC-SHA256(server secret, token)`, so a token presented twice
//! (two tabs, a retried request) maps to the same successor without any token being stored.

use std::fmt;

use aws_lc_rs::{digest, hmac};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use rand::RngExt;

pub use crate::db::sessions::TokenHash;

const TOKEN_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const TOKEN_CHARS: usize = 43;

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
