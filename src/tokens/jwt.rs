//! Access tokens: EdDSA JWTs in the RFC 9068 profile. Signing, verification and the JWKS.
//!
//! Verification pins the algorithm to EdDSA, requires `typ: at+jwt`, a known `kid`, rejects any
//! `crit`, checks `iss`, `aud`, `exp` and (when present) `nbf` with a small leeway, bounds the
//! lifetime (`iat` required, not in the future, `exp - iat` at most AUTHD_ACCESS_TTL), and takes
//! keys only from authd's own key set (`jku`, `jwk`, `x5u` headers are never looked at).
//! Revocation is checked by the caller (the `AuthUser` extractor).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// Clock skew tolerated on `exp`/`nbf`. API.md allows at most 30 s; instances sharing a database
/// are close in time, so a small value keeps short test TTLs meaningful.
pub const LEEWAY_SECS: u64 = 5;
/// Anything longer is not a token authd issued.
const MAX_TOKEN_LEN: usize = 4096;

/// Claims of an access token. Every field is typed: a claim of the wrong JSON type fails
/// deserialization and the token is rejected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub roles: Vec<String>,
}

/// A published Ed25519 key: what verifies its tokens and goes into the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// RFC 7638 JWK thumbprint of the key.
    pub kid: String,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
}

/// One Ed25519 key pair (a generated key, or one from AUTHD_SIGNING_KEY_FILE).
#[derive(Clone)]
pub struct KeyMaterial {
    pub kid: String,
    /// PKCS#8 document (v1 or v2).
    pub private_der: Vec<u8>,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh key from the system CSPRNG.
    pub fn generate() -> Result<Self, String> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| e.to_string())?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// A key from a PKCS#8 document; the kid is its RFC 7638 JWK thumbprint.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| "not a PKCS#8 Ed25519 private key".to_string())?;
        let public_key = pair.public_key().as_ref().to_vec();
        // Normalize to v2 so jsonwebtoken's signer (which wants the public key inside) accepts it.
        let private_der = pair
            .to_pkcs8()
            .map_err(|e| e.to_string())?
            .as_ref()
            .to_vec();
        Ok(Self {
            kid: thumbprint(&public_key),
            private_der,
            public_key,
        })
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            public_key: self.public_key.clone(),
        }
    }

    /// A key from a PEM file's contents (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem_text: &str) -> Result<Self, String> {
        let parsed = pem::parse(pem_text).map_err(|e| format!("not a PEM file: {e}"))?;
        if parsed.tag() != "PRIVATE KEY" {
            return Err(format!(
                "expected a PRIVATE KEY (PKCS#8) block, found {}",
                parsed.tag()
            ));
        }
        Self::from_pkcs8(parsed.contents())
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key.
fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(public_key)
    );
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// The keys one instance currently uses: one to sign with (if it holds one), all published ones
/// to verify with, the JWKS document (serialized once), and the key only this process holds
/// (AUTHD_SIGNING_KEY_FILE), kept across reloads.
pub struct KeySet {
    signer: Option<Signer>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Arc<[u8]>,
    file_key: Option<KeyMaterial>,
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

impl KeySet {
    /// `signing` signs (`None`: this instance cannot sign, [`Jwt::sign`] fails); it and
    /// `published` are accepted and listed in the JWKS, `signing` first, then `published` in
    /// the given order.
    pub fn new(signing: Option<&KeyMaterial>, published: &[PublicKey]) -> Self {
        let mut keys: Vec<PublicKey> = signing.map(KeyMaterial::public).into_iter().collect();
        keys.extend(
            published
                .iter()
                .filter(|k| signing.is_none_or(|s| s.kid != k.kid))
                .cloned(),
        );
        let verifying = keys
            .iter()
            .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key)))
            .collect();
        let jwks: Vec<Jwk> = keys
            .iter()
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: B64.encode(&k.public_key),
                kid: &k.kid,
                alg: "EdDSA",
                use_: "sig",
            })
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks })).unwrap_or_default();
        Self {
            signer: signing.map(|k| Signer {
                kid: k.kid.clone(),
                key: EncodingKey::from_ed_der(&k.private_der),
            }),
            verifying,
            jwks: jwks.into(),
            file_key: None,
        }
    }

    /// Keeps `key` (from AUTHD_SIGNING_KEY_FILE) with the set, so a reload can sign with it.
    pub fn with_file_key(mut self, key: Option<KeyMaterial>) -> Self {
        self.file_key = key;
        self
    }

    /// The key this process was given in AUTHD_SIGNING_KEY_FILE, if any.
    pub fn file_key(&self) -> Option<&KeyMaterial> {
        self.file_key.as_ref()
    }

    /// The kid new tokens get; `None` when this instance holds no signing key.
    pub fn signing_kid(&self) -> Option<&str> {
        self.signer.as_ref().map(|s| s.kid.as_str())
    }

    /// Every kid that verifies (and is published).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.verifying.keys().map(String::as_str)
    }
}

