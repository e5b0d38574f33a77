//! Signing key material of the three JOSE algorithms authd signs with (AUTHD_SIGNING_ALG):
//! `EdDSA` (Ed25519, RFC 8037), `ES256` (ECDSA P-256 with SHA-256) and `RS256` (RSASSA-PKCS1-v1_5
//! with SHA-256, keys of 2048 bits or more), all generated and parsed with aws-lc-rs. Each key's
//! `kid` is its RFC 7638 JWK thumbprint, and its JWK (RFC 7517/7518/8037) is what the JWKS lists.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeySize, PublicKey as RsaPublicKey},
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

pub use crate::config::SigningAlg;

/// The smallest RSA modulus authd signs or verifies with, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

impl SigningAlg {
    /// Every algorithm, in the order of their discriminants (`alg as usize` indexes it).
    pub const ALL: [Self; 3] = [Self::EdDSA, Self::ES256, Self::RS256];

    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// The algorithm named by a JWS `alg` value (exact, case-sensitive, as RFC 7515 requires);
    /// `None` for every other value (`none`, `HS256`, `PS256`, ...).
    pub fn from_jose(alg: &str) -> Option<Self> {
        match alg {
            "EdDSA" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }

    /// jsonwebtoken's name for it.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }

    /// The key type, as people name it ("an Ed25519 key").
    pub fn key_type(self) -> &'static str {
        match self {
            Self::EdDSA => "Ed25519",
            Self::ES256 => "P-256",
            Self::RS256 => "RSA",
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published key: what verifies its tokens and goes into the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// RFC 7638 JWK thumbprint of the key.
    pub kid: String,
    pub alg: SigningAlg,
    /// EdDSA: the raw 32-byte key; ES256: the uncompressed point (65 bytes, `04 || x || y`);
    /// RS256: the DER `RSAPublicKey` (RFC 8017 A.1.1).
    pub public_key: Vec<u8>,
}

/// The public members of a key's JWK, base64url-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwkMembers {
    /// `kty: OKP`, `crv: Ed25519` (RFC 8037).
    Okp { x: String },
    /// `kty: EC`, `crv: P-256` (RFC 7518 §6.2).
    Ec { x: String, y: String },
    /// `kty: RSA` (RFC 7518 §6.3).
    Rsa { n: String, e: String },
}

impl JwkMembers {
    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no
    /// whitespace (base64url values need no JSON escaping), base64url-encoded.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            Self::Ec { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Self::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    fn insert_into(&self, jwk: &mut serde_json::Map<String, serde_json::Value>) {
        let mut put = |k: &str, v: &str| {
            jwk.insert(k.into(), v.into());
        };
        match self {
            Self::Okp { x } => {
                put("kty", "OKP");
                put("crv", "Ed25519");
                put("x", x);
            }
            Self::Ec { x, y } => {
                put("kty", "EC");
                put("crv", "P-256");
                put("x", x);
                put("y", y);
            }
            Self::Rsa { n, e } => {
                put("kty", "RSA");
                put("n", n);
                put("e", e);
            }
        }
    }
}

impl PublicKey {
    /// The key named by its algorithm and public bytes (see [`PublicKey::public_key`]), with its
    /// thumbprint as kid. Errors: bytes that are no valid key of that algorithm.
    pub fn new(alg: SigningAlg, public_key: Vec<u8>) -> Result<Self, String> {
        let kid = members(alg, &public_key)?.thumbprint();
        Ok(Self {
            kid,
            alg,
            public_key,
        })
    }

    /// The public members of its JWK. Errors: stored bytes that are no valid key of its alg.
    pub fn members(&self) -> Result<JwkMembers, String> {
        members(self.alg, &self.public_key)
    }

