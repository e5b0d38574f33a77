//! Request-header parsing: `bearer_token` (Authorization), `csrf::check` (Origin,
//! Sec-Fetch-Site), `client_ip` (X-Forwarded-For) and `config::origin_of`.
//!
//! Input: records separated by `\n` (never inside a header value). A record's first byte names
//! the header: `A` Authorization, `O` Origin, `S` Sec-Fetch-Site, `X` X-Forwarded-For, anything
//! else `byte % 5` (the four, or an unrelated `x-other`); the rest is the value, skipped if
//! `HeaderValue::from_bytes` rejects it. Every value, as text, also goes to `origin_of`.
//!
//! Properties: no panic; a bearer token is only returned from exactly one Authorization header
//! whose scheme is `Bearer`, trimmed and non-empty; `csrf::check` never accepts two Origins, an
//! Origin other than our own or an allowed one (so never `null`), nor a cross-site fetch without
//! an Origin; `client_ip` is the peer without trusted X-Forwarded-For; `origin_of` returns an
//! http(s) origin with no path that is its own origin and that `csrf::check` accepts.

#![no_main]

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::LazyLock,
};

use authd::{
    http::{
        csrf,
        extractors::{bearer_token, client_ip},
    },
    cli::Cli,
    config::{Origins, origin_of},
    error::ApiError,
};
use clap::Parser;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

struct Fixture {
    own_origin: String,
    /// The default config's (empty) list and a configured one.
    allowed: Vec<Origins>,
}

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let default = Cli::try_parse_from(["authd"])
        .expect("default config")
        .config;
    let configured = Cli::try_parse_from([
        "authd",
        "--allowed-origins",
        "https://app.example.test, http://localhost:5173, http://[::1]:3000",
    ])
    .expect("config with origins")
    .config;
    Fixture {
        own_origin: default.issuer.origin.clone(),
        allowed: vec![default.allowed_origins, configured.allowed_origins],
    }
});

fn header_for(selector: u8) -> HeaderName {
    let sec_fetch_site = HeaderName::from_static("sec-fetch-site");
    let xff = HeaderName::from_static("x-forwarded-for");
    match selector {
        b'A' => header::AUTHORIZATION,
        b'O' => header::ORIGIN,
        b'S' => sec_fetch_site,
        b'X' => xff,
        b => match b % 5 {
            0 => header::AUTHORIZATION,
            1 => header::ORIGIN,
            2 => sec_fetch_site,
            3 => xff,
            _ => HeaderName::from_static("x-other"),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FX;
    let mut headers = HeaderMap::new();
    for record in data.split(|&b| b == b'\n') {
        let Some((&sel, value)) = record.split_first() else {
            continue;
        };
        check_origin_of(&String::from_utf8_lossy(value));
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(header_for(sel), v);
        }
    }

    check_bearer(&headers);
    for allowed in &fx.allowed {
        check_csrf(&headers, &fx.own_origin, allowed);
    }
    check_client_ip(&headers);
});

fn check_bearer(headers: &HeaderMap) {
    let values: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    match bearer_token(headers) {
        Ok(None) => assert!(values.is_empty(), "Authorization present but no token"),
        Ok(Some(token)) => {
            assert_eq!(
                values.len(),
                1,
                "token taken from several Authorization headers"
            );
            let raw = values[0].to_str().expect("token from a non-text header");
            assert!(
                raw.len() > 7 && raw[..7].eq_ignore_ascii_case("bearer "),
                "scheme of {raw:?} is not Bearer"
            );
            assert!(
                !token.is_empty() && token == token.trim(),
                "untrimmed token {token:?}"
            );
            assert!(raw[7..].contains(token));
        }
        Err(e) => {
            assert!(
                matches!(e, ApiError::InvalidToken),
                "unexpected error {e:?}"
            );
            assert!(
                !values.is_empty(),
                "rejected a request without Authorization"
            );
        }
    }
}

fn check_csrf(headers: &HeaderMap, own: &str, allowed: &Origins) {
    let result = csrf::check(headers, own, allowed);
    let origins: Vec<&HeaderValue> = headers.get_all(header::ORIGIN).iter().collect();
    match result {
        Err(e) => assert!(
            matches!(e, ApiError::CsrfRejected),
            "unexpected error {e:?}"
        ),
        Ok(()) => {
            assert!(
                origins.len() <= 1,
                "accepted {} Origin headers",
                origins.len()
            );
            if let Some(o) = origins.first() {
                let o = o.to_str().expect("accepted a non-text Origin");
                assert!(
                    !o.trim().eq_ignore_ascii_case("null"),
                    "accepted Origin: {o:?}"
                );
                assert!(
                    o == own || allowed.contains(o),
                    "accepted foreign Origin {o:?}"
                );
            } else {
                let cross_site = headers.get_all("sec-fetch-site").iter().any(|v| {
                    v.to_str()
                        .map(|s| s.trim().eq_ignore_ascii_case("cross-site"))
                        .unwrap_or(true)
                });
                assert!(!cross_site, "accepted a cross-site fetch without Origin");
            }
        }
    }
}

fn check_client_ip(headers: &HeaderMap) {
    for peer in [Some(PEER), None] {
        assert_eq!(
            client_ip(headers, peer, false),
            peer,
            "untrusted XFF was used"
        );
        let ip = client_ip(headers, peer, true);
        if headers.get("x-forwarded-for").is_none() {
            assert_eq!(ip, peer, "an IP without X-Forwarded-For");
        } else if let Some(ip) = ip
            && Some(ip) != peer
        {
            // It came from a hop: some X-Forwarded-For value holds an address equal to it.
            let found = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|hop| hop.trim().parse::<IpAddr>().ok() == Some(ip));
            assert!(found, "{ip} is in no X-Forwarded-For hop");
        }
    }
}

fn check_origin_of(input: &str) {
    let Ok(origin) = origin_of(input) else {
        return;
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("origin {origin:?} of {input:?} is not http(s)"));
    assert!(!rest.is_empty(), "origin {origin:?} has no host");
    assert!(!rest.contains('/'), "origin {origin:?} has a path");
    assert_ne!(origin, "null");
    assert_eq!(
        origin_of(&origin).as_deref(),
        Ok(origin.as_str()),
        "origin_of is not idempotent on {input:?}"
    );
    // A browser at that origin, configured as ours or as allowed, passes the CSRF check.
    let value = HeaderValue::from_str(&origin)
        .unwrap_or_else(|_| panic!("origin {origin:?} is not a header value"));
    let mut h = HeaderMap::new();
    h.append(header::ORIGIN, value);
    h.append("sec-fetch-site", HeaderValue::from_static("cross-site"));
    assert!(csrf::check(&h, &origin, &Origins::default()).is_ok());
    assert!(csrf::check(&h, &FX.own_origin, &Origins(vec![origin.clone()])).is_ok());
}
