//! The `authd` command line: serve (default), migrate, and offline admin commands.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::{
    app::{self, Application},
    config::Config,
    db,
    domain::{ClientInfo, Email, NewPassword, RevokeReason},
    error::ApiError,
    session::{self, Actor, Offline, account::UserChange, revoke::Target},
    tokens::jwt::KeyMaterial,
};

#[derive(Parser, Debug)]
#[command(
    name = "authd",
    version,
    about = "Authentication server for single-page apps and their APIs"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default): create the database if needed, migrate, listen.
    Serve,
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
    /// Generate a new signing key; the old one stays in the JWKS until its tokens expire.
    Rotate,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until(app::shutdown_signal()).await
        }
        Command::Migrate => {
            app::prepare_database(&config).await?;
            println!("database is migrated");
            Ok(())
        }
        Command::User(UserCommand::Add { email, admin }) => {
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
        Command::User(UserCommand::Disable { email }) => {
            let email = parse_email(&email)?;
            let pool = app::prepare_database(&config).await?;
            let user = find_user(&pool, &email).await?;
            let change = UserChange {
                disabled: Some(true),
                roles: None,
            };
            session::account::update_user(
                &Offline(&pool),
                user.id,
                &change,
                Actor::Operator,
                &cli_client(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let revoked = count_revoked(&pool, user.id, RevokeReason::UserDisabled).await?;
            println!("disabled {email}; revoked {revoked} session(s)");
            Ok(())
        }
        Command::Sessions(SessionsCommand::Revoke { email }) => {
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
        Command::Keys(KeysCommand::Rotate) => {
            let pool = app::prepare_database(&config).await?;
            let key = KeyMaterial::generate().map_err(anyhow::Error::msg)?;
            db::keys::install(&pool, &key).await?;
            println!(
                "new signing key {}; previous keys stay published until their tokens expire",
                key.kid
            );
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
