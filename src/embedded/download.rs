//! Downloading PostgreSQL's server binaries when this machine has none: the prebuilt archives
//! that `postgresql_embedded` uses (the theseus-rs/postgresql-binaries GitHub releases), one
//! pinned version, fetched once over HTTPS, checked against its published SHA-256 before
//! anything is unpacked, and cached per user.
//!
//! Cache layout (`<cache>` is [`cache_root`]): `<cache>/<version>-<target>/` is a complete
//! unpacked archive (it only appears, by a rename, once everything in it is written);
//! `<cache>/<version>-<target>.lock` serialises authd processes downloading at once;
//! `<cache>/.<version>-<target>.partial-*` is work in progress, removed by the next download
//! when an earlier one was interrupted.

use std::{
    ffi::OsString,
    fs::File,
    io::{BufReader, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Component, Path, PathBuf},
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
/// Largest total size of the files an archive may unpack to, in bytes.
const MAX_UNPACKED_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest `.sha256` file accepted, in bytes.
const MAX_CHECKSUM_BYTES: u64 = 4096;
/// How long connecting may take, and how long a download may go without receiving data.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How deep under the unpacked archive the directory with `initdb` and `postgres` may be.
const MAX_BINDIR_DEPTH: usize = 6;

/// The Rust target triple postgresql-binaries publishes archives for that matches this build
/// of authd; `None` on other platforms.
pub fn target() -> Option<&'static str> {
    if cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    )) {
        Some("x86_64-unknown-linux-gnu")
    } else if cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "musl"
    )) {
        Some("x86_64-unknown-linux-musl")
    } else if cfg!(all(
        target_os = "linux",
        target_arch = "aarch64",
        target_env = "gnu"
    )) {
        Some("aarch64-unknown-linux-gnu")
    } else if cfg!(all(
        target_os = "linux",
        target_arch = "aarch64",
        target_env = "musl"
    )) {
        Some("aarch64-unknown-linux-musl")
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        Some("aarch64-apple-darwin")
    } else if cfg!(all(target_os = "macos", target_arch = "x86_64")) {
        Some("x86_64-apple-darwin")
    } else {
        None
    }
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

/// The cache directory for downloaded PostgreSQL builds: `$XDG_CACHE_HOME/authd/postgresql`
/// (an absolute XDG_CACHE_HOME only, per the XDG base directory spec), else for root
/// `/var/cache/authd/postgresql` (root's home is usually closed to the account PostgreSQL runs
/// as), else `$HOME/.cache/authd/postgresql`. Errors: none of them applies.
pub fn cache_root(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    is_root: bool,
) -> Result<PathBuf, String> {
    let sub = Path::new("authd/postgresql");
    if let Some(xdg) = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(xdg.join(sub));
    }
    if is_root {
        return Ok(Path::new("/var/cache").join(sub));
    }
    match home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".cache").join(sub)),
        None => Err(
            "neither XDG_CACHE_HOME nor HOME is set, so there is no place to cache a \
                     downloaded PostgreSQL; set XDG_CACHE_HOME"
                .into(),
        ),
    }
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
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(root)
        .map_err(|e| format!("cannot create the download cache {}: {e}", root.display()))?;
    if let Some(account) = account
        && let Some(blocked) = user::first_unreachable(root, account)
    {
        return Err(format!(
            "authd runs as root, so PostgreSQL runs as {}, which cannot enter {} where the \
             downloaded PostgreSQL would be cached: set XDG_CACHE_HOME to a directory it may enter",
            account.name,
            blocked.display()
        ));
    }
    let name = source.name();
    let entry = root.join(&name);
    let lock = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(root.join(format!("{name}.lock")))
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
    unpack(&archive, &work.join("tree"))?;
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

/// `url` without a password in it (a mirror may be `https://user:secret@host/...`).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
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

