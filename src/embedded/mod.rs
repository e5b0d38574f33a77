//! The embedded database: with DATABASE_URL unset and no server answering on the default
//! address, or with `DATABASE_URL=embedded`, authd runs a private PostgreSQL from this
//! machine's binaries (else a build it downloads once and caches, see [`download`]), with its data in AUTHD_DATA_DIR (default `./authd-data`), reachable
//! only through a Unix socket only authd's account can open, and stopped when authd stops.
//!
//! Layout of the data directory, which belongs to the user authd runs as and is writable by
//! nobody else (else authd refuses it): `authd.lock` (one authd at a time; its content tells
//! the CLI where the socket is) and `postgres.log`, both of that user; `pgdata/` (the cluster)
//! and `run/` (the socket directory), the only entries of the account PostgreSQL runs as
//! (see [`user`]). Nothing is opened, chowned or read through a link (see [`files`]).

pub mod binaries;
pub mod cluster;
pub mod download;
pub mod files;
pub mod lock;
pub mod process;
mod unpack;
pub mod user;

use std::{
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};

use crate::config::{Config, EMBEDDED_DATABASE_URL as EMBEDDED};
use cluster::{Cluster, Server};
use lock::{Acquired, DirLock, Record};

/// Where the default DATABASE_URL points; probed when DATABASE_URL is unset.
pub const DEFAULT_SERVER: &str = "localhost:5432";
/// How long the probe of [`DEFAULT_SERVER`] waits for each address.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The database authd uses in its embedded cluster.
const DATABASE: &str = "authd";
/// The AUTHD_POSTGRES_BINDIR value that skips this machine's binaries for downloaded ones.
pub const DOWNLOAD_BINDIR: &str = "download";

/// Who is asking: the server holds the data directory for its whole life and refuses to share
/// it; a CLI command uses the server of an authd running on it, or starts one for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Command,
}

/// Whether something accepts TCP connections at `addr` (`host:port`) within a short timeout,
/// on any of the addresses the name resolves to.
pub async fn answers(addr: &str) -> bool {
    let Ok(addrs) = tokio::net::lookup_host(addr).await else {
        return false;
    };
    for addr in addrs {
        let connect = tokio::net::TcpStream::connect(addr);
        if matches!(
            tokio::time::timeout(PROBE_TIMEOUT, connect).await,
            Ok(Ok(_))
        ) {
            return true;
        }
    }
    false
}

/// The rule: `DATABASE_URL=embedded` always; an unset DATABASE_URL when nothing answers at
/// `default_server`; never for a URL that was given (an unreachable server given on purpose is
/// an error, not a reason to start another database).
pub async fn wants_embedded(
    database_url: &str,
    url_is_default: bool,
    default_server: &str,
) -> bool {
    if database_url == EMBEDDED {
        return true;
    }
    url_is_default && !answers(default_server).await
}

/// The embedded database while this process uses it. Stop it with [`Embedded::stop`];
/// dropping it stops the server too (a start-up that fails half-way), then releases the lock.
#[derive(Debug)]
pub struct Embedded {
    // Field order is drop order: the server stops before the lock is released.
    server: Option<Server>,
    _lock: Option<DirLock>,
}

impl Embedded {
    /// Stops the server this process started (fast shutdown) and waits for it to exit; nothing
    /// to do when it used another authd's server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || server.stop())
            .await?
            .map_err(anyhow::Error::msg)
            .context("stopping the embedded PostgreSQL")
    }
}

/// When `config` asks for the embedded database (see [`wants_embedded`]), makes it available
/// and points `config.database_url` at its socket; `None` otherwise (config unchanged).
/// Prints one line on stderr saying so and where the data lives.
///
/// Errors (one line each): the data directory is not this user's or is writable by others;
/// another authd serves from it (for [`Role::Server`]); no PostgreSQL binaries; the unprivileged account PostgreSQL runs as
/// cannot reach the data directory; initdb or the server failed (with the last line of
/// `postgres.log`).
pub async fn attach(config: &mut Config, role: Role) -> anyhow::Result<Option<Embedded>> {
    if !wants_embedded(
        &config.database_url,
        config.database_url_is_default,
        DEFAULT_SERVER,
    )
    .await
    {
        return Ok(None);
    }
    let data_dir = prepare_data_dir(&config.data_dir)?;
    let (lock, previous) = match DirLock::try_acquire(&data_dir)
        .with_context(|| format!("cannot lock the data directory {}", data_dir.display()))?
    {
        Acquired::Mine { lock, previous } => (lock, previous),
        Acquired::Held(record) if role == Role::Command => {
            let socket_dir = wait_for_server(&data_dir, record, config.db_connect_timeout).await?;
            eprintln!(
                "authd: using the embedded PostgreSQL of the authd running on {}",
                data_dir.display()
            );
            config.database_url = cluster::socket_url(&socket_dir, DATABASE);
            return Ok(Some(Embedded {
                server: None,
                _lock: None,
            }));
        }
        Acquired::Held(record) => bail!(
            "the data directory {} is in use by another authd ({}); several instances need one \
             shared PostgreSQL server: set DATABASE_URL",
            data_dir.display(),
            record
                .pid
                .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}"))
        ),
    };
    let wanted = Binaries {
        override_dir: config.postgres_bindir.clone(),
        download_url: config.postgres_download_url.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let dir = data_dir.clone();
    let (server, lock) = tokio::task::spawn_blocking(move || {
        bring_up(&dir, &wanted, previous.socket_dir.as_deref(), lock)
    })
    .await?
    .map_err(|e| {
        if config.database_url_is_default {
            e.context(format!(
                "DATABASE_URL is unset and nothing answers on {DEFAULT_SERVER}, so authd runs \
                 its own PostgreSQL"
            ))
        } else {
            e
        }
    })?;
    config.database_url = cluster::socket_url(server.socket_dir(), DATABASE);
    Ok(Some(Embedded {
        server: Some(server),
        _lock: Some(lock),
    }))
}

