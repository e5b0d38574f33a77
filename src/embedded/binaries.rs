//! Finding PostgreSQL's server binaries (`initdb`, `postgres`) on this machine (when there
//! are none, `super::download` fetches a build).

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use super::user::Account;

/// Where to look, in order (see [`Search::candidates`]).
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// AUTHD_POSTGRES_BINDIR: when set, the only place looked at.
    pub override_dir: Option<PathBuf>,
    /// What `pg_config --bindir` printed, when `pg_config` is on PATH.
    pub pg_config_bindir: Option<PathBuf>,
    /// The directories of PATH, in order.
    pub path: Vec<PathBuf>,
    /// The file system root the well-known locations are under (`/`; a test tree in tests).
    pub root: PathBuf,
}

impl Search {
    /// This machine: AUTHD_POSTGRES_BINDIR (`override_dir`), `pg_config --bindir`, PATH, `/`.
    pub fn from_machine(override_dir: Option<PathBuf>) -> Self {
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let pg_config_bindir = if override_dir.is_some() {
            None
        } else {
            std::process::Command::new("pg_config")
                .arg("--bindir")
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|s| PathBuf::from(s.trim()))
                .filter(|p| p.is_absolute())
        };
        Self {
            override_dir,
            pg_config_bindir,
            path,
            root: PathBuf::from("/"),
        }
    }

    /// Directories that may hold the binaries, most preferred first: AUTHD_POSTGRES_BINDIR
    /// alone when set; else `pg_config --bindir`, the directories of PATH, then the usual
    /// install locations, each family with its highest version first:
    /// `/usr/lib/postgresql/<v>/bin` (Debian, Ubuntu), `/usr/pgsql-<v>/bin` (PGDG RPMs),
    /// `/usr/local/pgsql/bin` (built from source), Homebrew's `/opt/homebrew/opt/postgresql@<v>/bin`
    /// and `/usr/local/opt/postgresql@<v>/bin` (and their unversioned `postgresql`).
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.override_dir {
            return vec![dir.clone()];
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        dirs.extend(self.pg_config_bindir.clone());
        dirs.extend(self.path.iter().cloned());
        let under = |p: &str| self.root.join(p);
        dirs.extend(
            versioned(&under("usr/lib/postgresql"), "")
                .into_iter()
                .map(|d| d.join("bin")),
        );
        dirs.extend(
            versioned(&under("usr"), "pgsql-")
                .into_iter()
                .map(|d| d.join("bin")),
        );
        dirs.push(under("usr/local/pgsql/bin"));
        for brew in ["opt/homebrew/opt", "usr/local/opt"] {
            let brew = under(brew);
            dirs.extend(
                versioned(&brew, "postgresql@")
                    .into_iter()
                    .map(|d| d.join("bin")),
            );
            dirs.push(brew.join("postgresql/bin"));
        }
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        dirs
    }

    /// The first candidate holding both `initdb` and `postgres`; the error lists where it
    /// looked (the caller says what to do about it).
    pub fn find(&self) -> Result<PathBuf, String> {
        let candidates = self.candidates();
        if let Some(dir) = candidates.iter().find(|d| has_server_binaries(d)) {
            return Ok(dir.clone());
        }
        if let Some(dir) = &self.override_dir {
            return Err(format!(
                "AUTHD_POSTGRES_BINDIR={} holds no `initdb` and `postgres`",
                dir.display()
            ));
        }
        let looked: Vec<String> = candidates
            .iter()
            .filter(|d| !self.path.contains(d))
            .map(|d| d.display().to_string())
            .collect();
        Err(format!(
            "no PostgreSQL server binaries (`initdb`, `postgres`) found on PATH or in {}",
            looked.join(", ")
        ))
    }
}

