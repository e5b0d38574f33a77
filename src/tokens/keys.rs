//! Signing keys: loading them at start, reloading them when another instance rotated (NOTIFY
//! `authd_keys`), and how long a retired key must stay published.

use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::{
    config::Config,
    db,
    state::AppState,
    tokens::jwt::{KeyMaterial, KeySet, LEEWAY_SECS},
};

/// Loads (or on first start generates) the signing keys. With AUTHD_SIGNING_KEY_FILE, that key
/// becomes the signing key if it is not already.
pub async fn load_keys(pool: &PgPool, config: &Config) -> anyhow::Result<KeySet> {
    if let Some(path) = &config.signing_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("AUTHD_SIGNING_KEY_FILE: cannot read {}", path.display()))?;
        let key = KeyMaterial::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("AUTHD_SIGNING_KEY_FILE: {}: {e}", path.display()))?;
        let current = db::keys::load_active(pool, token_lifetime(config)).await?;
        if current.as_ref().map(|k| k.signing.kid.as_str()) != Some(key.kid.as_str()) {
            db::keys::install(pool, &key).await?;
            tracing::info!(kid = %key.kid, "signing key from AUTHD_SIGNING_KEY_FILE installed");
        }
    } else {
        db::keys::ensure_signing_key(pool).await?;
    }
    let active = db::keys::load_active(pool, token_lifetime(config))
        .await?
        .context("no active signing key in the database")?;
    Ok(KeySet::new(&active.signing, &active.published))
}

/// Swaps in the current key set from the database. Returns when the next retired key expires.
pub async fn reload_keys(state: &AppState) -> anyhow::Result<Option<std::time::Duration>> {
    let active = db::keys::load_active(&state.db, token_lifetime(&state.config))
        .await?
        .context("no active signing key in the database")?;
    let set = KeySet::new(&active.signing, &active.published);
    let changed = {
        let current = state.jwt.keys();
        current.signing_kid() != set.signing_kid() || current.kids().count() != set.kids().count()
    };
    if changed {
        tracing::info!(signing_kid = %set.signing_kid(), published = set.kids().count(), "signing keys reloaded");
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
