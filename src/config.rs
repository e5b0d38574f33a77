//! All configuration, read from flags or their environment variables (a `.env` file is loaded
//! first by `main`). Each field's doc comment is its `--help` text.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum, builder::BoolishValueParser};

/// DATABASE_URL when unset (and a server answers there; see `crate::embedded`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/authd";
/// The DATABASE_URL value that asks for the embedded database.
pub const EMBEDDED_DATABASE_URL: &str = "embedded";

#[derive(Args, Clone)]
pub struct Config {
    /// Postgres URL; the database is created if missing and migrated at start. TLS: add
    /// `?sslmode=verify-full` (and `&sslrootcert=/path/ca.pem` for a private CA). `embedded`: a
    /// private PostgreSQL run by authd (data in AUTHD_DATA_DIR). Unset: the default below if a
    /// server answers there, else the embedded one.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Whether DATABASE_URL was left unset (its value is then the default); set by
    /// `Cli::try_parse_from_sources`, not an option.
    #[arg(skip)]
    pub database_url_is_default: bool,

    /// Directory of the embedded PostgreSQL's data (kept across restarts; one authd at a time).
    #[arg(
        long,
        env = "AUTHD_DATA_DIR",
        value_name = "AUTHD_DATA_DIR",
        default_value = "./authd-data"
    )]
    pub data_dir: PathBuf,

    /// Directory with PostgreSQL's `initdb` and `postgres` for the embedded database (unset:
    /// `pg_config --bindir`, PATH, then the usual install locations, else a download; the word
    /// `download`: skip this machine's binaries and use the downloaded ones).
    #[arg(
        long,
        env = "AUTHD_POSTGRES_BINDIR",
        value_name = "AUTHD_POSTGRES_BINDIR"
    )]
    pub postgres_bindir: Option<PathBuf>,

    /// Base URL the embedded database downloads PostgreSQL from when this machine has none:
    /// `<base>/<version>/postgresql-<version>-<target triple>.tar.gz` and its `.sha256` (the
    /// layout of the postgresql-binaries GitHub releases; set it to a mirror or a local cache).
    #[arg(long, env = "AUTHD_POSTGRES_DOWNLOAD_URL", value_name = "AUTHD_POSTGRES_DOWNLOAD_URL", default_value = crate::embedded::download::DEFAULT_BASE_URL, value_parser = parse_app_url)]
    pub postgres_download_url: String,

    /// Most connections this instance opens to Postgres.
    #[arg(long, env = "AUTHD_DB_MAX_CONNECTIONS", value_name = "AUTHD_DB_MAX_CONNECTIONS", default_value = "16", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// How long to keep retrying an unreachable database at start before giving up.
    #[arg(long, env = "AUTHD_DB_CONNECT_TIMEOUT", value_name = "AUTHD_DB_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub db_connect_timeout: Duration,

    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "AUTHD_BIND",
        value_name = "AUTHD_BIND",
        default_value = "127.0.0.1:8080",
        value_parser = parse_bind,
    )]
    pub bind: SocketAddr,

    /// Public base URL of this server: the `iss` claim, and the origin CSRF checks accept.
    #[arg(long, env = "AUTHD_ISSUER", value_name = "AUTHD_ISSUER", default_value = "http://localhost:8080", value_parser = parse_issuer)]
    pub issuer: Issuer,

    /// `aud` claim of access tokens (and the audience they are checked against).
    #[arg(
        long,
        env = "AUTHD_AUDIENCE",
        value_name = "AUTHD_AUDIENCE",
        default_value = "authd"
    )]
    pub audience: String,

    /// Lifetime of access tokens (humantime: `2s`, `15m`).
    #[arg(long, env = "AUTHD_ACCESS_TTL", value_name = "AUTHD_ACCESS_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_ttl: Duration,

    /// A session ends if it is not refreshed for this long.
    #[arg(long, env = "AUTHD_REFRESH_IDLE_TTL", value_name = "AUTHD_REFRESH_IDLE_TTL", default_value = "7d", value_parser = parse_duration)]
    pub refresh_idle_ttl: Duration,

    /// A session ends this long after login, however often it is refreshed.
    #[arg(long, env = "AUTHD_SESSION_MAX_AGE", value_name = "AUTHD_SESSION_MAX_AGE", default_value = "30d", value_parser = parse_duration)]
    pub session_max_age: Duration,

    /// A refresh token presented again this soon after its first use (concurrent tabs, a lost
    /// response) gets the same successor instead of being treated as reuse.
    #[arg(long, env = "AUTHD_REFRESH_GRACE", value_name = "AUTHD_REFRESH_GRACE", default_value = "10s", value_parser = parse_grace)]
    pub refresh_grace: Duration,

    /// Name of the refresh-token cookie.
    #[arg(long, env = "AUTHD_COOKIE_NAME", value_name = "AUTHD_COOKIE_NAME", default_value = "authd_refresh", value_parser = parse_cookie_name)]
    pub cookie_name: String,

    /// Path attribute of the refresh-token cookie.
    #[arg(long, env = "AUTHD_COOKIE_PATH", value_name = "AUTHD_COOKIE_PATH", default_value = "/auth", value_parser = parse_cookie_path)]
    pub cookie_path: String,

    /// Secure attribute of the refresh-token cookie (turn off only for plain-http development).
    #[arg(long, env = "AUTHD_COOKIE_SECURE", value_name = "AUTHD_COOKIE_SECURE", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// SameSite attribute of the refresh-token cookie: Strict, Lax or None (None needs Secure).
    #[arg(
        long,
        env = "AUTHD_COOKIE_SAMESITE",
        value_name = "AUTHD_COOKIE_SAMESITE",
        default_value = "Strict",
        ignore_case = true
    )]
    pub cookie_samesite: SameSite,

    /// Domain attribute of the refresh-token cookie (unset: host-only cookie).
    #[arg(long, env = "AUTHD_COOKIE_DOMAIN", value_name = "AUTHD_COOKIE_DOMAIN", value_parser = parse_cookie_domain)]
    pub cookie_domain: Option<String>,

    /// Comma-separated browser origins allowed to call authd with credentials (CORS, CSRF).
    #[arg(long, env = "AUTHD_ALLOWED_ORIGINS", value_name = "AUTHD_ALLOWED_ORIGINS", default_value = "", value_parser = parse_origins)]
    pub allowed_origins: Origins,

    /// Whether anyone may register (false: 403 registration_closed; add users with the CLI).
    #[arg(long, env = "AUTHD_OPEN_REGISTRATION", value_name = "AUTHD_OPEN_REGISTRATION", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub open_registration: bool,

    /// Rate limits on login, register and refresh: `on`, or `off` (benchmarks only).
    #[arg(long, env = "AUTHD_RATE_LIMIT", value_name = "AUTHD_RATE_LIMIT", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub rate_limit: bool,

    /// Serve /metrics only on this address (unset: on the main listener).
    #[arg(long, env = "AUTHD_METRICS_BIND", value_name = "AUTHD_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Take the client IP from the last X-Forwarded-For hop (only behind a trusted proxy).
    #[arg(long, env = "AUTHD_TRUST_FORWARDED_FOR", value_name = "AUTHD_TRUST_FORWARDED_FOR", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// Log format: `pretty` or `json` (default: pretty on a terminal, else json).
    #[arg(
        long,
        env = "AUTHD_LOG_FORMAT",
        value_name = "AUTHD_LOG_FORMAT",
        ignore_case = true
    )]
    pub log_format: Option<LogFormat>,

    /// Algorithm of the signing keys authd generates: EdDSA (Ed25519), ES256 (P-256) or RS256
    /// (RSA 2048). A change takes effect through key rotation (`authd keys rotate`).
    #[arg(
        long,
        env = "AUTHD_SIGNING_ALG",
        value_name = "AUTHD_SIGNING_ALG",
        default_value = "EdDSA",
        ignore_case = true
    )]
    pub signing_alg: SigningAlg,

    /// PEM (PKCS#8) private key to sign with: Ed25519, P-256 or RSA (at least 2048 bits), of
    /// the type AUTHD_SIGNING_ALG names; unset: a key generated on first start and kept in the
    /// database.
    #[arg(
        long,
        env = "AUTHD_SIGNING_KEY_FILE",
        value_name = "AUTHD_SIGNING_KEY_FILE"
    )]
    pub signing_key_file: Option<PathBuf>,

    /// Shared secret resource servers present to POST /auth/introspect (RFC 7662); unset:
    /// introspection is disabled (404). At least 32 characters.
    #[arg(
        long,
        env = "AUTHD_INTROSPECTION_SECRET",
        value_name = "AUTHD_INTROSPECTION_SECRET",
        hide_env_values = true
    )]
    pub introspection_secret: Option<String>,

    /// Shared secret resource servers present to subscribe to `GET /auth/revocations` (the
    /// revocation feed); unset: the feed is off (404). At least 32 characters.
    #[arg(
        long,
        env = "AUTHD_RESOURCE_SECRET",
        value_name = "AUTHD_RESOURCE_SECRET",
        hide_env_values = true
    )]
    pub resource_secret: Option<String>,

    /// Most live sessions one user may have; a login beyond it revokes the user's least recently
    /// used session.
    #[arg(long, env = "AUTHD_MAX_SESSIONS", value_name = "AUTHD_MAX_SESSIONS", default_value = "100", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_sessions: u32,

    /// How often expired and revoked sessions are deleted.
    #[arg(long, env = "AUTHD_CLEANUP_INTERVAL", value_name = "AUTHD_CLEANUP_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub cleanup_interval: Duration,

    /// How long ended sessions are kept (visible to admins) before cleanup deletes them; never
    /// before their last access token has expired, however short this is.
    #[arg(long, env = "AUTHD_CLEANUP_RETENTION", value_name = "AUTHD_CLEANUP_RETENTION", default_value = "1d", value_parser = parse_duration)]
    pub cleanup_retention: Duration,

    /// How long audit events (`auth_events`) are kept.
    #[arg(long, env = "AUTHD_AUDIT_RETENTION", value_name = "AUTHD_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// SMTP server for outgoing mail: `smtp://host:port` (STARTTLS when offered),
    /// `smtp://host:port?tls=required`, `smtps://user:pass@host:465` (implicit TLS). Unset: mail
    /// is written as .eml files to AUTHD_EMAIL_OUTBOX (development only).
    #[arg(long, env = "AUTHD_SMTP_URL", value_name = "AUTHD_SMTP_URL", value_parser = crate::mail::SmtpUrlParser, hide_env_values = true)]
    pub smtp_url: Option<crate::mail::SmtpUrl>,

    /// PEM file of CA certificates to trust for the SMTP server's TLS certificate, besides the
    /// system's (an internal relay with a private CA).
    #[arg(long, env = "AUTHD_SMTP_CA_FILE", value_name = "AUTHD_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,

    /// Directory mail is written to (as .eml files) when AUTHD_SMTP_URL is unset.
    #[arg(
        long,
        env = "AUTHD_EMAIL_OUTBOX",
        value_name = "AUTHD_EMAIL_OUTBOX",
        default_value = "./outbox"
    )]
    pub email_outbox: PathBuf,

    /// The From of every message (RFC 5322 mailbox: `Name <address>` or `address`).
    #[arg(long, env = "AUTHD_MAIL_FROM", value_name = "AUTHD_MAIL_FROM", default_value = "authd <no-reply@localhost>", value_parser = parse_mailbox)]
    pub mail_from: lettre::message::Mailbox,

    /// Base URL of the single-page app that mailed links point at (`{url}/verify-email#token=…`).
    /// Unset: the first of AUTHD_ALLOWED_ORIGINS, else AUTHD_ISSUER.
    #[arg(long, env = "AUTHD_APP_URL", value_name = "AUTHD_APP_URL", value_parser = parse_app_url)]
    pub app_url: Option<String>,

    /// The product name used in mail subjects and bodies.
    #[arg(
        long,
        env = "AUTHD_APP_NAME",
        value_name = "AUTHD_APP_NAME",
        default_value = "authd"
    )]
    pub app_name: String,

    /// Directory whose files override the built-in mail templates by name
    /// (`<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`; see the README).
    #[arg(
        long,
        env = "AUTHD_EMAIL_TEMPLATES",
        value_name = "AUTHD_EMAIL_TEMPLATES"
    )]
    pub email_templates: Option<PathBuf>,

    /// Whether a user must confirm their address before signing in with a password
    /// (403 email_not_verified, only after a correct password).
    #[arg(long, env = "AUTHD_REQUIRE_EMAIL_VERIFIED", value_name = "AUTHD_REQUIRE_EMAIL_VERIFIED", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub require_email_verified: bool,

    /// Whether a sign-in code may create the account it is sent to (unset: follows
    /// AUTHD_OPEN_REGISTRATION).
    #[arg(long, env = "AUTHD_EMAIL_SIGNUP", value_name = "AUTHD_EMAIL_SIGNUP", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub email_signup: Option<bool>,

    /// How long an email-verification (or email-change) link stays valid.
    #[arg(long, env = "AUTHD_EMAIL_VERIFY_TTL", value_name = "AUTHD_EMAIL_VERIFY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub email_verify_ttl: Duration,

    /// How long a password-reset link stays valid.
    #[arg(long, env = "AUTHD_PASSWORD_RESET_TTL", value_name = "AUTHD_PASSWORD_RESET_TTL", default_value = "30m", value_parser = parse_duration)]
    pub password_reset_ttl: Duration,

    /// How long a sign-in code (and its link) stays valid.
    #[arg(long, env = "AUTHD_EMAIL_CODE_TTL", value_name = "AUTHD_EMAIL_CODE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub email_code_ttl: Duration,
}

