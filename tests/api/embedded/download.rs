//! Downloading PostgreSQL when the machine has none. `AUTHD_POSTGRES_BINDIR=download` makes
//! authd skip this machine's binaries, and `AUTHD_POSTGRES_DOWNLOAD_URL` points it at a mirror
//! served here over real HTTP on 127.0.0.1 (the GitHub releases are not reachable from the
//! machines the tests run on). The mirror's archive is this machine's PostgreSQL packed in
//! Debian's layout, with its `.sha256`; the cache is `AUTHD_POSTGRES_CACHE_DIR` inside the
//! test's directory.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use authd::embedded::download::{VERSION, target};
use axum::{http::StatusCode, response::IntoResponse};

use super::*;

/// An HTTP server on 127.0.0.1 answering `….tar.gz` with one archive (once `gate` says so,
/// polled for up to 30 s) and `….tar.gz.sha256` with one checksum file, recording the path of
/// every request. Stops when dropped.
struct Mirror {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mirror {
    async fn serve(archive: Vec<u8>, checksum: String) -> Self {
        Self::serve_gated(archive, checksum, Arc::new(|| true)).await
    }

    async fn serve_gated(archive: Vec<u8>, checksum: String, gate: Gate) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let archive = axum::body::Bytes::from(archive);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (seen, archive, checksum) = (seen.clone(), archive.clone(), checksum.clone());
            let gate = gate.clone();
            async move {
                let path = uri.path().to_string();
                seen.lock().unwrap().push(path.clone());
                if path.ends_with(".tar.gz.sha256") {
                    checksum.into_response()
                } else if path.ends_with(".tar.gz") {
                    eventually(Duration::from_secs(30), || {
                        let open = gate();
                        async move { open }
                    })
                    .await;
                    archive.into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/releases", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// When the mirror may answer with the archive.
type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `postgresql-<VERSION>-<target>.tar.gz`, the name authd asks for.
fn archive_name() -> String {
    format!(
        "postgresql-{VERSION}-{}",
        target().expect("this platform has published archives")
    )
}

/// A tar.gz of this machine's PostgreSQL (the highest `/usr/lib/postgresql/<v>`): under
/// `postgresql-test/`, `usr/lib/postgresql/<v>/bin/` with `initdb`, `postgres` and the
/// `postmaster -> postgres` link, its `lib/` (without the JIT, unused here), and
/// `usr/share/postgresql/<v>/`: PostgreSQL finds its share and lib directories relative to
/// its bin directory, so these relative positions must stay as installed.
fn machine_postgres_archive() -> Vec<u8> {
    let major = std::fs::read_dir("/usr/lib/postgresql")
        .expect("this machine's PostgreSQL in /usr/lib/postgresql (Debian layout)")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| Path::new(&format!("/usr/lib/postgresql/{v}/bin/postgres")).exists())
        .max()
        .expect("a /usr/lib/postgresql/<version>/bin/postgres");
    let installed = PathBuf::from(format!("/usr/lib/postgresql/{major}"));
    let top = PathBuf::from("postgresql-test");
    let packed = top.join(format!("usr/lib/postgresql/{major}"));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for name in ["initdb", "postgres"] {
        tar.append_path_with_name(
            installed.join("bin").join(name),
            packed.join("bin").join(name),
        )
        .unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    tar.append_link(&mut link, packed.join("bin/postmaster"), "postgres")
        .unwrap();
    for entry in std::fs::read_dir(installed.join("lib")).unwrap().flatten() {
        let name = entry.file_name();
        let name = name.to_str().unwrap();
        if name == "bitcode" || name.starts_with("llvmjit") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            tar.append_dir_all(packed.join("lib").join(name), entry.path())
                .unwrap();
        } else {
            tar.append_path_with_name(entry.path(), packed.join("lib").join(name))
                .unwrap();
        }
    }
    let share = format!("usr/share/postgresql/{major}");
    tar.append_dir_all(top.join(&share), Path::new("/").join(&share))
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// The AUTHD_POSTGRES_CACHE_DIR for a test's `cache`: `<cache>/authd/postgresql`, the layout
/// of the default caches (root ignores XDG_CACHE_HOME, and the tests may run as root).
fn cache_dir_of(cache: &Path) -> String {
    cache
        .join("authd/postgresql")
        .to_string_lossy()
        .into_owned()
}

/// The environment that makes authd download from `base` into `cache_dir`, skipping this
/// machine's binaries.
fn download_env<'a>(base: &'a str, cache_dir: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("AUTHD_POSTGRES_BINDIR", "download"),
        ("AUTHD_POSTGRES_DOWNLOAD_URL", base),
        ("AUTHD_POSTGRES_CACHE_DIR", cache_dir),
    ]
}

/// The names in the download cache of a test's `cache` (see [`cache_dir_of`]), sorted.
fn cache_entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache_dir_of(cache))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `authd user list` on `dir` with `env`, off the async workers (the mirror keeps serving).
async fn authd_cli_with(dir: &DataDir, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = authd_command("unused");
    command
        .env("DATABASE_URL", "embedded")
        .env("AUTHD_DATA_DIR", dir.path())
        .envs(env.iter().copied())
        .args(["user", "list"]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_without_postgres_downloads_it_once_verifies_it_and_serves() {
    let dir = DataDir::new();
    let cache = dir.1.join("cache");
    let cache_dir = cache_dir_of(&cache);
    let archive = machine_postgres_archive();
    let checksum = format!("{}  {}.tar.gz\n", sha256_hex(&archive), archive_name());
    let mirror = Mirror::serve(archive, checksum).await;
    let env = download_env(mirror.base.as_str(), cache_dir.as_str());

    // What an interrupted download left: removed, never used.
    let partial = cache
        .join("authd/postgresql")
        .join(format!(".{}.partial-4000000", archive_name()));
    std::fs::create_dir_all(partial.join("tree/bin")).unwrap();
    std::fs::write(partial.join("archive.tar.gz"), b"half").unwrap();

    let first = Authd::start_with(&dir, &env).await;
    let pg = postmaster(&dir.pgdata()).expect("a postgres serves the data directory");
    let exe = std::fs::read_link(format!("/proc/{}/exe", pg.pid)).unwrap();
    assert!(
        exe.starts_with(cache.join("authd/postgresql").join(archive_name())),
        "postgres runs from the download cache: {}",
        exe.display()
    );
    first.register_and_login("downloaded@example.test").await;
    let stderr = first.stop_cleanly(&dir);
    let file = format!("/releases/{VERSION}/{}.tar.gz", archive_name());
    assert_eq!(
        mirror.requests(),
        vec![format!("{file}.sha256"), file],
        "the checksum, then the archive, once each"
    );
    let lines = plain_lines(stderr.as_bytes());
    let starting: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("authd: downloading PostgreSQL {VERSION} (")))
        .collect();
    assert_eq!(starting.len(), 1, "{lines:?}");
    assert!(starting[0].contains(&mirror.base), "{lines:?}");
    assert!(
        lines.iter().any(
            |l| l.starts_with(&format!("authd: downloaded PostgreSQL {VERSION} ("))
                && l.contains("verified")
        ),
        "{lines:?}"
    );
    let using: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("using an embedded PostgreSQL"))
        .collect();
    assert_eq!(using.len(), 1, "{lines:?}");
    assert!(
        using[0].contains(&format!("downloaded from {}/", mirror.base)),
        "{lines:?}"
    );
    // Complete and in place: no partial download left beside it.
    assert_eq!(
        cache_entries(&cache),
        vec![archive_name(), format!("{}.lock", archive_name())]
    );

