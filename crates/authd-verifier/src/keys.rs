//! The key cache: authd's JWKS (RFC 7517), fetched only from the configured URL, refetched on
//! an unknown `kid` at most once per second so that random kids cannot make us hammer authd.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::DecodingKey;
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
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

pub(crate) struct Keys {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
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

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(kid).cloned()
    }

    /// The Ed25519 key named `kid`, refetching the JWKS (per `mode`) when it is unknown.
    pub(crate) async fn get(&self, kid: &str, mode: Refetch) -> Option<DecodingKey> {
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
                let keys: HashMap<_, _> = jwks.keys.into_iter().filter_map(ed25519).collect();
                tracing::debug!(keys = keys.len(), "authd JWKS fetched");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
            }
            Err(error) => tracing::warn!(url = %self.url, ?error, "fetching authd's JWKS failed"),
        }
    }
}

/// An EdDSA signing key of the set (`kty: OKP`, `crv: Ed25519`); anything else is skipped.
fn ed25519(k: Jwk) -> Option<(String, DecodingKey)> {
    let usable = k.kty == "OKP"
        && k.crv.as_deref() == Some("Ed25519")
        && k.alg.as_deref().is_none_or(|a| a == "EdDSA")
        && k.use_.as_deref().is_none_or(|u| u == "sig");
    if !usable {
        return None;
    }
    Some((
        k.kid?,
        DecodingKey::from_ed_components(k.x.as_deref()?).ok()?,
    ))
}
