//! What a mailed message carries (API.md "Email"): a link token (32 bytes from the OS CSPRNG,
//! base64url, the same shape as a refresh token; stored only as its SHA-256) and, for sign-in, a
//! 6-digit code (stored only as `HMAC-SHA256(server secret, grant id ‖ code)`, compared in
//! constant time, dead after [`MAX_CODE_ATTEMPTS`] wrong tries).

use std::fmt;

use aws_lc_rs::hmac;
use rand::RngExt;
use uuid::Uuid;

use super::refresh::{RefreshToken, TokenHash};

/// Wrong codes after which a sign-in grant (its code and its link) is dead.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// Digits of a sign-in code.
pub const CODE_DIGITS: usize = 6;

/// A link token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailToken(RefreshToken);

impl EmailToken {
    pub fn generate() -> Self {
        Self(RefreshToken::generate())
    }

    /// Accepts only what [`generate`](Self::generate) produces (43 base64url characters).
    pub fn parse(raw: &str) -> Option<Self> {
        RefreshToken::parse(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn hash(&self) -> TokenHash {
        self.0.hash()
    }
}

impl fmt::Debug for EmailToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailToken([redacted])")
    }
}

/// A sign-in code: [`CODE_DIGITS`] decimal digits, uniformly random. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn generate() -> Self {
        let n: u32 = rand::rng().random_range(0..10u32.pow(CODE_DIGITS as u32));
        Self(format!("{n:0width$}", width = CODE_DIGITS))
    }

    /// Accepts 6 to 8 ASCII digits, ignoring spaces and dashes a person may type
    /// (`123 456`, `123-456`).
    pub fn parse(raw: &str) -> Option<Self> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        ((6..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

/// The server secret codes are keyed with (shared by every instance, kept in the database).
pub struct CodeKey(hmac::Key);

impl CodeKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn input(grant: Uuid, code: &Code) -> Vec<u8> {
        let mut input = grant.as_bytes().to_vec();
        input.extend_from_slice(code.0.as_bytes());
        input
    }

    /// The stored form of `code` for `grant`.
    pub fn tag(&self, grant: Uuid, code: &Code) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.0, &Self::input(grant, code)).as_ref());
        out
    }

    /// Whether `code` matches the stored `tag` (constant time).
    pub fn verify(&self, grant: Uuid, code: &Code, tag: &[u8]) -> bool {
        hmac::verify(&self.0, &Self::input(grant, code), tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for _ in 0..100 {
            let c = Code::generate();
            assert_eq!(c.as_str().len(), CODE_DIGITS);
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::parse("123 456").unwrap().as_str(), "123456");
        for bad in ["12345", "123456789", "12a456", "", "١٢٣٤٥٦"] {
            assert!(Code::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn code_tags_are_keyed_per_grant() {
        let key = CodeKey::new(&[7; 32]);
        let (g1, g2) = (Uuid::new_v4(), Uuid::new_v4());
        let c = Code::parse("042424").unwrap();
        let tag = key.tag(g1, &c);
        assert!(key.verify(g1, &c, &tag));
        assert!(!key.verify(g2, &c, &tag));
        assert!(!key.verify(g1, &Code::parse("042425").unwrap(), &tag));
        assert!(!CodeKey::new(&[8; 32]).verify(g1, &c, &tag));
    }

    #[test]
    fn tokens_round_trip() {
        let t = EmailToken::generate();
        assert_eq!(EmailToken::parse(t.as_str()), Some(t.clone()));
        assert!(!format!("{t:?}").contains(t.as_str()));
    }
}
