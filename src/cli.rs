//! The `authd` command line: serve (default), migrate, and offline admin commands.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::{
    auth::{extractors::ClientInfo, jwt::KeyMaterial},
    config::Config,
    db::{
        self,
        events::{self, Event},
        sessions::RevokeReason,
    },
    domain::{Email, NewPassword},
    startup::{self, Application},
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
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            startup::prepare_database(&config).await?;
            println!("database is migrated");
            Ok(())
        }
        Command::User(UserCommand::Add { email, admin }) => {
            let email = parse_email(&email)?;
            let password = read_password()?;
            let pool = startup::prepare_database(&config).await?;
            let hasher =
                crate::auth::password::PasswordHasher::new(1, 1).map_err(anyhow::Error::msg)?;
            let hash = hasher
                .hash(password.expose())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let roles = if admin {
                vec![crate::domain::ADMIN_ROLE.to_string()]
            } else {
                vec![]
            };
            let mut tx = pool.begin().await?;
            let user = db::users::insert(&mut *tx, &email, &hash, &roles)
                .await
                .map_err(|e| match e {
                    crate::error::ApiError::EmailTaken => {
                        anyhow::anyhow!("a user with email {email} already exists")
                    }
                    other => anyhow::anyhow!("{other}"),
                })?;
            let e = Event::new("user_registered", Some(user.id), &cli_client())
                .detail(json!({"via": "cli", "admin": admin}));
            events::record(&mut *tx, &e).await?;
            tx.commit().await?;
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
            let pool = startup::prepare_database(&config).await?;
            let user = db::users::by_email(&pool, &email)
                .await?
                .with_context(|| format!("no user with email {email}"))?;
            let mut tx = pool.begin().await?;
            db::users::update(&mut *tx, user.id, Some(true), None).await?;
            let revoked =
                db::sessions::revoke_all(&mut *tx, user.id, None, RevokeReason::UserDisabled)
                    .await?;
            let e = Event::new("user_disabled", Some(user.id), &cli_client())
                .detail(json!({"via": "cli", "revoked_sessions": revoked.len()}));
            events::record(&mut *tx, &e).await?;
            tx.commit().await?;
            println!("disabled {email}; revoked {} session(s)", revoked.len());
            Ok(())
        }
        Command::Sessions(SessionsCommand::Revoke { email }) => {
            let email = parse_email(&email)?;
            let pool = startup::prepare_database(&config).await?;
            let user = db::users::by_email(&pool, &email)
                .await?
                .with_context(|| format!("no user with email {email}"))?;
            let mut tx = pool.begin().await?;
            let revoked =
                db::sessions::revoke_all(&mut *tx, user.id, None, RevokeReason::AdminRevoked)
                    .await?;
            let e = Event::new("sessions_revoked", Some(user.id), &cli_client())
                .detail(json!({"via": "cli", "reason": RevokeReason::AdminRevoked.as_str(), "count": revoked.len()}));
            events::record(&mut *tx, &e).await?;
            tx.commit().await?;
            println!("revoked {} session(s) of {email}", revoked.len());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let pool = startup::prepare_database(&config).await?;
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
