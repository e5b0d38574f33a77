//! The `authd` command line: serve (default), migrate, and offline admin commands.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::{
    app::{self, Application},
    config::Config,
    db,
    domain::{ClientInfo, Email, NewPassword, RevokeReason},
    embedded,
    error::ApiError,
    session::{self, Actor, Offline, account::UserChange, revoke::Target},
    tokens::keypair::{KeyMaterial, SigningAlg},
};

#[derive(Parser, Debug)]
#[command(
    name = "authd",
    version,
    about = "Authentication server for single-page apps and their APIs"
)]
pub struct Cli {
    /// Server options, given before any subcommand (`authd --bind … [serve]`) or after `serve`;
    /// the other subcommands read them from the environment (or flags given before them) and do
    /// not repeat them in their `--help`.
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default): create the database if needed, migrate, listen.
    Serve(ServeArgs),
    /// Create the database if needed and run migrations, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `authd serve`'s options: the whole server configuration.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: Box<Config>,
}

impl Cli {
    /// Parses `args` (the program name first) like `Cli::try_parse_from`, and also records
    /// whether DATABASE_URL was left unset (`Config::database_url_is_default`), which decides
    /// whether the embedded database may be used.
    pub fn try_parse_from_sources<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli = Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        let is_default = |m: &clap::ArgMatches| {
            m.value_source("database_url") == Some(ValueSource::DefaultValue)
        };
        cli.config.database_url_is_default = is_default(&matches);
        if let (Some(Command::Serve(serve)), Some(("serve", sub))) =
            (&mut cli.command, matches.subcommand())
        {
            serve.config.database_url_is_default = is_default(sub);
        }
        Ok(cli)
    }

    /// The configuration this invocation runs with: `serve`'s own options when given as
    /// `authd serve …`, else the top-level ones (flags before the subcommand, or the environment).
    pub fn into_parts(self) -> (Config, Option<Command>) {
        match self.command {
            Some(Command::Serve(ServeArgs { config })) => (*config, None),
            command => (self.config, command),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user. The password comes from AUTHD_PASSWORD or the first line of stdin, never argv.
    Add {
        #[arg(long)]
        email: String,
        /// Give the user the `admin` role.
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user and revoke all their sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again (their old sessions stay revoked).
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Delete a user (GDPR erasure): every session is revoked first, then the account and its
    /// credentials are deleted; the audit trail keeps a `user_deleted` tombstone without the
    /// address.
    Delete {
        #[arg(long)]
        email: String,
    },
    /// List every user, oldest first, one tab-separated line each: id, email, verified or
    /// unverified, enabled or disabled, roles (comma-separated, `-` for none), created (RFC 3339).
    List,
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Revoke every session of a user (forced logout everywhere).
    Revoke {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new signing key of the algorithm AUTHD_SIGNING_ALG names (this is how a
    /// change of it takes effect). It is published in the JWKS at once and signs once cached
    /// copies of the JWKS have expired (about 5 minutes later); older keys stay published until
    /// their tokens expire.
    Rotate {
        /// Sign with the new key at once (an emergency, e.g. after `keys revoke`): resource
        /// servers holding a cached JWKS reject its tokens until they refetch.
        #[arg(long)]
        now: bool,
    },
    /// Revoke a key at once: every instance drops it from the JWKS and rejects its tokens
    /// (`invalid_token`; clients recover with a refresh). A revoked signing key is first
    /// replaced by a new key (of AUTHD_SIGNING_ALG), which signs at once.
    Revoke {
        /// The key's id (`kid`), as `keys list` shows it.
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
    /// List every key, one line each: kid, algorithm, created, state (pending, signing,
    /// retired, revoked).
    List,
}

/// Runs one invocation, with the configuration from [`Cli::into_parts`]; no command serves.
/// With the embedded database (see [`embedded::attach`]), the server keeps it for its
/// lifetime and stops it after the last request; a command stops it when done, unless it used
/// the server of an authd running on the same data directory.
pub async fn run(mut config: Config, command: Option<Command>) -> anyhow::Result<()> {
    let role = match command {
        None | Some(Command::Serve(_)) => embedded::Role::Server,
        Some(_) => embedded::Role::Command,
    };
    // The server takes SIGINT/SIGTERM from here on, so that one during start-up still stops
    // the embedded database (commands keep the default: Ctrl-C at a prompt ends them).
    let shutdown = (role == embedded::Role::Server).then(app::shutdown_signal);
    let database = embedded::attach(&mut config, role).await?;
    let result = match shutdown {
        Some(shutdown) => serve(config, shutdown).await,
        None => run_with_database(config, command).await,
    };
    match database {
        Some(database) => {
            let stopped = database.stop().await;
            // The command's own error matters more than one from the stop.
            result.and(stopped)
        }
        None => result,
    }
}

/// Runs a command other than `serve`.
async fn run_with_database(config: Config, command: Option<Command>) -> anyhow::Result<()> {
    match command {
        // `run` serves itself; kept for completeness.
        None | Some(Command::Serve(_)) => serve(config, app::shutdown_signal()).await,
        Some(Command::Migrate) => {
            app::prepare_database(&config).await?;
            println!("database is migrated");
            Ok(())
        }
        Some(Command::User(UserCommand::Add { email, admin })) => {
            let email = parse_email(&email)?;
            let password = read_password()?;
            let pool = app::prepare_database(&config).await?;
            let hasher =
                crate::factors::argon2::PasswordHasher::new(1, 1).map_err(anyhow::Error::msg)?;
            let hash = hasher
                .hash(password.expose())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let roles = if admin {
                vec![crate::domain::ADMIN_ROLE.to_string()]
            } else {
                vec![]
            };
            let user = session::account::create_user(
                &pool,
                &email,
                &hash,
                &roles,
                Actor::Operator,
                &cli_client(),
            )
            .await
            .map_err(|e| match e {
                ApiError::EmailTaken => anyhow::anyhow!("a user with email {email} already exists"),
                other => anyhow::anyhow!("{other}"),
            })?;
            println!(
                "added user {} ({}){}",
                user.email,
                user.id,
                if admin { " with role admin" } else { "" }
            );
            Ok(())
        }
        Some(Command::User(UserCommand::Enable { email })) => {
            let email = parse_email(&email)?;
            let pool = app::prepare_database(&config).await?;
            set_disabled(&pool, &email, false).await?;
            println!("enabled {email}");
            Ok(())
        }
        Some(Command::User(UserCommand::Delete { email })) => {
            let email = parse_email(&email)?;
            let pool = app::prepare_database(&config).await?;
            let user = find_user(&pool, &email).await?;
            let revoked = session::account::delete_user(
                &Offline(&pool),
                user.id,
                Actor::Operator,
                &cli_client(),
                None,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "deleted {email} ({}); revoked {revoked} session(s)",
                user.id
            );
            Ok(())
        }
        Some(Command::User(UserCommand::List)) => {
            let pool = app::prepare_database(&config).await?;
            list_users(&pool).await
        }
        Some(Command::User(UserCommand::Disable { email })) => {
            let email = parse_email(&email)?;
            let pool = app::prepare_database(&config).await?;
            let user = set_disabled(&pool, &email, true).await?;
            let revoked = count_revoked(&pool, user.id, RevokeReason::UserDisabled).await?;
            println!("disabled {email}; revoked {revoked} session(s)");
            Ok(())
        }
        Some(Command::Sessions(SessionsCommand::Revoke { email })) => {
            let email = parse_email(&email)?;
            let pool = app::prepare_database(&config).await?;
            let user = find_user(&pool, &email).await?;
            let target = Target::User {
                user: user.id,
                keep: None,
            };
            let revoked = session::revoke::revoke(
                &Offline(&pool),
                target,
                RevokeReason::AdminRevoked,
                Actor::Operator,
                &cli_client(),
                None,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {} session(s) of {email}", revoked.len());
            Ok(())
        }
        Some(Command::Keys(command)) => {
            let pool = app::prepare_database(&config).await?;
            keys_command(&pool, command, config.signing_alg).await
        }
    }
}

async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Only here: the other subcommands never listen, so AUTHD_BIND means nothing to them.
    if let Some(warning) = config.issuer_port_warning() {
        tracing::warn!("{warning}");
    }
    let app = Application::build(config).await?;
    app.run_until(shutdown).await
}

/// `alg`: AUTHD_SIGNING_ALG, the algorithm of the keys `rotate` and `revoke` generate.
async fn keys_command(
    pool: &sqlx::PgPool,
    command: KeysCommand,
    alg: SigningAlg,
) -> anyhow::Result<()> {
    use db::keys::{KeyRevocation, KeyState};
    match command {
        KeysCommand::Rotate { now } => {
            let file_only = db::keys::list(pool)
                .await?
                .iter()
                .any(|k| k.state == KeyState::Signing && k.file_only);
            let key = KeyMaterial::generate(alg).map_err(anyhow::Error::msg)?;
            let delay = if now {
                std::time::Duration::ZERO
            } else {
                crate::tokens::keys::activation_delay()
            };
            let activates_at = db::keys::rotate(pool, &key, delay).await?;
            if now {
                println!(
                    "new {} signing key {} signs now; older keys stay published until their \
                     tokens expire",
                    key.alg, key.kid
                );
            } else {
                println!(
                    "new {} signing key {}: published now, signs from {} (once cached copies of \
                     the JWKS have expired); older keys stay published until their tokens expire",
                    key.alg,
                    key.kid,
                    rfc3339(activates_at)
                );
            }
            if file_only {
                eprintln!(
                    "note: the current signing key comes from AUTHD_SIGNING_KEY_FILE; an instance \
                     started with that file makes it the signing key again"
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { kid } => {
            let replacement = KeyMaterial::generate(alg).map_err(anyhow::Error::msg)?;
            match db::keys::revoke(pool, &kid, &replacement).await? {
                KeyRevocation::NotFound => bail!("no key with kid {kid} (see `authd keys list`)"),
                KeyRevocation::AlreadyRevoked => println!("key {kid} was already revoked"),
                KeyRevocation::Revoked { replaced_by } => {
                    println!(
                        "revoked key {kid}: no instance publishes it or accepts its tokens any more"
                    );
                    if let Some(new) = replaced_by {
                        println!("it was the signing key: new signing key {new} signs now");
                    }
                }
            }
            Ok(())
        }
        KeysCommand::List => {
            for k in db::keys::list(pool).await? {
                let mut line = format!(
                    "{}  {}  {}  {}",
                    k.kid,
                    k.alg,
                    rfc3339(k.created_at),
                    k.state.as_str()
                );
                if k.state == KeyState::Pending {
                    line.push_str(&format!(" (signs from {})", rfc3339(k.activates_at)));
                }
                if k.file_only {
                    line.push_str(" (private key only in AUTHD_SIGNING_KEY_FILE)");
                }
                println!("{line}");
            }
            Ok(())
        }
    }
}

async fn find_user(pool: &sqlx::PgPool, email: &Email) -> anyhow::Result<crate::db::users::User> {
    db::users::by_email(pool, email)
        .await?
        .with_context(|| format!("no user with email {email}"))
}

/// How many of the user's sessions ended for `reason` in the last minute (for the CLI's report).
async fn count_revoked(
    pool: &sqlx::PgPool,
    user_id: uuid::Uuid,
    reason: RevokeReason,
) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_reason = $2
         AND revoked_at > now() - interval '1 minute'",
    )
    .bind(user_id)
    .bind(reason.as_str())
    .fetch_one(pool)
    .await?)
}

/// `2026-11-30T12:00:00Z`: whole seconds, UTC.
fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Events from the CLI have no client address; `detail.via` says where they came from.
fn cli_client() -> ClientInfo {
    ClientInfo {
        ip: None,
        user_agent: Some(format!("authd-cli/{}", env!("CARGO_PKG_VERSION"))),
    }
}

fn parse_email(raw: &str) -> anyhow::Result<Email> {
    Email::parse("email", raw).map_err(|e| anyhow::anyhow!("--email {}", e.message))
}

/// AUTHD_PASSWORD, else the password typed at the terminal (prompt on stderr, not echoed), else
/// the first line of stdin when stdin is not a terminal (a pipe or a file).
fn read_password() -> anyhow::Result<NewPassword> {
    let raw = match std::env::var("AUTHD_PASSWORD") {
        Ok(p) => p,
        Err(_) if std::io::stdin().is_terminal() => {
            // rpassword reads the controlling terminal with echo off; the prompt goes to stderr
            // so that stdout stays the command's result.
            let config = rpassword::ConfigBuilder::new()
                .output_writer(std::io::stderr())
                .build();
            rpassword::prompt_password_with_config("password: ", config)
                .context("reading the password from the terminal")?
        }
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string()
        }
    };
    if raw.is_empty() {
        bail!("no password: set AUTHD_PASSWORD, type it at the prompt or pipe it on stdin");
    }
    NewPassword::parse("password", raw).map_err(|e| anyhow::anyhow!("password {}", e.message))
}

/// Disables or enables the user of `email` through the session layer (disabling revokes every
/// session); returns the user. Errors: an unknown address, database errors.
async fn set_disabled(
    pool: &sqlx::PgPool,
    email: &Email,
    disabled: bool,
) -> anyhow::Result<crate::db::users::User> {
    let user = find_user(pool, email).await?;
    let change = UserChange {
        disabled: Some(disabled),
        roles: None,
    };
    session::account::update_user(
        &Offline(pool),
        user.id,
        &change,
        Actor::Operator,
        &cli_client(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Prints every user, oldest first, in pages (so a large table never sits in memory at once).
async fn list_users(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    const PAGE: i64 = 1000;
    let mut offset = 0;
    loop {
        let page = db::users::list(pool, db::users::ListOrder::OldestFirst, PAGE, offset).await?;
        for u in &page {
            let created = u
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let roles = if u.roles.is_empty() {
                "-".to_string()
            } else {
                u.roles.join(",")
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                u.id,
                u.email,
                if u.email_verified {
                    "verified"
                } else {
                    "unverified"
                },
                if u.disabled { "disabled" } else { "enabled" },
                roles,
                created
            );
        }
        if (page.len() as i64) < PAGE {
            return Ok(());
        }
        offset += PAGE;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn server_options_are_documented_once_not_under_every_subcommand() {
        use clap::CommandFactory;
        let mut top = Cli::command();
        let help = |cmd: &mut clap::Command| cmd.render_long_help().to_string();
        assert!(help(&mut top).contains("AUTHD_ISSUER"));
        let serve = top.find_subcommand_mut("serve").expect("serve");
        assert!(help(serve).contains("AUTHD_ISSUER"));
        let user = top.find_subcommand_mut("user").expect("user");
        let list = user.find_subcommand_mut("list").expect("user list");
        let list_help = help(list);
        assert!(!list_help.contains("AUTHD_ISSUER"), "{list_help}");
        // Flags before a subcommand still configure it; after `serve`, serve's own win.
        let (config, command) = Cli::try_parse_from(["authd", "--audience", "api", "user", "list"])
            .expect("parses")
            .into_parts();
        assert_eq!(config.audience, "api");
        assert!(matches!(command, Some(Command::User(UserCommand::List))));
        let (config, command) = Cli::try_parse_from(["authd", "serve", "--audience", "web"])
            .expect("parses")
            .into_parts();
        assert_eq!(config.audience, "web");
        assert!(command.is_none());
    }

    #[test]
    fn an_unset_database_url_is_told_apart_from_the_same_url_given() {
        use crate::config::DEFAULT_DATABASE_URL;
        // The test process may have DATABASE_URL set; the flag wins over it either way.
        let given = |args: &[&str]| {
            let (config, _) = Cli::try_parse_from_sources(args)
                .expect("parses")
                .into_parts();
            (config.database_url, config.database_url_is_default)
        };
        let flag = ["authd", "--database-url", DEFAULT_DATABASE_URL];
        assert_eq!(given(&flag), (DEFAULT_DATABASE_URL.to_string(), false));
        let serve = ["authd", "serve", "--database-url", "embedded"];
        assert_eq!(given(&serve), ("embedded".to_string(), false));
        if std::env::var_os("DATABASE_URL").is_none() {
            assert_eq!(given(&["authd"]), (DEFAULT_DATABASE_URL.to_string(), true));
            assert_eq!(
                given(&["authd", "serve"]),
                (DEFAULT_DATABASE_URL.to_string(), true)
            );
            assert_eq!(
                given(&["authd", "user", "list"]),
                (DEFAULT_DATABASE_URL.to_string(), true)
            );
        }
        // Plain clap parsing (tests, embedders) never counts as unset.
        let (config, _) = Cli::try_parse_from(["authd"]).expect("parses").into_parts();
        assert!(!config.database_url_is_default);
    }

    #[test]
    fn a_kid_may_start_with_a_hyphen() {
        // Key ids are base64url thumbprints: about one in 64 starts with `-`.
        let cli = Cli::try_parse_from(["authd", "keys", "revoke", "--kid", "-3QB8KFGKneQjQeD"])
            .expect("parses");
        match cli.command {
            Some(Command::Keys(KeysCommand::Revoke { kid })) => assert_eq!(kid, "-3QB8KFGKneQjQeD"),
            _ => panic!("keys revoke"),
        }
    }
}
