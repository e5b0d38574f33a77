//! AUTHD_SIGNING_ALG (API.md "Tokens"): EdDSA, ES256 and RS256 access tokens verify against the
//! JWKS with an independent library, rotation across algorithms keeps old tokens valid until
//! they expire, a token's header must name its key's algorithm, and AUTHD_SIGNING_KEY_FILE
//! follows the key type.

use std::{process::Stdio, time::Duration};

use authd::{app::Application, config::SigningAlg, tokens::keypair::KeyMaterial};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, jwk::Jwk};
use serde_json::Value;

use crate::helpers::*;

const ALGS: [SigningAlg; 3] = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256];

/// The JWKS entry `kid` names.
async fn jwk_of(app: &TestApp, kid: &str) -> Value {
    let jwks = app.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} in {jwks}"))
        .clone()
}

/// Verifies an access token the way a resource server would, with nothing but the JWKS and
/// jsonwebtoken's own JWK parsing: the algorithm comes from the JWK, `typ`, `iss`, `aud`,
/// `exp` are checked. Returns the header's alg and the claims.
async fn verify_offline(app: &TestApp, token: &str) -> (Algorithm, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwk_of(app, header.kid.as_deref().unwrap()).await;
    let alg: Algorithm = jwk["alg"].as_str().unwrap().parse().unwrap();
    let parsed: Jwk = serde_json::from_value(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&["http://localhost:8080"]);
    v.set_audience(&["authd"]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&parsed).unwrap(), &v)
        .expect("the token verifies against the JWKS");
    (data.header.alg, data.claims)
}

/// `authd <args>` on the app's database with AUTHD_SIGNING_ALG=`alg`; stdout, asserting success.
fn cli_with_alg(app: &TestApp, alg: SigningAlg, args: &[&str]) -> String {
    let out = authd_command(&app.db_name)
        .env("AUTHD_SIGNING_ALG", alg.as_str())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "authd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `authd keys list` as (kid, alg, state).
fn keys_list(app: &TestApp) -> Vec<(String, String, String)> {
    cli_with_alg(app, SigningAlg::EdDSA, &["keys", "list"])
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[3].to_string())
        })
        .collect()
}

#[tokio::test]
async fn every_alg_signs_tokens_that_verify_against_the_jwks_with_an_independent_library() {
    for alg in ALGS {
        let app = spawn_app_with(|c| c.signing_alg = alg).await;
        let t = app.signup_and_login("ann@example.test").await;
        let (header_alg, claims) = verify_offline(&app, &t.access).await;
        assert_eq!(header_alg, alg.algorithm(), "{alg}");
        assert_eq!(claims["sid"], t.session_id.to_string());
        assert_eq!(app.me_status(&t.access).await, 200, "{alg}");

        let jwks = app.get_json("/.well-known/jwks.json").await;
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["alg"], alg.as_str());
        assert_eq!(jwk["use"], "sig");
        let members: &[&str] = match alg {
            SigningAlg::EdDSA => &["kty", "crv", "x", "kid", "alg", "use"],
            SigningAlg::ES256 => &["kty", "crv", "x", "y", "kid", "alg", "use"],
            SigningAlg::RS256 => &["kty", "n", "e", "kid", "alg", "use"],
        };
        let mut keys: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut expected = members.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{alg}: {jwk}");
        // The kid is the RFC 7638 thumbprint, as jsonwebtoken computes it from the JWK.
        let parsed: Jwk = serde_json::from_value(jwk.clone()).unwrap();
        assert_eq!(
            parsed
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            jwk["kid"].as_str().unwrap()
        );
        let meta = app
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        assert_eq!(
            meta["access_token_signing_alg_values_supported"],
            serde_json::json!([alg.as_str()])
        );
        let listed = keys_list(&app);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].1.as_str(), listed[0].2.as_str()),
            (alg.as_str(), "signing")
        );
    }
}

