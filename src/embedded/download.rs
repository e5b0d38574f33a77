//! Downloading PostgreSQL's server binaries when this machine has none: the prebuilt archives
//! that `postgresql_embedded` uses (the theseus-rs/postgresql-binaries GitHub releases), one
//! pinned version, fetched once over HTTPS, checked against its published SHA-256 before
//! anything is unpacked, and cached per user.
//!
//! Cache layout (`<cache>` is [`cache_root`]): `<cache>/<version>-<target>/` is a complete
//! unpacked archive (it only appears, by a rename, once everything in it is written);
//! `<cache>/<version>-<target>.lock` serialises authd processes downloading at once;
//! `<cache>/.<version>-<target>.partial-*` is work in progress, removed by the next download
//! when an earlier one was interrupted. Unpacking is [`super::unpack`]'s.

use std::{
    ffi::OsString,
    fs::File,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aws_lc_rs::digest;

use super::user::{self, Account};

/// The postgresql-binaries release authd downloads: `<PostgreSQL major>.<minor>.<build>`.
pub const VERSION: &str = "17.5.0";
/// The PostgreSQL major version of [`VERSION`] (what a cluster it made records in PG_VERSION).
pub const MAJOR: &str = "17";
/// Where [`VERSION`] is published; AUTHD_POSTGRES_DOWNLOAD_URL replaces it.
pub const DEFAULT_BASE_URL: &str =
    "https://github.com/theseus-rs/postgresql-binaries/releases/download";

/// Largest archive accepted, in bytes (the real ones are tens of MiB).
const MAX_ARCHIVE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest `.sha256` file accepted, in bytes.
const MAX_CHECKSUM_BYTES: u64 = 4096;
/// How long connecting may take, and how long a download may go without receiving data.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How deep under the unpacked archive the directory with `initdb` and `postgres` may be.
const MAX_BINDIR_DEPTH: usize = 6;

/// The targets postgresql-binaries publishes archives for that authd supports: `(OS, arch,
/// C library, Rust target triple)`, the first three as `std::env::consts` and `target_env`
/// name them.
const PUBLISHED: [(&str, &str, &str, &str); 6] = [
    ("linux", "x86_64", "gnu", "x86_64-unknown-linux-gnu"),
    ("linux", "x86_64", "musl", "x86_64-unknown-linux-musl"),
    ("linux", "aarch64", "gnu", "aarch64-unknown-linux-gnu"),
    ("linux", "aarch64", "musl", "aarch64-unknown-linux-musl"),
    ("macos", "aarch64", "", "aarch64-apple-darwin"),
    ("macos", "x86_64", "", "x86_64-apple-darwin"),
];

/// The target triple of this build of authd if archives are published for it; `None` on
/// other platforms.
pub fn target() -> Option<&'static str> {
    let libc = if cfg!(target_env = "gnu") {
        "gnu"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else {
        ""
    };
    published(std::env::consts::OS, std::env::consts::ARCH, libc)
}

/// The triple [`PUBLISHED`] for this OS, architecture and C library.
fn published(os: &str, arch: &str, libc: &str) -> Option<&'static str> {
    PUBLISHED
        .iter()
        .find(|t| (t.0, t.1, t.2) == (os, arch, libc))
        .map(|t| t.3)
}

/// One archive to fetch: `base_url` (no trailing `/`), the release `version` and the target
/// triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub base_url: String,
    pub version: String,
    pub target: String,
}

impl Source {
    /// The pinned [`VERSION`] for this platform from `base_url`; `None` when no archive is
    /// published for this platform (see [`target`]).
    pub fn pinned(base_url: &str) -> Option<Self> {
        Some(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            version: VERSION.to_string(),
            target: target()?.to_string(),
        })
    }

    /// `postgresql-<version>-<target>`: the archive's name without `.tar.gz`, and the name of
    /// the cache entry.
    pub fn name(&self) -> String {
        format!("postgresql-{}-{}", self.version, self.target)
    }

    /// `<base>/<version>/postgresql-<version>-<target>.tar.gz`.
    pub fn archive_url(&self) -> String {
        format!("{}/{}/{}.tar.gz", self.base_url, self.version, self.name())
    }

    /// The archive's URL with `.sha256` appended: its checksum, `<hex digest>  <file name>`.
    pub fn checksum_url(&self) -> String {
        format!("{}.sha256", self.archive_url())
    }
}

