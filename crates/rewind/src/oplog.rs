//! `rewind oplog push`: sends a file of concatenated BSON oplog entries (the format of
//! `mongodump`'s `oplog.bson`) to the server, in bounded requests.
//!
//! The whole file is checked first (every entry well-formed, timestamps strictly increasing),
//! so a bad file is refused before anything is sent. It is then read again and sent in
//! requests of about [`BATCH_BYTES`], each stating the ts of the previous request's last
//! entry (`afterTs`/`afterInc`), so the server can prove nothing was left out between them.
//! Memory stays bounded whatever the file size: one batch being read, [`QUEUED_BATCHES`]
//! waiting, one being sent, their buffers recycled.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use rewind_api_types::{path_segment, OplogPushReport, OplogPushSummary, RegisteredCluster};
use rewind_formats::oplog::{
    entry_ts, read_entry, split_entries_with, BatchError, OplogTs, ReadEntryError, MAX_ENTRY_BYTES,
    MAX_PUSH_BYTES,
};

use crate::client::{describe_error, ApiClient};

/// A request is cut once it holds this many bytes, so that with one more entry of the
/// largest size it still fits the server's limit.
pub const BATCH_BYTES: usize = MAX_PUSH_BYTES - MAX_ENTRY_BYTES;
const _: () = assert!(BATCH_BYTES >= MAX_ENTRY_BYTES / 2);
/// Batches read ahead while one is being sent.
const QUEUED_BATCHES: usize = 1;
/// Read buffer of the file.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// What to push where.
pub struct PushRequest {
    pub group: String,
    pub cluster: String,
    /// The replica set; `None` for a cluster that has only one.
    pub replica_set: Option<String>,
    /// The stored entry this file continues from.
    pub after: Option<OplogTs>,
    pub file: PathBuf,
    pub show_progress: bool,
}

/// One request's worth of consecutive entries.
struct Batch {
    body: Bytes,
    /// File offset of the batch's first byte.
    offset: u64,
    last: OplogTs,
}

/// Parses `SECONDS:INCREMENT`.
pub fn parse_oplog_ts(text: &str) -> Result<OplogTs> {
    let (secs, inc) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("{text:?} is not SECONDS:INCREMENT"))?;
    Ok(OplogTs {
        secs: secs
            .parse()
            .with_context(|| format!("{secs:?} is not a 32-bit number of seconds"))?,
        inc: inc
            .parse()
            .with_context(|| format!("{inc:?} is not a 32-bit increment"))?,
    })
}

/// An entry of the file whose framing is broken, and where it starts.
#[derive(Debug, thiserror::Error)]
#[error("entry {index} (at byte {at}): {error}")]
struct FramingError {
    index: u64,
    at: u64,
    error: ReadEntryError,
}

/// Reads a file of entries in batches of whole entries, checking only their framing.
struct BatchReader {
    reader: BufReader<File>,
    /// File offset of the next batch.
    offset: u64,
    /// Entries read so far.
    entries: u64,
}

impl BatchReader {
    fn open(path: &Path) -> Result<BatchReader> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(BatchReader {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            offset: 0,
            entries: 0,
        })
    }

    /// The next batch, `None` at the end, read into `buffer` (emptied first) so that the
    /// caller can recycle the buffers of batches it is done with.
    fn next_batch(&mut self, buffer: Vec<u8>) -> Result<Option<RawBatch>, FramingError> {
        let mut body = buffer;
        body.clear();
        body.reserve(BATCH_BYTES + 64 * 1024);
        let mut last_start = 0;
        while body.len() < BATCH_BYTES {
            let start = body.len();
            match read_entry(&mut self.reader, &mut body) {
                Ok(Some(_)) => {
                    self.entries += 1;
                    last_start = start;
                }
                Ok(None) => break,
                Err(error) => {
                    return Err(FramingError {
                        index: self.entries,
                        at: self.offset + body.len() as u64,
                        error,
                    })
                }
            }
        }
        if body.is_empty() {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += body.len() as u64;
        Ok(Some(RawBatch {
            body,
            offset,
            last_start,
        }))
    }
}

/// Whole entries read from the file.
struct RawBatch {
    body: Vec<u8>,
    /// File offset of the first byte.
    offset: u64,
    /// Where the last entry starts in `body`.
    last_start: usize,
}