    // The second start uses the cache without asking the mirror.
    let second = Authd::start_with(&dir, &env).await;
    assert_eq!(second.login_status("downloaded@example.test").await, 200);
    let stderr = second.stop_cleanly(&dir);
    assert_eq!(
        mirror.requests().len(),
        2,
        "no request after the first start"
    );
    let lines = plain_lines(stderr.as_bytes());
    assert!(
        !lines.iter().any(|l| l.contains("downloading")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("using an embedded PostgreSQL")
                && l.contains("downloaded earlier, from the cache")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_is_refused_and_nothing_is_cached() {
    let dir = DataDir::new();
    let cache = dir.1.join("cache");
    let cache_dir = cache_dir_of(&cache);
    let archive = b"an archive the checksum was not made for".to_vec();
    let checksum = format!(
        "{}  {}.tar.gz\n",
        sha256_hex(b"the real one"),
        archive_name()
    );
    let mirror = Mirror::serve(archive, checksum).await;
    let env = download_env(mirror.base.as_str(), cache_dir.as_str());

    let out = authd_cli_with(&dir, &env).await;
    assert_eq!(out.status.code(), Some(1));
    let lines = plain_lines(&out.stderr);
    assert_eq!(
        lines.len(),
        2,
        "the download's start, then the refusal: {lines:?}"
    );
    assert!(
        lines[0].starts_with("authd: downloading PostgreSQL"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("does not match its published SHA-256 checksum")
            && lines[1].contains("nothing was unpacked or cached"),
        "{lines:?}"
    );
    assert_eq!(mirror.requests().len(), 2);
    assert_eq!(
        cache_entries(&cache),
        vec![format!("{}.lock", archive_name())],
        "nothing cached, no partial download left"
    );
    assert!(!dir.pgdata().exists(), "no cluster was made");
}

#[test]
fn an_unreachable_download_url_is_one_line() {
    let dir = DataDir::new();
    let cache = dir.1.join("cache");
    let cache_dir = cache_dir_of(&cache);
    let base = format!("http://127.0.0.1:{}/releases", free_port());
    let line = failing_start(dir.path(), &download_env(base.as_str(), cache_dir.as_str()));
    assert!(
        line.contains(&format!("cannot download {base}/{VERSION}/")),
        "{line}"
    );
    assert!(line.contains("AUTHD_POSTGRES_DOWNLOAD_URL"), "{line}");
    assert!(line.contains("DATABASE_URL"), "{line}");
    assert_eq!(
        cache_entries(&cache),
        vec![format!("{}.lock", archive_name())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authd_starting_at_once_download_once() {
    let (one, two) = (DataDir::new(), DataDir::new());
    let cache = one.1.join("cache");
    let cache_dir = cache_dir_of(&cache);
    let archive = machine_postgres_archive();
    let checksum = format!("{}  {}.tar.gz\n", sha256_hex(&archive), archive_name());
    // The archive is sent once the second authd has taken its data directory, i.e. while it
    // is about to look at the cache the first one is filling.
    let second_started = two.path().join("authd.lock");
    let gate: Gate = Arc::new(move || second_started.exists());
    let mirror = Mirror::serve_gated(archive, checksum, gate).await;
    let env = download_env(mirror.base.as_str(), cache_dir.as_str());

    let first = authd_cli_with(&one, &env);
    let second = async {
        let asked = eventually(Duration::from_secs(30), || async {
            !mirror.requests().is_empty()
        })
        .await;
        assert!(asked, "the first authd asks the mirror");
        authd_cli_with(&two, &env).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_succeeded(&first);
    assert_succeeded(&second);
    let archives = mirror
        .requests()
        .iter()
        .filter(|p| p.ends_with(".tar.gz"))
        .count();
    assert_eq!(archives, 1, "one download for both");
    assert_eq!(
        cache_entries(&cache),
        vec![archive_name(), format!("{}.lock", archive_name())]
    );
}

/// Run as root, PostgreSQL runs as an unprivileged account, which must be able to reach the
/// cache: a cache inside a directory only root may enter is refused before any download.
#[test]
fn a_cache_the_postgres_account_cannot_enter_is_one_line() {
    use std::os::unix::fs::PermissionsExt;
    if !running_as_root() {
        return;
    }
    let dir = DataDir::new();
    let private = dir.1.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let base = format!("http://127.0.0.1:{}/releases", free_port());
    let line = failing_start(
        dir.path(),
        &download_env(base.as_str(), cache_dir_of(&private.join("cache")).as_str()),
    );
    assert!(line.contains(private.to_str().unwrap()), "{line}");
    assert!(line.contains("AUTHD_POSTGRES_CACHE_DIR"), "{line}");
}

/// A mirror on loopback http that redirects elsewhere over plain http (a downgrade or a
/// detour through a network attacker's reach) is refused: one line, nothing cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_away_from_loopback_http_is_refused() {
    let dir = DataDir::new();
    let cache = dir.1.join("cache");
    let cache_dir = cache_dir_of(&cache);
    let requests = Arc::new(Mutex::new(0_u32));
    let seen = requests.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            *seen.lock().unwrap() += 1;
            (
                StatusCode::FOUND,
                [(
                    axum::http::header::LOCATION,
                    "http://example.invalid/pg.tar.gz",
                )],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/releases", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let out = authd_cli_with(&dir, &download_env(base.as_str(), cache_dir.as_str())).await;
    server.abort();
    assert_eq!(out.status.code(), Some(1));
    let lines = plain_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("refused a redirect to http://example.invalid/"),
        "{lines:?}"
    );
    assert_eq!(
        *requests.lock().unwrap(),
        1,
        "the redirect was not followed"
    );
    assert!(!dir.pgdata().exists(), "no cluster was made");
}

/// A cache directory others may write to could hold binaries they swapped in: refused before
/// anything in it is used or downloaded, in one line.
#[test]
fn a_cache_others_may_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new();
    let cache_dir = cache_dir_of(&dir.1.join("cache"));
    std::fs::create_dir_all(&cache_dir).unwrap();
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let base = format!("http://127.0.0.1:{}/releases", free_port());
    let line = failing_start(dir.path(), &download_env(base.as_str(), cache_dir.as_str()));
    assert!(line.contains(&cache_dir), "{line}");
    assert!(line.contains("writable by its group or others"), "{line}");
    assert!(
        std::fs::read_dir(&cache_dir).unwrap().next().is_none(),
        "nothing was created in it"
    );
}

/// Plain http to another machine is refused before any request or cache: one line.
#[test]
fn a_plain_http_download_url_is_refused() {
    let dir = DataDir::new();
    let cache_dir = cache_dir_of(&dir.1.join("cache"));
    let line = failing_start(
        dir.path(),
        &download_env("http://mirror.example.invalid/releases", cache_dir.as_str()),
    );
    assert!(
        line.contains("AUTHD_POSTGRES_DOWNLOAD_URL=http://mirror.example.invalid/releases"),
        "{line}"
    );
    assert!(line.contains("only downloaded over https://"), "{line}");
    assert!(!Path::new(&cache_dir).exists(), "no cache was made");
}
