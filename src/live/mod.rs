//! The in-memory state every instance keeps in step with Postgres through LISTEN/NOTIFY: the
//! deny-list of revoked and deleted sessions ([`denylist`]), the user cache ([`users`]) and the
//! signing keys, fed by one listener ([`listener`]).
//!
//! # The invariant
//!
//! An access token of a revoked session — or of a session whose row was deleted — is rejected
//! by every instance sharing the database within 1 s of the commit, for as long as the token
//! could otherwise be valid, with no database query per request while all is well. No
//! configuration, cleanup, restart, deletion or network stall breaks it:
//!
//! - **Different TTLs, restarts.** What a token outlives is recorded in the database, not
//!   derived from the local AUTHD_ACCESS_TTL: `sessions.access_expires_at` (set by login and
//!   refresh) says when the last token of a session expires. Revocation NOTIFYs carry it, the
//!   reload after every (re)connect selects revocations by it, and deny-list entries are kept
//!   until it + [`denylist::KEEP_AFTER_ACCESS_EXPIRY`].
//! - **Cleanup.** Whatever AUTHD_CLEANUP_RETENTION says, a session is deleted only once its
//!   `access_expires_at` + that margin has passed (`db::revocations::delete_ended`), so the rows
//!   a reload reads are there as long as a token may need them.
//! - **Deletion.** Deleting a session row (account deletion cascades, a manual DELETE or
//!   TRUNCATE) whose tokens may be alive leaves a tombstone (`session_tombstones`, read by every
//!   reload, purged by cleanup once the tokens are dead) and, if the session was not revoked
//!   already, NOTIFYs like a revocation. The database check counts unknown and tombstoned
//!   sessions as revoked, and so does introspection.
//! - **Network stalls.** The in-memory list is used only while it is known to be complete as of
//!   less than [`denylist::TRUST_FOR`] (500 ms) ago: the listener is connected, the list was
//!   reloaded after LISTEN began, and a heartbeat this instance SENT less than that ago came back
//!   through the listener connection (Postgres delivers notifications in commit order).
//!   Otherwise every check goes to the database (fail closed, never open).
//!
//! No configuration remains that could break it, so none is refused at start.

pub mod denylist;
pub mod feed;
pub mod listener;
pub mod users;
