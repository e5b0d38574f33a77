//! `GET /auth/revocations`: the revocation feed for resource servers (API.md "Revocation feed
//! for resource servers"), as Server-Sent Events. See `live::feed` for where events come from.
//!
//! The stream, in order:
//! 1. `event: revocation` for every revocation whose tokens may still be alive (the snapshot),
//!    each `id: <jti>` and `data: <SET>`;
//! 2. `event: ready` (`data: {"snapshot": n}`): the client's deny-list is now complete;
//! 3. live `event: revocation`s, `event: keys` when the signing keys change (refetch the JWKS),
//!    and `event: heartbeat` (`data: {"time": <unix ms>}`) every [`HEARTBEAT_EVERY`] while this
//!    instance itself knows every revocation (its listener is live). A client that hears no
//!    heartbeat for a few seconds must treat its deny-list as stale.
//!
//! The stream ends when this instance may have missed revocations (its listener reconnected),
//! when the client falls [`BROADCAST_CAPACITY`](crate::live::feed::BROADCAST_CAPACITY) events
//! behind or does not read for [`SEND_TIMEOUT`], and on shutdown: the client reconnects and gets
//! a fresh snapshot (with or without `Last-Event-ID`: the snapshot is always whole, so there is
//! no gap, and events are idempotent).

use std::{convert::Infallible, time::Duration};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use serde_json::json;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    db::revocations,
    error::ApiError,
    http::extractors::bearer_token,
    live::{
        denylist::KEEP_AFTER_ACCESS_EXPIRY,
        feed::{self, FeedItem, Subscription},
    },
    state::AppState,
    tokens::jwt::unix_now,
};

/// Heartbeats while this instance's deny-list is complete (API.md: at least every 5 s).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A client that does not take an event within this long is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events waiting in one connection's buffer, at most.
const PER_SUBSCRIBER_BUFFER: usize = 64;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revocations))
}

crate::problems!(FeedErrors: ApiError::Unauthorized, ApiError::NotFound, ApiError::Unavailable);

/// The revocation feed: a `text/event-stream` of signed Security Event Tokens (RFC 8417) with
/// CAEP `session-revoked` events, for resource servers that verify access tokens offline.
/// Authenticated with `Authorization: Bearer <AUTHD_RESOURCE_SECRET>`; 404 when it is unset.
#[utoipa::path(
    get, path = "/auth/revocations", tag = "resource servers",
    security(("resource_bearer" = [])),
    responses(
        FeedErrors,
        (status = 200, description = "The event stream (snapshot, `ready`, then live events and heartbeats)",
         content_type = "text/event-stream", body = String),
    )
)]
async fn revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(secret) = state.config.resource_secret.as_deref() else {
        return Err(ApiError::NotFound);
    };
    let given = bearer_token(&headers).ok().flatten().unwrap_or("");
    if verify_slices_are_equal(given.as_bytes(), secret.as_bytes()).is_err() {
        let mut res = ApiError::Unauthorized.into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(res);
    }
    // Subscribe before reading the snapshot: whatever commits in between is in one or both.
    let subscription = state.feed.subscribe().ok_or(ApiError::Unavailable)?;
    let snapshot = revocations::feed_entries(&state.db, KEEP_AFTER_ACCESS_EXPIRY, None).await?;
    let (tx, rx) = mpsc::channel(PER_SUBSCRIBER_BUFFER);
    tokio::spawn(stream(state, subscription, snapshot, tx));
    let mut res = Sse::new(ReceiverStream::new(rx)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tell proxies (nginx) not to buffer the stream.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Feeds one connection until it ends (see the module doc).
async fn stream(
    state: AppState,
    mut sub: Subscription,
    snapshot: Vec<revocations::FeedEntry>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let send = |event: Event| {
        let tx = tx.clone();
        async move { tx.send_timeout(Ok(event), SEND_TIMEOUT).await.is_ok() }
    };
    let n = snapshot.len();
    for entry in &snapshot {
        let Ok((id, set)) = feed::sign(&state.jwt, entry) else {
            return;
        };
        if !send(revocation(id, &set)).await {
            return;
        }
    }
    if !send(
        Event::default()
            .event("ready")
            .data(json!({ "snapshot": n }).to_string()),
    )
    .await
    {
        return;
    }
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        let event = tokio::select! {
            item = sub.items.recv() => match item {
                Ok(FeedItem::Revoked { id, set }) => revocation(id, &set),
                Ok(FeedItem::Keys) => Event::default().event("keys").data("{}"),
                // Resync, or this subscriber fell behind: end; the client reconnects.
                Ok(FeedItem::Resync) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            _ = beat.tick() => {
                if !state.revocations.is_live() {
                    continue; // no heartbeat while this instance may be missing revocations
                }
                let now_ms = unix_now().saturating_mul(1000);
                Event::default().event("heartbeat").data(json!({ "time": now_ms }).to_string())
            }
        };
        if !send(event).await {
            return;
        }
    }
}

fn revocation(id: uuid::Uuid, set: &str) -> Event {
    Event::default()
        .event("revocation")
        .id(id.to_string())
        .data(set)
}