/// AUTHD_DATA_DIR made usable, resolved once: created unless it exists, then canonical (links
/// resolved), and checked to be this user's and writable by nobody else (see
/// [`files::check_data_dir`]). Errors: one line naming AUTHD_DATA_DIR.
fn prepare_data_dir(configured: &Path) -> anyhow::Result<PathBuf> {
    let named = || format!("AUTHD_DATA_DIR={}", configured.display());
    let absolute = std::path::absolute(configured).with_context(named)?;
    create_data_dir(&absolute)
        .with_context(|| format!("{}: cannot create the data directory", named()))?;
    let data_dir = absolute.canonicalize().with_context(named)?;
    let meta = std::fs::metadata(&data_dir).with_context(named)?;
    if !meta.is_dir() {
        bail!("{} is not a directory", named());
    }
    files::check_data_dir(meta.uid(), meta.mode(), user::effective_uid())
        .map_err(|why| anyhow!("{} ({}) {why}", named(), data_dir.display()))?;
    Ok(data_dir)
}

/// Creates `data_dir` unless it exists: mode 0755 as root (the account PostgreSQL runs as must
/// pass through to `pgdata/` and `run/`), else 0700. Missing parents get the usual mode (the
/// umask's), since that account must be able to pass through them too.
fn create_data_dir(data_dir: &Path) -> std::io::Result<()> {
    if data_dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = data_dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mode = if user::effective_uid() == 0 {
        0o755
    } else {
        0o700
    };
    match std::fs::DirBuilder::new().mode(mode).create(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && data_dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Finds the binaries, picks the account, recovers a server a killed authd left, makes the
/// cluster if needed, starts it and records its socket in the lock file.
fn bring_up(
    data_dir: &Path,
    wanted: &Binaries,
    old_socket_dir: Option<&Path>,
    mut lock: DirLock,
) -> anyhow::Result<(Server, DirLock)> {
    let account = user::for_this_process().map_err(anyhow::Error::msg)?;
    if let Some(account) = &account
        && let Some(blocked) = user::first_unreachable(data_dir, account)
    {
        bail!(
            "authd runs as root, so PostgreSQL runs as {}, which cannot enter {}: set \
                 AUTHD_DATA_DIR to a directory outside it",
            account.name,
            blocked.display()
        );
    }
    let mut cluster = Cluster {
        data_dir: data_dir.to_path_buf(),
        bindir: PathBuf::new(),
        account,
    };
    let (bindir, origin) = wanted.locate(
        cluster
            .cluster_version()
            .map_err(anyhow::Error::msg)?
            .as_deref(),
        cluster.account.as_ref(),
    )?;
    cluster.bindir = bindir;
    eprintln!(
        "authd: using an embedded PostgreSQL ({}, {origin}) with its data in {}; set \
         DATABASE_URL to use a shared PostgreSQL server instead",
        cluster.bindir.display(),
        data_dir.display()
    );
    cluster
        .recover_stale(old_socket_dir)
        .map_err(anyhow::Error::msg)?;
    if cluster.init_if_needed().map_err(anyhow::Error::msg)? {
        tracing::info!(pgdata = %cluster.pgdata().display(), "created the embedded PostgreSQL cluster");
    }
    let server = cluster.start().map_err(anyhow::Error::msg)?;
    lock.write(&Record {
        pid: Some(std::process::id()),
        socket_dir: Some(server.socket_dir().to_path_buf()),
    })
    .context("cannot write the data directory's lock file")?;
    tracing::info!(pid = server.pid(), socket_dir = %server.socket_dir().display(), "embedded PostgreSQL is running");
    Ok((server, lock))
}

/// What the settings say about PostgreSQL's binaries.
struct Binaries {
    /// AUTHD_POSTGRES_BINDIR: a directory, or [`DOWNLOAD_BINDIR`].
    override_dir: Option<PathBuf>,
    /// AUTHD_POSTGRES_DOWNLOAD_URL.
    download_url: String,
    /// Runs the download's HTTP requests (the caller is on a blocking thread).
    runtime: tokio::runtime::Handle,
}

impl Binaries {
    /// The bin directory to run, and where it came from (for the start-up line): this
    /// machine's binaries (of `major`, the existing cluster's version, if any), else the
    /// downloaded build (only tried for a cluster of [`download::MAJOR`], and checked to be of
    /// `major` once there). A directory given in AUTHD_POSTGRES_BINDIR is used or refused,
    /// never replaced by a download; [`DOWNLOAD_BINDIR`] skips this machine's binaries.
    /// Errors: one line each.
    fn locate(
        &self,
        major: Option<&str>,
        account: Option<&user::Account>,
    ) -> anyhow::Result<(PathBuf, String)> {
        let download_only = self.override_dir.as_deref() == Some(Path::new(DOWNLOAD_BINDIR));
        let not_found = if download_only {
            format!("AUTHD_POSTGRES_BINDIR={DOWNLOAD_BINDIR}")
        } else {
            let search = binaries::Search::from_machine(self.override_dir.clone());
            let found = match major {
                Some(major) => search.find_major(major, account),
                None => search.find(),
            };
            match found {
                Ok(dir) => return Ok((dir, "found on this machine".into())),
                Err(e) if self.override_dir.is_some() => bail!(e),
                Err(e) if major.is_some_and(|m| m != download::MAJOR) => bail!(e),
                Err(e) => e,
            }
        };
        let Some(source) = download::Source::pinned(&self.download_url) else {
            bail!(
                "{not_found}, and no prebuilt PostgreSQL is published for this platform ({}-{}) \
                 to download; install PostgreSQL (the server package), set AUTHD_POSTGRES_BINDIR \
                 to its bin directory, or set DATABASE_URL to a PostgreSQL server",
                std::env::consts::ARCH,
                std::env::consts::OS
            );
        };
        let cache = download::cache_root(
            std::env::var_os("AUTHD_POSTGRES_CACHE_DIR"),
            std::env::var_os("XDG_CACHE_HOME"),
            std::env::var_os("HOME"),
            user::effective_uid() == 0,
        )
        .map_err(anyhow::Error::msg)?;
        let (bindir, fetched) =
            download::ensure(&source, &cache, account, &self.runtime).map_err(|e| {
                anyhow!(
                    "{e}; install PostgreSQL (the server package), set \
                     AUTHD_POSTGRES_DOWNLOAD_URL to a reachable copy, or set DATABASE_URL to a \
                     PostgreSQL server"
                )
            })?;
        if let Some(major) = major
            && binaries::server_major(&bindir, account).as_deref() != Some(major)
        {
            bail!(
                "the embedded database was made by PostgreSQL {major} and the downloaded \
                 PostgreSQL in {} is another version; install PostgreSQL {major} and set \
                 AUTHD_POSTGRES_BINDIR to its bin directory",
                bindir.display()
            );
        }
        let origin = match fetched {
            download::Fetched::Downloaded(url) => {
                format!("PostgreSQL {} downloaded from {url}", source.version)
            }
            download::Fetched::Cached => format!(
                "PostgreSQL {} downloaded earlier, from the cache {}",
                source.version,
                cache.display()
            ),
        };
        Ok((bindir, origin))
    }
}

/// The socket directory of the authd holding `data_dir`, once its server accepts connections
/// (it may still be starting). Errors: not within `timeout`.
async fn wait_for_server(
    data_dir: &Path,
    mut record: Record,
    timeout: Duration,
) -> anyhow::Result<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(dir) = &record.socket_dir
            && dir.join(format!(".s.PGSQL.{}", cluster::PORT)).exists()
        {
            return Ok(dir.clone());
        }
        if Instant::now() >= deadline {
            bail!(
                "another authd ({}) holds the data directory {} but its PostgreSQL is not \
                 running; try again once that authd has started or stopped",
                record
                    .pid
                    .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}")),
                data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        record = lock::read_record(data_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unset_and_nothing_answering_means_embedded() {
        // A port that was just free: nothing answers there.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let default_url = "postgres://postgres@localhost:5432/authd";
        assert!(!answers(&closed).await);
        assert!(wants_embedded(default_url, true, &closed).await);
        // Given explicitly (even the default URL): never replaced by the embedded database.
        assert!(!wants_embedded(default_url, false, &closed).await);
        assert!(!wants_embedded("postgres://db.example.test/authd", false, &closed).await);
        // Asked for explicitly: always.
        assert!(wants_embedded(EMBEDDED, false, &closed).await);

        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_addr = open.local_addr().unwrap().to_string();
        assert!(answers(&open_addr).await);
        assert!(!wants_embedded(default_url, true, &open_addr).await);
        assert!(wants_embedded(EMBEDDED, false, &open_addr).await);
    }
}