impl Search {
    /// Like [`Self::find`], for an existing cluster made by PostgreSQL `major` (its
    /// `PG_VERSION`): the first candidate whose `postgres --version` is that major version,
    /// since a cluster only runs with the binaries of the version that made it. `account`:
    /// whom to run `--version` as (see [`server_major`]).
    pub fn find_major(&self, major: &str, account: Option<&Account>) -> Result<PathBuf, String> {
        let found: Vec<(PathBuf, Option<String>)> = self
            .candidates()
            .into_iter()
            .filter(|d| has_server_binaries(d))
            .map(|d| {
                let version = server_major(&d, account);
                (d, version)
            })
            .collect();
        if found.is_empty() {
            return self.find();
        }
        if let Some((dir, _)) = found.iter().find(|(_, v)| v.as_deref() == Some(major)) {
            return Ok(dir.clone());
        }
        let others: Vec<String> = found
            .iter()
            .map(|(d, v)| format!("{} in {}", v.as_deref().unwrap_or("unknown"), d.display()))
            .collect();
        Err(format!(
            "the embedded database was made by PostgreSQL {major}, and only other versions were \
             found ({}); install PostgreSQL {major} or set AUTHD_POSTGRES_BINDIR to its bin \
             directory",
            others.join(", ")
        ))
    }
}

/// The major version of the `postgres` binary in `dir` (`15`, `9.6`), from `--version`, run
/// as `account` (the unprivileged account PostgreSQL runs as when authd is root). Never run as
/// root: a binary from a download or from PATH is not trusted with root's rights, so as root
/// without an account the version is unknown (`None`), like when it cannot run.
pub fn server_major(dir: &Path, account: Option<&Account>) -> Option<String> {
    let mut cmd = std::process::Command::new(dir.join("postgres"));
    match account {
        Some(account) => {
            account.run_as(&mut cmd);
        }
        None if super::user::effective_uid() == 0 => return None,
        None => {}
    }
    let out = cmd
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_major(&String::from_utf8_lossy(&out.stdout))
}

/// `postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)` → `15`; `... 9.6.24` → `9.6`;
/// `... 17beta1` → `17`.
fn parse_major(version: &str) -> Option<String> {
    let number: String = version
        .split("(PostgreSQL) ")
        .nth(1)?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = number.split('.').filter(|p| !p.is_empty());
    let first = parts.next()?;
    match first.parse::<u32>().ok()? {
        major if major >= 10 => Some(first.to_string()),
        _ => Some(format!("{first}.{}", parts.next()?)),
    }
}

