//! Access tokens: EdDSA JWTs in the RFC 9068 profile. Signing, verification and the JWKS.
//!
//! Verification pins the algorithm to EdDSA, requires `typ: at+jwt`, a known `kid`, rejects any
//! `crit`, checks `iss`, `aud`, `exp` and (when present) `nbf` with a small leeway, and takes keys
//! only from authd's own key set (`jku`, `jwk`, `x5u` headers are never looked at). Revocation is
//! checked by the caller (the `AuthUser` extractor).

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

/// One Ed25519 key as stored in the database.
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

/// The keys one instance currently uses: one to sign with, all published ones to verify with,
/// and the JWKS document, serialized once.
pub struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Arc<[u8]>,
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
    /// `signing` signs; `published` (which should include it) are accepted and listed.
    pub fn new(signing: &KeyMaterial, published: &[KeyMaterial]) -> Self {
        let mut verifying: HashMap<String, DecodingKey> = published
            .iter()
            .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key)))
            .collect();
        verifying.insert(
            signing.kid.clone(),
            DecodingKey::from_ed_der(&signing.public_key),
        );
        let mut keys: Vec<&KeyMaterial> = vec![signing];
        keys.extend(published.iter().filter(|k| k.kid != signing.kid));
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
            signing_kid: signing.kid.clone(),
            signing: EncodingKey::from_ed_der(&signing.private_der),
            verifying,
            jwks: jwks.into(),
        }
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.verifying.keys().map(String::as_str)
    }
}

/// Signs and verifies access tokens with the current [`KeySet`], which can be swapped at runtime
/// (key rotation) without a restart.
pub struct Jwt {
    keys: RwLock<Arc<KeySet>>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Jwt {
    pub fn new(keys: KeySet, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Self {
            keys: RwLock::new(Arc::new(keys)),
            validation,
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

    /// Issues an access token for a session, expiring after the configured TTL but never after
    /// `not_after` (unix seconds: the session's absolute expiry). Returns the token and its
    /// `expires_in` in seconds.
    pub fn sign(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        roles: &[String],
        not_after: i64,
    ) -> Result<(String, u64), ApiError> {
        let now = unix_now();
        let exp = (now + self.ttl.as_secs() as i64).min(not_after).max(now);
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
        let keys = self.keys();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(keys.signing_kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &keys.signing).map_err(ApiError::internal)?;
        Ok((token, (exp - now) as u64))
    }

    /// [`verify`](Self::verify) without the `exp`/`nbf` checks: every other rule holds. For
    /// naming the session of an expired token (logout).
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        self.verify_with(token, &validation)
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
    /// detail never says which check failed beyond that.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        self.verify_with(token, &self.validation)
    }

    fn verify_with(&self, token: &str, validation: &Validation) -> Result<AccessClaims, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let header = KeyHeader::parse(token).ok_or(ApiError::InvalidToken)?;
        if header.alg != "EdDSA" || header.crit.is_some() || !is_at_jwt(header.typ.as_deref()) {
            return Err(ApiError::InvalidToken);
        }
        let keys = self.keys();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
            .ok_or(ApiError::InvalidToken)?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => ApiError::TokenExpired,
                    _ => ApiError::InvalidToken,
                }
            })?;
        Ok(data.claims)
    }
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
    use super::*;

    fn jwt() -> (Jwt, KeyMaterial) {
        let key = KeyMaterial::generate().unwrap();
        let set = KeySet::new(&key, std::slice::from_ref(&key));
        (
            Jwt::new(
                set,
                "http://localhost:8080",
                "authd",
                Duration::from_secs(60),
            ),
            key,
        )
    }

    #[test]
    fn round_trip() {
        let (jwt, key) = jwt();
        let (u, s) = (Uuid::new_v4(), Uuid::new_v4());
        let token = jwt.sign(u, s, &["admin".into()], i64::MAX).unwrap().0;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.sid, claims.roles),
            (u, s, vec!["admin".to_string()])
        );
    }

    #[test]
    fn other_keys_tokens_are_rejected() {
        let (a, _) = jwt();
        let (b, _) = jwt();
        let token = a
            .sign(Uuid::new_v4(), Uuid::new_v4(), &[], i64::MAX)
            .unwrap()
            .0;
        assert!(matches!(b.verify(&token), Err(ApiError::InvalidToken)));
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
