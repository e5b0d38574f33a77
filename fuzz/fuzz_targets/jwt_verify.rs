//! `Jwt::verify` and `Jwt::has_unknown_kid` on access tokens.
//!
//! The first input byte picks a mode (`data[0] % 5`); the rest is that mode's input:
//!
//! 0. raw: the rest, as text, is the token (`$KID` is replaced by the real kid, so the key
//!    lookup can be passed without the fuzzer having to guess a random thumbprint);
//! 1. typed header: `header-json 0xFF claims-json`; the header is parsed into a
//!    `jsonwebtoken::Header` (defaults when it does not parse), flag bits of `data[0] / 5`
//!    force alg / typ / kid, the claims are any JSON value; signed with the real key;
//! 2. raw signed: `header-bytes 0xFF claims-bytes`, base64url'd as they are (`$KID` replaced)
//!    and signed with the real key, so arbitrary header and claims JSON get past the signature;
//! 3. template: a mostly-valid token whose every header field and claim is chosen by the fuzzer
//!    (right value, boundary times around the leeway, wrong types, missing, extra); when every
//!    choice is a valid one the token must verify;
//! 4. sign round trip: `Jwt::sign` with fuzzed roles (`0xFF`-separated); the token must verify
//!    and give the roles back unless it is longer than verify's 4096-byte limit.
//!
//! Properties: no panic; `verify` accepts only EdDSA, `typ` at+jwt, our kid, no `crit`, our
//! `iss`/`aud`, unexpired (with the leeway) tokens of at most 4096 bytes, issued not in the future
//! and living at most the TTL (`exp - iat`); a token that verifies never has an unknown kid.

#![no_main]

use std::sync::LazyLock;

use authd::{
    tokens::jwt::{AccessClaims, Jwt, KeyMaterial, KeySet, LEEWAY_SECS, unix_now},
    cli::Cli,
    config::SigningAlg,
    error::ApiError,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::{
    arbitrary::{Arbitrary, Result as AResult, Unstructured},
    fuzz_target,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

const MAX_TOKEN_LEN: usize = 4096; // authd::tokens::jwt's private limit
const KID_PLACEHOLDER: &str = "$KID";
const SEP: u8 = 0xFF; // never in UTF-8, so never inside JSON text
const HEADER_NAMES: &[&str] = &[
    "typ", "alg", "cty", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crit", "enc",
    "zip", "url", "nonce",
];
const CLAIM_NAMES: &[&str] = &[
    "iss", "aud", "sub", "sid", "jti", "iat", "exp", "nbf", "roles",
];

/// `AUTHD_FUZZ_DEBUG=1`: print each verdict (to check a seed reaches the path it is meant for).
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("AUTHD_FUZZ_DEBUG").is_some());

struct Fixture {
    jwt: Jwt,
    key: KeyMaterial,
    enc: EncodingKey,
    issuer: String,
    audience: String,
}

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let config = Cli::try_parse_from(["authd"])
        .expect("default config")
        .config;
    let key = KeyMaterial::generate(SigningAlg::EdDSA).expect("generate key");
    let set = KeySet::new(Some(&key), &[]);
    let jwt = Jwt::new(set, &config.issuer.url, &config.audience, config.access_ttl);
    let enc = EncodingKey::from_ed_der(&key.private_der);
    Fixture {
        jwt,
        key,
        enc,
        issuer: config.issuer.url.clone(),
        audience: config.audience.clone(),
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let flags = first / 5;
    match first % 5 {
        0 => raw(rest),
        1 => typed_header(flags, rest),
        2 => raw_signed(rest),
        3 => {
            let _ = template(&mut Unstructured::new(rest));
        }
        _ => sign_round_trip(rest),
    }
});

fn split_sep(rest: &[u8]) -> (&[u8], &[u8]) {
    match rest.iter().position(|&b| b == SEP) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[]),
    }
}

fn with_kid(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains(KID_PLACEHOLDER) {
        // Lossy only when a placeholder is there; otherwise keep the bytes exactly.
        text.replace(KID_PLACEHOLDER, &FX.key.kid).into_bytes()
    } else {
        bytes.to_vec()
    }
}

fn raw(rest: &[u8]) {
    let bytes = with_kid(rest);
    match std::str::from_utf8(&bytes) {
        Ok(s) => check(s),
        Err(_) => check(&String::from_utf8_lossy(&bytes)),
    };
}

fn typed_header(flags: u8, rest: &[u8]) {
    let (h, c) = split_sep(rest);
    let mut header: Header =
        serde_json::from_slice(&with_kid(h)).unwrap_or_else(|_| Header::new(Algorithm::EdDSA));
    if flags & 1 == 0 {
        header.alg = Algorithm::EdDSA;
    }
    if flags & 2 == 0 {
        header.typ = Some("at+jwt".into());
    }
    if flags & 4 == 0 {
        header.kid = Some(FX.key.kid.clone());
    }
    let claims: Value = serde_json::from_slice(c)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(c).into_owned()));
    // Fails only for an alg of another family than the Ed25519 key: nothing to verify then.
    if let Ok(token) = jsonwebtoken::encode(&header, &claims, &FX.enc) {
        check(&token);
    }
}