#[tokio::test]
async fn rotation_eddsa_es256_rs256_keeps_old_tokens_valid_until_they_expire() {
    let app = spawn_app_with(|c| c.access_ttl = Duration::from_secs(3)).await;
    wait_live(&app).await;
    let mut tokens = vec![app.signup_and_login("ann@example.test").await];
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        let out = cli_with_alg(&app, alg, &["keys", "rotate", "--now"]);
        assert!(out.contains(alg.as_str()), "{out}");
        let switched = eventually(Duration::from_secs(3), || async {
            app.state.jwt.keys().signing_alg() == Some(alg)
        })
        .await;
        assert!(switched, "the running instance signs with the {alg} key");
        tokens.push(app.login("ann@example.test").await);
    }
    for (t, alg) in tokens.iter().zip(ALGS) {
        let (header_alg, _) = verify_offline(&app, &t.access).await;
        assert_eq!(header_alg, alg.algorithm());
        assert_eq!(app.me_status(&t.access).await, 200, "the {alg} token");
    }
    let listed: Vec<(String, String)> = keys_list(&app)
        .into_iter()
        .map(|(_, alg, state)| (alg, state))
        .collect();
    let pair = |a: &str, s: &str| (a.to_string(), s.to_string());
    assert_eq!(
        listed,
        [
            pair("RS256", "signing"),
            pair("ES256", "retired"),
            pair("EdDSA", "retired")
        ]
    );
    let meta = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        meta["access_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256", "EdDSA"])
    );
    // Once they expire (TTL 3 s + 5 s leeway), the old keys leave the JWKS; the RS256 key's
    // fresh tokens go on verifying.
    let dropped = eventually(Duration::from_secs(20), || async {
        app.get_json("/.well-known/jwks.json").await["keys"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    assert!(dropped, "retired keys dropped once their tokens expired");
    assert_eq!(app.me_status(&tokens[0].access).await, 401);
    let fresh = app.login("ann@example.test").await;
    assert_eq!(
        verify_offline(&app, &fresh.access).await.0,
        Algorithm::RS256
    );
}

/// A token signed by the real key, but with an algorithm other than the key's (PS256 with the
/// RSA key, HS256 keyed with its public key, `none`), is rejected.
#[tokio::test]
async fn a_token_whose_header_names_another_alg_than_its_key_is_rejected() {
    let app = spawn_app_with(|c| c.signing_alg = SigningAlg::RS256).await;
    let t = app.signup_and_login("ann@example.test").await;
    let kid = jsonwebtoken::decode_header(&t.access).unwrap().kid.unwrap();
    let key = signing_key_of(&app, &t.access).await;
    let claims = verify_offline(&app, &t.access).await.1;
    let sign = |alg: Algorithm, enc: &EncodingKey| sign_as(alg, &kid, &claims, enc);
    let rsa = key.encoding_key().unwrap();
    // Control: the same claims signed RS256 by the same key verify.
    assert_eq!(app.me_status(&sign(Algorithm::RS256, &rsa)).await, 200);
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    for (what, token) in [
        ("PS256 by the RSA key", sign(Algorithm::PS256, &rsa)),
        (
            "HS256 keyed with the public key",
            sign(Algorithm::HS256, &EncodingKey::from_secret(&key.public_key)),
        ),
        (
            "none",
            format!(
                "{}.{}.",
                b64(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                b64(claims.clone())
            ),
        ),
    ] {
        let (status, code, _) = problem(app.get("/auth/me", &token).await).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (401, "invalid_token"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_key_file_signs_with_its_type_and_one_of_another_type_is_refused() {
    let key = KeyMaterial::generate(SigningAlg::ES256).unwrap();
    let file = KeyFile::new(&key.private_der);
    let db = TestDb::new();
    let mut config = test_config(db.name());
    config.signing_key_file = Some(file.0.clone());
    // Default AUTHD_SIGNING_ALG (EdDSA): a P-256 key is refused, in one line.
    let refused = Application::build(config.clone()).await;
    let message = format!("{:#}", refused.err().expect("start refused"));
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("AUTHD_SIGNING_KEY_FILE")
            && message.contains("P-256")
            && message.contains("AUTHD_SIGNING_ALG"),
        "{message}"
    );
    config.signing_alg = SigningAlg::ES256;
    let app = spawn_with_db(config, db).await;
    let t = app.signup_and_login("ann@example.test").await;
    let header = jsonwebtoken::decode_header(&t.access).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::ES256, Some(key.kid.as_str()))
    );
    assert_eq!(verify_offline(&app, &t.access).await.0, Algorithm::ES256);
}

#[tokio::test]
async fn an_rsa_key_file_below_2048_bits_is_refused() {
    // aws-lc-rs generates no keys this small: openssl does.
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(out.status.success());
    let path = std::env::temp_dir().join(format!("authd-rsa1024-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&path, &out.stdout).unwrap();
    let db = TestDb::new();
    let mut config = test_config(db.name());
    config.signing_key_file = Some(path.clone());
    config.signing_alg = SigningAlg::RS256;
    let refused = Application::build(config).await;
    let _ = std::fs::remove_file(&path);
    let message = format!("{:#}", refused.err().expect("start refused"));
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("AUTHD_SIGNING_KEY_FILE") && message.contains("2048"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_signing_alg_stops_the_start_with_one_line_naming_the_variable() {
    for bad in ["HS256", "none", "ES384"] {
        let out = authd_command("unused")
            .env("AUTHD_SIGNING_ALG", bad)
            .arg("migrate")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("AUTHD_SIGNING_ALG"), "{stderr}");
    }
}

/// A start whose AUTHD_SIGNING_ALG differs from the signing key's warns once to run
/// `authd keys rotate`, and keeps signing with the existing key until then.
#[tokio::test]
async fn a_changed_signing_alg_warns_to_rotate_and_takes_effect_through_rotation() {
    let app = spawn_app().await; // EdDSA key
    let url = format!("{}/{}", server_url(), app.db_name);
    let (child, base) = spawn_authd_process(
        &url,
        &[("AUTHD_SIGNING_ALG", "ES256"), ("RUST_LOG", "warn")],
    )
    .await;
    let client = reqwest::Client::new();
    let jwks: Value = client
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA", "no key change by itself");
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    // Logs go to stdout; look at both streams.
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("authd keys rotate"))
        .collect();
    assert_eq!(warnings.len(), 1, "{output}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("ES256"),
        "{}",
        warnings[0]
    );
    cli_with_alg(&app, SigningAlg::ES256, &["keys", "rotate", "--now"]);
    let listed = keys_list(&app);
    assert_eq!(
        (listed[0].1.as_str(), listed[0].2.as_str()),
        ("ES256", "signing")
    );
    // The replacement `keys revoke` makes for a signing key is of the configured alg too.
    let out = cli_with_alg(
        &app,
        SigningAlg::RS256,
        &["keys", "revoke", "--kid", &listed[0].0],
    );
    assert!(out.contains("new signing key"), "{out}");
    let listed = keys_list(&app);
    assert_eq!(
        (listed[0].1.as_str(), listed[0].2.as_str()),
        ("RS256", "signing")
    );
}
