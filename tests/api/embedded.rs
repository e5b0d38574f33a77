//! The embedded database (`DATABASE_URL=embedded`): the real binary runs its own PostgreSQL
//! from this machine's binaries in a data directory of the test's own, which a guard removes,
//! stopping whatever postgres the test left running there, also when the test fails.

use std::{
    path::{Path, PathBuf},
    process::{Child, ExitStatus},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::helpers::*;

mod download;

/// A data directory under the system's temp dir. Dropping it stops any postgres still running
/// on it, then deletes it (with the parents it was made in, see [`DataDir::nested`]).
struct DataDir(PathBuf, PathBuf);

impl DataDir {
    fn new() -> Self {
        Self::nested("")
    }

    /// The data directory `<temp>/authd-embedded-<uuid>/<sub>`; authd creates it.
    fn nested(sub: &str) -> Self {
        let root = std::env::temp_dir().join(format!("authd-embedded-{}", uuid::Uuid::new_v4()));
        let path = if sub.is_empty() {
            root.clone()
        } else {
            root.join(sub)
        };
        Self(path, root)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn pgdata(&self) -> PathBuf {
        self.0.join("pgdata")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Some(pg) = postmaster(&self.pgdata()) {
            // Immediate shutdown: the test is over, nothing needs to be kept.
            signal(pg.pid, "QUIT");
            if !poll(Duration::from_secs(10), || !alive(pg.pid)) {
                signal(pg.pid, "KILL");
            }
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// An authd process, killed when dropped (a failed test leaves no server behind).
struct Authd {
    child: Child,
    base: String,
}

impl Drop for Authd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Authd {
    async fn start(dir: &DataDir) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// [`Self::start`] with more environment variables.
    async fn start_with(dir: &DataDir, env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        env.push(("AUTHD_DATA_DIR", dir.path().to_str().unwrap()));
        let (child, base) = spawn_authd_process("embedded", &env).await;
        Self { child, base }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM; asserts that authd exits 0 and leaves no postgres running on `dir`. Returns
    /// its stderr.
    fn stop_cleanly(mut self, dir: &DataDir) -> String {
        sigterm(self.pid());
        let status =
            wait_exit(&mut self.child, Duration::from_secs(30)).expect("authd exits after SIGTERM");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        assert!(
            status.success(),
            "exit status after SIGTERM: {status}: {stderr}"
        );
        assert!(
            postmaster(&dir.pgdata()).is_none(),
            "postgres stopped with authd"
        );
        // authd stops its LISTEN connection before PostgreSQL: nothing tried to reconnect
        // while the server was shutting down.
        let log = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default();
        assert!(
            !log.contains("the database system is shutting down"),
            "a connection attempt during PostgreSQL's shutdown:\n{log}"
        );
        stderr
    }

    async fn login_status(&self, email: &str) -> u16 {
        let creds = json!({ "email": email, "password": PASSWORD });
        self.post("/auth/login", creds).await.status().as_u16()
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register_and_login(&self, email: &str) -> Tokens {
        let creds = json!({ "email": email, "password": PASSWORD });
        assert_eq!(
            self.post("/auth/register", creds.clone()).await.status(),
            201
        );
        let res = self.post("/auth/login", creds).await;
        assert_eq!(res.status(), 200, "login");
        tokens_from(res).await
    }

    async fn refresh_with(&self, cookie: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/auth/refresh", self.base))
            .header("cookie", format!("authd_refresh={cookie}"))
            .send()
            .await
            .unwrap()
    }
}

/// `authd <args>` on the data directory (no server of its own: a CLI command).
fn authd_cli(dir: &DataDir, args: &[&str]) -> std::process::Output {
    authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", dir.path())
        .env("AUTHD_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

/// The postmaster serving `pgdata`: its pid and real uid.
struct Postmaster {
    pid: u32,
    uid: u32,
}

/// The running `postgres -D <pgdata>` process, found in /proc by its command line.
fn postmaster(pgdata: &Path) -> Option<Postmaster> {
    let wanted = pgdata.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_postgres = args.first()?.ends_with(b"/postgres");
            let serves = args.windows(2).any(|w| w[0] == b"-D" && w[1] == wanted);
            if !(is_postgres && serves) {
                return None;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(Postmaster { pid, uid })
        })
}

/// TCP sockets in LISTEN state (IPv4 and IPv6) that belong to process `pid`.
fn tcp_listeners_of(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) == Some(&"0A")
                && fields.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
            {
                listening.push(fields[1].to_string());
            }
        }
    }
    listening
}

/// The process group of `pid` (field 5 of /proc/<pid>/stat).
fn process_group(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = stat.rsplit(')').next().unwrap();
    after_comm
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    poll(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// stderr lines that are not JSON log records.
fn plain_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn serves_from_its_own_postgres_and_keeps_users_and_sessions_across_restarts() {
    let dir = DataDir::new();
    let first = Authd::start(&dir).await;
    let pg = postmaster(&dir.pgdata()).expect("a postgres serves the data directory");
    if running_as_root() {
        assert_ne!(pg.uid, 0, "postgres runs as an unprivileged user");
    }
    assert_ne!(
        process_group(pg.pid),
        process_group(first.pid()),
        "postgres has a process group of its own (a Ctrl-C reaches authd only)"
    );
    assert_eq!(
        tcp_listeners_of(pg.pid),
        Vec::<String>::new(),
        "no TCP port"
    );
    // The check sees a listening socket where there is one (by its port: other tests of this
    // process may be listening too).
    let control = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!(":{:04X}", control.local_addr().unwrap().port());
    assert!(
        tcp_listeners_of(std::process::id())
            .iter()
            .any(|addr| addr.ends_with(&port)),
        "the control listener is seen"
    );
    drop(control);

    let tokens = first.register_and_login("ada@example.test").await;
    let res = first.refresh_with(&tokens.refresh).await;
    assert_eq!(res.status(), 200, "refresh");
    let rotated = tokens_from(res).await;

    let stderr = first.stop_cleanly(&dir);
    assert!(!alive(pg.pid), "postgres stopped with authd");
    let announced: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("using an embedded PostgreSQL"))
        .collect();
    assert_eq!(announced.len(), 1, "{stderr}");
    assert!(
        announced[0].contains(dir.path().to_str().unwrap()),
        "{stderr}"
    );
    assert!(announced[0].contains("DATABASE_URL"), "{stderr}");

    // Restart: the user and the session are still there.
    let second = Authd::start(&dir).await;
    let res = second.refresh_with(&rotated.refresh).await;
    assert_eq!(res.status(), 200, "the old refresh cookie still refreshes");
    assert_eq!(
        second.login_status("ada@example.test").await,
        200,
        "login after a restart"
    );
    second.stop_cleanly(&dir);
}

#[tokio::test]
async fn cli_commands_use_the_data_dir_alone_or_through_the_running_server() {
    let dir = DataDir::new();
    // Stopped: the command starts the database for itself and stops it when done.
    let out = authd_cli(&dir, &["user", "add", "--email", "cli@example.test"]);
    assert_succeeded(&out);
    assert!(
        postmaster(&dir.pgdata()).is_none(),
        "stopped after the command"
    );
    let out = authd_cli(&dir, &["user", "list"]);
    assert_succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli@example.test"));

    // Running: the command uses the server's postgres, which keeps running.
    let server = Authd::start(&dir).await;
    let pg = postmaster(&dir.pgdata()).expect("the server's postgres");
    let out = authd_cli(&dir, &["user", "list"]);
    assert_succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli@example.test"));
    assert_eq!(postmaster(&dir.pgdata()).map(|p| p.pid), Some(pg.pid));
    assert_eq!(
        server.login_status("cli@example.test").await,
        200,
        "the user the CLI added logs in"
    );

    // A second server on the same data directory is refused with one line.
    let out = authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", dir.path())
        .env("AUTHD_BIND", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = plain_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(line.contains(dir.path().to_str().unwrap()), "{line}");
    assert!(line.contains(&format!("pid {}", server.pid())), "{line}");
    assert!(line.contains("DATABASE_URL"), "{line}");

    server.stop_cleanly(&dir);
}

#[tokio::test]
async fn a_postgres_left_by_a_killed_authd_is_recovered_at_the_next_start() {
    let dir = DataDir::new();
    let mut first = Authd::start(&dir).await;
    let tokens = first.register_and_login("kill@example.test").await;
    let old = postmaster(&dir.pgdata()).expect("postgres").pid;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    assert!(
        alive(old),
        "postgres outlives a SIGKILLed authd (its own process group)"
    );

    let second = Authd::start(&dir).await;
    let new = postmaster(&dir.pgdata()).expect("postgres").pid;
    assert_ne!(new, old);
    assert!(!alive(old), "the stale server was stopped");
    let res = second.refresh_with(&tokens.refresh).await;
    assert_eq!(res.status(), 200, "the session survived");
    second.stop_cleanly(&dir);
}

/// `authd user list` on `data_dir` with `env`: it fails with exit code 1 and one line (besides
/// JSON log records), which is returned.
fn failing_start(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let out = authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .args(["user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = plain_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

/// Like [`failing_start`], for a failure after the start-up line announcing the embedded
/// PostgreSQL: that line, then the one returned.
fn failing_after_announcing(data_dir: &Path) -> String {
    let out = authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", data_dir)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    error_after_announcement(&out.stderr)
}

/// The one line after the announcement of the embedded PostgreSQL in `stderr`.
fn error_after_announcement(stderr: &[u8]) -> String {
    let lines = plain_lines(stderr);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("using an embedded PostgreSQL"),
        "{lines:?}"
    );
    lines[1].clone()
}

#[test]
fn start_up_problems_are_one_line() {
    let dir = DataDir::new();
    let line = failing_start(dir.path(), &[("AUTHD_POSTGRES_BINDIR", "/nonexistent/bin")]);
    assert!(
        line.contains("AUTHD_POSTGRES_BINDIR=/nonexistent/bin"),
        "{line}"
    );

    if running_as_root() {
        // A data directory inside a directory only root may enter (like /root).
        use std::os::unix::fs::PermissionsExt;
        let private = dir.path().join("private");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let line = failing_start(&private.join("data"), &[]);
        assert!(line.contains(private.to_str().unwrap()), "{line}");
        assert!(line.contains("AUTHD_DATA_DIR"), "{line}");
    }
}

#[tokio::test]
async fn a_data_dir_too_long_for_a_socket_path_gets_a_private_socket_dir_elsewhere() {
    // Made by authd, parents included: they must stay passable for postgres's account.
    let dir = DataDir::nested(&"a-rather-long-directory-name-".repeat(3));
    assert!(dir.path().join("run/.s.PGSQL.5432").as_os_str().len() > 107);
    let server = Authd::start(&dir).await;
    let socket_dir = std::fs::read_to_string(dir.path().join("authd.lock"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("socket_dir=").map(PathBuf::from))
        .expect("the socket directory is recorded");
    assert!(socket_dir.starts_with("/tmp"), "{}", socket_dir.display());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // The CLI finds the server through the recorded directory.
    let out = authd_cli(&dir, &["user", "list"]);
    assert_succeeded(&out);
    server.stop_cleanly(&dir);
    assert!(
        !socket_dir.exists(),
        "the temporary socket directory is removed"
    );
}

#[tokio::test]
async fn a_sigterm_during_start_up_still_stops_postgres() {
    let dir = DataDir::new();
    let mut child = authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", dir.path())
        .env("AUTHD_BIND", format!("127.0.0.1:{}", free_port()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // As soon as postgres has been started (initdb done), before authd is likely ready.
    let started = poll(Duration::from_secs(30), || {
        postmaster(&dir.pgdata()).is_some()
    });
    sigterm(child.id());
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let _ = child.kill();
    assert!(started, "postgres started");
    let status = status.expect("authd exits after SIGTERM");
    assert!(status.success(), "exit status: {status}");
    assert!(postmaster(&dir.pgdata()).is_none(), "postgres stopped");
}

/// A non-root authd runs PostgreSQL as itself; root later refuses that user's data directory
/// (whoever owns it would get root's database) with one line. (Run as non-root, every other
/// test here covers the first half already.)
#[test]
fn a_non_root_authd_runs_postgres_as_itself_and_root_refuses_its_data_dir() {
    use std::os::unix::{fs::MetadataExt, process::CommandExt};
    if !running_as_root() {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let (uid, gid): (u32, u32) = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody")).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .expect("a nobody account");
    let dir = DataDir::nested("data");
    std::fs::create_dir_all(&dir.1).unwrap();
    std::os::unix::fs::chown(&dir.1, Some(uid), Some(gid)).unwrap();

    let out = authd_command("unused")
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", dir.path())
        .env("AUTHD_PASSWORD", PASSWORD)
        .env("HOME", &dir.1)
        .args(["user", "add", "--email", "nobody@example.test"])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let owner = |p: &Path| std::fs::metadata(p).unwrap().uid();
    assert_eq!(owner(&dir.pgdata()), uid);
    assert!(
        postmaster(&dir.pgdata()).is_none(),
        "stopped after the command"
    );

    let line = failing_start(dir.path(), &[]);
    assert!(line.contains("AUTHD_DATA_DIR"), "{line}");
    assert!(line.contains(&format!("uid {uid}")), "{line}");
    assert!(postmaster(&dir.pgdata()).is_none(), "nothing was started");
    assert_eq!(owner(dir.path()), uid, "nothing was handed over");
}

/// A data directory others may write (anyone could plant files or links in it) is refused.
#[test]
fn a_data_dir_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o757)).unwrap();
    let line = failing_start(dir.path(), &[]);
    assert!(line.contains("AUTHD_DATA_DIR"), "{line}");
    assert!(line.contains("writable"), "{line}");
    assert!(!dir.pgdata().exists(), "nothing was made in it");
}

/// What a link target looks like: owner, mode and content.
fn snapshot(path: &Path) -> (u32, u32, Vec<u8>) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let content = if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_encoded_bytes())
            .collect();
        names.sort();
        names.concat()
    } else {
        std::fs::read(path).unwrap()
    };
    (meta.uid(), meta.mode(), content)
}

/// As root, links planted at `<data dir>/run` and `<data dir>/postgres.log` while authd is
/// stopped are refused at the next start, never followed: their targets keep owner, mode and
/// content.
#[test]
fn links_planted_in_the_data_dir_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    if !running_as_root() {
        return;
    }
    let dir = DataDir::new();
    assert_succeeded(&authd_cli(&dir, &["user", "list"]));
    let elsewhere = dir.path().parent().unwrap().join(format!(
        "{}-elsewhere",
        dir.path().file_name().unwrap().to_str().unwrap()
    ));
    let _cleanup = DataDir(elsewhere.clone(), elsewhere.clone());
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = elsewhere.join("authorized_keys");
    std::fs::write(&file, "ssh-ed25519 AAAA kept\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (dir_before, file_before) = (snapshot(&elsewhere), snapshot(&file));

    std::fs::remove_dir_all(dir.path().join("run")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("run")).unwrap();
    let line = failing_after_announcing(dir.path());
    assert!(line.contains("run is not a directory"), "{line}");
    std::fs::remove_file(dir.path().join("run")).unwrap();

    std::fs::remove_file(dir.path().join("postgres.log")).unwrap();
    std::os::unix::fs::symlink(&file, dir.path().join("postgres.log")).unwrap();
    let line = failing_after_announcing(dir.path());
    assert!(line.contains("postgres.log"), "{line}");

    assert!(postmaster(&dir.pgdata()).is_none(), "nothing was started");
    assert_eq!(
        snapshot(&elsewhere),
        dir_before,
        "the directory is untouched"
    );
    assert_eq!(snapshot(&file), file_before, "the file is untouched");
}

/// A `postmaster.pid` naming the machine's own PostgreSQL (as one surviving a reboot might) is
/// not taken for a server a killed authd left: that server is not signalled and stays up.
#[test]
fn a_stale_pid_file_naming_another_postgres_does_not_stop_it() {
    let system = Path::new("/var/lib/postgresql/15/main/postmaster.pid");
    let Ok(text) = std::fs::read_to_string(system) else {
        eprintln!("skipped: no {}", system.display());
        return;
    };
    let pid: u32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert!(alive(pid), "the machine's PostgreSQL runs");
    let dir = DataDir::new();
    assert_succeeded(&authd_cli(&dir, &["user", "list"]));
    std::fs::write(dir.pgdata().join("postmaster.pid"), &text).unwrap();

    let out = authd_cli(&dir, &["user", "list"]);
    assert!(alive(pid), "the machine's PostgreSQL was not stopped");
    if !out.status.success() {
        // PostgreSQL itself refuses a pid file naming a live process of its own user.
        let line = error_after_announcement(&out.stderr);
        assert!(line.contains("postmaster"), "{line}");
    }
}

/// A `PG_VERSION` that is not a version (a link to a secret, say) stops the start with one
/// line that does not repeat its content.
#[test]
fn a_pg_version_that_is_not_a_version_is_refused_without_echoing_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    std::fs::create_dir_all(dir.pgdata()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.pgdata().join("PG_VERSION"), "hunter2-secret\n").unwrap();
    let line = failing_start(dir.path(), &[]);
    assert!(line.contains("PG_VERSION"), "{line}");
    assert!(line.contains("PostgreSQL major version"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}
