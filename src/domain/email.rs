use std::fmt;

use crate::error::FieldError;

/// An email address: trimmed, lower-cased (so comparison is case-insensitive), at most 254
/// characters, one `@` with something on both sides, no whitespace or control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

pub const MAX_EMAIL_LEN: usize = 254;

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let err = |m: &str| Err(FieldError::new(field, m));
        if trimmed.is_empty() {
            return err("must not be empty");
        }
        // Lower-casing can lengthen a string ('İ' becomes "i̇"): the limit applies to what is
        // stored.
        let normalized = trimmed.to_lowercase();
        if normalized.chars().count() > MAX_EMAIL_LEN {
            return err("must be at most 254 characters");
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("must not contain spaces or control characters");
        }
        match trimmed.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') => {}
            _ => return err("must be an email address"),
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(
            Email::parse("email", "  Ann@Example.COM ")
                .unwrap()
                .as_str(),
            "ann@example.com"
        );
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "",
            "   ",
            "no-at",
            "@x.test",
            "a@",
            "a@b@c",
            "a b@c.test",
            "a@.test",
            "a\u{0}@b.test",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse("email", &format!("{}@b.test", "a".repeat(250))).is_err());
        assert!(Email::parse("email", &format!("{}@b.test", "a".repeat(247))).is_ok());
        // Found by fuzzing: 254 characters that lower-case to 255.
        let grows = format!("{}İ@b.test", "a".repeat(246));
        assert_eq!(grows.chars().count(), 254);
        assert!(Email::parse("email", &grows).is_err());
    }
}
