use std::{collections::HashSet, fmt, sync::LazyLock};

use precis_core::{DerivedPropertyValue, Error as PrecisError, profile::PrecisFastInvocation};
use precis_profiles::OpaqueString;

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
/// NIST SP 800-63B §5.1.1.2 asks verifiers to accept spaces and Unicode in passwords, to count
/// each code point as one character and to normalize Unicode before hashing (it names NFKC or
/// NFKD). [`Password::parse`] does this with the IETF profile for passwords, PRECIS
/// **OpaqueString** (RFC 8265 §4.2), which normalizes to NFC instead so that compatibility
/// characters a person can deliberately type stay distinct:
/// - non-ASCII spaces (Unicode Zs: U+00A0 no-break space, U+3000 ideographic space, U+2000..
///   U+200A, ...) become U+0020, so the space bar of every keyboard and input method is one
///   character;
/// - Unicode NFC normalization, so `é` typed composed (U+00E9, most systems) and decomposed
///   (`e` U+0301, e.g. macOS file names and some input methods) are the same password;
/// - refusal of the code points the FreeformClass (RFC 8264 §4.3) disallows: controls,
///   default-ignorable ("invisible") code points such as U+200B, U+00AD, the bidi controls and
///   the variation selectors (so the `U+FE0F` some emoji keyboards append is refused), joiners
///   outside their RFC 5892 contexts, conjoining Hangul jamo (Korean input methods send
///   precomposed syllables), noncharacters, private use, and code points unassigned
///   in Unicode 6.3 (the version of the `precis-core` tables; this includes emoji added
///   since 2013).
///
/// No case mapping, no compatibility (NFKC) folding: `ﬁ`, `²` and fullwidth letters stay
/// distinct from `fi`, `2` and ASCII letters. Leading and trailing spaces are kept. Then
/// 8..=128 characters (Unicode scalar values) of the normalized form, checked before any hashing, so a
/// megabyte "password" never reaches argon2. Never truncated, never printed.
///
/// A hash stored before this normalization existed, of a password that was not already in
/// this form (not NFC, or with non-ASCII spaces), no longer verifies: acceptable because no
/// deployment had users then; such a user would reset their password.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Normalizes and checks `raw` as described on [`Password`]. Errors name `field` and
    /// never echo the input.
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let too_short = || FieldError::new(field, "must be at least 8 characters");
        let normalized = match OpaqueString::enforce(raw.as_str()) {
            Ok(s) => s.into_owned(),
            // The only other refusal: the empty string.
            Err(PrecisError::Invalid) => return Err(too_short()),
            Err(e) => return Err(FieldError::new(field, precis_refusal(&e))),
        };
        let n = normalized.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(too_short());
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

/// The validation message for a string that a PRECIS string class refused (RFC 8264): which
/// kind of character, never which one or where.
pub(super) fn precis_refusal(e: &PrecisError) -> &'static str {
    match e {
        PrecisError::BadCodepoint(info) if info.property == DerivedPropertyValue::Unassigned => {
            "must not contain characters unassigned in Unicode 6.3 (such as recent emoji)"
        }
        _ => "must not contain invisible, control or formatting characters",
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
    fn compatibility_characters_and_case_stay_distinct() {
        for raw in [
            "\u{FB01}le-system",
            "x\u{B2}y\u{B2}z\u{B2}w\u{B2}",
            "ＦＵＬＬＷＩＤＴＨ",
            "MiXeD CaSe",
        ] {
            assert_eq!(normalized(raw), raw);
        }
    }

    #[test]
    fn printable_unicode_is_accepted() {
        for raw in [
            "пароль-пароль",
            "密码密码密码密码",
            "كلمة السر الطويلة",
            "👍👍👍👍👍👍👍👍",
            "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        ] {
            assert_eq!(normalized(raw), raw);
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for c in [
            '\u{0}', '\u{7}', '\u{7F}', '\u{85}', '\u{200B}', '\u{00AD}', '\u{202E}', '\u{2066}',
            '\u{FEFF}', '\u{FE0F}', '\u{E000}', '\u{FFFF}', '\u{200D}', '\u{1100}',
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
    fn code_points_newer_than_the_precis_tables_are_refused_with_their_own_message() {
        // U+1F970 (Unicode 11, 2018) is unassigned in the Unicode 6.3 tables of precis-core.
        let e = Password::parse("p", "hunter2\u{1F970}hunter2".into()).unwrap_err();
        assert!(e.message.contains("unassigned"), "{}", e.message);
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
