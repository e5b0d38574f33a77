//! Files and directories inside the data directory, opened so that a planted symbolic link,
//! a file of someone else's or a huge file cannot make authd (root, possibly) write, hand over
//! or read anything outside it.
//!
//! The rule they serve: the data directory belongs to the user authd runs as and only that
//! user may write it, so its entries (`authd.lock`, `postgres.log`, `pgdata/`, `run/`) are what
//! authd made; only `pgdata/` and `run/` belong to the account PostgreSQL runs as, and what is
//! inside them is read with a bound and never through a link.

use std::{
    fs::{DirBuilder, File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

use super::user::{Account, effective_uid};

/// The most read from a file of the data directory (PG_VERSION, postmaster.pid, authd.lock,
/// the tail of postgres.log), in bytes.
pub const READ_LIMIT: u64 = 64 * 1024;

/// Opens `path` with `options`, failing (ELOOP) when its last component is a symbolic link.
pub fn open_nofollow(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    options.custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Opens (or creates, per `options`) a regular file of this process's user, not through a
/// link. Errors: a link, not a regular file, or owned by another user.
pub fn open_own_file(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = open_nofollow(path, options)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != effective_uid() {
        return Err(std::io::Error::other(
            "not a regular file of the user authd runs as",
        ));
    }
    Ok(file)
}

/// The first [`READ_LIMIT`] bytes of `path` (not through a link), invalid UTF-8 replaced.
pub fn read_bounded(path: &Path) -> std::io::Result<String> {
    let file = open_nofollow(path, OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last [`READ_LIMIT`] bytes of `path` (not through a link), invalid UTF-8 replaced.
pub fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = open_nofollow(path, OpenOptions::new().read(true))?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(READ_LIMIT)))?;
    let mut bytes = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Makes `path` a directory of `account` (or of this process's user when `None`), mode 0700:
/// created if missing, then changed through a handle opened without following a link, so a
/// link planted there is refused, never followed. Errors: one line naming `path`.
pub fn account_dir(path: &Path, account: Option<&Account>) -> Result<(), String> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(format!("cannot create {}: {e}", path.display()));
        }
        _ => {}
    }
    let dir = open_nofollow(
        path,
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY),
    )
    .map_err(|e| {
        format!(
            "{} is not a directory ({e}); a symbolic link there is never followed: remove it",
            path.display()
        )
    })?;
    if let Some(account) = account {
        std::os::unix::fs::fchown(&dir, Some(account.uid), Some(account.gid))
            .map_err(|e| format!("cannot hand {} to {}: {e}", path.display(), account.name))?;
    }
    dir.set_permissions(std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a data directory with this owner and mode may be used by a process of `euid`: it
/// must be that user's and writable by nobody else. Errors: why not, without the path.
pub fn check_data_dir(owner: u32, mode: u32, euid: u32) -> Result<(), String> {
    if owner != euid {
        return Err(format!(
            "is owned by uid {owner}, and authd runs as uid {euid}: only the user authd runs as \
             may own its data directory (chown it if you trust what is in it, or choose another)"
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by its group or by others (mode {:o}): `chmod go-w` it",
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_its_users_and_writable_by_nobody_else() {
        assert_eq!(check_data_dir(1000, 0o40700, 1000), Ok(()));
        assert_eq!(check_data_dir(0, 0o40755, 0), Ok(()));
        let other = check_data_dir(65534, 0o40700, 0).unwrap_err();
        assert!(
            other.contains("uid 65534") && other.contains("uid 0"),
            "{other}"
        );
        for mode in [0o40775, 0o40757, 0o41777] {
            let err = check_data_dir(0, mode, 0).unwrap_err();
            assert!(err.contains("writable"), "{mode:o}: {err}");
        }
    }

    #[test]
    fn links_are_refused_and_reads_are_bounded() {
        let base = std::env::temp_dir().join(format!("authd-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap();
        let target = base.join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, base.join("run")).unwrap();
        let big = base.join("big");
        std::fs::write(&big, vec![b'x'; 3 * READ_LIMIT as usize / 2]).unwrap();
        std::os::unix::fs::symlink(&big, base.join("link")).unwrap();

        let linked_dir = account_dir(&base.join("run"), None);
        let target_mode = std::fs::metadata(&target).unwrap().permissions().mode();
        let made = account_dir(&base.join("fresh"), None);
        let fresh_mode = std::fs::metadata(base.join("fresh")).map(|m| m.permissions().mode());
        let head = read_bounded(&big).map(|s| s.len());
        let tail = read_tail(&big).map(|s| s.len());
        let through_link = read_bounded(&base.join("link")).is_err();
        let own = open_own_file(&base.join("link"), OpenOptions::new().read(true)).is_err();
        let _ = std::fs::remove_dir_all(&base);

        assert!(linked_dir.is_err());
        assert_eq!(target_mode & 0o777, 0o755, "the link's target is untouched");
        assert_eq!(made, Ok(()));
        assert_eq!(fresh_mode.unwrap() & 0o777, 0o700);
        assert_eq!(head.unwrap(), READ_LIMIT as usize);
        assert_eq!(tail.unwrap(), READ_LIMIT as usize);
        assert!(through_link && own);
    }
}
