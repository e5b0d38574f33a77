//! Access tokens: JWTs in the RFC 9068 profile, signed with EdDSA, ES256 or RS256
//! (AUTHD_SIGNING_ALG). Signing, verification and the JWKS.
//!
//! Verification pins the algorithm to the one of the key the `kid` names, requires `typ: at+jwt`, a known `kid`, rejects any
//! `crit`, checks `iss`, `aud`, `exp` and (when present) `nbf` with a small leeway, bounds the
//! lifetime (`iat` required, not in the future, `exp - iat` at most AUTHD_ACCESS_TTL), and takes
//! keys only from authd's own key set (`jku`, `jwk`, `x5u` headers are never looked at).
//! Revocation is checked by the caller (the `AuthUser` extractor).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::keypair::{KeyMaterial, PublicKey, SigningAlg};
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

/// The keys one instance currently uses: one to sign with (if it holds one), all published ones
/// to verify with (each with its algorithm), the JWKS document (serialized once), and the key
/// only this process holds (AUTHD_SIGNING_KEY_FILE), kept across reloads.
pub struct KeySet {
    signer: Option<Signer>,
    verifying: HashMap<String, (SigningAlg, DecodingKey)>,
    jwks: Arc<[u8]>,
    /// The algorithms of the published keys, in JWKS order, each once.
    algs: Vec<SigningAlg>,
    file_key: Option<KeyMaterial>,
}

struct Signer {
    kid: String,
    alg: SigningAlg,
    key: EncodingKey,
}

