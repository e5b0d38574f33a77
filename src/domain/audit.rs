//! The names the audit trail and the `sessions.revoked_reason` column use: one enum each, so a
//! new sign-in method or revocation path cannot invent a spelling.

/// Why a session ended early (`sessions.revoked_reason`, the `reason` of audit events, the
/// `reason` label of `authd_revocations_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// `POST /auth/logout`.
    Logout,
    /// The user signed out that device (or all/other devices) themselves.
    UserRevoked,
    /// An admin (HTTP or CLI) forced the logout.
    AdminRevoked,
    /// A superseded refresh token was presented again (RFC 9700 §4.14.2 reuse detection).
    RefreshTokenReused,
    /// The password was changed; every other session ends.
    PasswordChanged,
    /// The password was reset through a mailed link; every session ends.
    PasswordReset,
    /// The user was disabled.
    UserDisabled,
    /// A role was taken away: tokens carrying it must not outlive the change (ASVS 5.0 8.3.2).
    RolesChanged,
    /// A new login in the same browser replaced the session its cookie named (ASVS 7.2.4).
    Superseded,
    /// The user has more live sessions than AUTHD_MAX_SESSIONS; the least recently used went.
    SessionLimit,
    /// A code sign-in proved an address that was not verified: the sessions opened with the
    /// password someone set before (account pre-hijacking) end, and the password is dropped.
    EmailProven,
    /// The account was deleted (by its holder, an admin or the operator); its session rows
    /// go with it, after this revocation told every instance.
    UserDeleted,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::UserRevoked => "user_revoked",
            Self::AdminRevoked => "admin_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::UserDisabled => "user_disabled",
            Self::RolesChanged => "roles_changed",
            Self::Superseded => "superseded",
            Self::SessionLimit => "session_limit",
            Self::UserDeleted => "user_deleted",
            Self::EmailProven => "email_proven",
        }
    }
}

/// How a session was signed in (`sessions.auth_method`, the `method` of `login_succeeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Email and password.
    Password,
    /// A one-time code or link mailed to the account's address (API.md "Email").
    EmailCode,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::EmailCode => "email_code",
        }
    }
}

/// The `kind` of an audit event (`auth_events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    Logout,
    RefreshTokenReused,
    /// One session revoked (detail: `reason`).
    SessionRevoked,
    /// Several sessions of one user revoked (detail: `reason`, `count`, `scope`).
    SessionsRevoked,
    PasswordChanged,
    /// A wrong `current_password` on `POST /auth/password`.
    PasswordChangeFailed,
    UserDisabled,
    UserEnabled,
    /// An admin changed another user's roles (detail: `roles`).
    RolesChanged,
    /// An admin changed their own roles: recorded apart, it is how privilege escalation shows.
    OwnRolesChanged,
    /// A verification link was mailed to the user's address.
    EmailVerificationSent,
    /// The user confirmed their address.
    EmailVerified,
    /// A password-reset link was mailed (to a known address; unknown ones leave no row).
    PasswordResetRequested,
    /// The password was set through a reset link (detail: `revoked_sessions`).
    PasswordReset,
    /// A sign-in code was mailed (`user_id` NULL: to an address that may sign up).
    EmailCodeSent,
    /// A wrong sign-in code (detail: `attempts`).
    EmailCodeFailed,
    /// An unknown, used, expired or wrong-purpose link token was presented (detail: `purpose`).
    EmailTokenRejected,
    /// An address change was asked for (a link to the new address, a notice to the old).
    EmailChangeRequested,
    /// The account switched to its new, confirmed address.
    EmailChanged,
    /// A wrong `current_password` on `POST /auth/email/change`.
    EmailChangeFailed,
    /// The tombstone of a deleted account (detail: `by` = `self`/`admin`/`cli`,
    /// `revoked_sessions`, and for `self` the `reauth` method). Never carries the address;
    /// for `self` not the IP or user agent either.
    UserDeleted,
    /// A wrong `current_password` on `DELETE /auth/me`.
    AccountDeletionFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user_registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::SessionRevoked => "session_revoked",
            Self::SessionsRevoked => "sessions_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::RolesChanged => "roles_changed",
            Self::OwnRolesChanged => "own_roles_changed",
            Self::EmailVerificationSent => "email_verification_sent",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailCodeSent => "email_code_sent",
            Self::EmailCodeFailed => "email_code_failed",
            Self::EmailTokenRejected => "email_token_rejected",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::EmailChangeFailed => "email_change_failed",
            Self::UserDeleted => "user_deleted",
            Self::AccountDeletionFailed => "account_deletion_failed",
        }
    }
}
