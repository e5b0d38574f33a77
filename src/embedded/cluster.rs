//! The PostgreSQL cluster under `<data dir>/pgdata`: made once with initdb, started as a child
//! of authd in its own process group, reachable only through a Unix socket in a private
//! directory, stopped (fast shutdown) when authd stops.
//!
//! Everything here blocks (process spawning, polling the server's pid file); callers run it on
//! the blocking pool.

use std::{
    fs::{DirBuilder, OpenOptions},
    os::unix::{fs::DirBuilderExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    files,
    process::{POLL, is_alive, poll_until, serves_directory, signal},
    user::{Account, effective_uid},
};

/// The port only names the socket file (`.s.PGSQL.5432`): the server opens no TCP port.
pub const PORT: u16 = 5432;
/// Longest socket path used: `sun_path` holds 108 bytes on Linux and 104 on macOS, including
/// the terminating NUL.
const MAX_SOCKET_PATH: usize = 103;
/// How long a start (crash recovery included) or a stop may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket directory for a cluster in `data_dir`: `<data dir>/run` when the socket path
/// fits in a `sockaddr_un`, else `None` (then a short private directory under /tmp is used).
pub fn preferred_socket_dir(data_dir: &Path) -> Option<PathBuf> {
    let dir = data_dir.join("run");
    let socket = dir.join(format!(".s.PGSQL.{PORT}"));
    (socket.as_os_str().len() <= MAX_SOCKET_PATH).then_some(dir)
}

/// The URL authd connects with: user `postgres` to `database` through the socket in
/// `socket_dir` (`postgres://postgres@/authd?host=%2Fpath%2Frun`).
pub fn socket_url(socket_dir: &Path, database: &str) -> String {
    let mut url = url::Url::parse("postgres://postgres@localhost")
        .unwrap_or_else(|_| unreachable!("a constant URL parses"));
    url.set_path(database);
    url.query_pairs_mut()
        .append_pair("host", &socket_dir.to_string_lossy());
    url.to_string()
}

/// A cluster directory and the binaries and account to run it with.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The data directory (canonical, this process's user's, writable by nobody else); the
    /// cluster is its `pgdata`.
    pub data_dir: PathBuf,
    /// Holds `initdb` and `postgres`.
    pub bindir: PathBuf,
    /// Whom to run as (set when authd runs as root); `None`: authd's own user.
    pub account: Option<Account>,
}