impl KeySet {
    /// `signing` signs (`None`: this instance cannot sign, [`Jwt::sign`] fails); it and
    /// `published` are accepted and listed in the JWKS, `signing` first, then `published` in
    /// the given order. A stored key that does not parse as its algorithm's key is left out
    /// (and logged).
    pub fn new(signing: Option<&KeyMaterial>, published: &[PublicKey]) -> Self {
        let mut keys: Vec<PublicKey> = signing.map(KeyMaterial::public).into_iter().collect();
        keys.extend(
            published
                .iter()
                .filter(|k| signing.is_none_or(|s| s.kid != k.kid))
                .cloned(),
        );
        let mut verifying = HashMap::with_capacity(keys.len());
        let mut jwks = Vec::with_capacity(keys.len());
        let mut algs = Vec::new();
        for k in &keys {
            match k.decoding_key().and_then(|d| Ok((d, k.jwk()?))) {
                Ok((decoding, jwk)) => {
                    verifying.insert(k.kid.clone(), (k.alg, decoding));
                    jwks.push(jwk);
                    if !algs.contains(&k.alg) {
                        algs.push(k.alg);
                    }
                }
                Err(e) => tracing::error!(kid = %k.kid, alg = %k.alg, "unusable key left out: {e}"),
            }
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks })).unwrap_or_default();
        let signer = signing.and_then(|k| match k.encoding_key() {
            Ok(key) => Some(Signer {
                kid: k.kid.clone(),
                alg: k.alg,
                key,
            }),
            Err(e) => {
                tracing::error!(kid = %k.kid, "unusable signing key: {e}");
                None
            }
        });
        Self {
            signer,
            verifying,
            jwks: jwks.into(),
            algs,
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

    /// The algorithm new tokens are signed with; `None` when this instance holds no signing key.
    pub fn signing_alg(&self) -> Option<SigningAlg> {
        self.signer.as_ref().map(|s| s.alg)
    }

    /// The algorithms of the published keys (JWKS order, each once).
    pub fn algs(&self) -> &[SigningAlg] {
        &self.algs
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
    /// The checks for tokens of each algorithm, indexed by `SigningAlg as usize`: one
    /// algorithm each, the one of the key that verifies.
    validation: [Validation; 3],
    /// The same checks without `exp`/`nbf` (see [`Jwt::verify_ignoring_expiry`]).
    validation_any_time: [Validation; 3],
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Jwt {
    /// `ttl` is both the lifetime of the tokens this instance signs and the longest lifetime
    /// (`exp - iat`) it accepts.
    pub fn new(keys: KeySet, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let validation = |alg: SigningAlg, any_time: bool| {
            let mut v = Validation::new(alg.algorithm());
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = !any_time;
            v.validate_exp = !any_time;
            // `iat` is required by `AccessClaims` (a missing or mistyped one fails
            // deserialization).
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v.set_issuer(&[issuer]);
            v.set_audience(&[audience]);
            v
        };
        let all = |any_time| SigningAlg::ALL.map(|alg| validation(alg, any_time));
        Self {
            keys: RwLock::new(Arc::new(keys)),
            validation: all(false),
            validation_any_time: all(true),
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
        let mut header = Header::new(signer.alg.algorithm());
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
        let mut header = Header::new(signer.alg.algorithm());
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
        self.check(token, false)
    }

    /// Every check of [`Jwt::verify`] (pinned algorithm, `typ`, known `kid`, signature, `iss`,
    /// `aud`, no `crit`, the lifetime bound) except `exp` and `nbf`: for naming the session of
    /// an expired token (logout). Errors are `invalid_token`.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, ApiError> {
        self.check(token, true)
    }

    fn check(&self, token: &str, any_time: bool) -> Result<AccessClaims, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let header = KeyHeader::parse(token).ok_or(ApiError::InvalidToken)?;
        if header.crit.is_some() || !is_at_jwt(header.typ.as_deref()) {
            return Err(ApiError::InvalidToken);
        }
        let keys = self.keys();
        let Some((alg, key)) = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
        else {
            return Err(if !any_time && expired_unverified(token) {
                ApiError::TokenExpired
            } else {
                ApiError::InvalidToken
            });
        };
        // The algorithm is the key's, never the token's choice (no `none`, no HS*, no
        // confusion between key types); jsonwebtoken checks the header against it once more.
        if header.alg != alg.as_str() {
            return Err(ApiError::InvalidToken);
        }
        let validation = if any_time {
            &self.validation_any_time[*alg as usize]
        } else {
            &self.validation[*alg as usize]
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
    use jsonwebtoken::Algorithm;
    use serde_json::{Value, json};

    use super::*;

    const TTL: i64 = 60;

    fn jwt() -> (Jwt, KeyMaterial) {
        let key = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
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
        let mut header = Header::new(key.alg.algorithm());
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding_key().unwrap()).unwrap()
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
        let gone = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
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
        let other = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
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
    fn every_alg_signs_and_verifies_and_old_keys_of_any_alg_keep_verifying() {
        let (jwt, ed) = jwt();
        let (ed_token, _) = jwt
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX)
            .unwrap();
        let mut published = vec![ed.public()];
        let mut tokens = vec![(SigningAlg::EdDSA, ed_token)];
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let key = KeyMaterial::generate(alg).unwrap();
            jwt.replace_keys(KeySet::new(Some(&key), &published));
            published.push(key.public());
            assert_eq!(jwt.keys().signing_alg(), Some(alg));
            let (token, _) = jwt
                .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX)
                .unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.algorithm());
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
            let (set, _) = jwt.sign_set(json!({"events": {}})).unwrap();
            assert_eq!(
                jsonwebtoken::decode_header(&set).unwrap().alg,
                alg.algorithm()
            );
            tokens.push((alg, token));
        }
        assert_eq!(
            jwt.keys().algs(),
            &[SigningAlg::RS256, SigningAlg::EdDSA, SigningAlg::ES256]
        );
        for (alg, token) in &tokens {
            assert!(jwt.verify(token).is_ok(), "{alg}");
        }
        let jwks: Value = serde_json::from_slice(&jwt.jwks()).unwrap();
        let ktys: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kty"].as_str().unwrap())
            .collect();
        assert_eq!(ktys, ["RSA", "OKP", "EC"]);
    }

    /// The header's `alg` must be the one of the key its `kid` names: a token signed by one key
    /// but claiming another algorithm, an HMAC keyed with the public key, or `none` all fail.
    #[test]
    fn no_algorithm_confusion() {
        let ec = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let rsa = KeyMaterial::generate(SigningAlg::RS256).unwrap();
        let ed = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
        let jwt = Jwt::new(
            KeySet::new(Some(&ec), &[rsa.public(), ed.public()]),
            "http://localhost:8080",
            "authd",
            Duration::from_secs(TTL as u64),
        );
        let now = unix_now();
        let c = claims(now, now + TTL);
        for key in [&ec, &rsa, &ed] {
            assert!(jwt.verify(&forge(key, &c)).is_ok(), "{}", key.alg);
        }
        let signed_as = |signer: &KeyMaterial, kid: &KeyMaterial| {
            let mut header = Header::new(signer.alg.algorithm());
            header.typ = Some("at+jwt".into());
            header.kid = Some(kid.kid.clone());
            jsonwebtoken::encode(&header, &c, &signer.encoding_key().unwrap()).unwrap()
        };
        let hmac = |kid: &KeyMaterial| {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some("at+jwt".into());
            header.kid = Some(kid.kid.clone());
            jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&kid.public_key)).unwrap()
        };
        let unsigned = |alg: &str, kid: &KeyMaterial| {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid.kid});
            format!(
                "{}.{}.",
                B64.encode(header.to_string()),
                B64.encode(c.to_string())
            )
        };
        for (what, token) in [
            ("EdDSA token naming the EC key", signed_as(&ed, &ec)),
            ("ES256 token naming the RSA key", signed_as(&ec, &rsa)),
            ("RS256 token naming the Ed25519 key", signed_as(&rsa, &ed)),
            ("HS256 keyed with the RSA public key", hmac(&rsa)),
            ("HS256 keyed with the EC public key", hmac(&ec)),
            ("none", unsigned("none", &ec)),
            ("ES384 claimed for the EC key", unsigned("ES384", &ec)),
        ] {
            assert!(
                matches!(jwt.verify(&token), Err(ApiError::InvalidToken)),
                "{what}"
            );
        }
        // The right alg in the header, but another key's signature.
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(ec.kid.clone());
        let other = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let forged = jsonwebtoken::encode(&header, &c, &other.encoding_key().unwrap()).unwrap();
        assert!(matches!(jwt.verify(&forged), Err(ApiError::InvalidToken)));
    }
}
