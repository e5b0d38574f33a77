//! The revocation feed client: `GET {authd}/auth/revocations` (server-sent events), the
//! deny-list it fills, and how fresh that deny-list is.
//!
//! Each `revocation` event carries a Security Event Token (RFC 8417) with a CAEP
//! `session-revoked` event; a SET is trusted only if it verifies against authd's JWKS (with the
//! algorithm of the key its `kid` names, `typ: secevent+jwt`, `iss`, `aud`), otherwise it is logged and ignored. The deny-list holds
//! session ids until the SET's `tokens_valid_until` (plus the leeway). The feed is *complete*
//! from its `ready` event on; every event received while complete (heartbeats every 2 s) proves
//! it is still current. A dropped stream is reconnected with backoff and sends a new snapshot.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jsonwebtoken::Validation;
use serde::Deserialize;

use crate::{
    Shared,
    keys::{Keys, Refetch},
    unix_now,
};

/// The CAEP event type of a revoked session.
pub(crate) const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The deny-list and the feed's state, shared with [`crate::Verifier::verify`].
#[derive(Default)]
pub(crate) struct Feed {
    state: Mutex<State>,
    /// Woken on every `ready`.
    pub(crate) ready: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Revoked session id -> unix time (s) until which it stays listed.
    denied: HashMap<String, i64>,
    /// Between `ready` and the end of the current connection.
    complete: bool,
    /// The last time an event arrived while complete.
    current_at: Option<Instant>,
}

impl Feed {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the session is on the deny-list.
    pub(crate) fn is_revoked(&self, sid: &str) -> bool {
        let state = self.state();
        state
            .denied
            .get(sid)
            .is_some_and(|until| *until >= unix_now())
    }

    /// Whether the deny-list was known complete less than `bound` ago.
    pub(crate) fn is_fresh(&self, bound: Duration) -> bool {
        self.state()
            .current_at
            .is_some_and(|t| t.elapsed() <= bound)
    }

    fn set_complete(&self, complete: bool) {
        let mut state = self.state();
        state.complete = complete;
        if complete {
            state.current_at = Some(Instant::now());
            let now = unix_now();
            state.denied.retain(|_, until| *until >= now);
            drop(state);
            self.ready.notify_waiters();
        }
    }

    /// Any event: still current if complete.
    fn touch(&self) {
        let mut state = self.state();
        if state.complete {
            state.current_at = Some(Instant::now());
        }
    }

    fn deny(&self, sid: String, until: i64) {
        let mut state = self.state();
        let entry = state.denied.entry(sid).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// Keeps the stream connected until the task is aborted (when the last `Verifier` is dropped).
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match connect(&shared).await {
            Ok(reached_ready) => {
                tracing::info!("authd revocation feed ended; reconnecting");
                if reached_ready {
                    backoff = FIRST_BACKOFF;
                }
            }
            Err(error) => tracing::warn!(?error, "authd revocation feed unavailable"),
        }
        shared.feed.set_complete(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: reads events until the stream ends or is silent for too long. Returns
/// whether it reached `ready`.
async fn connect(shared: &Shared) -> Result<bool, reqwest::Error> {
    let config = &shared.config;
    let mut res = shared
        .http
        .get(format!("{}/auth/revocations", config.authd_url))
        .bearer_auth(&config.resource_secret)
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    // authd sends a heartbeat every 2 s while complete; a silent connection is dead or stuck.
    let silence = config.stale_after.max(Duration::from_secs(5));
    let mut parser = SseParser::default();
    let mut reached_ready = false;
    loop {
        let chunk = match tokio::time::timeout(silence, res.chunk()).await {
            Ok(chunk) => chunk?,
            Err(_) => {
                tracing::warn!("authd revocation feed silent for {silence:?}");
                return Ok(reached_ready);
            }
        };
        let Some(chunk) = chunk else {
            return Ok(reached_ready);
        };
        for event in parser.push(&chunk) {
            match event.event.as_str() {
                "revocation" => revocation(shared, &event.data).await,
                "ready" => {
                    reached_ready = true;
                    shared.feed.set_complete(true);
                    tracing::info!(snapshot = %event.data, "authd revocation feed ready");
                }
                "keys" => {
                    let keys = shared.keys.clone();
                    tokio::spawn(async move { keys.refresh(Refetch::WhenDue).await });
                }
                _ => {} // heartbeat, or something newer: the feed is alive either way
            }
            shared.feed.touch();
        }
    }
}

/// Verifies one SET and puts its session on the deny-list; a SET failing any check is ignored.
async fn revocation(shared: &Shared, set: &str) {
    match verify_set(&shared.keys, &shared.config, set).await {
        Some((sid, until)) => shared
            .feed
            .deny(sid, until.saturating_add(shared.leeway_secs() as i64)),
        None => tracing::warn!("ignored a revocation event that does not verify as authd's SET"),
    }
}

#[derive(Deserialize)]
struct SetClaims {
    events: HashMap<String, SessionRevoked>,
}

#[derive(Deserialize)]
struct SessionRevoked {
    subject: Subject,
    tokens_valid_until: i64,
}

#[derive(Deserialize)]
struct Subject {
    session: Opaque,
}

#[derive(Deserialize)]
struct Opaque {
    id: String,
}

/// The session id and `tokens_valid_until` of a valid SET (RFC 8417 §2.2 checks).
async fn verify_set(keys: &Keys, config: &crate::Config, set: &str) -> Option<(String, i64)> {
    let header = jsonwebtoken::decode_header(set).ok()?;
    if !crate::keys::is_supported(header.alg)
        || header.crit.is_some()
        || !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("secevent+jwt"))
    {
        return None;
    }
    let (alg, key) = keys.get(header.kid.as_deref()?, Refetch::WhenDue).await?;
    if header.alg != alg {
        return None;
    }
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.validate_exp = false; // SETs have no exp (RFC 8417 §2.2)
    validation.set_required_spec_claims(&["iss", "aud"]);
    let mut claims = jsonwebtoken::decode::<SetClaims>(set, &key, &validation)
        .ok()?
        .claims;
    let event = claims.events.remove(SESSION_REVOKED)?;
    Some((event.subject.session.id, event.tokens_valid_until))
}

/// One server-sent event (only the fields authd uses).
#[derive(Debug, Default, PartialEq)]
struct SseEvent {
    event: String,
    data: String,
}

/// The SSE framing (WHATWG HTML "server-sent events"): `field: value` lines, a blank line
/// ends an event, `:` starts a comment, several `data` lines are joined with `\n`.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    event: String,
    data: Option<String>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    let event = std::mem::take(&mut self.event);
                    events.push(SseEvent {
                        event: if event.is_empty() {
                            "message".into()
                        } else {
                            event
                        },
                        data,
                    });
                }
                self.event.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_owned(),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {} // comments, id, retry
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_across_chunks_crlf_comments_and_multiline_data() {
        let mut p = SseParser::default();
        assert_eq!(p.push(b"event: revoc"), vec![]);
        assert_eq!(p.push(b"ation\r\nid: 1\r\ndata: a.b"), vec![]);
        assert_eq!(
            p.push(b".c\r\n\r\n: a comment\n\nevent:ready\ndata:{}\n\n"),
            vec![ev("revocation", "a.b.c"), ev("ready", "{}")]
        );
        assert_eq!(
            p.push(b"data: one\ndata: two\n\nevent: no-data\n\n"),
            vec![ev("message", "one\ntwo")]
        );
        assert_eq!(
            p.push(b"event: heartbeat\ndata: {}\n\n"),
            vec![ev("heartbeat", "{}")]
        );
    }
}
