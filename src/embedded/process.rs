//! Signals and liveness of processes the embedded database involves (the server authd
//! started, or one a killed authd left behind).

use std::{
    path::Path,
    time::{Duration, Instant},
};

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(50);

/// Sends `sig` to `pid`, ignoring errors (the process may be gone already).
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; a vanished pid is an ignored ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether `pid` exists and is not a zombie (an orphaned server that exited may wait to be
/// reaped by an init that never does, as in some containers).
pub fn is_alive(pid: i32) -> bool {
    // SAFETY: as above; signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // `pid (comm) S ...`: the state follows the last `)`.
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
}

/// Whether `pid` is a live postgres process (not a recycled pid of something else). Where
/// `/proc` exists its `comm` must say `postgres`; elsewhere being alive is all we can check.
pub fn is_postgres(pid: i32) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "postgres",
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Whether `pid` is a live postgres process (see [`is_postgres`]) of user `uid` whose working
/// directory is `dir` (canonical): a postmaster chdirs to its data directory, so a pid file
/// that outlived a reboot and now names another cluster's server (or anything else) fails this.
/// Without `/proc` nothing can be checked: false.
pub fn serves_directory(pid: i32, dir: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let proc_dir = format!("/proc/{pid}");
    is_postgres(pid)
        && std::fs::metadata(&proc_dir).is_ok_and(|m| m.uid() == uid)
        && std::fs::read_link(format!("{proc_dir}/cwd")).is_ok_and(|cwd| cwd == dir)
}

/// Calls `done` every [`POLL`] until it returns true (then true) or `timeout` has passed
/// (then false).
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_ignores_zombies_and_other_programs() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(is_alive(me));
        assert!(!is_postgres(me), "a test binary is not postgres");
        // An exited child that nobody has reaped yet is a zombie: not alive.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let gone = poll_until(Duration::from_secs(10), || !is_alive(pid));
        let kill_still_sees_it = unsafe { libc::kill(pid, 0) == 0 };
        child.wait().unwrap();
        assert!(gone);
        assert!(kill_still_sees_it, "still a zombie before the wait");
        assert!(!is_alive(pid) && !is_postgres(pid));
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert!(!serves_directory(
            me,
            &cwd,
            crate::embedded::user::effective_uid()
        ));
    }
}
