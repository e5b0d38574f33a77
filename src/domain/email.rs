use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use precis_core::{
    DerivedPropertyValue, Error as PrecisError, FreeformClass, StringClass,
    profile::PrecisFastInvocation,
};
use precis_profiles::UsernameCaseMapped;

use crate::error::FieldError;

/// An email address in the one canonical form that names an account, so that every way a
/// person can type the same address (any keyboard, OS or input method, any case) finds the
/// same account, and look-alikes that differ only by invisible characters cannot exist.
///
/// [`Email::parse`] applies, in this order:
/// 1. Trim surrounding whitespace; refuse an empty value, and any whitespace or control
///    character left inside.
/// 2. Split at the last `@`: exactly one `@`, with something on both sides (no quoted local
///    parts), and a domain that neither starts nor ends with `.`.
/// 3. Refuse, anywhere in the address, the code points that the PRECIS FreeformClass
///    (RFC 8264 §4.3) disallows: controls, default-ignorable ("invisible") code points such as
///    U+200B zero width space, U+00AD soft hyphen, U+2060 word joiner, U+FEFF, the bidi
///    controls U+202A..U+202E and U+2066..U+2069 and the variation selectors; joiners (U+200C,
///    U+200D) outside the contexts RFC 5892 allows; noncharacters, private use, surrogates,
///    and code points unassigned in the PRECIS tables' Unicode version (6.3, `precis-core`).
/// 4. Local part (before the `@`): the PRECIS **UsernameCaseMapped** profile (RFC 8265 §3.3):
///    width mapping (fullwidth and halfwidth forms become their normal forms, so `ＡＢＣ` is
///    `ABC`), then the IdentifierClass check (letters, digits, combining marks and printable
///    ASCII are allowed; other symbols, punctuation, spaces and compatibility characters are
///    not), case mapping to lower case (Unicode `toLowerCase`), NFC normalization, and the Bidi
///    Rule (RFC 5893) for right-to-left text.
/// 5. Domain (after the `@`): IDNA2008 as profiled by UTS #46 (`idna` crate): non-transitional
///    mapping (case folding, width mapping, `。` to `.`), validity and Bidi/joiner checks,
///    STD3 ASCII rules (letters, digits and hyphens only; no leading or trailing hyphen) and
///    DNS length limits, then conversion to the ASCII (A-label, punycode) form. So
///    `bücher.example`, `BÜCHER.example` and `xn--bcher-kva.example` are one domain.
/// 6. The result `<local>@<ascii-domain>` must be at most [`MAX_EMAIL_LEN`] characters
///    (normalization can lengthen a string: `İ` lower-cases to two code points).
///
/// The result is what is stored, compared and rate-limited on. What it does not do: fold
/// cross-script confusables (Latin `a` vs Cyrillic `а`, UTS #39) or provider-specific aliases
/// (dots and `+tags` in Gmail addresses); those remain different accounts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The longest address accepted, in Unicode scalar values of the normalized form (RFC 5321
/// §4.5.3.1.3 path limit of 256 octets, minus the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

const NOT_AN_EMAIL: &str = "must be an email address";

impl Email {
    /// Normalizes and validates `raw` as described on [`Email`]. Errors name `field` and never
    /// echo the input.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new(field, m);
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(err("must not be empty"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("must not contain spaces or control characters"));
        }
        let (local, domain) = match trimmed.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !local.contains('@')
                    && !domain.is_empty()
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                (local, domain)
            }
            _ => return Err(err(NOT_AN_EMAIL)),
        };
        FreeformClass::default()
            .allows(trimmed)
            .map_err(|e| err(precis_refusal(&e)))?;
        let local = UsernameCaseMapped::enforce(local).map_err(|_| {
            err("may contain before the @ only letters, digits, combining marks and ASCII punctuation")
        })?;
        let domain = Uts46::new()
            .to_ascii(
                domain.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::CheckFirstLast,
                DnsLength::Verify,
            )
            .map_err(|_| err("must have a valid domain name after the @"))?;
        let normalized = format!("{local}@{domain}");
        if normalized.chars().count() > MAX_EMAIL_LEN {
            return Err(err("must be at most 254 characters"));
        }
        Ok(Self(normalized))
    }

    /// The normalized address (see [`Email`]).
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

