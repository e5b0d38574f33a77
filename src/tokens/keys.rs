//! Signing keys: loading them at start, reloading them when they change (NOTIFY `authd_keys`,
//! a pending key's activation, a retired key's last token expiring), and the timing rules of
//! rotation.
//!
//! A key from AUTHD_SIGNING_KEY_FILE is kept in the database without its private part: only
//! instances given the file can sign with it, and one that is not given it refuses to start
//! while that key signs.

use std::{path::Path, time::Instant};

use anyhow::{Context, bail};
use sqlx::PgPool;

use crate::{
    config::Config,
    db::{
        self,
        keys::{ActiveKeys, FileKeyInstall},
    },
    state::AppState,
    tokens::jwt::{KeyMaterial, KeySet, LEEWAY_SECS, PublicKey, SigningAlg},
};

/// How long resource servers may cache the JWKS (`Cache-Control: max-age` of
/// `/.well-known/jwks.json`).
pub const JWKS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// How long after `authd keys rotate` the new key starts signing: until then it is only
/// published, so every resource server's cached JWKS has it before its first token arrives.
pub fn activation_delay() -> std::time::Duration {
    JWKS_MAX_AGE + std::time::Duration::from_secs(LEEWAY_SECS)
}

/// Loads (or on first start generates) the signing keys. With AUTHD_SIGNING_KEY_FILE, that key
/// becomes the signing key at once if it is not already (its private part stays in this
/// process). Without it, refuses to start when the signing key's private part is only in such a
/// file (one line naming AUTHD_SIGNING_KEY_FILE and the kid).
pub async fn load_keys(pool: &PgPool, config: &Config) -> anyhow::Result<KeySet> {
    let file_key = match &config.signing_key_file {
        Some(path) => Some(read_key_file(path, config.signing_alg)?),
        None => None,
    };
    match &file_key {
        Some(key) => match db::keys::install_file_key(pool, &key.public()).await? {
            FileKeyInstall::Installed => {
                tracing::info!(kid = %key.kid, "signing key from AUTHD_SIGNING_KEY_FILE installed")
            }
            FileKeyInstall::AlreadySigning => {}
            FileKeyInstall::Revoked => bail!(
                "AUTHD_SIGNING_KEY_FILE: key {} was revoked (authd keys revoke) and must never \
                 sign again; give a new key or unset AUTHD_SIGNING_KEY_FILE",
                key.kid
            ),
        },
        None => db::keys::ensure_signing_key(pool, config.signing_alg).await?,
    }
    let active = db::keys::load_active(pool, token_lifetime(config)).await?;
    let signing = active
        .signing
        .as_ref()
        .context("no signing key in the database")?;
    if signing.private_der.is_none() && file_key.as_ref().is_none_or(|k| k.kid != signing.kid) {
        bail!(
            "AUTHD_SIGNING_KEY_FILE: the signing key {} is kept only in that file (never in the \
             database); start this instance with AUTHD_SIGNING_KEY_FILE set to it",
            signing.kid
        );
    }
    if signing.alg != config.signing_alg {
        tracing::warn!(
            kid = %signing.kid,
            alg = %signing.alg,
            configured = %config.signing_alg,
            "the signing key is {} but AUTHD_SIGNING_ALG is {}: run `authd keys rotate` to switch \
             (tokens of the current key keep verifying until they expire)",
            signing.alg,
            config.signing_alg
        );
    }
    Ok(key_set(&active, file_key))
}

/// The key in `path`, which must be of the type `alg` signs with.
fn read_key_file(path: &Path, alg: SigningAlg) -> anyhow::Result<KeyMaterial> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("AUTHD_SIGNING_KEY_FILE: cannot read {}", path.display()))?;
    let key = KeyMaterial::from_pem(&text)
        .map_err(|e| anyhow::anyhow!("AUTHD_SIGNING_KEY_FILE: {}: {e}", path.display()))?;
    if key.alg != alg {
        bail!(
            "AUTHD_SIGNING_KEY_FILE: {} holds a {} key ({}) but AUTHD_SIGNING_ALG is {alg} (a {} \
             key): give a key of that type or set AUTHD_SIGNING_ALG={}",
            path.display(),
            key.alg.key_type(),
            key.alg,
            alg.key_type(),
            key.alg
        );
    }
    Ok(key)
}

/// The key set for `active`: the database's signing key if this process holds its private part
/// (from the database or its own AUTHD_SIGNING_KEY_FILE). Otherwise (another instance started
/// with a key file this one was not given) it keeps signing with the newest activated key it
/// holds, which every instance still publishes, and says so loudly; with none, it cannot sign.
fn key_set(active: &ActiveKeys, file_key: Option<KeyMaterial>) -> KeySet {
    let held = |kid: &str| file_key.as_ref().filter(|k| k.kid == kid).cloned();
    let pair = |k: &db::keys::StoredKey| k.material().or_else(|| held(&k.kid));
    let signing = match &active.signing {
        Some(current) => pair(current).or_else(|| {
            let fallback = active
                .published
                .iter()
                .filter(|k| k.activated)
                .find_map(pair);
            tracing::error!(
                kid = %current.kid,
                fallback = fallback.as_ref().map(|k| k.kid.as_str()),
                "the signing key is kept only in AUTHD_SIGNING_KEY_FILE, which this instance was \
                 not given: restart it with that file"
            );
            fallback
        }),
        None => {
            tracing::error!("no signing key in the database: run `authd keys rotate --now`");
            None
        }
    };
    let published: Vec<PublicKey> = active.published.iter().map(|k| k.public()).collect();
    KeySet::new(signing.as_ref(), &published).with_file_key(file_key)
}

/// Swaps in the current key set from the database. Returns when the next change happens by
/// itself (a pending key activates, a retired key's last token expires), if ever.
pub async fn reload_keys(state: &AppState) -> anyhow::Result<Option<std::time::Duration>> {
    let active = db::keys::load_active(&state.db, token_lifetime(&state.config)).await?;
    let current = state.jwt.keys();
    let set = key_set(&active, current.file_key().cloned());
    let changed = current.signing_kid() != set.signing_kid() || {
        let mut a: Vec<&str> = current.kids().collect();
        let mut b: Vec<&str> = set.kids().collect();
        a.sort_unstable();
        b.sort_unstable();
        a != b
    };
    if changed {
        tracing::info!(
            signing_kid = set.signing_kid(),
            published = set.kids().count(),
            "signing keys reloaded"
        );
    }
    state.jwt.replace_keys(set);
    *state.last_key_reload.lock().await = Some(Instant::now());
    Ok(active.next_change)
}

/// Reloads keys now unless that happened in the last second (a token with an unknown `kid` may
/// come from an instance that rotated a moment ago; an attacker's random kids cost at most one
/// query per second).
pub async fn reload_keys_throttled(state: &AppState) -> bool {
    {
        let last = state.last_key_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return false;
        }
    }
    reload_keys(state).await.is_ok()
}

/// How long after a key stops signing its tokens may still verify.
pub fn token_lifetime(config: &Config) -> std::time::Duration {
    config.access_ttl + std::time::Duration::from_secs(LEEWAY_SECS)
}
