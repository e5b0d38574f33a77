//! DATABASE_URL over TLS, against a throwaway PostgreSQL cluster of the test's own that accepts
//! only TLS connections (`hostssl` in pg_hba.conf) with a certificate for `localhost` from a
//! private CA: which `sslmode`s connect, that authd's connections really are encrypted, and
//! that a certificate problem stops authd at once with one line that says what is wrong.

use std::{
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};

use crate::{
    certs::{TempDir, TestCa},
    helpers::{
        PASSWORD, TestDb, authd_command, eventually, free_port, spawn_with_db, test_config,
        wait_live,
    },
};

/// A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 with TLS only; run as
/// `nobody` when the test runs as root (PostgreSQL refuses root). Stopped and deleted on drop,
/// also when the test fails.
struct TlsCluster {
    // Dropped (deleted) after `drop` has stopped the server.
    dir: TempDir,
    port: u16,
    postgres: Child,
    /// The CA that issued the server's certificate (for `localhost` only).
    ca: PathBuf,
    /// A CA that has nothing to do with the server.
    other_ca: PathBuf,
}

impl TlsCluster {
    async fn start() -> Self {
        let dir = TempDir::new("authd-pgtls");
        let ca = TestCa::new(dir.path(), "ca");
        let (cert, key) = ca.issue("server", "DNS:localhost");
        let other_ca = TestCa::new(dir.path(), "other-ca");
        let owner = unprivileged_owner();
        if let Some((uid, gid)) = owner {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                std::os::unix::fs::chown(entry.unwrap().path(), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        // PostgreSQL refuses a key others can read.
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let data = dir.path().join("data");
        let hba = dir.path().join("pg_hba.conf");
        std::fs::write(&hba, "hostssl all all 127.0.0.1/32 trust\n").unwrap();
        let port = free_port();
        let mut cluster = Self {
            postgres: {
                let status = as_owner(Command::new(pg_bin("initdb")), owner)
                    .args(["--no-sync", "--no-locale", "-E", "UTF8", "-U", "postgres"])
                    .arg("-D")
                    .arg(&data)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("initdb runs");
                assert!(status.success(), "initdb");
                let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
                as_owner(Command::new(pg_bin("postgres")), owner)
                    .arg("-D")
                    .arg(&data)
                    .arg("-p")
                    .arg(port.to_string())
                    .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                    .args(["-c", "ssl=on"])
                    .arg("-c")
                    .arg(format!("ssl_cert_file={}", cert.display()))
                    .arg("-c")
                    .arg(format!("ssl_key_file={}", key.display()))
                    .arg("-c")
                    .arg(format!("hba_file={}", hba.display()))
                    .arg("-c")
                    .arg(format!("unix_socket_directories={}", dir.path().display()))
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("postgres starts")
            },
            dir,
            port,
            ca: ca.cert,
            other_ca: other_ca.cert,
        };
        let up = eventually(Duration::from_secs(30), || async {
            cluster.superuser().await.is_ok()
        })
        .await;
        if !up {
            let log = std::fs::read_to_string(cluster.dir.path().join("postgres.log"))
                .unwrap_or_default();
            let exited = cluster.postgres.try_wait();
            panic!("the TLS cluster came up (postgres: {exited:?}): {log}");
        }
        cluster
    }

    /// `postgres://postgres:<password>@{host}:{port}/{database}?{query}`. The cluster trusts
    /// every TLS connection, so the password is only there to prove messages leave it out.
    fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{DB_PASSWORD}@{host}:{}/{database}?{query}",
            self.port
        )
    }

    fn verify_full(&self, ca: &Path) -> String {
        format!("sslmode=verify-full&sslrootcert={}", ca.display())
    }

    /// An administrative connection (TLS, not verified).
    async fn superuser(&self) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect(&self.url("127.0.0.1", "postgres", "sslmode=require")).await
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT), then a bounded wait; kill it if it does not go.
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.postgres.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.postgres.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.postgres.kill();
        let _ = self.postgres.wait();
    }
}

const DB_PASSWORD: &str = "pw-not-for-logs-7f3a";

/// The uid and gid of `nobody` when the tests run as root, else `None` (run as ourselves).
fn unprivileged_owner() -> Option<(u32, u32)> {
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    Some((id("-u"), id("-g")))
}

fn as_owner(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_clear().env("LC_ALL", "C");
    cmd
}

/// A PostgreSQL server binary: from AUTHD_TEST_PG_BIN, else the newest under
/// /usr/lib/postgresql/*/bin (Debian's layout).
fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("AUTHD_TEST_PG_BIN") {
        return Path::new(&dir).join(name);
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql (or set AUTHD_TEST_PG_BIN)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let newest = versions
        .last()
        .expect("a version under /usr/lib/postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin/{name}"))
}