/// The validation message for a string that a PRECIS string class refused (RFC 8264): which
/// kind of character, never which one or where.
fn precis_refusal(e: &PrecisError) -> &'static str {
    match e {
        PrecisError::BadCodepoint(info) if info.property == DerivedPropertyValue::Unassigned => {
            "must not contain characters unassigned in Unicode 6.3 (such as recent emoji)"
        }
        _ => "must not contain invisible, control or formatting characters",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        Email::parse("email", raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(norm("  Ann@Example.COM "), "ann@example.com");
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

    #[test]
    fn fullwidth_and_halfwidth_forms_are_the_ascii_address() {
        assert_eq!(norm("ＡＢＣ@Example.test"), "abc@example.test");
        assert_eq!(norm("ａｂｃ@ｅｘａｍｐｌｅ．ｔｅｓｔ"), "abc@example.test");
        assert_eq!(norm("abc@EXAMPLE.TEST"), "abc@example.test");
        // Halfwidth katakana become the normal (fullwidth) katakana.
        assert_eq!(norm("ｱｲ@example.test"), norm("アイ@example.test"));
    }

    #[test]
    fn local_part_is_nfc_and_lower_case() {
        let composed = norm("José@example.test");
        assert_eq!(composed, "josé@example.test");
        assert_eq!(norm("Jose\u{301}@example.test"), composed, "decomposed é");
        assert_eq!(norm("ΣΟΦΙΑ@example.test"), "σοφια@example.test");
    }

    #[test]
    fn idn_domains_become_their_ascii_form() {
        let ascii = "user@xn--bcher-kva.example";
        assert_eq!(norm("user@bücher.example"), ascii);
        assert_eq!(norm("user@BÜCHER.example"), ascii);
        assert_eq!(norm("user@bu\u{308}cher.example"), ascii, "decomposed ü");
        assert_eq!(norm("user@XN--BCHER-KVA.example"), ascii);
        assert_eq!(norm(ascii), ascii);
        // An ideographic full stop, as typed with a Japanese input method.
        assert_eq!(norm("user@bücher。example"), ascii);
    }

    #[test]
    fn invisible_and_control_characters_are_refused_anywhere() {
        for c in [
            '\u{200B}', // zero width space
            '\u{200C}', // zero width non-joiner (outside its RFC 5892 context)
            '\u{200D}', // zero width joiner (likewise)
            '\u{2060}', // word joiner
            '\u{FEFF}', // zero width no-break space
            '\u{00AD}', // soft hyphen
            '\u{034F}', // combining grapheme joiner
            '\u{202E}', // right-to-left override
            '\u{2066}', // left-to-right isolate
            '\u{FE0F}', // variation selector 16
            '\u{E000}', // private use
            '\u{0085}', // next line (a control)
        ] {
            for raw in [
                format!("ab{c}c@example.test"),
                format!("abc@exa{c}mple.test"),
            ] {
                let e = Email::parse("email", &raw).expect_err(&format!("{raw:?}"));
                assert_eq!(e.field, "email");
                assert!(
                    !e.message.contains(c),
                    "the message does not echo the input"
                );
            }
        }
    }

    #[test]
    fn identifier_class_rules_apply_to_the_local_part() {
        // Printable ASCII stays allowed, as before.
        assert_eq!(
            norm("a.b+c_d-e!#$%&'*/=?^`{|}~@example.test"),
            "a.b+c_d-e!#$%&'*/=?^`{|}~@example.test"
        );
        // Non-ASCII symbols and compatibility characters (other than width forms) are not.
        for bad in ["a☕@example.test", "ﬁle@example.test", "x²@example.test"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn domains_follow_hostname_rules() {
        for bad in [
            "a@-example.test",
            "a@example-.test",
            "a@exa_mple.test",
            "a@[127.0.0.1]",
            "a@example..test",
            "a@xn--a.example", // not valid punycode
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
        let long_label = format!("a@{}.test", "b".repeat(64));
        assert!(Email::parse("email", &long_label).is_err());
    }

    #[test]
    fn normalization_is_idempotent() {
        for raw in [
            "ＡＢＣ@Example.test",
            "Jose\u{301}@bücher.example",
            "İstanbul@example.test",
            "ΣΟΦΙΑ@例え.テスト",
        ] {
            let once = norm(raw);
            assert_eq!(norm(&once), once, "{raw:?}");
        }
    }
}