/// Unpacks the gzip-compressed tar `archive` into `dest` (created): directories (mode 0755),
/// regular files (0755 if the archive marks them executable, else 0644, so an unprivileged
/// account can run them), and symbolic and hard links that stay inside `dest`. Errors: an
/// entry with an absolute path or `..`, a link leading outside, an entry whose path already
/// exists, more than [`MAX_UNPACKED_BYTES`], or a corrupt archive.
fn unpack(archive: &Path, dest: &Path) -> Result<(), String> {
    use tar::EntryType;
    let corrupt = |e: std::io::Error| format!("the downloaded archive is corrupt: {e}");
    let file =
        File::open(archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mkdir = |dir: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))
    };
    mkdir(dest)?;
    let mut unpacked: u64 = 0;
    let mut links: Vec<PathBuf> = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let unsafe_entry = || format!("the archive holds an unsafe path: {}", raw.display());
        let rel = safe_relative(&raw).ok_or_else(unsafe_entry)?;
        let out = dest.join(&rel);
        if through_link(dest, &rel) {
            return Err(format!(
                "the archive puts {} under a link (a way out of it)",
                rel.display()
            ));
        }
        let kind = entry.header().entry_type();
        if kind == EntryType::Directory {
            mkdir(&out)?;
            continue;
        }
        if !matches!(
            kind,
            EntryType::Regular | EntryType::Continuous | EntryType::Symlink | EntryType::Link
        ) {
            // Metadata records (pax, GNU long names are folded in by the tar crate), FIFOs and
            // devices: nothing PostgreSQL needs.
            continue;
        }
        if rel.as_os_str().is_empty() {
            return Err(unsafe_entry());
        }
        if out.symlink_metadata().is_ok() {
            return Err(format!("the archive holds {} twice", rel.display()));
        }
        if let Some(parent) = out.parent() {
            mkdir(parent)?;
        }
        let written = match kind {
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(unsafe_entry)?
                    .into_owned();
                if !link_stays_inside(&rel, &target) {
                    return Err(format!(
                        "the archive holds a link leading outside it: {} -> {}",
                        rel.display(),
                        target.display()
                    ));
                }
                links.push(rel.clone());
                std::os::unix::fs::symlink(&target, &out)
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(unsafe_entry)?
                    .into_owned();
                let target = safe_relative(&target).ok_or_else(unsafe_entry)?;
                let is_file = dest
                    .join(&target)
                    .symlink_metadata()
                    .is_ok_and(|m| m.is_file());
                if through_link(dest, &target) || !is_file {
                    return Err(format!(
                        "the archive holds a hard link to something other than a file in it: \
                         {} -> {}",
                        rel.display(),
                        target.display()
                    ));
                }
                std::fs::hard_link(dest.join(target), &out)
            }
            _ => {
                unpacked += entry.size();
                if unpacked > MAX_UNPACKED_BYTES {
                    return Err(format!(
                        "the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes"
                    ));
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                File::options()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&out)
                    .and_then(|mut file| std::io::copy(&mut entry, &mut file).map(|_| ()))
            }
        };
        written.map_err(|e| format!("cannot unpack {}: {e}", rel.display()))?;
    }
    // Each link looked inside by its text; followed through the links around it, it must be too.
    if let Some(link) = links.iter().find(|link| !resolves_inside(dest, link)) {
        return Err(format!(
            "the archive holds a link leading outside it: {}",
            link.display()
        ));
    }
    Ok(())
}

/// Whether a directory on the way to `rel` (under `dest`) is a symbolic link: writing there
/// would land wherever the link points.
fn through_link(dest: &Path, rel: &Path) -> bool {
    rel.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .any(|a| {
            dest.join(a)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
}

/// Whether `rel` (under `dest`), followed through every symbolic link on the way (at most 40,
/// as the kernel does), stays under `dest`. A missing part ends the links to follow, not the
/// check.
fn resolves_inside(dest: &Path, rel: &Path) -> bool {
    let mut todo: std::collections::VecDeque<OsString> =
        rel.iter().map(|part| part.to_os_string()).collect();
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            if !at.pop() {
                return false;
            }
            continue;
        }
        if part == "." {
            continue;
        }
        at.push(&part);
        let here = dest.join(&at);
        if !here
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            continue;
        }
        hops += 1;
        let Ok(target) = std::fs::read_link(&here) else {
            return false;
        };
        if hops > 40 || target.is_absolute() {
            return false;
        }
        at.pop();
        for step in target.iter().rev() {
            todo.push_front(step.to_os_string());
        }
    }
    true
}