/// A running server started by [`Cluster::start`]. Dropping it stops the server (fast
/// shutdown) and waits for it, so a start-up that fails half-way leaves nothing running.
#[derive(Debug)]
pub struct Server {
    child: Child,
    socket_dir: PathBuf,
    /// A directory of our own under /tmp (removed after the stop), or `<data dir>/run` (kept).
    temporary_socket_dir: bool,
    pgdata: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Cluster {
    /// The cluster's directory, `<data dir>/pgdata`.
    pub fn pgdata(&self) -> PathBuf {
        self.data_dir.join("pgdata")
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("postgres.log")
    }

    /// A command for one of the binaries, run as [`Self::account`], in the data directory,
    /// with stdout and stderr appended to `postgres.log` (this process's user's file, opened
    /// by it, never through a link).
    fn command(&self, program: &str) -> Result<Command, String> {
        let log = files::open_own_file(
            &self.log_path(),
            OpenOptions::new().create(true).append(true),
        )
        .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        let mut cmd = Command::new(self.bindir.join(program));
        cmd.current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(account) = &self.account {
            account.run_as(&mut cmd);
        }
        Ok(cmd)
    }

    /// Makes the cluster unless `pgdata` already holds one; returns whether it did. initdb
    /// writes into `pgdata.initdb`, renamed when complete, so an interrupted initdb is redone.
    /// Authentication: `trust` for Unix-socket connections, `reject` for TCP ones (initdb
    /// writes pg_hba.conf so; the server listens on no TCP address either). Only initdb, as
    /// the account, writes inside the cluster.
    pub fn init_if_needed(&self) -> Result<bool, String> {
        let pgdata = self.pgdata();
        if self.cluster_version()?.is_some() {
            return Ok(false);
        }
        if std::fs::symlink_metadata(&pgdata).is_ok() {
            return Err(format!(
                "{} exists but holds no PostgreSQL cluster (no PG_VERSION); move it away",
                pgdata.display()
            ));
        }
        let staging = self.data_dir.join("pgdata.initdb");
        if std::fs::symlink_metadata(&staging).is_ok() {
            std::fs::remove_dir_all(&staging)
                .map_err(|e| format!("cannot remove {}: {e}", staging.display()))?;
        }
        files::account_dir(&staging, self.account.as_ref())?;
        let status = self
            .command("initdb")?
            .arg("--pgdata")
            .arg(&staging)
            .args(["--username=postgres", "--encoding=UTF8"])
            .args(["--auth-local=trust", "--auth-host=reject"])
            .arg("--locale=C")
            .status()
            .map_err(|e| format!("cannot run {}: {e}", self.bindir.join("initdb").display()))?;
        if !status.success() {
            return Err(format!(
                "initdb failed ({status}): {}",
                last_log_line(&self.log_path())
            ));
        }
        std::fs::rename(&staging, &pgdata)
            .map_err(|e| format!("cannot rename {}: {e}", staging.display()))?;
        Ok(true)
    }

    /// The PostgreSQL major version of the cluster (`PG_VERSION`), if there is one. Errors
    /// (without the file's content): unreadable, or not a major version.
    pub fn cluster_version(&self) -> Result<Option<String>, String> {
        let path = self.pgdata().join("PG_VERSION");
        match files::read_bounded(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            Ok(text) => major_version(&text).map(Some).ok_or_else(|| {
                format!(
                    "{} does not hold a PostgreSQL major version; move {} away",
                    path.display(),
                    self.pgdata().display()
                )
            }),
        }
    }

    /// Stops a server left running on this cluster by an authd that was killed: its
    /// `postmaster.pid` names this cluster and a live postgres process of the account working
    /// in it. Anything else is left alone (PostgreSQL itself decides whether a pid file is
    /// stale). The caller holds the data directory's lock, so no live authd owns that server.
    /// `old_socket_dir` (from the killed authd's record, trusted as the lock file is ours) is
    /// removed if it was a temporary one.
    pub fn recover_stale(&self, old_socket_dir: Option<&Path>) -> Result<(), String> {
        let pgdata = self.pgdata();
        let uid = self.account.as_ref().map_or_else(effective_uid, |a| a.uid);
        if let Some(pid) = files::read_bounded(&pgdata.join("postmaster.pid"))
            .ok()
            .and_then(|text| pid_for(&text, &pgdata))
            .filter(|&pid| serves_directory(pid, &pgdata, uid))
        {
            tracing::warn!(
                pid,
                "stopping the PostgreSQL server an earlier authd left running"
            );
            signal(pid, libc::SIGINT);
            if !poll_until(STOP_TIMEOUT, || !is_alive(pid)) {
                signal(pid, libc::SIGQUIT);
                if !poll_until(STOP_TIMEOUT, || !is_alive(pid)) {
                    return Err(format!(
                        "a PostgreSQL server (pid {pid}) still runs on {} and does not stop",
                        self.pgdata().display()
                    ));
                }
            }
        }
        if let Some(dir) = old_socket_dir.filter(|d| is_temporary_socket_dir(d)) {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections. It listens on no TCP address,
    /// only on a socket (mode 0700) in a directory of its account's (0700): `<data dir>/run`,
    /// or a fresh directory under /tmp when that path is too long for a socket.
    pub fn start(&self) -> Result<Server, String> {
        let (socket_dir, temporary) = match preferred_socket_dir(&self.data_dir) {
            Some(dir) => (dir, false),
            None => (create_temporary_socket_dir()?, true),
        };
        files::account_dir(&socket_dir, self.account.as_ref())?;
        let child = self
            .command("postgres")?
            .arg("-D")
            .arg(self.pgdata())
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                quote_directory(&socket_dir)
            ))
            .args(["-c", "unix_socket_permissions=0700"])
            // Its own process group: a Ctrl-C at the terminal reaches authd only, and authd
            // decides when the server stops.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bindir.join("postgres").display()))?;
        let mut server = Server {
            child,
            socket_dir,
            temporary_socket_dir: temporary,
            pgdata: self.pgdata(),
            log: self.log_path(),
            stopped: false,
        };
        server.wait_ready()?;
        Ok(server)
    }
}

impl Server {
    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server's `postmaster.pid` says `ready` (as `pg_ctl -w` does). Errors:
    /// the server exited (with the last line of its log), or did not get ready in time.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.child.id().to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                return Err(format!(
                    "PostgreSQL exited at start ({status}): {} (log: {})",
                    last_log_line(&self.log),
                    self.log.display()
                ));
            }
            let pid_file = files::read_bounded(&self.pgdata.join("postmaster.pid"));
            if let Ok(text) = pid_file {
                let lines: Vec<&str> = text.lines().collect();
                if lines.first() == Some(&pid.as_str())
                    && lines.get(7).map(|s| s.trim()) == Some("ready")
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "PostgreSQL did not accept connections within {}s (log: {})",
                    START_TIMEOUT.as_secs(),
                    self.log.display()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Fast shutdown (SIGINT: open connections are closed, nothing is lost), waiting for the
    /// server to exit; an immediate shutdown (SIGQUIT), then SIGKILL, if it does not in time.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = self.stop_child();
        if self.temporary_socket_dir {
            let _ = std::fs::remove_dir_all(&self.socket_dir);
        }
        result
    }

    fn stop_child(&mut self) -> Result<(), String> {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return Err("PostgreSQL's pid is out of range".into());
        };
        for sig in [libc::SIGINT, libc::SIGQUIT] {
            signal(pid, sig);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => std::thread::sleep(POLL),
                    Err(e) => return Err(format!("waiting for PostgreSQL: {e}")),
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "PostgreSQL (pid {pid}) did not shut down in time and was killed"
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL");
        }
    }
}

