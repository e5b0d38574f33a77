//! The in-memory state every instance keeps in step with Postgres through LISTEN/NOTIFY: the
//! revoked-session deny-list ([`denylist`]), the user cache ([`users`]) and the signing keys,
//! fed by one listener ([`listener`]).
//!
//! Trust rule: the in-memory state is used only while it is known to be complete — the listener
//! is connected, everything that may matter was reloaded after connecting, and a heartbeat this
//! instance sent recently came back through the same connection. Otherwise every check goes to
//! the database (fail closed, never open).

pub mod denylist;
pub mod listener;
pub mod users;
