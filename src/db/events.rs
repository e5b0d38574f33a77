//! The audit trail.

use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ClientInfo, EventKind};

/// One event to record. Build with [`Event::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Value,
}

impl Event {
    pub fn new(kind: EventKind, user_id: Option<Uuid>, client: &ClientInfo) -> Self {
        Self {
            kind,
            user_id,
            session_id: None,
            actor_id: None,
            ip: client.ip_string(),
            user_agent: client.user_agent.clone(),
            detail: Value::Object(Default::default()),
        }
    }

    pub fn session(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    pub fn actor(mut self, id: Uuid) -> Self {
        self.actor_id = Some(id);
        self
    }

    /// Sets the actor if there is one (`None`: the system or the CLI).
    pub fn actor_opt(mut self, id: Option<Uuid>) -> Self {
        self.actor_id = id;
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

pub async fn record(db: impl PgExecutor<'_>, e: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_events (kind, user_id, session_id, actor_id, ip, user_agent, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.kind.as_str())
    .bind(e.user_id)
    .bind(e.session_id)
    .bind(e.actor_id)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.detail)
    .execute(db)
    .await?;
    Ok(())
}

/// An audit event as the API shows it, from the history of one user (the account holder).
///
/// `actor` says who caused the event: `"user"` (the account holder, from one of their sessions),
/// `"admin"` (another account, i.e. an administrator), or null (no signed-in account: a failed
/// login, a replayed refresh token, the command line, where `detail.via` is `"cli"`). `ip` and
/// `user_agent` are those of the request that caused the event. In the account holder's own
/// view (`GET /auth/events`), events by an admin show `actor: "admin"` with `actor_id`, `ip`
/// and `user_agent` null, so the user does not learn who the admin is or where they work from;
/// `GET /admin/users/{id}/events` shows everything.
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: String,
    pub session_id: Option<Uuid>,
    /// Who caused the event, relative to the account holder (see above).
    #[sqlx(skip)]
    pub actor: Option<Actor>,
    /// The acting account's id; null when no account acted, or an admin did and this is the
    /// account holder's own view.
    pub actor_id: Option<Uuid>,
    /// Client IP of the causing request (null from the command line, or hidden, see above).
    pub ip: Option<String>,
    /// `User-Agent` of the causing request (null if absent, or hidden, see above).
    pub user_agent: Option<String>,
    /// Event-specific details (e.g. `reason`, `count`, `roles`).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Who caused an event, relative to the user whose history it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    /// The account holder.
    User,
    /// Another account: only administrators act on other users' accounts.
    Admin,
}

impl StoredEvent {
    /// Hides who the acting admin is (id, IP, user agent) when the event was caused by an admin;
    /// the account holder's own events, and those without an acting account, stay as they are.
    pub fn hide_other_actor(&mut self) {
        if self.actor == Some(Actor::Admin) {
            self.actor_id = None;
            self.ip = None;
            self.user_agent = None;
        }
    }
}

/// A user's events, newest first, older than `before` (an event id) if given, each with its
/// `actor` relative to that user.
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut events: Vec<StoredEvent> = sqlx::query_as(
        "SELECT id, at, kind, session_id, actor_id, ip, user_agent, detail FROM auth_events
         WHERE user_id = $1 AND ($2::int8 IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    for e in &mut events {
        e.actor = e.actor_id.map(|a| {
            if a == user_id {
                Actor::User
            } else {
                Actor::Admin
            }
        });
    }
    Ok(events)
}

/// Erases the history of a user being deleted, keeping what others need (see the migration
/// `20261201000002_account_deletion.sql`): events another account caused (`actor_id` neither
/// null nor the user: an admin's actions) and those from the command line (`detail.via` =
/// `cli`) stay; everything else recorded about the user (their logins, failures, logouts, own
/// changes, with IPs and user agents) is deleted. Events the user caused on other accounts are
/// not touched. Returns how many were deleted.
pub async fn erase_history_of(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM auth_events
         WHERE user_id = $1
           AND (actor_id IS NULL OR actor_id = $1)
           AND detail->>'via' IS DISTINCT FROM 'cli'",
    )
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Whether any event names `user_id` (a deleted user's tombstone, say).
pub async fn any_for(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM auth_events WHERE user_id = $1)")
        .bind(user_id)
        .fetch_one(db)
        .await
}

/// Deletes up to `batch` events older than `retention`. Returns how many.
pub async fn delete_older_than(
    db: impl PgExecutor<'_>,
    retention: std::time::Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM auth_events WHERE id IN (
            SELECT id FROM auth_events WHERE at < now() - make_interval(secs => $1) LIMIT $2
         )",
    )
    .bind(retention.as_secs_f64())
    .bind(batch)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