/// Checks every entry of the file, several threads validating each batch; returns the
/// number of entries.
fn check_file(path: &Path, progress: &ProgressBar) -> Result<u64> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut batches = BatchReader::open(path)?;
    // One thread reads the next batch while the workers validate this one. Checked
    // batches' buffers go back to the reader: a buffer allocated on one thread and freed
    // on another is not reused by the allocator soon, and a new 16 MiB buffer per batch
    // made the client's memory grow with the file (600 MiB for a 576 MB file).
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || loop {
            let buffer = recycled.try_recv().unwrap_or_default();
            let next = batches.next_batch(buffer).transpose();
            let last = !matches!(next, Some(Ok(_)));
            if next.is_some_and(|batch| tx.send(batch).is_err()) || last {
                return;
            }
        });
        validate_batches(path, rx, &recycle, workers, progress)
    })
}

/// Validates the batches `rx` receives, in file order; returns the number of entries.
fn validate_batches(
    path: &Path,
    rx: std::sync::mpsc::Receiver<Result<RawBatch, FramingError>>,
    recycle: &std::sync::mpsc::Sender<Vec<u8>>,
    workers: usize,
    progress: &ProgressBar,
) -> Result<u64> {
    let mut count = 0u64;
    let mut previous: Option<OplogTs> = None;
    let refuse = |index: u64, offset: u64, what: String| {
        anyhow!(
            "{}: entry {index} (at byte {offset}) {what}; nothing was pushed",
            path.display()
        )
    };
    loop {
        let RawBatch { body, offset, .. } = match rx.recv() {
            Ok(Ok(batch)) => batch,
            Err(_) => return Ok(count),
            Ok(Err(FramingError { index, at, error })) => {
                return Err(refuse(index, at, format!("cannot be read: {error}")))
            }
        };
        let marks = split_entries_with(&body, workers).map_err(|e| match e {
            BatchError::Invalid {
                index,
                offset: at,
                error,
            } => refuse(
                count + index as u64,
                offset + at as u64,
                format!("is refused: {error}"),
            ),
            BatchError::OutOfOrder {
                index,
                offset: at,
                ts,
                previous,
            } => refuse(
                count + index as u64,
                offset + at as u64,
                out_of_order(ts, previous),
            ),
        })?;
        if let (Some(previous), Some(first)) = (previous, marks.first()) {
            if first.ts <= previous {
                return Err(refuse(count, offset, out_of_order(first.ts, previous)));
            }
        }
        previous = marks.last().map(|m| m.ts);
        count += marks.len() as u64;
        progress.inc(body.len() as u64);
        // The reader may have finished; the buffer is then simply dropped.
        let _ = recycle.send(body);
    }
}

fn out_of_order(ts: OplogTs, previous: OplogTs) -> String {
    format!("has ts {ts}, which does not follow the previous entry's {previous}: entries must be in strictly increasing ts order")
}

