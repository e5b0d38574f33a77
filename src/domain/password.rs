use std::{collections::HashSet, fmt, sync::LazyLock};

use crate::error::FieldError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Forces the common-password list to be built now rather than on the first registration.
pub fn preload_common_passwords() -> usize {
    COMMON_PASSWORDS.len()
}

/// A password as presented at login: 8..=128 characters (Unicode scalar values), checked before
/// any hashing, so a megabyte "password" never reaches argon2. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(FieldError::new(field, "must be at least 8 characters"));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(FieldError::new(field, "must be at most 128 characters"));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A password being set (register, password change, CLI): a valid [`Password`] that is also not
/// on the shipped common-password list. No composition rules; never truncated.
#[derive(Clone)]
pub struct NewPassword(Password);

impl NewPassword {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let pw = Password::parse(field, raw)?;
        if COMMON_PASSWORDS.contains(pw.0.to_lowercase().as_str()) {
            return Err(FieldError::new(
                field,
                "is too common; choose a less guessable password",
            ));
        }
        Ok(Self(pw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Password::parse("p", "ééééééé".into()).is_err()); // 7 chars, 14 bytes
        assert!(Password::parse("p", "éééééééé".into()).is_ok());
        assert!(Password::parse("p", "x".repeat(128)).is_ok());
        assert!(Password::parse("p", "x".repeat(129)).is_err());
    }

    #[test]
    fn common_passwords_are_refused_case_insensitively() {
        assert!(preload_common_passwords() >= 10_000);
        assert!(NewPassword::parse("p", "password123".into()).is_err());
        assert!(NewPassword::parse("p", "PassWord123".into()).is_err());
        assert!(NewPassword::parse("p", "correct horse battery staple 42".into()).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::parse("p", "hunter2hunter2".into()).unwrap();
        assert_eq!(format!("{p:?}"), "[redacted]");
    }
}
