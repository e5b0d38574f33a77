//! The revocation feed (`GET /auth/revocations`, API.md "Revocation feed for resource servers"):
//! what this instance's deny-list learns, re-told to resource servers as signed Security Event
//! Tokens (RFC 8417) carrying a CAEP `session-revoked` event.
//!
//! - The listener hands every revocation NOTIFY to [`Feed::revoked`] (so every authd instance
//!   serves the same events: they all hear the same NOTIFYs). A task batches them, reads who
//!   they belong to, signs one SET each, and broadcasts it to the subscribers.
//! - A subscriber first subscribes, then reads the snapshot of every revocation whose tokens may
//!   still be alive: nothing committed in between is missed (it is in the snapshot or comes
//!   live, perhaps both: events are idempotent).
//! - When the listener reconnects (it may have missed NOTIFYs while down), every subscriber is
//!   told to resync ([`FeedItem::Resync`]): its stream ends and the client reconnects for a
//!   fresh snapshot. A reconnect with `Last-Event-ID` also gets the whole snapshot: gap-free by
//!   construction, at the cost of resending what the client has (idempotent).
//! - Memory is bounded: the broadcast ring holds [`BROADCAST_CAPACITY`] events; a subscriber that
//!   falls that far behind is dropped (it reconnects and resyncs), never buffered for.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::{
    db::revocations::{self, FeedEntry},
    live::denylist::KEEP_AFTER_ACCESS_EXPIRY,
    tokens::jwt::Jwt,
};

/// The CAEP event type of a revoked session.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// Events kept for slow subscribers; one further behind is dropped.
pub const BROADCAST_CAPACITY: usize = 1024;
/// Subscribers at once, at most (more get 503).
pub const MAX_SUBSCRIBERS: usize = 256;
/// Revocations waiting to be signed, at most; beyond it the feed resyncs every subscriber.
const PENDING_CAPACITY: usize = 16_384;
/// How long the signer waits to batch revocations that arrive together.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// One thing a subscriber is told.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A signed SET; `id` is its `jti` (the SSE event id).
    Revoked { id: Uuid, set: Arc<str> },
    /// The signing keys changed: refetch the JWKS.
    Keys,
    /// This instance may have missed revocations: reconnect for a fresh snapshot.
    Resync,
}

pub struct Feed {
    tx: broadcast::Sender<FeedItem>,
    pending: mpsc::Sender<Uuid>,
    subscribers: AtomicUsize,
}

/// A subscriber's place in the feed; dropping it frees the slot.
pub struct Subscription {
    pub items: broadcast::Receiver<FeedItem>,
    feed: Arc<Feed>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Feed {
    /// The feed and its signer task (on the current runtime).
    pub fn start(db: PgPool, jwt: Arc<Jwt>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (pending, rx) = mpsc::channel(PENDING_CAPACITY);
        let feed = Arc::new(Self {
            tx: tx.clone(),
            pending,
            subscribers: AtomicUsize::new(0),
        });
        tokio::spawn(sign_forever(rx, tx, db, jwt));
        feed
    }

    /// A revocation NOTIFY arrived (called by the listener).
    pub fn revoked(&self, session: Uuid) {
        if self.subscribers.load(Ordering::Acquire) == 0 {
            return; // nobody to tell; a later subscriber reads the snapshot
        }
        if self.pending.try_send(session).is_err() {
            tracing::warn!("revocation feed backlog full; subscribers resync");
            let _ = self.tx.send(FeedItem::Resync);
        }
    }

    /// The signing keys changed (called by the listener).
    pub fn keys_changed(&self) {
        let _ = self.tx.send(FeedItem::Keys);
    }

    /// The listener (re)connected and reloaded: what it missed while down is only in the
    /// database, so every subscriber starts over.
    pub fn resync(&self) {
        let _ = self.tx.send(FeedItem::Resync);
    }

    /// A new subscriber, or `None` when [`MAX_SUBSCRIBERS`] are connected.
    pub fn subscribe(self: &Arc<Self>) -> Option<Subscription> {
        let taken = self
            .subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            });
        taken.ok().map(|_| Subscription {
            items: self.tx.subscribe(),
            feed: self.clone(),
        })
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Acquire)
    }
}

/// The SET of one revocation: a CAEP `session-revoked` event whose subject is the session and
/// its user, with the time until which the session's access tokens could be valid
/// (`tokens_valid_until`, unix seconds; a verifier keeps the entry until then).
pub fn sign(jwt: &Jwt, e: &FeedEntry) -> Result<(Uuid, String), crate::error::ApiError> {
    let mut event = json!({
        "subject": {
            "format": "complex",
            "session": { "format": "opaque", "id": e.session_id },
            "user": { "format": "opaque", "id": e.user_id },
        },
        "event_timestamp": e.revoked_at,
        "tokens_valid_until": e.tokens_until,
    });
    if let Some(reason) = &e.reason {
        event["reason_admin"] = json!({ "en": reason });
    }
    let (set, jti) = jwt.sign_set(json!({
        "sid": e.session_id,
        "sub": e.user_id,
        "events": { SESSION_REVOKED: event },
    }))?;
    Ok((jti, set))
}

/// Signs and broadcasts pending revocations, in small batches (one query per batch).
async fn sign_forever(
    mut rx: mpsc::Receiver<Uuid>,
    tx: broadcast::Sender<FeedItem>,
    db: PgPool,
    jwt: Arc<Jwt>,
) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(BATCH_WINDOW).await;
        let mut batch = vec![first];
        while batch.len() < 500
            && let Ok(more) = rx.try_recv()
        {
            batch.push(more);
        }
        batch.sort();
        batch.dedup();
        let entries =
            match revocations::feed_entries(&db, KEEP_AFTER_ACCESS_EXPIRY, Some(&batch)).await {
                Ok(e) => e,
                Err(e) => {
                    // The database will be read again by every subscriber's next snapshot.
                    tracing::warn!(error = %e, "revocation feed lookup failed; subscribers resync");
                    let _ = tx.send(FeedItem::Resync);
                    continue;
                }
            };
        let mut latest: HashMap<Uuid, FeedEntry> = HashMap::new();
        for e in entries {
            latest
                .entry(e.session_id)
                .and_modify(|old| {
                    if e.tokens_until > old.tokens_until {
                        *old = e.clone();
                    }
                })
                .or_insert(e);
        }
        for e in latest.values() {
            match sign(&jwt, e) {
                Ok((id, set)) => {
                    let _ = tx.send(FeedItem::Revoked {
                        id,
                        set: set.into(),
                    });
                }
                Err(err) => {
                    tracing::error!(error = %err, "revocation event not signed; subscribers resync");
                    let _ = tx.send(FeedItem::Resync);
                }
            }
        }
    }
}