fn sign_message(message: String) -> String {
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &FX.enc, Algorithm::EdDSA)
        .expect("EdDSA signing with the fixture key");
    format!("{message}.{sig}")
}

fn raw_signed(rest: &[u8]) {
    let (h, c) = split_sep(rest);
    let message = format!("{}.{}", B64.encode(with_kid(h)), B64.encode(c));
    check(&sign_message(message));
}

/// A JSON value of bounded size and depth.
fn any_json(u: &mut Unstructured, depth: u32) -> AResult<Value> {
    let top = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => json!(i64::arbitrary(u)?),
        3 => json!(u64::arbitrary(u)?),
        4 => serde_json::Number::from_f64(f64::arbitrary(u)?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        5 => Value::String(String::arbitrary(u)?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(any_json(u, depth - 1)?);
            }
            Value::Array(v)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(String::arbitrary(u)?, any_json(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    /// Well in the future, but within the default TTL (15 min): a valid `exp`.
    Future,
    /// Well in the past: a valid `nbf`.
    Past,
    /// Within a few seconds of the leeway boundary, either side: no expectation (clock races).
    NearBoundary,
    /// Any i64: a valid `iat`, no expectation for `exp`/`nbf`.
    AnyI64,
    /// u64, float or another JSON type.
    Other,
    Missing,
}

/// A time claim relative to now. "Valid" kinds stay clear of the leeway boundary so the
/// expectation in `template` never races the clock.
fn time_claim(u: &mut Unstructured, now: i64) -> AResult<(Option<Value>, TimeKind)> {
    let leeway = LEEWAY_SECS as i64;
    Ok(match u.int_in_range(0..=7)? {
        0 => (Some(json!(now + 600)), TimeKind::Future),
        1 => (Some(json!(now - 3600)), TimeKind::Past),
        2 => {
            let off = u.int_in_range(-(leeway + 3)..=(leeway + 3))?;
            (Some(json!(now + off)), TimeKind::NearBoundary)
        }
        3 => (Some(json!(i64::arbitrary(u)?)), TimeKind::AnyI64),
        4 => (Some(json!(u64::arbitrary(u)?)), TimeKind::Other),
        5 => (
            serde_json::Number::from_f64((now as f64) + f64::arbitrary(u)?).map(Value::Number),
            TimeKind::Other,
        ),
        6 => (Some(any_json(u, 1)?), TimeKind::Other),
        _ => (None, TimeKind::Missing),
    })
}

fn template(u: &mut Unstructured) -> AResult<()> {
    let fx = &*FX;
    let now = unix_now();
    let mut valid = true;

    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = match u.int_in_range(0..=7)? {
        0 | 1 => Some("at+jwt".into()),
        2 => Some("AT+JWT".into()),
        3 => Some("application/at+jwt".into()),
        4 => {
            valid = false;
            Some("JWT".into())
        }
        5 => {
            valid = false;
            None
        }
        _ => {
            valid = false;
            Some(String::arbitrary(u)?)
        }
    };
    header.kid = match u.int_in_range(0..=4)? {
        0..=2 => Some(fx.key.kid.clone()),
        3 => {
            valid = false;
            None
        }
        _ => {
            valid = false;
            Some(String::arbitrary(u)?)
        }
    };
    if u.ratio(1, 8)? {
        valid = false;
        header.crit = Some(Vec::<String>::arbitrary(u)?);
    }
    if u.ratio(1, 8)? {
        header.jku = Some(String::arbitrary(u)?);
    }
    if u.ratio(1, 8)? {
        header.cty = Some(String::arbitrary(u)?);
    }
    if u.ratio(1, 8)? {
        // A registered name here would be serialized twice: a duplicate field, rightly refused.
        let name = String::arbitrary(u)?;
        valid &= !HEADER_NAMES.contains(&name.as_str());
        header.extras.insert(name, any_json(u, 2)?);
    }

    let mut claims = Map::new();
    let put = |claims: &mut Map<String, Value>, name: &str, v: Option<Value>| {
        if let Some(v) = v {
            claims.insert(name.into(), v);
        }
    };
    // iss / aud: ours, someone else's, wrong type or missing.
    for (name, ours) in [("iss", &fx.issuer), ("aud", &fx.audience)] {
        let v = match u.int_in_range(0..=5)? {
            0..=2 => Some(json!(ours)),
            3 => {
                valid = false;
                Some(json!(String::arbitrary(u)?))
            }
            4 => {
                valid = false;
                Some(any_json(u, 2)?)
            }
            _ => {
                valid = false;
                None
            }
        };
        put(&mut claims, name, v);
    }
    for name in ["sub", "sid", "jti"] {
        let v = match u.int_in_range(0..=4)? {
            0..=2 => Some(json!(
                Uuid::from_bytes(<[u8; 16]>::arbitrary(u)?).to_string()
            )),
            3 => {
                valid = false;
                Some(any_json(u, 1)?)
            }
            _ => {
                valid = false;
                None
            }
        };
        put(&mut claims, name, v);
    }
    let (iat, kind) = time_claim(u, now)?;
    valid &= matches!(
        kind,
        TimeKind::Future | TimeKind::Past | TimeKind::NearBoundary | TimeKind::AnyI64
    );
    let iat_secs = iat.as_ref().and_then(Value::as_i64);
    put(&mut claims, "iat", iat);
    let (exp, kind) = time_claim(u, now)?;
    valid &= kind == TimeKind::Future;
    // The lifetime bound: issued not after now (clear of the leeway), living at most the TTL.
    let ttl = fx.jwt.ttl().as_secs() as i64;
    valid &= matches!((iat_secs, exp.as_ref().and_then(Value::as_i64)),
        (Some(i), Some(e)) if i <= now && e.saturating_sub(i) <= ttl);
    put(&mut claims, "exp", exp);
    let (nbf, kind) = time_claim(u, now)?;
    valid &= matches!(kind, TimeKind::Past | TimeKind::Missing);
    put(&mut claims, "nbf", nbf);
    let roles = match u.int_in_range(0..=4)? {
        0..=2 => Some(json!(Vec::<String>::arbitrary(u)?)),
        3 => {
            valid = false;
            Some(any_json(u, 2)?)
        }
        _ => {
            valid = false;
            None
        }
    };
    put(&mut claims, "roles", roles);
    if u.ratio(1, 4)? {
        // Unknown claims are ignored by AccessClaims.
        let k = String::arbitrary(u)?;
        if !CLAIM_NAMES.contains(&k.as_str()) {
            claims.insert(k, any_json(u, 2)?);
        }
    }

    let token = jsonwebtoken::encode(&header, &Value::Object(claims), &fx.enc)
        .expect("EdDSA header with the Ed25519 key encodes");
    let result = check(&token);
    if valid && token.len() <= MAX_TOKEN_LEN {
        assert!(
            result.is_some(),
            "a token with only valid choices was rejected: {token}"
        );
    }
    Ok(())
}

fn sign_round_trip(rest: &[u8]) {
    let roles: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == SEP)
            .take(256)
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    };
    let (sub, sid) = (Uuid::new_v4(), Uuid::new_v4());
    let (token, _) = FX.jwt.sign(sub, sid, &roles, i64::MAX).expect("sign");
    match check(&token) {
        Some(c) => assert_eq!((c.sub, c.sid, c.roles), (sub, sid, roles)),
        None => assert!(
            token.len() > MAX_TOKEN_LEN,
            "a token authd signed ({} bytes) does not verify",
            token.len()
        ),
    }
}

/// Runs both entry points on one token and checks what an accepted token must satisfy.
fn check(token: &str) -> Option<AccessClaims> {
    let fx = &*FX;
    let unknown_kid = fx.jwt.has_unknown_kid(token);
    let result = fx.jwt.verify(token);
    if *DEBUG {
        eprintln!("verify -> {:?}", result.as_ref().map(|c| &c.roles));
    }
    let claims = match result {
        Ok(c) => c,
        Err(ApiError::InvalidToken | ApiError::TokenExpired) => return None,
        Err(other) => panic!("verify returned an unexpected error: {other:?}"),
    };
    assert!(token.len() <= MAX_TOKEN_LEN, "over-long token accepted");
    assert!(!unknown_kid, "verified token reported as unknown kid");
    let header = jsonwebtoken::decode_header(token).expect("accepted token has a header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(fx.key.kid.as_str()));
    assert!(header.crit.is_none(), "token with crit accepted");
    let typ = header.typ.as_deref().unwrap_or("");
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "typ {typ:?} accepted"
    );
    assert_eq!(claims.iss, fx.issuer);
    assert_eq!(claims.aud, fx.audience);
    let now = unix_now();
    let leeway = LEEWAY_SECS as i64;
    // +1: the clock may tick between verify and here.
    assert!(
        claims.exp.saturating_add(leeway + 1) >= now,
        "expired token accepted: exp {} now {now}",
        claims.exp
    );
    assert!(
        claims.iat <= now + leeway + 1
            && claims.exp.saturating_sub(claims.iat) <= fx.jwt.ttl().as_secs() as i64,
        "token issued in the future or living longer than the TTL accepted: iat {} exp {}",
        claims.iat,
        claims.exp
    );
    if let Some(nbf) = claims.nbf {
        assert!(
            nbf.saturating_sub(leeway + 1) <= now,
            "not-yet-valid token accepted: nbf {nbf} now {now}"
        );
    }
    Some(claims)
}