/// The cache directory for downloaded PostgreSQL builds: AUTHD_POSTGRES_CACHE_DIR
/// (`override_dir`, absolute) when set; else for root `/var/cache/authd/postgresql` (root
/// ignores XDG_CACHE_HOME and HOME, which another user may have chosen, and its home is usually
/// closed to the account PostgreSQL runs as); else `$XDG_CACHE_HOME/authd/postgresql` (an
/// absolute XDG_CACHE_HOME only, per the XDG base directory spec), else
/// `$HOME/.cache/authd/postgresql`. Errors: none of them applies, or a relative override.
pub fn cache_root(
    override_dir: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    is_root: bool,
) -> Result<PathBuf, String> {
    if let Some(dir) = override_dir.map(PathBuf::from) {
        return if dir.is_absolute() {
            Ok(dir)
        } else {
            Err(format!(
                "AUTHD_POSTGRES_CACHE_DIR={} must be an absolute path",
                dir.display()
            ))
        };
    }
    let sub = Path::new("authd/postgresql");
    if is_root {
        return Ok(Path::new("/var/cache").join(sub));
    }
    if let Some(xdg) = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(xdg.join(sub));
    }
    match home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".cache").join(sub)),
        None => Err(
            "neither XDG_CACHE_HOME nor HOME is set, so there is no place to cache a \
                     downloaded PostgreSQL; set AUTHD_POSTGRES_CACHE_DIR"
                .into(),
        ),
    }
}

/// Checks that `path`, when it exists, is trusted as part of the cache of a process with
/// effective uid `euid`: owned by `euid`, not a symbolic link, not writable by its group or
/// others (whoever could write there could swap the binaries authd runs). Errors: one line.
pub fn check_cache_path(path: &Path, euid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    let problem = if meta.file_type().is_symlink() {
        "is a symbolic link".to_string()
    } else if meta.uid() != euid {
        format!("is owned by uid {}, not by authd's uid {euid}", meta.uid())
    } else if meta.mode() & 0o022 != 0 {
        "is writable by its group or others".to_string()
    } else {
        return Ok(());
    };
    Err(format!(
        "the PostgreSQL download cache path {} {problem}, so authd does not trust what it \
         holds; fix or remove it, or set AUTHD_POSTGRES_CACHE_DIR",
        path.display()
    ))
}

/// The directories of the cache under `root` that authd creates or uses: `root`, and its
/// parent when that is the `authd` directory of [`cache_root`]'s layouts.
fn cache_dirs(root: &Path) -> Vec<&Path> {
    let mut dirs = vec![root];
    if root.ends_with("authd/postgresql")
        && let Some(parent) = root.parent()
    {
        dirs.insert(0, parent);
    }
    dirs
}

/// Where [`ensure`] found the binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded now, from this URL (credentials removed).
    Downloaded(String),
    /// From the cache, downloaded by an earlier start.
    Cached,
}

/// The bin directory of `source` in the cache under `root`, downloading, verifying and
/// unpacking it first unless an earlier start did. Blocks (run it off the async workers);
/// `runtime` runs the HTTP requests. Another authd doing the same waits for this one, then
/// uses its result. Prints one line when a download starts and one when it is done.
///
/// `account` is who PostgreSQL will run as when authd runs as root: it must be able to enter
/// the cache (checked before downloading).
///
/// Errors (one line each): the cache cannot be created or locked, or `account` cannot enter
/// it; the server cannot be reached, answers with an error status, or sends more than the size
/// cap; the checksum file is malformed or does not match the archive (nothing is cached then);
/// the archive holds an absolute path, `..`, a link leading outside itself, or no `initdb` and
/// `postgres`.
pub fn ensure(
    source: &Source,
    root: &Path,
    account: Option<&Account>,
    runtime: &tokio::runtime::Handle,
) -> Result<(PathBuf, Fetched), String> {
    check_base_url(&source.base_url)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(root)
        .map_err(|e| format!("cannot create the download cache {}: {e}", root.display()))?;
    let euid = user::effective_uid();
    for dir in cache_dirs(root) {
        check_cache_path(dir, euid)?;
    }
    if let Some(account) = account
        && let Some(blocked) = user::first_unreachable(root, account)
    {
        return Err(format!(
            "authd runs as root, so PostgreSQL runs as {}, which cannot enter {} where the \
             downloaded PostgreSQL would be cached: set AUTHD_POSTGRES_CACHE_DIR to a directory it may \
             enter",
            account.name,
            blocked.display()
        ));
    }
    let name = source.name();
    let entry = root.join(&name);
    let lock_path = root.join(format!("{name}.lock"));
    check_cache_path(&lock_path, euid)?;
    check_cache_path(&entry, euid)?;
    let lock = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| format!("cannot lock the download cache {}: {e}", root.display()))?;
    if entry.is_dir() {
        match find_bindir(&entry) {
            Ok(bindir) => return Ok((bindir, Fetched::Cached)),
            // Damaged by hand (entries appear complete, by rename): fetch it again.
            Err(_) => std::fs::remove_dir_all(&entry)
                .map_err(|e| format!("cannot replace {}: {e}", entry.display()))?,
        }
    }
    remove_partials(root, &name);
    let work = root.join(format!(".{name}.partial-{}", std::process::id()));
    let result = download_into(source, &work, runtime).and_then(|()| {
        let tree = work.join("tree");
        find_bindir(&tree)?;
        std::fs::rename(&tree, &entry)
            .map_err(|e| format!("cannot move the download into {}: {e}", entry.display()))
    });
    let _ = std::fs::remove_dir_all(&work);
    drop(lock);
    result?;
    Ok((
        find_bindir(&entry)?,
        Fetched::Downloaded(redacted(&source.archive_url())),
    ))
}