/// Signs and verifies access tokens with the current [`KeySet`], which can be swapped at runtime
/// (key rotation) without a restart.
pub struct Jwt {
    keys: RwLock<Arc<KeySet>>,
    validation: Validation,
    /// The same checks without `exp`/`nbf` (see [`Jwt::verify_ignoring_expiry`]).
    validation_any_time: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Jwt {
    /// `ttl` is both the lifetime of the tokens this instance signs and the longest lifetime
    /// (`exp - iat`) it accepts.
    pub fn new(keys: KeySet, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        // `iat` is required by `AccessClaims` (a missing or mistyped one fails deserialization).
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        let mut validation_any_time = validation.clone();
        validation_any_time.validate_exp = false;
        validation_any_time.validate_nbf = false;
        Self {
            keys: RwLock::new(Arc::new(keys)),
            validation,
            validation_any_time,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn keys(&self) -> Arc<KeySet> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc: the value is intact.
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    pub fn jwks(&self) -> Arc<[u8]> {
        self.keys().jwks.clone()
    }

    /// Issues an access token for a session that must end by `not_after_unix` (Unix seconds,
    /// e.g. the session's absolute expiry; `i64::MAX` for no cap). Returns the token and its
    /// `expires_in` in seconds: `exp = min(iat + AUTHD_ACCESS_TTL, not_after_unix)`.
    /// Fails (`internal`) when this instance holds no signing key.
    pub fn sign(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        roles: &[String],
        not_after_unix: i64,
    ) -> Result<(String, u64), ApiError> {
        let keys = self.keys();
        let signer = keys.signer.as_ref().ok_or_else(|| {
            ApiError::internal(
                "no signing key: the current one is only in AUTHD_SIGNING_KEY_FILE, which this \
                 instance was not given",
            )
        })?;
        let now = unix_now();
        let exp = now.saturating_add(ttl_secs(self.ttl)).min(not_after_unix);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            jti: Uuid::new_v4(),
            iat: now,
            exp,
            nbf: None,
            roles: roles.to_vec(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(signer.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &signer.key).map_err(ApiError::internal)?;
        Ok((token, u64::try_from(exp.saturating_sub(now)).unwrap_or(0)))
    }

    /// Signs a Security Event Token (RFC 8417: header `typ: secevent+jwt`) with the current
    /// signing key, adding `iss`, `aud` (this server's), `iat` and a fresh `jti` to `claims`
    /// (a JSON object carrying the `events` claim). Returns the token and its `jti`. Errors: no
    /// signing key on this instance.
    pub fn sign_set(&self, mut claims: serde_json::Value) -> Result<(String, Uuid), ApiError> {
        let keys = self.keys();
        let signer = keys
            .signer
            .as_ref()
            .ok_or_else(|| ApiError::internal("no signing key for security event tokens"))?;
        let jti = Uuid::new_v4();
        claims["iss"] = serde_json::json!(self.issuer);
        claims["aud"] = serde_json::json!(self.audience);
        claims["iat"] = serde_json::json!(unix_now());
        claims["jti"] = serde_json::json!(jti);
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("secevent+jwt".into());
        header.kid = Some(signer.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &signer.key).map_err(ApiError::internal)?;
        Ok((token, jti))
    }

    /// Whether the token names a `kid` this instance does not know (it may be newer than our
    /// key set).
    pub fn has_unknown_kid(&self, token: &str) -> bool {
        let Some(header) = KeyHeader::parse(token) else {
            return false;
        };
        header
            .kid
            .is_some_and(|kid| !self.keys().verifying.contains_key(&kid))
    }

    /// Verifies signature and claims. Errors are `token_expired` or `invalid_token`; the
    /// detail never says which check failed beyond that. A token whose `kid` is unknown (e.g.
    /// its key was dropped after rotation) but whose unverified `exp` has passed is
    /// `token_expired`: a token that is merely old never looks forged (the client refreshes).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        self.check(token, &self.validation)
    }

    /// Every check of [`Jwt::verify`] (pinned algorithm, `typ`, known `kid`, signature, `iss`,
    /// `aud`, no `crit`, the lifetime bound) except `exp` and `nbf`: for naming the session of
    /// an expired token (logout). Errors are `invalid_token`.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, ApiError> {
        self.check(token, &self.validation_any_time)
    }

    fn check(&self, token: &str, validation: &Validation) -> Result<AccessClaims, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let header = KeyHeader::parse(token).ok_or(ApiError::InvalidToken)?;
        if header.alg != "EdDSA" || header.crit.is_some() || !is_at_jwt(header.typ.as_deref()) {
            return Err(ApiError::InvalidToken);
        }
        let keys = self.keys();
        let Some(key) = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
        else {
            return Err(if validation.validate_exp && expired_unverified(token) {
                ApiError::TokenExpired
            } else {
                ApiError::InvalidToken
            });
        };
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::TokenExpired,
                _ => ApiError::InvalidToken,
            })?
            .claims;
        // authd never issues a token living longer than its TTL, nor one issued in the future
        // (which would stretch that bound).
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if claims.iat > unix_now().saturating_add(LEEWAY_SECS as i64)
            || lifetime > ttl_secs(self.ttl)
        {
            return Err(ApiError::InvalidToken);
        }
        Ok(claims)
    }
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// Whether the token's `exp`, read WITHOUT verifying anything, is past (beyond the leeway).
/// Only ever used to choose between two rejections.
fn expired_unverified(token: &str) -> bool {
    #[derive(Deserialize)]
    struct Exp {
        exp: i64,
    }
    token
        .split('.')
        .nth(1)
        .and_then(|payload| B64.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<Exp>(&json).ok())
        .is_some_and(|c| c.exp.saturating_add(LEEWAY_SECS as i64) < unix_now())
}

