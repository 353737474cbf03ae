//! Durable writes of local objects: staging file, fsync, rename, fsync of the directory.
//!
//! `object_store`'s `LocalFileSystem::put` stages and renames but never syncs, so after a
//! power cut an object the metadata already references could be missing or empty. The local
//! block store writes its objects here instead, so that when a put returns the object is on
//! stable storage and a metadata commit that follows may reference it (see
//! `docs/decisions.md`, "Durability"). Reads, listing and deletion still go through
//! `LocalFileSystem`, which finds these files at the same paths.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the staging files of concurrent writers of one object.
static STAGING_SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// Writes `bytes` as the file `path`, replacing any file there, and returns once the file
/// and its directory entry are durable. Readers see the old file or the new one, whole.
///
/// On failure nothing of this write is left behind: the staging file is removed (a full
/// disk gives its space back at once) and the file at `path`, if any, is untouched.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("an object path has no directory"))?;
    create_dir_durably(dir)?;
    let (mut file, staging) = create_staging_file(path)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&staging, path));
    drop(file);
    if let Err(err) = written {
        remove_staging_file(&staging);
        return Err(err);
    }
    sync_dir(dir)
}

/// Creates `dir` and its missing ancestors, syncing the parent of each directory created so
/// that the new entries survive a power cut as well.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .ok_or_else(|| io::Error::other("cannot create the root directory"))?;
    create_dir_durably(parent)?;
    match std::fs::create_dir(dir) {
        // A concurrent writer that created it first may not have synced the parent yet.
        Ok(()) => sync_dir(parent),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => sync_dir(parent),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new file `<path>#<n>`: `LocalFileSystem` lists no file whose name ends in `#` and
/// digits (its own staging files), so a staging file is never taken for an object.
fn create_staging_file(path: &Path) -> io::Result<(File, PathBuf)> {
    loop {
        let sequence = STAGING_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!("#{}{sequence}", std::process::id()));
        let staging = PathBuf::from(staging);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            // Left by an earlier process with the same id.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn remove_staging_file(staging: &Path) {
    if let Err(err) = std::fs::remove_file(staging) {
        if err.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %staging.display(), error = %err, "could not remove a staging file");
        }
    }
}

/// Whether `err` says the storage is full: no space left, or a disk quota reached.
pub fn is_storage_full(err: &io::Error) -> bool {
    /// `ENOSPC` and `EDQUOT` on Linux, for errors built from a raw code.
    const NO_SPACE: i32 = 28;
    const QUOTA_EXCEEDED: i32 = 122;
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(NO_SPACE | QUOTA_EXCEEDED))
}

/// Whether `err` says the storage refuses access: permissions, or a read-only file system.
pub fn is_refusal(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_write_replaces_the_file_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b/object");
        write_durably(&path, b"first").expect("write");
        write_durably(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("object")]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("object");
        write_durably(&path, b"kept").expect("write");
        // Renaming a file over a directory fails after the staging file was written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("x")).expect("a directory in the way");
        assert!(write_durably(&blocked, b"lost").is_err());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["blocked", "object"]);
        assert_eq!(std::fs::read(&path).expect("read"), b"kept");
    }

    #[test]
    fn full_and_refusing_storage_are_told_apart_by_kind_and_code() {
        assert!(is_storage_full(&io::Error::from_raw_os_error(28)));
        assert!(is_storage_full(&io::Error::from_raw_os_error(122)));
        assert!(is_storage_full(&io::Error::from(
            io::ErrorKind::StorageFull
        )));
        assert!(!is_storage_full(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(is_refusal(&io::Error::from_raw_os_error(13)));
        assert!(is_refusal(&io::Error::from_raw_os_error(30)));
        assert!(!is_refusal(&io::Error::from_raw_os_error(28)));
    }
}