/// Downloads the checksum and the archive into `work`, verifies the archive, and unpacks it
/// into `work/tree`.
fn download_into(
    source: &Source,
    work: &Path,
    runtime: &tokio::runtime::Handle,
) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(work)
        .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let archive = work.join("archive.tar.gz");
    let url = redacted(&source.archive_url());
    let started = Instant::now();
    let (bytes, actual) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let checksum_url = source.checksum_url();
        let mut checksum = Vec::new();
        let response = open(&client, &checksum_url, MAX_CHECKSUM_BYTES).await?;
        read_body(response, &checksum_url, MAX_CHECKSUM_BYTES, |chunk| {
            checksum.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        let expected = parse_checksum(&checksum)
            .ok_or_else(|| format!("{} is not a SHA-256 checksum", redacted(&checksum_url)))?;
        let response = open(&client, &source.archive_url(), MAX_ARCHIVE_BYTES).await?;
        eprintln!(
            "authd: downloading PostgreSQL {}{} from {url} (once; later starts use the cache)",
            source.version,
            response
                .content_length()
                .map(|len| format!(" ({})", mebibytes(len)))
                .unwrap_or_default()
        );
        let mut file = File::create(&archive)
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
        let mut sha = digest::Context::new(&digest::SHA256);
        let bytes = read_body(
            response,
            &source.archive_url(),
            MAX_ARCHIVE_BYTES,
            |chunk| {
                sha.update(chunk);
                file.write_all(chunk)
                    .map_err(|e| format!("cannot write {}: {e}", archive.display()))
            },
        )
        .await?;
        file.sync_all()
            .map_err(|e| format!("cannot write {}: {e}", archive.display()))?;
        let actual = hex(sha.finish().as_ref());
        if actual != expected {
            return Err(format!(
                "the archive from {url} does not match its published SHA-256 checksum \
                 (expected {expected}, got {actual}); nothing was unpacked or cached"
            ));
        }
        Ok((bytes, actual))
    })?;
    super::unpack::unpack(&archive, &work.join("tree"))?;
    eprintln!(
        "authd: downloaded PostgreSQL {} ({} in {:.1} s, SHA-256 {actual} verified)",
        source.version,
        mebibytes(bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `12.3 MiB`.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// GETs `url` and returns the response once its status is 2xx. Errors: no answer, another
/// status, or an announced length above `max` bytes.
async fn open(client: &reqwest::Client, url: &str, max: u64) -> Result<reqwest::Response, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot download {}: {}", redacted(url), error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!(
            "cannot download {}: the server answered {}",
            redacted(url),
            response.status()
        ));
    }
    if response.content_length().is_some_and(|len| len > max) {
        return Err(format!(
            "cannot download {}: larger than {max} bytes",
            redacted(url)
        ));
    }
    Ok(response)
}

/// Hands each chunk of `response`'s body (from `url`) to `sink`; returns the body's length.
/// Errors: the transfer fails or stalls, the body grows past `max` bytes, or `sink` fails.
async fn read_body(
    mut response: reqwest::Response,
    url: &str,
    max: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    let mut total: u64 = 0;
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| format!("cannot download {}: {}", redacted(url), error_chain(&e)))?;
        let Some(chunk) = chunk else {
            return Ok(total);
        };
        total += chunk.len() as u64;
        if total > max {
            return Err(format!(
                "cannot download {}: larger than {max} bytes",
                redacted(url)
            ));
        }
        sink(&chunk)?;
    }
}

/// An error and its sources, `: `-separated, without the URL reqwest puts in its own message
/// (the caller names it, without credentials).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `url` with its username, password and query replaced by `redacted` (a mirror may be
/// `https://token@host/...` or `https://host/...?token=...`); a URL that does not parse is
/// replaced whole, since it may hold anything.
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an invalid URL)".into();
    };
    if !parsed.username().is_empty() {
        let _ = parsed.set_username("redacted");
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("redacted"));
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("redacted"));
    }
    parsed.to_string()
}