/// Runs `authd` (the real binary, `serve` unless `args` say otherwise) on `url`, with a
/// generous retry window, and expects it to fail well before that window ends: returns its
/// stderr.
fn fails_at_once(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let started = Instant::now();
    let mut child = authd_command("unused")
        .env("DATABASE_URL", url)
        .env("AUTHD_DB_CONNECT_TIMEOUT", "60s")
        .env("AUTHD_BIND", format!("127.0.0.1:{}", free_port()))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "authd failed: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a permanent error is not retried for AUTHD_DB_CONNECT_TIMEOUT: {stderr}"
    );
    assert!(
        !stderr.contains(DB_PASSWORD),
        "the password leaked: {stderr}"
    );
    stderr
}

/// The one `authd: ...` line of a failed start, which must name the database (host, port and
/// database name) and say it is DATABASE_URL.
fn the_error_line(stderr: &str, host: &str, port: u16) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("authd: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    let line = lines[0].to_owned();
    assert!(
        line.contains(&format!("postgres@{host}:{port}/authd_tls"))
            && line.contains("DATABASE_URL"),
        "the line names the database: {line}"
    );
    line
}

#[tokio::test]
async fn verify_full_with_the_right_ca_works_and_every_connection_is_encrypted() {
    let cluster = TlsCluster::start().await;
    let database = TestDb::new();
    let mut config = test_config(database.name());
    let query = cluster.verify_full(&cluster.ca);
    config.database_url = cluster.url("localhost", database.name(), &query);
    let app = spawn_with_db(config, database).await;

    assert_eq!(
        app.register("tls@example.com", PASSWORD).await.status(),
        201
    );
    let tokens = app.login("tls@example.com").await;
    assert_eq!(app.me_status(&tokens.access).await, 200);
    wait_live(&app).await;

    // Every backend authd opened (its pool, the listener) is on TLS: what the server says.
    let mut admin = cluster.superuser().await.unwrap();
    let backends: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.application_name LIKE 'authd%' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for name in ["authd", "authd-listener"] {
        assert!(
            backends.iter().any(|(n, _)| n == name),
            "{name} is connected: {backends:?}"
        );
    }
    assert!(
        backends.iter().all(|(_, ssl)| *ssl),
        "all encrypted: {backends:?}"
    );
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate_unless_given_a_root() {
    let cluster = TlsCluster::start().await;
    // The maintenance connection that creates the database, the pool, the migrations: all over
    // TLS to a server whose CA authd was not told about, and by its IP address.
    let mut config = test_config("authd_tls");
    config.database_url = cluster.url("127.0.0.1", "authd_tls", "sslmode=require");
    let pool = authd::app::prepare_database(&config).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl, "sslmode=require encrypts");
    pool.close().await;

    // As in libpq, `require` with a root certificate checks the chain (verify-ca).
    let query = format!("sslmode=require&sslrootcert={}", cluster.other_ca.display());
    config.database_url = cluster.url("127.0.0.1", "authd_tls", &query);
    let err = authd::app::prepare_database(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not issued by a CA authd trusts"),
        "{err:#}"
    );
    // verify-ca checks the chain but not the name.
    let query = format!("sslmode=verify-ca&sslrootcert={}", cluster.ca.display());
    config.database_url = cluster.url("127.0.0.1", "authd_tls", &query);
    authd::app::prepare_database(&config)
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn certificate_problems_and_plaintext_stop_authd_at_once_with_one_clear_line() {
    let cluster = TlsCluster::start().await;
    let port = cluster.port;

    // A server certificate from a CA authd was not told to trust.
    let url = cluster.url(
        "localhost",
        "authd_tls",
        &cluster.verify_full(&cluster.other_ca),
    );
    let line = the_error_line(&fails_at_once(&url, &[], &[]), "localhost", port);
    assert!(
        line.contains("UnknownIssuer") && line.contains("sslrootcert"),
        "{line}"
    );

    // The right CA, but the host in the URL is not a name in the certificate.
    let url = cluster.url("127.0.0.1", "authd_tls", &cluster.verify_full(&cluster.ca));
    let line = the_error_line(&fails_at_once(&url, &["migrate"], &[]), "127.0.0.1", port);
    assert!(
        line.contains("certificate not valid for name \"127.0.0.1\""),
        "{line}"
    );

    // A root certificate file that is not there.
    let missing = cluster.dir.path().join("no-such-ca.pem");
    let url = cluster.url("localhost", "authd_tls", &cluster.verify_full(&missing));
    let line = the_error_line(&fails_at_once(&url, &["migrate"], &[]), "localhost", port);
    assert!(
        line.contains(&format!("sslrootcert file {}", missing.display())),
        "{line}"
    );

    // The same through libpq's variable, with the URL silent about it.
    let url = cluster.url("localhost", "authd_tls", "sslmode=verify-full");
    let env = [("PGSSLROOTCERT", missing.to_str().unwrap())];
    let line = the_error_line(&fails_at_once(&url, &["migrate"], &env), "localhost", port);
    assert!(
        line.contains(&format!("sslrootcert file {}", missing.display())),
        "{line}"
    );

    // Plaintext, refused by the hostssl-only server.
    let url = cluster.url("localhost", "authd_tls", "sslmode=disable");
    let line = the_error_line(&fails_at_once(&url, &["migrate"], &[]), "localhost", port);
    assert!(
        line.contains("no pg_hba.conf entry") && line.contains("no encryption"),
        "{line}"
    );
}