/// `path` as a relative path of plain names (`./` parts dropped); `None` if it is absolute or
/// has `..` in it.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a symbolic link at `link` (relative to the archive's root) pointing to `target`
/// resolves, by its text alone, to a place inside the archive: a relative target whose `..`
/// never climbs above the root.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    let mut depth: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for part in target.components() {
        match part {
            Component::Normal(name) => depth.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
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
            redacted("https://user:hunter2@mirror.example.test/pg"),
            "https://user:redacted@mirror.example.test/pg"
        );
        assert_eq!(redacted("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
    }

    #[test]
    fn the_cache_is_per_user_and_reachable_for_root() {
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_root(some("/x/cache"), some("/home/me"), false).unwrap(),
            Path::new("/x/cache/authd/postgresql")
        );
        // A relative XDG_CACHE_HOME is ignored (XDG base directory spec).
        assert_eq!(
            cache_root(some("cache"), some("/home/me"), false).unwrap(),
            Path::new("/home/me/.cache/authd/postgresql")
        );
        assert_eq!(
            cache_root(None, some("/root"), true).unwrap(),
            Path::new("/var/cache/authd/postgresql")
        );
        let err = cache_root(None, None, false).unwrap_err();
        assert!(err.contains("XDG_CACHE_HOME"), "{err}");
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

    #[test]
    fn archive_paths_are_sanitised() {
        assert_eq!(
            safe_relative(Path::new("./postgresql/bin/postgres")),
            Some(PathBuf::from("postgresql/bin/postgres"))
        );
        assert_eq!(safe_relative(Path::new("/etc/passwd")), None);
        assert_eq!(safe_relative(Path::new("pg/../../etc/passwd")), None);
        assert_eq!(safe_relative(Path::new("..")), None);

        let link = Path::new("pg/lib/libpq.so");
        assert!(link_stays_inside(link, Path::new("libpq.so.5")));
        assert!(link_stays_inside(link, Path::new("../bin/postgres")));
        assert!(link_stays_inside(link, Path::new("../../pg/lib/x")));
        assert!(!link_stays_inside(link, Path::new("../../../etc/passwd")));
        assert!(!link_stays_inside(link, Path::new("/usr/lib/libpq.so")));
        assert!(!link_stays_inside(Path::new("top"), Path::new("..")));
    }

    /// A tar.gz of `entries` (name, kind, link target), written byte by byte to bypass the
    /// tar crate's own path checks, as a hostile archive would be.
    fn hostile_archive(dir: &Path, entries: &[(&str, tar::EntryType, &str)]) -> PathBuf {
        let path = dir.join("hostile.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut builder = tar::Builder::new(gz);
        for &(name, kind, link) in entries {
            let regular = kind == tar::EntryType::Regular;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(if regular { 3 } else { 0 });
            header.set_mode(0o644);
            let bytes = header.as_mut_bytes();
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            let data: &[u8] = if regular { b"bad" } else { b"" };
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn hostile_archives_are_refused() {
        let dir = std::env::temp_dir().join(format!("authd-unpack-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        use tar::EntryType::{Link, Regular, Symlink};
        let cases: &[&[(&str, tar::EntryType, &str)]] = &[
            &[("../escaped", Regular, "")],
            &[("/tmp/escaped", Regular, "")],
            &[("pg/lib/evil", Symlink, "../../../etc")],
            &[("pg/lib/abs", Symlink, "/etc/passwd")],
            &[("pg/hard", Link, "../etc/passwd")],
            // Lexically inside, but written through a link that points up.
            &[("d/up", Symlink, ".."), ("d/up/x/y", Symlink, "../../..")],
            // Lexically inside, but out once the links it passes through are followed.
            &[("a", Symlink, "."), ("b", Symlink, "a/a/a/../..")],
            &[("early", Symlink, "later/.."), ("later", Symlink, ".")],
            // A hard link to a link would re-aim it from another place.
            &[("pg/l", Symlink, "x"), ("h", Link, "pg/l")],
        ];
        for entries in cases {
            let archive = hostile_archive(&dir, entries);
            let dest = dir.join("tree");
            let err = unpack(&archive, &dest).unwrap_err();
            assert!(
                err.contains("unsafe path")
                    || err.contains("outside")
                    || err.contains("under a link")
                    || err.contains("hard link"),
                "{entries:?}: {err}"
            );
            assert!(!dir.join("escaped").exists());
            let _ = std::fs::remove_dir_all(&dest);
        }
        // Links inside, however they get there, are fine.
        let fine: &[(&str, tar::EntryType, &str)] = &[
            ("pg/lib/libpq.so.5", Regular, ""),
            ("pg/lib/libpq.so", Symlink, "libpq.so.5"),
            ("pg/bin/postmaster", Symlink, "../lib/libpq.so"),
            ("pg/here", Symlink, "."),
            ("pg/copy", Link, "pg/lib/libpq.so.5"),
        ];
        let dest = dir.join("tree");
        unpack(&hostile_archive(&dir, fine), &dest).unwrap();
        assert_eq!(
            std::fs::read(dest.join("pg/bin/postmaster")).unwrap(),
            b"bad"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
