//! Unpacking a downloaded PostgreSQL archive (gzip-compressed tar) without letting it write
//! anywhere but where it is unpacked: no absolute paths, no `..`, no entry written under a
//! link, no link (followed through the others) leading outside, no hard link to anything but
//! a file of its own, and a cap on the total size.

use std::{
    ffi::OsString,
    fs::File,
    io::BufReader,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Component, Path, PathBuf},
};

/// Largest total size of the files an archive may unpack to, in bytes.
const MAX_UNPACKED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Unpacks the gzip-compressed tar `archive` into `dest` (created): directories (mode 0755),
/// regular files (0755 if the archive marks them executable, else 0644, so an unprivileged
/// account can run them), and symbolic and hard links that stay inside `dest`. Errors: an
/// entry with an absolute path or `..`, a link leading outside, an entry whose path already
/// exists, more than [`MAX_UNPACKED_BYTES`], or a corrupt archive.
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Removed when dropped, also when the test fails.
    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn hostile_archives_are_refused() {
        let guard =
            TempDir(std::env::temp_dir().join(format!("authd-unpack-{}", uuid::Uuid::new_v4())));
        let dir = guard.0.as_path();
        std::fs::create_dir_all(dir).unwrap();
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
            let archive = hostile_archive(dir, entries);
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
        unpack(&hostile_archive(dir, fine), &dest).unwrap();
        assert_eq!(
            std::fs::read(dest.join("pg/bin/postmaster")).unwrap(),
            b"bad"
        );
    }
}
