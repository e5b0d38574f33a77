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

/// A password as presented at login, in the form that is hashed and compared.
///
/// NIST SP 800-63B §5.1.1.2: verifiers accept spaces and any Unicode, count each code point as
/// one character, and normalize Unicode with NFKC or NFKD before hashing, so that the same
/// password typed on any keyboard, OS or input method hashes the same. [`Password::parse`]:
/// - maps every Unicode space separator (Zs: U+00A0 no-break space, U+3000 ideographic space,
///   U+2000..U+200A, ...) to U+0020, as the PRECIS OpaqueString profile does (RFC 8265 §4.2);
/// - normalizes to NFKC: `é` typed composed (U+00E9) or decomposed (`e` U+0301, macOS) is one
///   password, and so are fullwidth letters typed in an East Asian input mode and their ASCII
///   forms, or `ﬁ` and `fi`;
/// - refuses control characters (Unicode Cc) and the invisible formatting characters that only
///   hide or reorder text (zero-width space U+200B, soft hyphen U+00AD, word joiner U+2060,
///   BOM U+FEFF, the bidi controls): a password you cannot see, you cannot type again. The
///   joiners and variation selectors that emoji are made of (U+200D, U+FE0F) stay allowed, and
///   so does every other code point, assigned yet or not: no composition rules.
///
/// Leading and trailing spaces are kept, case is kept. Then 8..=128 characters (Unicode scalar
/// values) of the normalized form, checked before any hashing, so a megabyte "password" never
/// reaches argon2. Never truncated, never printed.
///
/// A hash stored before this normalization existed, of a password that was not already in NFKC
/// form, no longer verifies: acceptable because no deployment had users then.
#[derive(Clone)]
pub struct Password(String);

/// Invisible characters that only hide or reorder text (see [`Password`]).
fn is_hidden_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Unicode General Category Zs (space separators).
fn is_space_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{00A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

impl Password {
    /// Normalizes and checks `raw` as described on [`Password`]. Errors name `field` and
    /// never echo the input.
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        use unicode_normalization::UnicodeNormalization;
        // Bound the work before normalizing: NFKC expands a character to at most 18.
        if raw.chars().count() > MAX_PASSWORD_CHARS * 18 {
            return Err(FieldError::new(field, "must be at most 128 characters"));
        }
        if raw
            .chars()
            .any(|c| c.is_control() || is_hidden_formatting(c))
        {
            return Err(FieldError::new(
                field,
                "must not contain invisible, control or formatting characters",
            ));
        }
        let normalized: String = raw
            .chars()
            .map(|c| if is_space_separator(c) { ' ' } else { c })
            .nfkc()
            .collect();
        let n = normalized.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(FieldError::new(field, "must be at least 8 characters"));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(FieldError::new(field, "must be at most 128 characters"));
        }
        Ok(Self(normalized))
    }

    /// The normalized password, for hashing and verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A password being set (register, password change, CLI): a valid [`Password`] (normalized the
/// same way) whose lower-cased normalized form is also not on the shipped common-password
/// list. No composition rules; never truncated.
#[derive(Clone)]
pub struct NewPassword(Password);

impl NewPassword {
    /// As [`Password::parse`], plus the common-password check.
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

    /// The normalized password, for hashing only.
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

    fn normalized(raw: &str) -> String {
        Password::parse("p", raw.into())
            .unwrap()
            .expose()
            .to_owned()
    }

    #[test]
    fn composed_and_decomposed_forms_are_one_password() {
        let composed = "caf\u{e9} au lait";
        assert_eq!(normalized("cafe\u{301} au lait"), composed);
        assert_eq!(normalized(composed), composed);
        // Combining marks in either order are one character (canonical ordering, then NFC).
        assert_eq!(normalized("vie\u{323}\u{302}t nam!"), "vi\u{1EC7}t nam!");
        assert_eq!(normalized("vie\u{302}\u{323}t nam!"), "vi\u{1EC7}t nam!");
    }

    #[test]
    fn every_space_is_the_ascii_space() {
        let ascii = "correct horse battery";
        for space in [
            '\u{3000}', '\u{00A0}', '\u{2003}', '\u{202F}', '\u{205F}', '\u{1680}',
        ] {
            let typed = ascii.replace(' ', &space.to_string());
            assert_eq!(normalized(&typed), ascii, "U+{:04X}", space as u32);
        }
        assert_eq!(
            normalized("  spaces kept  "),
            "  spaces kept  ",
            "never trimmed"
        );
    }

    #[test]
    fn compatibility_forms_fold_and_case_stays() {
        assert_eq!(normalized("ＦＵＬＬＷＩＤＴＨ"), "FULLWIDTH");
        assert_eq!(normalized("\u{FB01}le-system"), "file-system");
        assert_eq!(normalized("MiXeD CaSe"), "MiXeD CaSe");
    }

    #[test]
    fn printable_unicode_is_accepted() {
        for raw in [
            "пароль-пароль",
            "密码密码密码密码",
            "كلمة السر الطويلة",
            "👍👍👍👍👍👍👍👍",
            "\u{1F970}\u{1F970}\u{1F970}\u{1F970}\u{1F970}\u{1F970}\u{1F970}\u{1F970}",
            "\u{2764}\u{FE0F} family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        ] {
            assert_eq!(normalized(raw), raw);
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for c in [
            '\u{0}', '\u{7}', '\u{7F}', '\u{85}', '\u{200B}', '\u{00AD}', '\u{202E}', '\u{2066}',
            '\u{FEFF}', '\u{2060}',
        ] {
            let raw = format!("hunter2{c}hunter2");
            let e = Password::parse("p", raw.clone())
                .err()
                .unwrap_or_else(|| panic!("{raw:?}"));
            assert_eq!(e.field, "p");
            assert!(!e.message.contains(c) && !e.message.contains("hunter2"));
            assert!(NewPassword::parse("p", raw).is_err());
        }
    }

    #[test]
    fn limits_apply_to_the_normalized_form() {
        // 8 decomposed characters (16 code points) are 8 characters once composed ...
        assert!(Password::parse("p", "e\u{301}".repeat(8)).is_ok());
        assert!(Password::parse("p", "e\u{301}".repeat(7)).is_err());
        // ... and 128 composed ones are not too long, while 129 are.
        assert!(Password::parse("p", "e\u{301}".repeat(128)).is_ok());
        assert!(Password::parse("p", "e\u{301}".repeat(129)).is_err());
        assert!(Password::parse("p", String::new()).is_err());
        // The common-password check sees the normalized form.
        assert!(NewPassword::parse("p", "friend of emily".into()).is_err());
        assert!(NewPassword::parse("p", "Friend\u{3000}of\u{A0}Emily".into()).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::parse("p", "hunter2hunter2".into()).unwrap();
        assert_eq!(format!("{p:?}"), "[redacted]");
    }
}
