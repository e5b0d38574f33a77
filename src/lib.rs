//! authd: an authentication server for single-page apps and the APIs they call.
//!
//! Layers, top to bottom (a module only imports the ones below it):
//! - [`app`]: startup, the accept loop, background jobs (cleanup, rate-limit housekeeping);
//! - [`http`]: one module per resource; handlers extract, call [`session`], map to HTTP;
//! - [`session`]: every business event on sessions (login, refresh, revoke), each one transaction
//!   with its audit row, then the deny-list and metrics;
//! - [`factors`]: ways to prove who someone is (passwords today), each handing a user id to
//!   [`session`];
//! - [`live`]: the NOTIFY-fed in-memory state (deny-list, user cache) and its trust rule;
//! - [`tokens`]: access tokens (JWT, keys, JWKS), refresh tokens, the cookie;
//! - [`db`]: all SQL;
//! - [`embedded`]: the private PostgreSQL authd runs when no server is configured;
//! - [`domain`], [`config`], [`error`], [`telemetry`]: types and plumbing every layer uses.
// Panics are for tests: server code returns errors (a panic on input would be a 500 at best).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod embedded;
pub mod error;
pub mod factors;
pub mod http;
pub mod live;
pub mod mail;
pub mod session;
pub mod state;
pub mod telemetry;
pub mod tokens;