/// `"dir"` with inner quotes doubled: one entry of PostgreSQL's comma-separated
/// `unix_socket_directories`, whatever characters (commas, spaces) the path holds.
fn quote_directory(dir: &Path) -> String {
    format!("\"{}\"", dir.to_string_lossy().replace('"', "\"\""))
}

const TEMPORARY_PREFIX: &str = "authd-pg-";

/// A new directory `/tmp/authd-pg-<random>` (mode 0700, made by us: creation fails rather than
/// reuse a directory someone else made).
fn create_temporary_socket_dir() -> Result<PathBuf, String> {
    let mut last_error = None;
    for _ in 0..8 {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let dir = Path::new("/tmp").join(format!("{TEMPORARY_PREFIX}{}", &name[..12]));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last_error = Some(e),
        }
    }
    Err(format!(
        "cannot create a socket directory under /tmp: {}",
        last_error.map_or_else(String::new, |e| e.to_string())
    ))
}

fn is_temporary_socket_dir(dir: &Path) -> bool {
    dir.parent() == Some(Path::new("/tmp"))
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TEMPORARY_PREFIX))
}

/// The pid in a `postmaster.pid` (line 1) when the file is about `pgdata` (line 2), else
/// `None` (a pid file from elsewhere, a reboot ago, names some other process now).
fn pid_for(pid_file: &str, pgdata: &Path) -> Option<i32> {
    let mut lines = pid_file.lines();
    let pid = lines
        .next()?
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|&p| p > 0)?;
    (Path::new(lines.next()?) == pgdata).then_some(pid)
}

/// A PostgreSQL major version as in `PG_VERSION` (`15`, `9.6`), trimmed; `None` for anything
/// else.
fn major_version(text: &str) -> Option<String> {
    let v = text.trim();
    let valid = (1..=8).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    valid.then(|| v.to_string())
}

/// The last non-empty line of a log file (for one-line error messages), from its last
/// [`files::READ_LIMIT`] bytes.
fn last_log_line(log: &Path) -> String {
    files::read_tail(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "no output".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_socket_url_names_the_directory_and_user() {
        let url = socket_url(Path::new("/srv/authd data/run"), "authd");
        assert_eq!(
            url,
            "postgres://postgres@localhost/authd?host=%2Fsrv%2Fauthd+data%2Frun"
        );
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/srv/authd data/run"))
        );
        assert_eq!(options.get_username(), "postgres");
        assert_eq!(options.get_database(), Some("authd"));
    }

    #[test]
    fn a_data_dir_too_long_for_a_socket_falls_back() {
        assert_eq!(
            preferred_socket_dir(Path::new("/home/me/authd-data")),
            Some(PathBuf::from("/home/me/authd-data/run"))
        );
        let long = PathBuf::from(format!("/{}", "d".repeat(90)));
        assert_eq!(preferred_socket_dir(&long), None);
        let dir = create_temporary_socket_dir().unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        let temporary = is_temporary_socket_dir(&dir);
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(mode, 0o700);
        assert!(temporary);
        assert!(!is_temporary_socket_dir(Path::new("/tmp")));
        assert!(!is_temporary_socket_dir(Path::new(
            "/home/me/authd-data/run"
        )));
    }

    #[test]
    fn only_a_pid_file_of_this_cluster_names_a_server_to_stop() {
        let pgdata = Path::new("/srv/authd-data/pgdata");
        let ours = "4242\n/srv/authd-data/pgdata\n1700000000\n5432\n";
        assert_eq!(pid_for(ours, pgdata), Some(4242));
        let system = "2226\n/var/lib/postgresql/15/main\n1700000000\n5432\n";
        assert_eq!(pid_for(system, pgdata), None);
        assert_eq!(pid_for("4242\n", pgdata), None);
        assert_eq!(pid_for("0\n/srv/authd-data/pgdata\n", pgdata), None);
        assert_eq!(pid_for("x\n/srv/authd-data/pgdata\n", pgdata), None);
    }

    #[test]
    fn pg_version_must_be_a_major_version() {
        assert_eq!(major_version("15\n"), Some("15".into()));
        assert_eq!(major_version("9.6"), Some("9.6".into()));
        assert_eq!(major_version("root:x:0:0::/root:/bin/sh\n"), None);
        assert_eq!(major_version(""), None);
        assert_eq!(major_version(".5"), None);
        assert_eq!(major_version("123456789"), None);
    }

    #[test]
    fn socket_directories_are_quoted_for_postgres() {
        assert_eq!(quote_directory(Path::new("/a,b c")), "\"/a,b c\"");
        assert_eq!(quote_directory(Path::new("/a\"b")), "\"/a\"\"b\"");
    }
}
