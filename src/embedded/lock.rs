//! One authd per data directory: an exclusive lock on `<data dir>/authd.lock`, held for the
//! process's lifetime, whose content tells other authd processes who holds it and where its
//! PostgreSQL's socket is. The file is of the user authd runs as, in a directory only that
//! user may write, so what it records (the socket directory) can be trusted.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
};

use super::files;

const LOCK_FILE: &str = "authd.lock";

/// What the holder of the lock wrote into it: its pid at once, the socket directory once its
/// PostgreSQL accepts connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub pid: Option<u32>,
    pub socket_dir: Option<PathBuf>,
}

impl Record {
    fn parse(text: &str) -> Self {
        let mut record = Self::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", pid)) => record.pid = pid.parse().ok(),
                Some(("socket_dir", dir)) if dir.starts_with('/') => {
                    record.socket_dir = Some(PathBuf::from(dir));
                }
                _ => {}
            }
        }
        record
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(pid) = self.pid {
            text.push_str(&format!("pid={pid}\n"));
        }
        if let Some(dir) = &self.socket_dir {
            text.push_str(&format!("socket_dir={}\n", dir.display()));
        }
        text
    }
}

/// The held lock; released when dropped (or when the process dies, however it dies: the
/// kernel drops the lock with the last descriptor, and children do not inherit it).
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

/// The outcome of [`DirLock::try_acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// This process holds the lock now; `previous` is what the last holder left in the file
    /// (a killed authd leaves its record behind).
    Mine { lock: DirLock, previous: Record },
    /// Another process holds it.
    Held(Record),
}

impl DirLock {
    /// Takes the lock of `data_dir` (which exists) without waiting, writing this process's pid
    /// into it. Errors: the lock file cannot be opened or written, is a symbolic link, or is
    /// not this user's regular file.
    pub fn try_acquire(data_dir: &Path) -> std::io::Result<Acquired> {
        let path = data_dir.join(LOCK_FILE);
        let file = files::open_own_file(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Acquired::Held(read_record(data_dir))),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let mut bytes = Vec::new();
        let previous = match (&file).take(files::READ_LIMIT).read_to_end(&mut bytes) {
            Ok(_) => Record::parse(&String::from_utf8_lossy(&bytes)),
            Err(_) => Record::default(),
        };
        let mut lock = Self { file };
        lock.write(&Record {
            pid: Some(std::process::id()),
            socket_dir: None,
        })?;
        Ok(Acquired::Mine { lock, previous })
    }

    /// Replaces the record (this process's pid and its PostgreSQL's socket directory).
    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(record.render().as_bytes())?;
        self.file.flush()
    }
}

/// The record in `data_dir`'s lock file (empty when there is none or it cannot be read; read
/// up to [`files::READ_LIMIT`], never through a link).
pub fn read_record(data_dir: &Path) -> Record {
    files::read_bounded(&data_dir.join(LOCK_FILE))
        .map(|text| Record::parse(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_ignores_junk() {
        let record = Record {
            pid: Some(42),
            socket_dir: Some(PathBuf::from("/tmp/authd-x y")),
        };
        assert_eq!(Record::parse(&record.render()), record);
        assert_eq!(Record::parse(""), Record::default());
        assert_eq!(
            Record::parse("pid=nope\nsocket_dir=relative\nother=1\n"),
            Record::default()
        );
    }

    #[test]
    fn a_second_holder_is_refused_and_sees_the_first_ones_record() {
        let dir = std::env::temp_dir().join(format!("authd-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let Ok(Acquired::Mine { mut lock, .. }) = DirLock::try_acquire(&dir) else {
            panic!("first acquire");
        };
        let record = Record {
            pid: Some(std::process::id()),
            socket_dir: Some(dir.join("run")),
        };
        lock.write(&record).unwrap();
        // A second open file description conflicts even within one process.
        let second = DirLock::try_acquire(&dir).unwrap();
        drop(lock);
        let third = DirLock::try_acquire(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(second, Acquired::Held(r) if r == record));
        assert!(
            matches!(third, Acquired::Mine { previous, .. } if previous == record),
            "released on drop; the last record is handed over"
        );
    }
}