/// Checks AUTHD_POSTGRES_DOWNLOAD_URL: `https://`, or `http://` to a loopback host
/// (`localhost`, `127.0.0.0/8`, `::1`: tests and a mirror on this machine), since the
/// `.sha256` comes from the same server and only HTTPS makes the download trustworthy.
/// Errors: one line naming the (redacted) URL.
pub fn check_base_url(base_url: &str) -> Result<(), String> {
    let allowed = url::Url::parse(base_url).is_ok_and(|url| may_fetch(&url, true));
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "AUTHD_POSTGRES_DOWNLOAD_URL={} is refused: PostgreSQL is only downloaded over \
             https:// (http:// only from localhost or a loopback address)",
            redacted(base_url)
        ))
    }
}

/// Whether a download may be fetched from `url`: over https, or over http from a loopback
/// host when `http_allowed` (the download did not start over https).
fn may_fetch(url: &url::Url, http_allowed: bool) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" if http_allowed => match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Follows at most [`MAX_REDIRECTS`] redirects, each to a URL [`may_fetch`] allows; once a
/// request started over https, never to http (no downgrade).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let started_https = attempt
            .previous()
            .first()
            .is_none_or(|first| first.scheme() == "https");
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if may_fetch(attempt.url(), !started_https) {
            attempt.follow()
        } else {
            let to = redacted(attempt.url().as_str());
            attempt.error(format!(
                "refused a redirect to {to} (only https, or http between loopback addresses)"
            ))
        }
    })
}

