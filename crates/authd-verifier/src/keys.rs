//! The key cache: authd's JWKS (RFC 7517), fetched only from the configured URL, refetched on
//! an unknown `kid` at most once per second so that random kids cannot make us hammer authd.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// The shortest time between two JWKS fetches.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// What to do when the last fetch was less than a second ago.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refetch {
    /// Skip the fetch (a request with an unknown `kid`: it cannot make us fetch more often).
    IfDue,
    /// Wait until a fetch is allowed, then fetch (the feed said the keys changed, or a SET
    /// from the authenticated feed names a key we do not have yet).
    WhenDue,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

pub(crate) struct Keys {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Keys {
    pub(crate) fn new(url: String, http: reqwest::Client) -> Self {
        Self {
            url,
            http,
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(kid).cloned()
    }

    /// The key named `kid` and the one algorithm it verifies, refetching the JWKS (per `mode`)
    /// when it is unknown.
    pub(crate) async fn get(&self, kid: &str, mode: Refetch) -> Option<(Algorithm, DecodingKey)> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        self.refresh(mode).await;
        self.cached(kid)
    }

    /// Refetches the JWKS, never twice within a second (see [`Refetch`]). A failed fetch keeps
    /// the keys we had.
    pub(crate) async fn refresh(&self, mode: Refetch) {
        let mut last = self.last_fetch.lock().await;
        if let Some(at) = *last {
            let due = at + REFETCH_AT_MOST_EVERY;
            match mode {
                Refetch::IfDue if Instant::now() < due => return,
                Refetch::IfDue => {}
                Refetch::WhenDue => tokio::time::sleep_until(due.into()).await,
            }
        }
        *last = Some(Instant::now());
        let fetched = async {
            self.http
                .get(&self.url)
                .timeout(Duration::from_secs(5))
                .send()
                .await?
                .error_for_status()?
                .json::<Jwks>()
                .await
        };
        match fetched.await {
            Ok(jwks) => {
                let keys: HashMap<_, _> = jwks.keys.into_iter().filter_map(signing_key).collect();
                tracing::debug!(keys = keys.len(), "authd JWKS fetched");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
            }
            Err(error) => tracing::warn!(url = %self.url, ?error, "fetching authd's JWKS failed"),
        }
    }
}

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// A signing key of the set and its algorithm, which follows from its type: `OKP`/`Ed25519` is
/// EdDSA, `EC`/`P-256` is ES256, `RSA` (2048 bits or more) is RS256. A JWK whose `alg` says
/// otherwise, whose `use` is not `sig`, or of any other type is skipped.
fn signing_key(k: Jwk) -> Option<(String, (Algorithm, DecodingKey))> {
    let (alg, key) = match (k.kty.as_str(), k.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(k.x.as_deref()?).ok()?,
        ),
        ("EC", Some("P-256")) => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(k.x.as_deref()?, k.y.as_deref()?).ok()?,
        ),
        ("RSA", None) => {
            let n = k.n.as_deref()?;
            // base64url without padding: 4 characters per 3 bytes.
            if n.trim_start_matches('A').len() * 3 / 4 < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(n, k.e.as_deref()?).ok()?,
            )
        }
        _ => return None,
    };
    let usable = k
        .alg
        .as_deref()
        .is_none_or(|a| a.parse::<Algorithm>().is_ok_and(|a| a == alg))
        && k.use_.as_deref().is_none_or(|u| u == "sig");
    usable.then_some((k.kid?, (alg, key)))
}

/// The algorithms a key of authd's JWKS can have; a token header naming any other is refused
/// before its `kid` is looked up.
pub(crate) fn is_supported(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256)
}