/// SameSite attribute values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A JOSE signature algorithm authd signs access tokens and security event tokens with. Its
/// spelling (`EdDSA`, `ES256`, `RS256`) is the JWS `alg` header value (RFC 7518 §3.1).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037): the default; small keys and signatures, the fastest to sign.
    #[value(name = "EdDSA")]
    EdDSA,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    #[value(name = "ES256")]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), keys of at least 2048 bits.
    #[value(name = "RS256")]
    RS256,
}
// Its JOSE names and key handling: `tokens::keypair`.

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The issuer URL with its origin (`scheme://host[:port]`) precomputed.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub url: String,
    pub origin: String,
}

/// Exact-match list of allowed browser origins (`scheme://host[:port]`, normalized).
#[derive(Clone, Debug, Default)]
pub struct Origins(pub Vec<String>);

impl Origins {
    pub fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }
}

impl Config {
    /// Checks that span several variables. Each error names the variable to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.cookie_samesite == SameSite::None && !self.cookie_secure {
            return Err("AUTHD_COOKIE_SAMESITE=None requires AUTHD_COOKIE_SECURE=true".into());
        }
        let prefixed =
            self.cookie_name.starts_with("__Secure-") || self.cookie_name.starts_with("__Host-");
        if prefixed && !self.cookie_secure {
            return Err(format!(
                "AUTHD_COOKIE_NAME={} requires AUTHD_COOKIE_SECURE=true",
                self.cookie_name
            ));
        }
        if self.cookie_name.starts_with("__Host-")
            && (self.cookie_path != "/" || self.cookie_domain.is_some())
        {
            return Err(format!(
                "AUTHD_COOKIE_NAME={} requires AUTHD_COOKIE_PATH=/ and no AUTHD_COOKIE_DOMAIN",
                self.cookie_name
            ));
        }
        if !self.cookie_path_covers("/auth/refresh") {
            return Err(format!(
                "AUTHD_COOKIE_PATH={} would not send the cookie to /auth/refresh",
                self.cookie_path
            ));
        }
        // Checked here, not by clap, so the error line never echoes the secret.
        if self
            .introspection_secret
            .as_ref()
            .is_some_and(|s| s.len() < 32)
        {
            return Err("AUTHD_INTROSPECTION_SECRET must be at least 32 characters".into());
        }
        // Only Postgres: another scheme (mysql://…) must not quietly reach a Postgres server.
        // The URL itself is never echoed (it may hold a password).
        match url::Url::parse(&self.database_url) {
            _ if self.database_url == EMBEDDED_DATABASE_URL => {}
            Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {}
            Ok(u) => {
                return Err(format!(
                    "DATABASE_URL must be a postgres:// or postgresql:// URL, not {}://",
                    u.scheme()
                ));
            }
            Err(e) => return Err(format!("DATABASE_URL is not a URL ({e})")),
        }
        if self.resource_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("AUTHD_RESOURCE_SECRET must be at least 32 characters".into());
        }
        if self.session_max_age < self.access_ttl {
            return Err("AUTHD_SESSION_MAX_AGE must not be shorter than AUTHD_ACCESS_TTL".into());
        }
        Ok(())
    }

    /// Where mailed links point: AUTHD_APP_URL, else the first allowed origin, else the issuer;
    /// without a trailing slash.
    pub fn app_url(&self) -> String {
        let url = self
            .app_url
            .as_deref()
            .or(self.allowed_origins.0.first().map(String::as_str))
            .unwrap_or(&self.issuer.url);
        url.trim_end_matches('/').to_string()
    }

    /// Whether a sign-in code may create an account (AUTHD_EMAIL_SIGNUP, else
    /// AUTHD_OPEN_REGISTRATION).
    pub fn email_signup(&self) -> bool {
        self.email_signup.unwrap_or(self.open_registration)
    }

    /// A start-up warning when AUTHD_ISSUER and AUTHD_BIND look inconsistent; see
    /// [`issuer_port_warning`].
    pub fn issuer_port_warning(&self) -> Option<String> {
        issuer_port_warning(&self.issuer.url, self.bind)
    }

    fn cookie_path_covers(&self, path: &str) -> bool {
        let p = self.cookie_path.trim_end_matches('/');
        p.is_empty() || path == p || path.starts_with(&format!("{p}/"))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // DATABASE_URL may carry a password; never print it.
        f.debug_struct("Config")
            .field("database_url", &"[redacted]")
            .field("database_url_is_default", &self.database_url_is_default)
            .field("data_dir", &self.data_dir)
            .field("postgres_bindir", &self.postgres_bindir)
            .field(
                "postgres_download_url",
                &crate::embedded::download::redacted(&self.postgres_download_url),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("bind", &self.bind)
            .field("issuer", &self.issuer.url)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_idle_ttl", &self.refresh_idle_ttl)
            .field("session_max_age", &self.session_max_age)
            .field("refresh_grace", &self.refresh_grace)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_samesite", &self.cookie_samesite)
            .field("cookie_domain", &self.cookie_domain)
            .field("allowed_origins", &self.allowed_origins)
            .field("open_registration", &self.open_registration)
            .field("rate_limit", &self.rate_limit)
            .field("metrics_bind", &self.metrics_bind)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("max_sessions", &self.max_sessions)
            .field(
                "introspection_secret",
                &self.introspection_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "resource_secret",
                &self.resource_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("cleanup_interval", &self.cleanup_interval)
            .field("cleanup_retention", &self.cleanup_retention)
            .field("audit_retention", &self.audit_retention)
            .finish_non_exhaustive()
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    if d > Duration::from_secs(10 * 365 * 24 * 3600) {
        return Err("must be at most 10 years".into());
    }
    Ok(d)
}

/// The grace window may be zero (no concurrent-refresh tolerance) but not huge.
fn parse_grace(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(600) {
        return Err("must be at most 10m".into());
    }
    Ok(d)
}

/// Origin of a URL as browsers serialize it in the `Origin` header.
/// `host:port` with an IP address or a host name (`localhost:8080`, resolved once at start;
/// an IPv4 address is preferred when the name has both).
fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|e| format!("not host:port ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "the host name resolves to no address".into())
}

fn parse_mailbox(s: &str) -> Result<lettre::message::Mailbox, String> {
    s.parse()
        .map_err(|e| format!("not a mailbox like `authd <no-reply@example.com>`: {e}"))
}

fn parse_app_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

pub fn origin_of(input: &str) -> Result<String, String> {
    let url = url::Url::parse(input.trim()).map_err(|e| format!("{input:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{input:?} is not an http(s) URL"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Why AUTHD_ISSUER's port (explicit, else the scheme's default) and AUTHD_BIND's port look like
/// a mistake, as one sentence for a start-up warning; `None` when they do not.
///
/// An `https` issuer never warns: authd itself speaks plain HTTP, so an https issuer always means
/// a TLS-terminating proxy in front, whose public port (443) differs from the bind port by
/// design. An `http` issuer whose port differs from the bind port warns: unless a proxy or a
/// container port mapping forwards one port to the other (the sentence says so), the `iss` claim
/// names a URL that does not reach authd, and a page served from the address authd really
/// listens on sends an `Origin` the CSRF check rejects (it accepts the issuer's origin, and
/// AUTHD_ALLOWED_ORIGINS). Not an error, as such forwarding is legitimate. A bind port of 0 (an
/// ephemeral port, tests) never warns: no issuer can name it in advance.
pub fn issuer_port_warning(issuer_url: &str, bind: SocketAddr) -> Option<String> {
    let url = url::Url::parse(issuer_url).ok()?;
    if url.scheme() != "http" || bind.port() == 0 {
        return None;
    }
    let issuer_port = url.port_or_known_default()?;
    (issuer_port != bind.port()).then(|| {
        format!(
            "AUTHD_ISSUER ({issuer_url}) names port {issuer_port} but AUTHD_BIND listens on port \
             {bind_port}: tokens name a URL that does not reach this listener and the CSRF check \
             accepts the issuer's origin, not this one, unless a proxy or port mapping forwards \
             {issuer_port} to {bind_port}; set AUTHD_ISSUER to the URL clients use",
            bind_port = bind.port()
        )
    })
}

fn parse_issuer(s: &str) -> Result<Issuer, String> {
    let origin = origin_of(s)?;
    Ok(Issuer {
        url: s.trim().to_string(),
        origin,
    })
}

fn parse_origins(s: &str) -> Result<Origins, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let origin = origin_of(part)?;
        let canonical = url::Url::parse(part).map_err(|e| e.to_string())?;
        if canonical.path() != "/" || canonical.query().is_some() || canonical.fragment().is_some()
        {
            return Err(format!(
                "{part:?} must be an origin (scheme://host[:port]) without a path"
            ));
        }
        out.push(origin);
    }
    Ok(Origins(out))
}

fn is_token_char(c: char) -> bool {
    // RFC 7230 tchar, the characters a cookie name may use.
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn parse_cookie_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.chars().all(is_token_char) {
        return Err("must be 1-64 token characters (letters, digits, !#$%&'*+-.^_`|~)".into());
    }
    Ok(s.to_string())
}

fn parse_cookie_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/')
        || s.len() > 256
        || s.chars().any(|c| c.is_control() || c == ';' || c == ' ')
    {
        return Err(
            "must start with / and contain no spaces, semicolons or control characters".into(),
        );
    }
    Ok(s.to_string())
}

fn parse_cookie_domain(s: &str) -> Result<String, String> {
    let d = s.trim();
    if d.is_empty()
        || d.len() > 253
        || !d
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err("must be a host name".into());
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_exact() {
        let o = parse_origins("http://localhost:5173, https://app.example.test/").unwrap();
        assert!(o.contains("http://localhost:5173"));
        assert!(o.contains("https://app.example.test"));
        assert!(!o.contains("https://app.example.test.evil.test"));
        assert!(parse_origins("https://a.test/path").is_err());
        assert!(parse_origins("ftp://a.test").is_err());
    }

    #[test]
    fn default_port_is_dropped_from_origin() {
        assert_eq!(origin_of("https://a.test:443/x").unwrap(), "https://a.test");
        assert_eq!(
            origin_of("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
    }

    #[test]
    fn bind_takes_an_address_or_a_host_name() {
        assert_eq!(parse_bind("0.0.0.0:8080").unwrap().port(), 8080);
        assert_eq!(parse_bind("[::1]:9").unwrap().to_string(), "[::1]:9");
        let local = parse_bind("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
        assert!(parse_bind("localhost").is_err(), "a port is needed");
        assert!(parse_bind("no-such-host.invalid:80").is_err());
    }

    #[test]
    fn issuer_port_warning_only_for_plain_http_on_another_port() {
        let warns = |issuer: &str, bind: &str| {
            issuer_port_warning(issuer, parse_bind(bind).unwrap()).is_some()
        };
        // The zero-config default, and a container listening on every interface.
        assert!(!warns("http://localhost:8080", "127.0.0.1:8080"));
        assert!(!warns("http://localhost:8080", "0.0.0.0:8080"));
        assert!(!warns("http://auth.internal", "0.0.0.0:80"));
        // Behind a TLS-terminating proxy the ports differ by design.
        assert!(!warns("https://auth.example.com", "0.0.0.0:8080"));
        assert!(!warns("https://auth.example.com:8443/", "127.0.0.1:8080"));
        // An ephemeral port cannot be named in advance.
        assert!(!warns("http://localhost:8080", "127.0.0.1:0"));
        // The default issuer left in place after moving the port: almost certainly a mistake.
        assert!(warns("http://localhost:8080", "127.0.0.1:9090"));
        assert!(warns("http://127.0.0.1:3000", "[::1]:8080"));
        // Port 80 implied by the scheme.
        assert!(warns("http://auth.internal", "0.0.0.0:8080"));
        let message = issuer_port_warning(
            "http://localhost:8080",
            parse_bind("127.0.0.1:9090").unwrap(),
        )
        .unwrap();
        assert!(
            message.contains("AUTHD_ISSUER") && message.contains("AUTHD_BIND"),
            "{message}"
        );
        assert!(
            message.contains("8080") && message.contains("9090"),
            "{message}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_grace("0s").unwrap(), Duration::ZERO);
    }
}