/// Reads the (checked) file again, cut into batches, into `tx`.
/// Buffers of sent batches come back through `recycled`.
fn read_batches(
    path: &Path,
    tx: tokio::sync::mpsc::Sender<Batch>,
    recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
    progress: &ProgressBar,
) -> Result<()> {
    let changed = || format!("{} changed while it was pushed", path.display());
    let mut batches = BatchReader::open(path)?;
    let buffer = || recycled.try_recv().unwrap_or_default();
    while let Some(raw) = batches.next_batch(buffer()).with_context(changed)? {
        let last = entry_ts(&raw.body[raw.last_start..]).with_context(changed)?;
        let len = raw.body.len() as u64;
        let batch = Batch {
            body: Bytes::from(raw.body),
            offset: raw.offset,
            last,
        };
        tx.blocking_send(batch)
            .map_err(|_| anyhow!("the push stopped"))?;
        progress.inc(len);
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64, message: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

/// The replica set to push to: the one given, or the cluster's only one.
async fn resolve_replica_set(api: &ApiClient, req: &PushRequest) -> Result<String> {
    let registered: RegisteredCluster = api
        .get_json(&format!(
            "/api/rewind/v1/groups/{}/clusters/{}",
            req.group, req.cluster
        ))
        .await?;
    let names = registered.replica_set_names();
    match &req.replica_set {
        Some(name) if names.contains(name) => Ok(name.clone()),
        Some(name) => bail!(
            "the cluster has no replica set {name:?} (it has {})",
            names.join(", ")
        ),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => bail!(
            "this cluster has several replica sets: give --part NAME, one of {}",
            names.join(", ")
        ),
    }
}

pub async fn push(api: &ApiClient, req: PushRequest) -> Result<OplogPushReport> {
    let replica_set = resolve_replica_set(api, &req).await?;
    let size = std::fs::metadata(&req.file)
        .with_context(|| format!("cannot read {}", req.file.display()))?
        .len();
    let checking = progress_bar(req.show_progress, size, "checking");
    let entries = {
        let (file, bar) = (req.file.clone(), checking.clone());
        tokio::task::spawn_blocking(move || check_file(&file, &bar))
            .await
            .context("the checking thread failed")??
    };
    checking.finish_and_clear();

    let pushing = progress_bar(req.show_progress, size, "pushing");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(QUEUED_BATCHES);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = {
        let (file, bar) = (req.file.clone(), pushing.clone());
        tokio::task::spawn_blocking(move || read_batches(&file, tx, &recycled, &bar))
    };
    let path = format!(
        "/api/rewind/v1/groups/{}/clusters/{}/oplog/{}",
        req.group,
        req.cluster,
        path_segment(&replica_set)
    );
    let mut after = req.after;
    let mut sums = Sums::default();
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        match send_batch(api, &path, &batch, after).await {
            Ok(summary) => {
                sums.add(&summary);
                after = Some(batch.last);
                // Sent: the client holds no other handle, so the buffer goes back to the
                // reader (see `check_file` for why buffers are recycled).
                if let Ok(unique) = batch.body.try_into_mut() {
                    let _ = recycle.send(Vec::from(unique));
                }
            }
            Err(err) => {
                let stored = match after {
                    Some(ts) => format!("entries up to ts {ts} are stored"),
                    None => "nothing was stored".to_owned(),
                };
                failure = Some(err.context(format!(
                    "the request holding bytes {}.. of {} was refused ({stored}; the same push can be run again, entries already stored are skipped)",
                    batch.offset,
                    req.file.display()
                )));
                break;
            }
        }
    }
    // Dropping the receiver stops a reader blocked on it.
    drop(rx);
    let read = reader.await.context("the reading thread failed")?;
    if let Some(err) = failure {
        return Err(err);
    }
    read?;
    pushing.finish_and_clear();
    let coverage = match sums.coverage {
        Some(coverage) => coverage,
        None => api.get_json(&path).await?,
    };
    Ok(OplogPushReport {
        bytes_pushed: sums.bytes_pushed,
        bytes_stored: sums.bytes_stored,
        coverage,
        entries_already_stored: sums.entries_already_stored,
        entries_pushed: entries,
        entries_stored: sums.entries_stored,
        gap_opened: sums.gap_opened,
        requests: sums.requests,
        slices_written: sums.slices_written,
    })
}

async fn send_batch(
    api: &ApiClient,
    path: &str,
    batch: &Batch,
    after: Option<OplogTs>,
) -> Result<OplogPushSummary> {
    let target = match after {
        Some(ts) => format!("{path}?afterTs={}&afterInc={}", ts.secs, ts.inc),
        None => path.to_owned(),
    };
    let response = api
        .send_bytes(
            Method::POST,
            &target,
            Some(batch.body.clone()),
            "application/octet-stream",
        )
        .await?;
    if !response.status.is_success() {
        bail!("{}", describe_error(response.status, &response.body));
    }
    response.json()
}

/// Totals over the requests of one push.
#[derive(Default)]
struct Sums {
    requests: u64,
    bytes_pushed: u64,
    bytes_stored: u64,
    entries_stored: u64,
    entries_already_stored: u64,
    slices_written: u64,
    gap_opened: bool,
    coverage: Option<rewind_api_types::OplogStatus>,
}

impl Sums {
    fn add(&mut self, s: &OplogPushSummary) {
        self.requests += 1;
        self.bytes_pushed += s.bytes_received;
        self.bytes_stored += s.bytes_stored;
        self.entries_stored += s.entries_stored;
        self.entries_already_stored += s.entries_already_stored;
        self.slices_written += s.slices_written;
        self.gap_opened |= s.gap_opened;
        self.coverage = Some(s.coverage.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_seconds_and_increment() {
        assert_eq!(
            parse_oplog_ts("1700000000:7").unwrap(),
            OplogTs {
                secs: 1_700_000_000,
                inc: 7
            }
        );
        for bad in ["1700000000", "x:1", "1:y", "99999999999:1", ""] {
            assert!(parse_oplog_ts(bad).is_err(), "{bad}");
        }
    }
}