/// The header fields checked before verification: which key, and the RFC 9068 / RFC 7515 rules
/// jsonwebtoken does not enforce. jsonwebtoken parses the header again (authoritatively, incl.
/// the pinned algorithm); this lean parse avoids its slower `flatten`ed struct on the hot path.
#[derive(Deserialize)]
struct KeyHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

impl KeyHeader {
    fn parse(token: &str) -> Option<Self> {
        let encoded = token.split('.').next()?;
        serde_json::from_slice(&B64.decode(encoded).ok()?).ok()
    }
}

/// RFC 9068 §4: `typ` must be `at+jwt` (or its full media type), compared case-insensitively.
fn is_at_jwt(typ: Option<&str>) -> bool {
    matches!(typ, Some(t) if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const TTL: i64 = 60;

    fn jwt() -> (Jwt, KeyMaterial) {
        let key = KeyMaterial::generate().unwrap();
        let set = KeySet::new(Some(&key), &[]);
        (
            Jwt::new(
                set,
                "http://localhost:8080",
                "authd",
                Duration::from_secs(TTL as u64),
            ),
            key,
        )
    }

    /// A token with `claims` signed by `key` (valid header).
    fn forge(key: &KeyMaterial, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.private_der)).unwrap()
    }

    fn claims(iat: i64, exp: i64) -> Value {
        json!({"iss": "http://localhost:8080", "aud": "authd", "sub": Uuid::new_v4(),
               "sid": Uuid::new_v4(), "jti": Uuid::new_v4(), "iat": iat, "exp": exp,
               "roles": []})
    }

    #[test]
    fn round_trip() {
        let (jwt, key) = jwt();
        let (u, s) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, expires_in) = jwt.sign(u, s, &["admin".into()], i64::MAX).unwrap();
        assert_eq!(expires_in, TTL as u64);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(claims.exp - claims.iat, TTL);
        assert_eq!(
            (claims.sub, claims.sid, claims.roles),
            (u, s, vec!["admin".to_string()])
        );
    }

    #[test]
    fn a_token_never_outlives_the_cap_it_is_given() {
        let (jwt, _) = jwt();
        let not_after = unix_now() + 10;
        let (token, expires_in) = jwt
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], not_after)
            .unwrap();
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(claims.exp, not_after);
        assert!((9..=10).contains(&expires_in), "{expires_in}");
        let (_, expires_in) = jwt
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MIN)
            .unwrap();
        assert_eq!(
            expires_in, 0,
            "a cap in the past gives a token that is born expired"
        );
    }

    #[test]
    fn an_instance_without_a_signing_key_verifies_but_does_not_sign() {
        let (jwt, key) = jwt();
        let (token, _) = jwt
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX)
            .unwrap();
        jwt.replace_keys(KeySet::new(None, &[key.public()]));
        assert!(jwt.verify(&token).is_ok());
        assert!(matches!(
            jwt.sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX),
            Err(ApiError::Internal(_))
        ));
    }

    #[test]
    fn other_keys_tokens_are_rejected() {
        let (a, _) = jwt();
        let (b, _) = jwt();
        let (token, _) = a
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX)
            .unwrap();
        assert!(matches!(b.verify(&token), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn lifetimes_longer_than_the_ttl_or_without_iat_are_rejected() {
        let (jwt, key) = jwt();
        let now = unix_now();
        assert!(jwt.verify(&forge(&key, &claims(now, now + TTL))).is_ok());
        for (what, c) in [
            ("exp - iat > ttl", claims(now, now + TTL + 1)),
            ("a year", claims(now - 10, now + 365 * 86400)),
            // iat in the future would stretch the bound
            ("iat in the future", claims(now + 3600, now + 3600 + TTL)),
        ] {
            assert!(
                matches!(jwt.verify(&forge(&key, &c)), Err(ApiError::InvalidToken)),
                "{what}"
            );
        }
        let mut no_iat = claims(now, now + TTL);
        no_iat.as_object_mut().unwrap().remove("iat");
        assert!(matches!(
            jwt.verify(&forge(&key, &no_iat)),
            Err(ApiError::InvalidToken)
        ));
        let mut string_iat = claims(now, now + TTL);
        string_iat["iat"] = json!(now.to_string());
        assert!(matches!(
            jwt.verify(&forge(&key, &string_iat)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn an_old_token_of_an_unknown_key_is_expired_not_forged() {
        let (jwt, _) = jwt();
        let gone = KeyMaterial::generate().unwrap();
        let now = unix_now();
        let old = forge(&gone, &claims(now - 600, now - 600 + TTL));
        assert!(matches!(jwt.verify(&old), Err(ApiError::TokenExpired)));
        let fresh = forge(&gone, &claims(now, now + TTL));
        assert!(matches!(jwt.verify(&fresh), Err(ApiError::InvalidToken)));
        // Logout cannot name the session of a token it cannot verify.
        assert!(matches!(
            jwt.verify_ignoring_expiry(&old),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn verify_ignoring_expiry_checks_everything_but_exp_and_nbf() {
        let (jwt, key) = jwt();
        let now = unix_now();
        let expired = claims(now - 3600, now - 3600 + TTL);
        let token = forge(&key, &expired);
        assert!(matches!(jwt.verify(&token), Err(ApiError::TokenExpired)));
        let c = jwt.verify_ignoring_expiry(&token).unwrap();
        assert_eq!(c.sid.to_string(), expired["sid"].as_str().unwrap());
        let mut not_yet = claims(now, now + TTL);
        not_yet["nbf"] = json!(now + 30);
        assert!(jwt.verify_ignoring_expiry(&forge(&key, &not_yet)).is_ok());

        // The right kid, another key's signature.
        let other = KeyMaterial::generate().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        let wrong_signer = jsonwebtoken::encode(
            &header,
            &expired,
            &EncodingKey::from_ed_der(&other.private_der),
        )
        .unwrap();
        let mut wrong_iss = expired.clone();
        wrong_iss["iss"] = json!("https://evil.test");
        let mut wrong_aud = expired.clone();
        wrong_aud["aud"] = json!("other");
        let mut typ_jwt = Header::new(Algorithm::EdDSA);
        typ_jwt.typ = Some("JWT".into());
        typ_jwt.kid = Some(key.kid.clone());
        let mut crit = header.clone();
        crit.crit = Some(vec!["exp".into()]);
        let enc = EncodingKey::from_ed_der(&key.private_der);
        for (what, token) in [
            ("signature", wrong_signer),
            ("iss", forge(&key, &wrong_iss)),
            ("aud", forge(&key, &wrong_aud)),
            ("lifetime", forge(&key, &claims(now - 3600, now))),
            (
                "typ",
                jsonwebtoken::encode(&typ_jwt, &expired, &enc).unwrap(),
            ),
            ("crit", jsonwebtoken::encode(&crit, &expired, &enc).unwrap()),
        ] {
            assert!(
                matches!(
                    jwt.verify_ignoring_expiry(&token),
                    Err(ApiError::InvalidToken)
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn pem_keys_load_with_stable_kid() {
        let key = KeyMaterial::generate().unwrap();
        let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", key.private_der.clone()));
        let loaded = KeyMaterial::from_pem(&pem_text).unwrap();
        assert_eq!(loaded.kid, key.kid);
        assert_eq!(loaded.public_key, key.public_key);
        assert!(
            KeyMaterial::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }
}