/// The lowercase hex digest at the start of a `.sha256` file (`<hex>  <name>`, `<hex>`, or
/// certutil's output with the digest on its own line); `None` when there is none.
fn parse_checksum(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    text.split_whitespace()
        .find(|word| word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes what interrupted downloads of `name` left under `root` (the caller holds the lock).
fn remove_partials(root: &Path, name: &str) {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The directory holding `initdb` and `postgres` in an unpacked archive: `<name>/bin` in the
/// postgresql-binaries archives, found by a breadth-first search so that a mirror's archive may
/// keep another layout (e.g. Debian's `usr/lib/postgresql/<v>/bin`, whose `share` lives four
/// levels up). Errors: none within [`MAX_BINDIR_DEPTH`] levels.
fn find_bindir(tree: &Path) -> Result<PathBuf, String> {
    let mut level = vec![tree.to_path_buf()];
    for _ in 0..=MAX_BINDIR_DEPTH {
        if let Some(found) = level
            .iter()
            .find(|d| super::binaries::has_server_binaries(d))
        {
            return Ok(found.clone());
        }
        let mut next: Vec<PathBuf> = level
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.filter_map(Result::ok))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        next.sort();
        level = next;
    }
    Err(format!(
        "the downloaded archive has no directory with `initdb` and `postgres` (in {})",
        tree.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_release_layout() {
        let source = Source {
            base_url: "https://mirror.example.test/pg/"
                .trim_end_matches('/')
                .into(),
            version: "17.5.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
        };
        assert_eq!(
            source.archive_url(),
            "https://mirror.example.test/pg/17.5.0/postgresql-17.5.0-x86_64-unknown-linux-gnu.tar.gz"
        );
        assert_eq!(
            source.checksum_url(),
            "https://mirror.example.test/pg/17.5.0/postgresql-17.5.0-x86_64-unknown-linux-gnu.tar.gz.sha256"
        );
        let pinned = Source::pinned(&format!("{DEFAULT_BASE_URL}/"));
        if let Some(pinned) = pinned {
            assert!(
                pinned.archive_url().starts_with(&format!(
                    "https://github.com/theseus-rs/postgresql-binaries/releases/download/{VERSION}/postgresql-{VERSION}-"
                )),
                "{}",
                pinned.archive_url()
            );
        }
        assert!(VERSION.starts_with(&format!("{MAJOR}.")));
        assert_eq!(
            published("linux", "aarch64", "musl"),
            Some("aarch64-unknown-linux-musl")
        );
        assert_eq!(
            published("macos", "aarch64", ""),
            Some("aarch64-apple-darwin")
        );
        assert_eq!(published("freebsd", "x86_64", ""), None);
        assert_eq!(published("linux", "riscv64", "gnu"), None);
        assert_eq!(
            redacted("https://user:hunter2@mirror.example.test/pg"),
            "https://redacted:redacted@mirror.example.test/pg"
        );
        assert_eq!(redacted("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
    }

    #[test]
    fn redaction_hides_usernames_passwords_and_queries() {
        assert_eq!(
            redacted("https://ghp_token123@mirror.example.test/pg"),
            "https://redacted@mirror.example.test/pg"
        );
        assert_eq!(
            redacted("https://mirror.example.test/pg?token=s3cret"),
            "https://mirror.example.test/pg?redacted"
        );
        assert_eq!(redacted("not a url s3cret"), "(an invalid URL)");
    }

    #[test]
    fn only_https_or_loopback_http_is_downloaded_from() {
        for ok in [
            "https://mirror.example.test/pg",
            "http://localhost:8080/pg",
            "http://127.0.0.1:9/releases",
            "http://127.3.4.5/x",
            "http://[::1]:9/x",
        ] {
            assert_eq!(check_base_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://mirror.example.test/pg",
            "http://user:hunter2@10.0.0.1/pg",
            "ftp://127.0.0.1/pg",
            "file:///srv/pg",
            "mirror.example.test/pg",
        ] {
            let err = check_base_url(refused).unwrap_err();
            assert!(err.contains("only downloaded over https://"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert_eq!(err.lines().count(), 1);
        }
        // A redirect from https never goes back to http, even to loopback.
        let local = url::Url::parse("http://127.0.0.1/x").unwrap();
        assert!(may_fetch(&local, true));
        assert!(!may_fetch(&local, false));
    }

    #[test]
    fn the_cache_is_per_user_and_reachable_for_root() {
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_root(None, some("/x/cache"), some("/home/me"), false).unwrap(),
            Path::new("/x/cache/authd/postgresql")
        );
        // A relative XDG_CACHE_HOME is ignored (XDG base directory spec).
        assert_eq!(
            cache_root(None, some("cache"), some("/home/me"), false).unwrap(),
            Path::new("/home/me/.cache/authd/postgresql")
        );
        // Root ignores XDG_CACHE_HOME and HOME (another user may have set them).
        assert_eq!(
            cache_root(None, some("/home/me/.cache"), some("/home/me"), true).unwrap(),
            Path::new("/var/cache/authd/postgresql")
        );
        assert_eq!(
            cache_root(some("/srv/pg-cache"), some("/x/cache"), None, true).unwrap(),
            Path::new("/srv/pg-cache")
        );
        assert!(cache_root(some("rel"), None, None, true).is_err());
        let err = cache_root(None, None, None, false).unwrap_err();
        assert!(err.contains("AUTHD_POSTGRES_CACHE_DIR"), "{err}");
        assert_eq!(
            cache_dirs(Path::new("/var/cache/authd/postgresql")),
            vec![
                Path::new("/var/cache/authd"),
                Path::new("/var/cache/authd/postgresql")
            ]
        );
        assert_eq!(
            cache_dirs(Path::new("/srv/pg-cache")),
            vec![Path::new("/srv/pg-cache")]
        );
    }

    #[test]
    fn a_cache_path_is_trusted_only_when_owned_and_private_to_authd() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("authd-cache-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap();
        let dir = base.join("postgresql");
        let euid = user::effective_uid();
        let mode = |m| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m));
        let missing = check_cache_path(&dir, euid);
        std::fs::create_dir(&dir).unwrap();
        mode(0o755).unwrap();
        let private = check_cache_path(&dir, euid);
        let other_owner = check_cache_path(&dir, euid.wrapping_add(1));
        mode(0o775).unwrap();
        let group_writable = check_cache_path(&dir, euid);
        mode(0o757).unwrap();
        let world_writable = check_cache_path(&dir, euid);
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let symlink = check_cache_path(&link, euid);
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(missing, Ok(()));
        assert_eq!(private, Ok(()));
        for (err, what) in [
            (other_owner, "is owned by uid"),
            (group_writable, "writable by its group or others"),
            (world_writable, "writable by its group or others"),
            (symlink, "is a symbolic link"),
        ] {
            let err = err.unwrap_err();
            assert!(err.contains(what), "{err}");
            assert_eq!(err.lines().count(), 1);
        }
    }

    #[test]
    fn checksum_files_in_the_published_formats() {
        let digest = "A".repeat(64);
        let lower = "a".repeat(64);
        assert_eq!(
            parse_checksum(format!("{digest}  postgresql.tar.gz\n").as_bytes()),
            Some(lower.clone())
        );
        assert_eq!(
            parse_checksum(format!("SHA256 hash of x:\r\n{lower}\r\nCertUtil: done").as_bytes()),
            Some(lower)
        );
        assert_eq!(parse_checksum(b"<html>not found</html>"), None);
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
