//! JSON request bodies: `http::extract::parse_json` for the login/register body (the real
//! `http::auth::Credentials`, and a same-shaped struct whose fields can be read) and the admin
//! user patch, then `Email::parse`, `Password::parse` and `NewPassword::parse` on what parsed.
//! The whole input, when it is UTF-8, also goes straight to the three domain parsers.
//!
//! Properties: no panic; the mirror struct parses exactly when `Credentials` does; errors carry
//! the fixed messages and a field path made of our field names only (no input echoed); an
//! accepted email is trimmed, at most 254 characters, has one `@` with both sides non-empty, a
//! lower-case local part and a lower-case ASCII (A-label) domain, parses again to itself, and
//! is just the lower-cased input when the input is ASCII; an accepted password has 8..=128
//! characters after normalization, parses again to itself, and is kept unchanged when it is
//! printable ASCII (which is refused only for its length); a `NewPassword` is always a valid
//! `Password` of the same normalized form.

#![no_main]

use authd::{
    domain::{Email, NewPassword, Password},
    error::{ApiError, FieldError},
    http::{auth::Credentials, extract::parse_json},
};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// Same shape as `Credentials` (whose fields are private).
#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

/// Same shape as the admin handler's private `UserPatch`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct UserPatch {
    disabled: Option<bool>,
    roles: Option<Vec<String>>,
}

/// Documented limit (`authd::domain::email::MAX_EMAIL_LEN`, not exported) and the DB CHECK.
const MAX_EMAIL_CHARS: usize = 254;

const MESSAGES: &[&str] = &[
    "must be a JSON object",
    "is given more than once",
    "is required",
    "has the wrong type",
    "is not allowed",
    "has an invalid value",
];

fuzz_target!(|data: &[u8]| {
    let real = parse_json::<Credentials>(data);
    let login = parse_json::<Login>(data);
    assert_eq!(real.is_ok(), login.is_ok(), "mirror struct disagrees");
    if let (Err(a), Err(b)) = (&real, &login) {
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "mirror struct errs differently"
        );
    }
    match login {
        Ok(l) => {
            check_email(&l.email);
            check_password(l.password);
        }
        Err(e) => check_error(&e, &["email", "password"]),
    }

    if let Err(e) = parse_json::<UserPatch>(data) {
        check_error(&e, &["disabled", "roles"]);
    }

    if let Ok(s) = std::str::from_utf8(data) {
        check_email(s);
        check_password(s.to_string());
    }
});

/// `parse_json`'s errors never echo the input: fixed texts, paths of known field names.
fn check_error(e: &ApiError, fields: &[&str]) {
    match e {
        ApiError::InvalidJson(m) => {
            let ok = m == "trailing characters after the JSON value"
                || m.strip_prefix("syntax error at line ").is_some_and(|r| {
                    r.split_once(" column ").is_some_and(|(l, c)| {
                        l.bytes().all(|b| b.is_ascii_digit())
                            && c.bytes().all(|b| b.is_ascii_digit())
                    })
                });
            assert!(ok, "unexpected InvalidJson message {m:?}");
        }
        ApiError::Validation(errs) => {
            assert_eq!(errs.len(), 1);
            let FieldError { field, message } = &errs[0];
            assert!(MESSAGES.contains(&message.as_str()), "message {message:?}");
            assert!(
                is_known_path(field, fields),
                "field path {field:?} is not ours"
            );
        }
        other => panic!("parse_json returned {other:?}"),
    }
}

/// `body`, or a field name or nothing followed by `[index]`s (a struct also deserializes from
/// a JSON array, whose errors are at `[i]`).
fn is_known_path(path: &str, fields: &[&str]) -> bool {
    if path == "body" {
        return true;
    }
    let only_indexes = |mut rest: &str| {
        while let Some(r) = rest.strip_prefix('[') {
            let Some((idx, after)) = r.split_once(']') else {
                return false;
            };
            if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            rest = after;
        }
        rest.is_empty()
    };
    (path.starts_with('[') && only_indexes(path))
        || fields
            .iter()
            .any(|f| path.strip_prefix(f).is_some_and(only_indexes))
}

fn check_email(raw: &str) {
    let email = match Email::parse("email", raw) {
        Ok(e) => e,
        Err(e) => {
            assert_eq!(e.field, "email");
            return;
        }
    };
    let s = email.as_str();
    if raw.is_ascii() {
        assert_eq!(s, raw.trim().to_ascii_lowercase(), "ASCII email not just lower-cased");
    }
    assert_eq!(s, s.trim(), "email not trimmed");
    let chars = s.chars().count();
    assert!(
        chars <= MAX_EMAIL_CHARS,
        "accepted email has {chars} characters (> 254): {raw:?}"
    );
    let (local, domain) = s.split_once('@').expect("email has an @");
    assert!(!local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    assert_eq!(local, local.to_lowercase(), "local part not lower-case");
    assert!(
        domain.is_ascii() && domain == domain.to_ascii_lowercase(),
        "domain not in lower-case A-label form: {domain:?}"
    );
    assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
    assert_eq!(
        Email::parse("email", s).as_ref().map(Email::as_str),
        Ok(s),
        "a normalized email does not parse to itself"
    );
}

fn check_password(raw: String) {
    // Printable ASCII is what PRECIS OpaqueString leaves alone: kept as is, refused only for
    // its length.
    let printable_ascii = raw.bytes().all(|b| (0x20..0x7f).contains(&b));
    match Password::parse("password", raw.clone()) {
        Ok(p) => {
            let n = p.expose().chars().count();
            assert!(
                (8..=128).contains(&n),
                "accepted a password of {n} characters"
            );
            if printable_ascii {
                assert_eq!(p.expose(), raw);
            }
            assert_eq!(
                Password::parse("password", p.expose().to_string())
                    .as_ref()
                    .map(Password::expose),
                Ok(p.expose()),
                "a normalized password does not parse to itself"
            );
            assert_eq!(format!("{p:?}"), "[redacted]");
        }
        Err(e) => {
            assert_eq!(e.field, "password");
            let n = raw.chars().count();
            assert!(
                !printable_ascii || !(8..=128).contains(&n),
                "refused a printable ASCII password of {n} characters"
            );
        }
    }
    if let Ok(p) = NewPassword::parse("password", raw.clone()) {
        let plain = Password::parse("password", raw).expect("a NewPassword is a Password");
        assert_eq!(p.expose(), plain.expose());
    }
}
