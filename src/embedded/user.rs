//! Which account the embedded PostgreSQL runs as. PostgreSQL refuses to run as root, so a
//! root authd (containers, CI) hands initdb and postgres to an unprivileged account.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
};

/// A Unix account: user and primary group ids, and a name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// Makes `cmd` run as this account: its uid and primary gid (std drops root's
    /// supplementary groups along with the uid). For every program authd starts as root.
    pub fn run_as<'a>(&self, cmd: &'a mut std::process::Command) -> &'a mut std::process::Command {
        use std::os::unix::process::CommandExt;
        cmd.uid(self.uid).gid(self.gid)
    }
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The account to run PostgreSQL as when authd runs as root: the `postgres` system account,
/// which distribution packages create for exactly this (no login, owns nothing else of
/// authd's). Never `nobody` (other daemons share it, and it could open the socket) and never a
/// directory's owner (whoever made a directory would get the database).
///
/// `passwd` is the text of `/etc/passwd` (system accounts live there, not in a directory
/// service). Errors: no unprivileged `postgres` account (one line saying what to do).
pub fn choose_for_root(passwd: &str) -> Result<Account, String> {
    passwd_entries(passwd)
        .find(|a| a.name == "postgres" && a.uid != 0)
        .ok_or_else(|| {
            "authd runs as root and PostgreSQL refuses to, but there is no `postgres` account to \
             run it as: create a system user `postgres` (useradd --system postgres) or run authd \
             as a non-root user"
                .into()
        })
}

/// The account PostgreSQL runs as when this process runs as root (see [`choose_for_root`]),
/// or `None` when it does not (PostgreSQL then runs as this process's user).
pub fn for_this_process() -> Result<Option<Account>, String> {
    if effective_uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    choose_for_root(&passwd).map(Some)
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = Account> + '_ {
    passwd.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?.to_string();
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Account { name, uid, gid })
    })
}

/// The first ancestor of `dir` (absolute), or `dir` itself, that `account` may not enter
/// (no search permission for its uid or primary group: the process PostgreSQL runs in has no
/// supplementary groups, see `CommandExt::uid`). `None` when every one may be entered.
pub fn first_unreachable(dir: &Path, account: &Account) -> Option<std::path::PathBuf> {
    dir.ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|p| {
            std::fs::metadata(p)
                .is_ok_and(|m| !may_search(m.uid(), m.gid(), m.permissions().mode(), account))
        })
        .map(Path::to_path_buf)
}

/// Whether `account` has search (x) permission on a directory with this owner and mode.
fn may_search(owner: u32, group: u32, mode: u32, account: &Account) -> bool {
    if account.uid == owner {
        mode & 0o100 != 0
    } else if account.gid == group {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                          postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n\
                          dev:x:1000:1000::/home/dev:/bin/bash\n";

    fn account(name: &str, uid: u32, gid: u32) -> Account {
        Account {
            name: name.into(),
            uid,
            gid,
        }
    }

    #[test]
    fn only_the_postgres_account_never_nobody() {
        assert_eq!(choose_for_root(PASSWD), Ok(account("postgres", 101, 104)));
        let without_postgres: String = PASSWD
            .lines()
            .filter(|l| !l.starts_with("postgres"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = choose_for_root(&without_postgres).unwrap_err();
        assert!(
            err.contains("`postgres`") && err.contains("non-root"),
            "{err}"
        );
        assert!(
            choose_for_root("postgres:x:0:0::/:/bin/sh\n").is_err(),
            "not root itself"
        );
    }

    #[test]
    fn search_permission_follows_owner_group_other() {
        let pg = account("postgres", 101, 104);
        assert!(may_search(101, 0, 0o700, &pg));
        assert!(!may_search(0, 0, 0o700, &pg), "/root is 0700");
        assert!(may_search(0, 104, 0o750, &pg));
        assert!(
            !may_search(0, 104, 0o705, &pg),
            "group bits apply to the group"
        );
        assert!(may_search(0, 0, 0o711, &pg));
        assert!(may_search(0, 0, 0o755, &pg));
    }

    #[test]
    fn finds_the_ancestor_that_blocks_the_way() {
        let base = std::env::temp_dir().join(format!("authd-reach-{}", uuid::Uuid::new_v4()));
        let inner = base.join("private/data");
        std::fs::create_dir_all(&inner).unwrap();
        let private = base.join("private");
        // Only the owner may enter `private`; an account that is neither owner nor in its group
        // (uid/gid chosen to match nothing on the machine) is stopped there.
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = account("stranger", 4_000_000, 4_000_000);
        let blocked = first_unreachable(&inner, &stranger);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = first_unreachable(&inner, &stranger);
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(blocked, Some(private));
        assert_eq!(open, None);
    }
}