/// Whether `dir` holds executable `initdb` and `postgres` files.
pub fn has_server_binaries(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    ["initdb", "postgres"].iter().all(|name| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Entries of `parent` named `<prefix><version>` (a version like `15`, `9.6`, `16.2`), highest
/// version first. A missing or unreadable `parent` has none.
fn versioned(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let version = parse_version(OsStr::to_str(&name)?.strip_prefix(prefix)?)?;
            Some((version, e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// `15` → `[15]`, `9.6` → `[9, 6]`; anything else (`main`, ``, `15beta`) is not a version.
fn parse_version(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bindir(root: &Path, rel: &str) -> PathBuf {
        fake_bindir_of(root, rel, "16.1")
    }

    /// `initdb` and `postgres` scripts; `postgres --version` prints `version`.
    fn fake_bindir_of(root: &Path, rel: &str, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["initdb", "postgres"] {
            let file = dir.join(name);
            let script = format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n");
            std::fs::write(&file, script).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    struct TempTree(PathBuf);
    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn temp_tree() -> TempTree {
        let dir = std::env::temp_dir().join(format!("authd-bins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempTree(dir)
    }

    #[test]
    fn versions_sort_numerically_highest_first() {
        let tree = temp_tree();
        let root = &tree.0;
        for v in ["9.6", "10", "15", "main"] {
            fake_bindir(root, &format!("usr/lib/postgresql/{v}/bin"));
        }
        let search = Search {
            root: root.clone(),
            ..Search::default()
        };
        let candidates = search.candidates();
        let debian: Vec<_> = candidates
            .iter()
            .filter(|d| d.starts_with(root.join("usr/lib/postgresql")))
            .collect();
        assert_eq!(
            debian,
            ["15", "10", "9.6"]
                .map(|v| root.join(format!("usr/lib/postgresql/{v}/bin")))
                .iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(
            search.find().unwrap(),
            root.join("usr/lib/postgresql/15/bin")
        );
    }

    #[test]
    fn pg_config_then_path_then_well_known_places() {
        let tree = temp_tree();
        let root = &tree.0;
        let debian = fake_bindir(root, "usr/lib/postgresql/16/bin");
        let pgdg = fake_bindir(root, "usr/pgsql-17/bin");
        let brew = fake_bindir(root, "opt/homebrew/opt/postgresql@14/bin");
        let source = fake_bindir(root, "usr/local/pgsql/bin");
        let on_path = fake_bindir(root, "home/me/pg/bin");
        let from_pg_config = fake_bindir(root, "srv/pg/bin");
        let not_a_bindir = root.join("usr/bin");
        std::fs::create_dir_all(&not_a_bindir).unwrap();
        let mut search = Search {
            override_dir: None,
            pg_config_bindir: Some(from_pg_config.clone()),
            path: vec![not_a_bindir.clone(), on_path.clone()],
            root: root.clone(),
        };
        let order: Vec<_> = search
            .candidates()
            .into_iter()
            .filter(|d| has_server_binaries(d))
            .collect();
        assert_eq!(
            order,
            vec![
                from_pg_config.clone(),
                on_path.clone(),
                debian,
                pgdg,
                source,
                brew
            ]
        );
        assert_eq!(search.find().unwrap(), from_pg_config);
        search.pg_config_bindir = None;
        assert_eq!(search.find().unwrap(), on_path);
        // The override is the only place looked at, found or not.
        search.override_dir = Some(not_a_bindir.clone());
        assert_eq!(search.candidates(), vec![not_a_bindir]);
        let err = search.find().unwrap_err();
        assert!(err.starts_with("AUTHD_POSTGRES_BINDIR="), "{err}");
    }

    #[test]
    fn an_existing_cluster_gets_the_binaries_of_its_major_version() {
        let tree = temp_tree();
        let root = &tree.0;
        fake_bindir_of(root, "usr/lib/postgresql/16/bin", "16.4 (Debian 16.4-1)");
        let fifteen = fake_bindir_of(root, "usr/pgsql-15/bin", "15.8");
        let search = Search {
            root: root.clone(),
            ..Search::default()
        };
        // As root, `--version` runs as an unprivileged account (a uid/gid matching nobody on
        // the machine: the scripts are 0755 under 0755 directories), never as root itself.
        let stranger = Account {
            name: "stranger".into(),
            uid: 4_000_000,
            gid: 4_000_000,
        };
        let account = (crate::embedded::user::effective_uid() == 0).then_some(&stranger);
        if account.is_some() {
            assert_eq!(server_major(&fifteen, None), None, "never run as root");
        }
        assert_eq!(server_major(&fifteen, account), Some("15".into()));
        assert_eq!(search.find_major("15", account).unwrap(), fifteen);
        let err = search.find_major("14", account).unwrap_err();
        assert!(err.contains("PostgreSQL 14"), "{err}");
        assert!(err.contains("16 in "), "{err}");
        assert_eq!(
            parse_major("postgres (PostgreSQL) 9.6.24"),
            Some("9.6".into())
        );
        assert_eq!(
            parse_major("postgres (PostgreSQL) 17beta1"),
            Some("17".into())
        );
        assert_eq!(parse_major("something else"), None);
    }

    #[test]
    fn nothing_found_says_where_it_looked_and_what_to_do() {
        let tree = temp_tree();
        let search = Search {
            root: tree.0.clone(),
            ..Search::default()
        };
        let err = search.find().unwrap_err();
        assert!(err.contains("usr/local/pgsql/bin"), "{err}");
        assert!(err.contains("PATH"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}
