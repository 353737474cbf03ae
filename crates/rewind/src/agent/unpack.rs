//! Unpacking an archive into a member's staging directory, either from the downloaded file
//! or from the download itself while it arrives (so inflating and writing overlap the
//! transfer instead of following it). Each restored file is flushed to disk by a second
//! thread as soon as it is written, so the flushing overlaps the unpacking too.
//!
//! Nothing here vouches for the bytes: a stream unpacked while it downloads is only used
//! once the caller has checked the archive's SHA-1 (until then it stays in staging).

use std::io::BufRead;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Pieces of the download queued for the unpacking thread. Bounds the memory held when
/// inflating falls behind the transfer; the transfer then waits.
const QUEUED_PIECES: usize = 64;
/// Files of the archive that are not data: moved out of the data directory to `info/`.
pub const INFO_FILES: [&str; 2] = ["restoreInfo.txt", "oplog.bson"];

/// Where an archive is unpacked: the staging directory, and `info/` for [`INFO_FILES`].
#[derive(Clone)]
pub struct Target {
    pub staging: PathBuf,
    pub info: PathBuf,
}

pub fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unpacks the tar.gz read from `source` into a fresh staging directory, refusing entries
/// that would land outside it and anything but plain files and directories; moves the
/// [`INFO_FILES`] to `info/`. Directories get their archived modification times once
/// everything is written into them. Returns once every restored file and directory is on
/// disk.
pub fn unpack(source: impl BufRead, target: &Target) -> Result<()> {
    remove_any(&target.staging)?;
    std::fs::create_dir_all(&target.staging)?;
    let (to_sync, queue) = std::sync::mpsc::channel::<PathBuf>();
    let dir_times = std::thread::scope(|scope| -> Result<Vec<(PathBuf, SystemTime)>> {
        // fsync blocks on the disk, not the CPU: done beside the unpacking, it costs
        // little; done after it (one file after the other) it took a large share of a
        // restore.
        let syncer = scope.spawn(move || -> std::io::Result<()> {
            for path in queue {
                std::fs::File::open(&path)?.sync_all()?;
            }
            Ok(())
        });
        let unpacked = unpack_entries(source, &target.staging, &to_sync);
        drop(to_sync);
        let synced = syncer
            .join()
            .map_err(|_| anyhow!("the thread flushing restored files panicked"))?;
        let dir_times = unpacked?;
        synced.context("cannot flush a restored file to disk")?;
        Ok(dir_times)
    })?;
    remove_any(&target.info)?;
    std::fs::create_dir_all(&target.info)?;
    for name in INFO_FILES {
        let from = target.staging.join(name);
        if from.exists() {
            std::fs::rename(&from, target.info.join(name))?;
        }
    }
    // Writing into a directory sets its time to now, so the archived times go on last;
    // setting a directory's time changes nothing of its parent's.
    for (dir, mtime) in dir_times {
        std::fs::File::open(&dir)
            .and_then(|d| d.set_modified(mtime))
            .with_context(|| format!("cannot set the time of {}", dir.display()))?;
    }
    sync_dirs(&target.staging)?;
    Ok(())
}

/// Unpacks every entry; returns the directories the archive lists, with their times.
fn unpack_entries(
    source: impl BufRead,
    staging: &Path,
    to_sync: &std::sync::mpsc::Sender<PathBuf>,
) -> Result<Vec<(PathBuf, SystemTime)>> {
    let mut dir_times = Vec::new();
    let mut tar = tar::Archive::new(flate2::bufread::MultiGzDecoder::new(source));
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    for entry in tar.entries().context("the archive is not a tar.gz")? {
        let mut entry = entry.context("the archive is damaged")?;
        let path = entry
            .path()
            .context("an archive entry has no valid path")?
            .into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        if !safe || !(kind.is_file() || kind.is_dir()) {
            bail!("the archive entry {} is refused: it would escape the data directory or is not a plain file", path.display());
        }
        if !entry.unpack_in(staging)? {
            bail!(
                "the archive entry {} escapes the data directory",
                path.display()
            );
        }
        if kind.is_dir() {
            let mtime = entry.header().mtime().unwrap_or(0);
            dir_times.push((
                staging.join(&path),
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
            ));
        }
        let info_file = INFO_FILES.iter().any(|name| path == Path::new(name));
        if kind.is_file() && !info_file {
            // A failed flush stops the syncer, which drops its end; its error is reported
            // when it is joined.
            let _ = to_sync.send(staging.join(&path));
        }
    }
    Ok(dir_times)
}

/// Flushes every directory of a tree (their entries; the files are flushed already).
fn sync_dirs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// An archive being unpacked on a blocking thread from pieces fed as they are downloaded.
pub struct StreamUnpack {
    /// `None` once the thread stopped taking pieces (it failed, or the archive ended).
    feed: Option<mpsc::Sender<Bytes>>,
    thread: tokio::task::JoinHandle<Result<()>>,
}

impl StreamUnpack {
    /// Starts unpacking into a fresh staging directory.
    pub fn start(target: &Target) -> StreamUnpack {
        let (feed, pieces) = mpsc::channel(QUEUED_PIECES);
        let target = target.clone();
        let thread = tokio::task::spawn_blocking(move || {
            unpack(
                PieceReader {
                    pieces,
                    current: Bytes::new(),
                },
                &target,
            )
        });
        StreamUnpack {
            feed: Some(feed),
            thread,
        }
    }

    /// Hands the next bytes of the archive to the unpacking thread, waiting while it is
    /// behind. Bytes fed after it stopped are dropped: [`StreamUnpack::finish`] tells why.
    pub async fn feed(&mut self, piece: Bytes) {
        if let Some(feed) = &self.feed {
            if feed.send(piece).await.is_err() {
                self.feed = None;
            }
        }
    }

    /// Ends the input and waits for the thread: nothing writes to staging afterwards.
    /// The outcome is meaningful only if every byte of the verified archive was fed.
    pub async fn finish(mut self) -> Result<()> {
        self.feed = None;
        self.thread.await.context("the unpacking thread failed")?
    }
}

/// Reads the pieces fed to a [`StreamUnpack`]; the end of the input is the end of the feed.
struct PieceReader {
    pieces: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for PieceReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(piece) => self.current = piece,
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, n: usize) {
        self.current.advance(n.min(self.current.len()));
    }
}