    /// Its JWK: the members of its key type, `kid`, `alg` and `use: sig`.
    pub fn jwk(&self) -> Result<serde_json::Value, String> {
        let mut jwk = serde_json::Map::new();
        self.members()?.insert_into(&mut jwk);
        jwk.insert("kid".into(), self.kid.clone().into());
        jwk.insert("alg".into(), self.alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        Ok(jwk.into())
    }

    /// What jsonwebtoken verifies its signatures with.
    pub fn decoding_key(&self) -> Result<DecodingKey, String> {
        Ok(match self.members()? {
            JwkMembers::Okp { .. } => DecodingKey::from_ed_der(&self.public_key),
            JwkMembers::Ec { .. } => DecodingKey::from_ec_der(&self.public_key),
            JwkMembers::Rsa { .. } => {
                let key = rsa_public(&self.public_key)?;
                DecodingKey::from_rsa_raw_components(
                    key.modulus().big_endian_without_leading_zero(),
                    key.exponent().big_endian_without_leading_zero(),
                )
            }
        })
    }
}

fn rsa_public(der: &[u8]) -> Result<RsaPublicKey, String> {
    let key = RsaPublicKey::from_der(der).map_err(|_| "not an RSA public key".to_string())?;
    if key.modulus_len() < MIN_RSA_MODULUS_BYTES {
        return Err(format!(
            "an RSA key of {} bits; at least 2048 are needed",
            key.modulus_len() * 8
        ));
    }
    Ok(key)
}

fn members(alg: SigningAlg, public_key: &[u8]) -> Result<JwkMembers, String> {
    match alg {
        SigningAlg::EdDSA if public_key.len() == 32 => Ok(JwkMembers::Okp {
            x: B64.encode(public_key),
        }),
        SigningAlg::ES256 if public_key.len() == 65 && public_key[0] == 4 => Ok(JwkMembers::Ec {
            x: B64.encode(&public_key[1..33]),
            y: B64.encode(&public_key[33..]),
        }),
        SigningAlg::RS256 => {
            let key = rsa_public(public_key)?;
            Ok(JwkMembers::Rsa {
                n: B64.encode(key.modulus().big_endian_without_leading_zero()),
                e: B64.encode(key.exponent().big_endian_without_leading_zero()),
            })
        }
        _ => Err(format!("not a {} public key", alg.key_type())),
    }
}

/// One key pair (a generated key, or one from AUTHD_SIGNING_KEY_FILE).
#[derive(Clone)]
pub struct KeyMaterial {
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8 document (RFC 5208/5958).
    pub private_der: Vec<u8>,
    /// The public key, encoded as [`PublicKey::public_key`] says.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh key of `alg` from the system CSPRNG (RSA: 2048 bits; that takes a moment).
    pub fn generate(alg: SigningAlg) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let der = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| e.to_string())?
                .as_ref()
                .to_vec(),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| e.to_string())?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map_err(|e| e.to_string())?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(&der)
    }

    /// A key from a PKCS#8 document of an Ed25519, P-256 or RSA (at least 2048 bits) private
    /// key; the algorithm follows the key type and the kid is its RFC 7638 thumbprint.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let (alg, private_der, public_key) = if let Ok(pair) =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        {
            // Normalized to v2: jsonwebtoken's signer wants the public key inside.
            let v2 = pair.to_pkcs8().map_err(|e| e.to_string())?;
            (
                SigningAlg::EdDSA,
                v2.as_ref().to_vec(),
                pair.public_key().as_ref().to_vec(),
            )
        } else if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            (
                SigningAlg::ES256,
                der.to_vec(),
                pair.public_key().as_ref().to_vec(),
            )
        } else if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            if pair.public_modulus_len() < MIN_RSA_MODULUS_BYTES {
                return Err(format!(
                    "an RSA key of {} bits; at least 2048 are needed",
                    pair.public_modulus_len() * 8
                ));
            }
            (
                SigningAlg::RS256,
                der.to_vec(),
                pair.public_key().as_ref().to_vec(),
            )
        } else if let Some(bits) = rsa_modulus_bits(der) {
            // aws-lc-rs refuses RSA keys below 2048 bits without saying why.
            return Err(format!(
                "an RSA key of {bits} bits; at least 2048 are needed"
            ));
        } else {
            return Err("not a PKCS#8 Ed25519, P-256 or RSA private key".into());
        };
        let public = PublicKey::new(alg, public_key)?;
        Ok(Self {
            kid: public.kid,
            alg,
            private_der,
            public_key: public.public_key,
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

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            alg: self.alg,
            public_key: self.public_key.clone(),
        }
    }

    /// What jsonwebtoken signs with. RSA keys go in as the `RSAPrivateKey` inside the PKCS#8
    /// document (jsonwebtoken's RSA signer reads RFC 8017 DER).
    pub fn encoding_key(&self) -> Result<EncodingKey, String> {
        Ok(match self.alg {
            SigningAlg::EdDSA => EncodingKey::from_ed_der(&self.private_der),
            SigningAlg::ES256 => EncodingKey::from_ec_der(&self.private_der),
            SigningAlg::RS256 => EncodingKey::from_rsa_der(
                pkcs8_private_key(&self.private_der).ok_or("not a PKCS#8 document")?,
            ),
        })
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey`
/// (`SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, ... }`).
fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    let (tag, outer, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (version, _, rest) = der_element(outer)?;
    let (algorithm, _, rest) = der_element(rest)?;
    let (key_tag, key, _) = der_element(rest)?;
    (version == 0x02 && algorithm == 0x30 && key_tag == 0x04).then_some(key)
}

/// The modulus size of a PKCS#8 `rsaEncryption` key, read from its DER without validating it
/// (only to explain a refusal).
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    /// OID 1.2.840.113549.1.1.1 (rsaEncryption), DER-encoded with its tag and length.
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let (_, outer, _) = der_element(der)?;
    let (_, _, rest) = der_element(outer)?;
    let (_, algorithm, _) = der_element(rest)?;
    if !algorithm.starts_with(RSA_ENCRYPTION) {
        return None;
    }
    let (_, rsa_key, _) = der_element(pkcs8_private_key(der)?)?;
    let (_, _, rest) = der_element(rsa_key)?; // version
    let (tag, modulus, _) = der_element(rest)?;
    let significant = modulus.iter().skip_while(|&&b| b == 0).count();
    (tag == 0x02).then_some(significant * 8)
}

/// Splits one DER element off `input`: (tag, contents, rest). Single-byte tags only, definite
/// lengths only (all DER allows).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn rsa_thumbprint_matches_rfc_7638() {
        let members = JwkMembers::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            members.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// RFC 8037 Appendix A.3: the example Ed25519 key's thumbprint.
    #[test]
    fn okp_thumbprint_matches_rfc_8037() {
        let members = JwkMembers::Okp {
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            members.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// The thumbprint of an EC key covers exactly crv, kty, x, y, in that order; checked
    /// against jsonwebtoken's own RFC 7638 implementation.
    #[test]
    fn ec_thumbprint_agrees_with_jsonwebtoken() {
        let key = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.public().jwk().unwrap()).unwrap();
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            key.kid
        );
    }

    #[test]
    fn every_alg_generates_signs_and_reloads_from_pem() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let key = KeyMaterial::generate(alg).unwrap();
            assert_eq!(key.alg, alg);
            let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", key.private_der.clone()));
            let loaded = KeyMaterial::from_pem(&pem_text).unwrap();
            assert_eq!((loaded.kid.as_str(), loaded.alg), (key.kid.as_str(), alg));
            assert_eq!(loaded.public_key, key.public_key);

            let mut header = jsonwebtoken::Header::new(alg.algorithm());
            header.kid = Some(key.kid.clone());
            let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
            let token =
                jsonwebtoken::encode(&header, &claims, &key.encoding_key().unwrap()).unwrap();
            // An independent decoding key, from the published JWK.
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(key.public().jwk().unwrap()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.algorithm());
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &DecodingKey::from_jwk(&jwk).unwrap(),
                &validation,
            )
            .unwrap();
            jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &key.public().decoding_key().unwrap(),
                &validation,
            )
            .unwrap();
        }
        assert!(
            KeyMaterial::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn jose_names_are_exact() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            assert_eq!(SigningAlg::from_jose(alg.as_str()), Some(alg));
        }
        for other in ["none", "HS256", "es256", "PS256", "EdDSA "] {
            assert_eq!(SigningAlg::from_jose(other), None, "{other}");
        }
    }
}
