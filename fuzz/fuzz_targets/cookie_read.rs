//! `CookieSettings::read` on fuzzed `Cookie` headers, and `RefreshToken::parse`.
//!
//! Input: one or more `Cookie` header values separated by `\n` (a byte no header value may
//! hold); values `HeaderValue::from_bytes` rejects are skipped. Each piece, as text, also goes
//! to `RefreshToken::parse`. Two settings are read with: the default config's
//! (`authd_refresh`, path /auth) and a `__Host-` one.
//!
//! Properties: no panic; `read` finds nothing unless the cookie name is in some header; a token
//! it returns is in a header, is exactly what `RefreshToken::parse` accepts, and round-trips;
//! `RefreshToken::parse` accepts only canonical base64url of 32 bytes, and its successor and the
//! `Set-Cookie` built from it parse back.

#![no_main]

use std::sync::LazyLock;

use authd::{
    tokens::{
        cookies::{CookieSettings, MAX_PRESENTED, PresentedCookie},
        refresh::{RefreshToken, SuccessorKey},
    },
    cli::Cli,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use clap::Parser;
use http::{HeaderMap, HeaderValue, header::COOKIE};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    settings: Vec<(String, CookieSettings)>,
    successor: SuccessorKey,
}

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let settings = [
        vec!["authd"],
        vec![
            "authd",
            "--cookie-name",
            "__Host-authd",
            "--cookie-path",
            "/",
            "--cookie-samesite",
            "lax",
        ],
    ]
    .into_iter()
    .map(|argv| {
        let config = Cli::try_parse_from(argv).expect("config").config;
        config.validate().expect("valid config");
        (
            config.cookie_name.clone(),
            CookieSettings::from_config(&config),
        )
    })
    .collect();
    Fixture {
        settings,
        successor: SuccessorKey::new(&[7u8; 32]),
    }
});

fuzz_target!(|data: &[u8]| {
    let fx = &*FX;
    let mut headers = HeaderMap::new();
    let mut values: Vec<&[u8]> = Vec::new();
    for piece in data.split(|&b| b == b'\n') {
        if let Ok(s) = std::str::from_utf8(piece) {
            check_parse(s);
        }
        if let Ok(v) = HeaderValue::from_bytes(piece) {
            headers.append(COOKIE, v);
            values.push(piece);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        check_parse(s);
    }

    for (name, settings) in &fx.settings {
        let contains = |needle: &[u8]| {
            !needle.is_empty()
                && values
                    .iter()
                    .any(|v| v.windows(needle.len()).any(|w| w == needle))
        };
        match settings.read(&headers) {
            PresentedCookie::Missing => {}
            PresentedCookie::Malformed => {
                assert!(
                    contains(name.as_bytes()),
                    "Malformed without our cookie name"
                )
            }
            PresentedCookie::Tokens(tokens) => {
                assert!(contains(name.as_bytes()), "token without our cookie name");
                assert!(!tokens.is_empty() && tokens.len() <= MAX_PRESENTED);
                for t in tokens {
                    assert!(
                        contains(t.as_str().as_bytes()),
                        "token not taken from a header"
                    );
                    assert_eq!(RefreshToken::parse(t.as_str()).as_ref(), Some(&t));
                    check_parse(t.as_str());
                }
            }
        }
    }
});

fn check_parse(raw: &str) {
    let Some(t) = RefreshToken::parse(raw) else {
        return;
    };
    assert_eq!(t.as_str(), raw, "parse changed the token");
    assert_eq!(raw.len(), 43);
    let bytes = B64.decode(raw).expect("accepted token is base64url");
    assert_eq!(bytes.len(), 32);
    assert_eq!(B64.encode(&bytes), raw, "accepted a non-canonical encoding");
    assert!(!format!("{t:?}").contains(raw), "Debug prints the token");
    let _ = t.hash();

    let next = FX.successor.successor(&t);
    assert_eq!(RefreshToken::parse(next.as_str()).as_ref(), Some(&next));

    // What we send back must come back to us: the Set-Cookie carries exactly the token.
    for (name, settings) in &FX.settings {
        for max_age in [i64::MIN, -1, 0, 1, 604_800, i64::MAX] {
            let set = settings.set(&t, max_age);
            let set = set.to_str().expect("Set-Cookie is visible ASCII");
            assert!(!set.is_empty(), "Set-Cookie fell back to empty");
            let c = cookie::Cookie::parse(set).expect("Set-Cookie parses");
            assert_eq!(c.name(), name);
            assert_eq!(c.value(), raw);
            assert_eq!(c.http_only(), Some(true));
            let age = c.max_age().expect("Max-Age").whole_seconds();
            assert_eq!(age, max_age.max(0));
            // And as a request Cookie header, read() gives the same token.
            let mut h = HeaderMap::new();
            h.append(
                COOKIE,
                HeaderValue::from_str(&format!("{name}={raw}")).unwrap(),
            );
            match settings.read(&h) {
                PresentedCookie::Tokens(back) => assert_eq!(back, vec![t.clone()]),
                other => panic!("own cookie read back as {other:?}"),
            }
        }
        let cleared = settings.clear();
        let c = cookie::Cookie::parse(cleared.to_str().unwrap()).expect("clearing cookie parses");
        assert_eq!((c.name(), c.value()), (name.as_str(), ""));
    }
}
