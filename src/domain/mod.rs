//! Types that can only hold valid values: parse at the edge, never re-validate inside.

mod audit;
mod client;
mod email;
mod password;

pub use audit::{AuthMethod, EventKind, RevokeReason};
pub use client::{ClientInfo, MAX_USER_AGENT_CHARS};
pub use email::Email;
pub use password::{NewPassword, Password, preload_common_passwords};

/// The role that grants the admin endpoints.
pub const ADMIN_ROLE: &str = "admin";

/// Whether a role list grants the admin endpoints.
pub fn has_admin_role(roles: &[String]) -> bool {
    roles.iter().any(|r| r == ADMIN_ROLE)
}
