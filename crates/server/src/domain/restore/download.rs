//! HTTP delivery of a prepared archive: who may download it, how often, and from where.
//!
//! The token in the address is the credential, and it is checked before anything about the
//! job is read, so a stranger learns nothing: not whether the job exists, nor how large its
//! archive is. A transfer that starts afresh takes one download of `maxDownloads`; a ranged
//! request may instead continue a download that broke off, from about where it stopped.
//! Every decision is one conditional update of the job's download accounting, so transfers
//! racing on any number of nodes never spend the same download twice. The body stream
//! records how far it got when it ends, on a task the server waits for at shutdown.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{BoxStream, Stream};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::archive::ArchivePlan;
use crate::blocks::BlockError;
use crate::domain::{DomainError, DomainResult, ErrorCode, Services};
use crate::ids::JobId;
use crate::model::{
    DeliveryLedger, DeliveryMethod, DeliveryStatus, JobStatus, RestoreJobRecord, UnixSeconds,
};

/// Most bytes a link may send a second time, in all, to resumes that begin before the
/// point where the interrupted transfer stopped.
///
/// The server counts a byte as delivered when it hands it to the connection, so a client
/// that lost its connection resumes somewhat earlier than that point: by what sat in socket
/// buffers on both sides (a few MiB on Linux at most) plus what it had not yet written out.
/// The allowance is also held to one archive (see [`resend_allowance`]).
pub const RESEND_ALLOWANCE_BYTES: u64 = 64 << 20;
/// Times a download decision is retried when a concurrent transfer changed the job's
/// accounting first. Each failed attempt means another transfer's decision went in, so
/// this bounds waiting, not correctness.
const LEDGER_ATTEMPTS: usize = 64;
/// Links marked expired per sweep pass; the next pass continues.
const EXPIRED_LINKS_PER_PASS: u32 = 1000;

/// A request's `Range` header, as the HTTP layer read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHeader {
    Absent,
    /// `bytes=START-` or `bytes=START-END` (END inclusive).
    From {
        start: u64,
        end: Option<u64>,
    },
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
    /// Present, but not one range of bytes.
    Malformed,
}

/// A request for a download address.
#[derive(Debug, Clone, Copy)]
pub struct DownloadRequest<'a> {
    pub job: &'a str,
    pub token: &'a str,
    pub file: &'a str,
    pub range: RangeHeader,
    /// `false` for `HEAD`: the answer's headers only, and no download taken.
    pub wants_body: bool,
}

/// An admitted request: which bytes of which archive go out.
pub struct Download {
    pub file_name: String,
    pub total_bytes: u64,
    /// The bytes sent are `start..end`.
    pub start: u64,
    pub end: u64,
    /// Whether the answer is one range of the archive (206) rather than all of it.
    pub is_partial: bool,
    /// The bytes, for a request that wants them.
    pub body: Option<DownloadBody>,
}

/// Why a link gives out no bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotReady,
    Expired,
    MaxDownloadsExceeded,
}

/// How a transfer was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Pulled by the target's agents during an automated restore, outside any budget.
    Agent,
    /// A new download, taken from the budget.
    Fresh,
    /// Continues the interrupted download that had reached `stopped_at`.
    Resume { stopped_at: u64 },
}

fn not_found() -> DomainError {
    DomainError::rejected(
        ErrorCode::ResourceNotFound,
        "Cannot find resource: no download with that address exists.",
        vec![],
    )
}

fn refused(refusal: Refusal) -> DomainError {
    match refusal {
        Refusal::Expired => DomainError::rejected(
            ErrorCode::DownloadExpired,
            "The download link of this restore job has expired.",
            vec![],
        ),
        Refusal::MaxDownloadsExceeded => DomainError::rejected(
            ErrorCode::MaxDownloadsExceeded,
            "The download link of this restore job has been used its maximum number of times.",
            vec![],
        ),
        Refusal::NotReady => DomainError::rejected(
            ErrorCode::DownloadNotAvailable,
            "The archive of this restore job is not available for download.",
            vec![],
        ),
    }
}

fn ledger_kept_changing(job: JobId) -> DomainError {
    DomainError::Internal(format!(
        "the download accounting of job {job} kept changing"
    ))
}

fn range_refused(code: ErrorCode, detail: String, total: u64) -> DomainError {
    DomainError::rejected(code, detail, vec![total.to_string()])
}

/// The bytes `range` selects of an archive of `total` bytes; `None` for all of it.
///
/// Only one range is served. A header that asks for something else is refused rather than
/// ignored: answering it with the whole archive would spend a download the client did not
/// mean to take. Refusals carry the archive's size as their one parameter, for the
/// `Content-Range` of a 416.
fn resolve_range(range: RangeHeader, total: u64) -> DomainResult<Option<(u64, u64)>> {
    let (start, end) = match range {
        RangeHeader::Absent => return Ok(None),
        RangeHeader::Malformed => {
            return Err(range_refused(
                ErrorCode::InvalidRange,
                "The Range header must name one range of bytes: bytes=START-, bytes=START-END or bytes=-LENGTH.".into(),
                total,
            ))
        }
        RangeHeader::From { start, end: Some(end) } if end < start => {
            return Err(range_refused(
                ErrorCode::InvalidRange,
                format!("The Range header's last byte {end} comes before its first byte {start}."),
                total,
            ))
        }
        RangeHeader::From { start, end } => {
            (start, end.map_or(total, |e| e.saturating_add(1).min(total)))
        }
        RangeHeader::Suffix(length) => (total.saturating_sub(length), total),
    };
    if start >= end {
        return Err(range_refused(
            ErrorCode::RangeNotSatisfiable,
            format!("The requested range is outside the archive, which has {total} bytes."),
            total,
        ));
    }
    Ok(Some((start, end)))
}

/// The status a link settles at once no transfer of it is running: `INTERRUPTED` while a
/// broken-off download can be resumed, `MAX_DOWNLOADS_EXCEEDED` once no download remains
/// (a download delivered to its end counts as done, though its tail may still be resent).
fn settled_status(ledger: &DeliveryLedger, max_downloads: u32, total: u64) -> DeliveryStatus {
    if ledger.resume_offset.is_some_and(|offset| offset < total) {
        DeliveryStatus::Interrupted
    } else if ledger.downloads_started >= max_downloads {
        DeliveryStatus::MaxDownloadsExceeded
    } else {
        DeliveryStatus::Ready
    }
}

/// The resend allowance of a link to an archive of `total` bytes: a link gives out at most
/// `maxDownloads` archives plus this, so ranged requests never add up to more than one
/// extra copy of it. A smaller allowance would break real resumes: an archive smaller than
/// the socket buffers can be handed out whole (and counted delivered) while the client,
/// whose connection then broke, holds only its first part.
pub fn resend_allowance(total: u64) -> u64 {
    RESEND_ALLOWANCE_BYTES.min(total)
}

/// How long a ranged request that would be refused waits for the transfer it continues
/// to record where it stopped: a client whose connection broke may reconnect before the
/// server has noticed. Only requests that would otherwise fail wait.
const RESUME_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);
const RESUME_SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Statuses of a link that still gives out bytes (to new or resumed downloads).
const LIVE_LINK: [DeliveryStatus; 2] = [DeliveryStatus::Ready, DeliveryStatus::Interrupted];

fn is_past_expiry(job: &RestoreJobRecord, now: UnixSeconds) -> bool {
    job.expires.is_some_and(|expires| expires <= now)
}

/// A job's delivery status as of `now`, as clients read it. It follows the job: a
/// `BROKEN` job's delivery is `FAILED` and a `KILLED` one's `INTERRUPTED`, whatever the link
/// had reached (an automated job's delivery is `READY` while its agents pull it); a live
/// link reads `EXPIRED` from the moment it expires, not only once the sweeper has recorded
/// it.
pub fn delivery_status_at(job: &RestoreJobRecord, now: UnixSeconds) -> DeliveryStatus {
    match job.status {
        JobStatus::Broken => return DeliveryStatus::Failed,
        JobStatus::Killed => return DeliveryStatus::Interrupted,
        JobStatus::InProgress | JobStatus::Finished => {}
    }
    let is_http = matches!(job.method, DeliveryMethod::Http { .. });
    if is_http && LIVE_LINK.contains(&job.delivery_status) && is_past_expiry(job, now) {
        DeliveryStatus::Expired
    } else {
        job.delivery_status
    }
}

/// Decides whether a transfer of bytes `start..end` may begin, and the accounting it
/// leaves. A ranged request continues the interrupted download when it starts at or
/// before the point where that stopped and what it sends again fits the allowance; any
/// other request takes a new download while one remains.
///
/// A transfer that stops short of the archive's end on purpose (`bytes=0-99`) leaves its
/// end as the point to resume from as soon as it is admitted, so that the client's next
/// range, which may reach another node before this transfer's end is recorded, continues
/// it. Should the transfer break off earlier, its end moves that point back.
fn admit(
    job: &RestoreJobRecord,
    now: UnixSeconds,
    (start, end): (u64, u64),
    is_ranged: bool,
) -> Result<(Admission, DeliveryLedger), Refusal> {
    let total = job.archive_bytes.unwrap_or(0);
    let max_downloads = match job.method {
        DeliveryMethod::Automated { .. } => {
            let pulling =
                job.status == JobStatus::InProgress && LIVE_LINK.contains(&job.delivery_status);
            return if pulling {
                Ok((Admission::Agent, job.ledger()))
            } else {
                Err(Refusal::NotReady)
            };
        }
        DeliveryMethod::Http { max_downloads, .. } => max_downloads,
    };
    let ledger = job.ledger();
    if ledger.status == DeliveryStatus::Expired || is_past_expiry(job, now) {
        return Err(Refusal::Expired);
    }
    if !LIVE_LINK.contains(&ledger.status) && ledger.status != DeliveryStatus::MaxDownloadsExceeded
    {
        return Err(Refusal::NotReady);
    }
    let allowance = resend_allowance(total).saturating_sub(ledger.resent_bytes);
    let resumable = ledger
        .resume_offset
        .filter(|&stopped_at| is_ranged && start <= stopped_at && stopped_at - start <= allowance);
    let (admission, mut next) = if let Some(stopped_at) = resumable {
        let next = DeliveryLedger {
            resume_offset: None,
            resent_bytes: ledger.resent_bytes + (stopped_at - start),
            ..ledger
        };
        (Admission::Resume { stopped_at }, next)
    } else if ledger.downloads_started < max_downloads {
        let next = DeliveryLedger {
            downloads_started: ledger.downloads_started + 1,
            ..ledger
        };
        (Admission::Fresh, next)
    } else {
        return Err(Refusal::MaxDownloadsExceeded);
    };
    if end < total {
        next.resume_offset = Some(end);
    }
    next.status = settled_status(&next, max_downloads, total);
    Ok((admission, next))
}

/// The accounting after a transfer of bytes up to `end` of `total` ended having reached
/// byte `reached`; `None` when there is nothing to record.
///
/// A transfer to the archive's end that broke off leaves where it stopped as the point to
/// resume from (the latest broken-off transfer is the one its client is about to
/// continue). One that was to stop short moves its admitted end back to where it really
/// stopped, unless a resume took that point already: the bytes between stay undelivered
/// rather than let two transfers continue one download.
fn after_transfer(
    job: &RestoreJobRecord,
    admission: Admission,
    (reached, end): (u64, u64),
    total: u64,
) -> Option<DeliveryLedger> {
    let DeliveryMethod::Http { max_downloads, .. } = job.method else {
        return None;
    };
    let ledger = job.ledger();
    if ledger.status == DeliveryStatus::Expired || admission == Admission::Agent {
        return None;
    }
    let mut next = if reached >= total {
        // Handed out to its end; the client may still have lost the tail in transit.
        DeliveryLedger {
            downloads_completed: (ledger.downloads_completed + 1).min(ledger.downloads_started),
            resume_offset: Some(total),
            ..ledger
        }
    } else if reached >= end || (end < total && ledger.resume_offset != Some(end)) {
        return None;
    } else {
        let stopped_at = match admission {
            Admission::Resume { stopped_at } => reached.max(stopped_at.min(end)),
            _ => reached,
        };
        DeliveryLedger {
            resume_offset: Some(stopped_at),
            ..ledger
        }
    };
    next.status = settled_status(&next, max_downloads, total);
    Some(next)
}

impl Services {
    /// The unguessable download token of a job: 128 bits of an HMAC of its id under the
    /// server secret, so it never needs storing and cannot be derived without the secret.
    pub fn download_token(&self, job: JobId) -> String {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_secret)
            .expect("HMAC takes any key length");
        mac.update(b"restore-download:");
        mac.update(job.to_hex().as_bytes());
        let tag = mac.finalize().into_bytes();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(hex::encode(&tag[..16]))
    }

    /// Checks a presented token in constant time.
    pub fn token_matches(&self, job: JobId, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.download_token(job)
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }

    /// Answers a request for a download address: the token first, then the job, the file
    /// name, the `Range`, and the link's budget and expiry, in that order.
    ///
    /// A `GET` that is let through has taken its download (or its resume) by the time this
    /// returns; its body records how far it got. A `HEAD` is answered as the `GET` would
    /// be, and takes nothing.
    pub async fn open_download(
        self: &Arc<Self>,
        request: DownloadRequest<'_>,
    ) -> DomainResult<Download> {
        let job = JobId::parse(request.job).ok_or_else(not_found)?;
        if !self.token_matches(job, request.token) {
            return Err(not_found());
        }
        let record = self.meta.get_job_by_id(job).await?.ok_or_else(not_found)?;
        let file_name = format!("{}.tar.gz", record.file_name);
        if request.file != file_name {
            return Err(not_found());
        }
        let total = record
            .archive_bytes
            .ok_or_else(|| refused(Refusal::NotReady))?;
        let range = resolve_range(request.range, total)?;
        let (start, end) = range.unwrap_or((0, total));
        // Checked before the archive is read: once a link expires, the sweeper may release
        // the snapshot and remove its manifests. A ranged GET the budget would refuse
        // waits for its verdict in `take_transfer` instead.
        match admit(&record, self.clock.now(), (start, end), range.is_some()) {
            Err(Refusal::MaxDownloadsExceeded) if request.wants_body && range.is_some() => {}
            Err(refusal) => return Err(refused(refusal)),
            Ok(_) => {}
        }
        let plan = self.archive_plan(&record).await?;
        let body = if request.wants_body {
            let admission = self
                .take_transfer(record, (start, end), range.is_some())
                .await?;
            Some(DownloadBody::new(
                self.clone(),
                job,
                &plan,
                admission,
                start,
                end,
            ))
        } else {
            None
        };
        Ok(Download {
            file_name,
            total_bytes: total,
            start,
            end,
            is_partial: range.is_some(),
            body,
        })
    }

    /// Records the admission of a transfer, deciding again on the job's latest accounting
    /// whenever a concurrent transfer changed it first, and letting a ranged request that
    /// would be refused wait [`RESUME_SETTLE`] for the transfer it continues to end.
    async fn take_transfer(
        &self,
        mut record: RestoreJobRecord,
        span: (u64, u64),
        is_ranged: bool,
    ) -> DomainResult<Admission> {
        let settle_until = tokio::time::Instant::now() + RESUME_SETTLE;
        let mut attempts = 0;
        loop {
            match admit(&record, self.clock.now(), span, is_ranged) {
                Ok((Admission::Agent, _)) => return Ok(Admission::Agent),
                Ok((admission, next)) => {
                    let ledger = record.ledger();
                    if self.meta.update_delivery(record.id, &ledger, &next).await? {
                        return Ok(admission);
                    }
                    attempts += 1;
                    if attempts >= LEDGER_ATTEMPTS {
                        return Err(ledger_kept_changing(record.id));
                    }
                }
                Err(Refusal::MaxDownloadsExceeded)
                    if is_ranged && tokio::time::Instant::now() < settle_until =>
                {
                    tokio::time::sleep(RESUME_SETTLE_POLL).await;
                }
                Err(refusal) => return Err(refused(refusal)),
            }
            record = self
                .meta
                .get_job_by_id(record.id)
                .await?
                .ok_or_else(not_found)?;
        }
    }

    /// Records how far a transfer got, retrying on the job's latest accounting.
    async fn record_transfer(
        &self,
        job: JobId,
        admission: Admission,
        reached_and_end: (u64, u64),
        total: u64,
    ) -> DomainResult<()> {
        for _ in 0..LEDGER_ATTEMPTS {
            let Some(record) = self.meta.get_job_by_id(job).await? else {
                return Ok(());
            };
            let Some(next) = after_transfer(&record, admission, reached_and_end, total) else {
                return Ok(());
            };
            if self
                .meta
                .update_delivery(job, &record.ledger(), &next)
                .await?
            {
                return Ok(());
            }
        }
        Err(ledger_kept_changing(job))
    }

    /// Marks links past their expiry `EXPIRED`; returns how many changed. A link whose
    /// downloads are all spent keeps `MAX_DOWNLOADS_EXCEEDED`, the more telling status.
    pub async fn expire_links(&self, now: UnixSeconds) -> DomainResult<u64> {
        let due = self
            .meta
            .links_expired_by(now, &LIVE_LINK, EXPIRED_LINKS_PER_PASS)
            .await?;
        let mut expired = 0;
        for job in due {
            let ledger = job.ledger();
            let next = DeliveryLedger {
                status: DeliveryStatus::Expired,
                ..ledger
            };
            // A transfer that moved the ledger meanwhile leaves it to the next pass.
            if self.meta.update_delivery(job.id, &ledger, &next).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// The bytes of an admitted transfer. When it ends (its last byte handed out, a read
/// failure, or the client gone) it records how far it got, once, on a task the server
/// waits for at shutdown.
pub struct DownloadBody {
    inner: BoxStream<'static, Result<Bytes, BlockError>>,
    /// The archive offset of the next byte to go out.
    position: u64,
    end: u64,
    total: u64,
    job: JobId,
    admission: Admission,
    /// Taken when the outcome is recorded, so it is recorded once.
    services: Option<Arc<Services>>,
}

impl DownloadBody {
    fn new(
        services: Arc<Services>,
        job: JobId,
        plan: &Arc<ArchivePlan>,
        admission: Admission,
        start: u64,
        end: u64,
    ) -> Self {
        DownloadBody {
            inner: plan.clone().stream(services.blocks.clone(), start, end),
            position: start,
            end,
            total: plan.len(),
            job,
            admission,
            services: Some(services),
        }
    }

    fn record(&mut self) {
        let Some(services) = self.services.take() else {
            return;
        };
        let (job, admission, total) = (self.job, self.admission, self.total);
        let reached_and_end = (self.position, self.end);
        let tasks = services.tasks.clone();
        tasks.spawn(async move {
            if let Err(err) = services
                .record_transfer(job, admission, reached_and_end, total)
                .await {
                tracing::error!(job.id = %job, error = %err, "could not record how far a download got");
            }
        });
    }
}

impl Stream for DownloadBody {
    type Item = Result<Bytes, BlockError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                self.position = (self.position + bytes.len() as u64).min(self.end);
                // The server stops polling once `Content-Length` bytes went out, so the
                // last byte, not the end of the stream, marks a finished transfer.
                if self.position == self.end {
                    self.record();
                }
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::error!(job.id = %self.job, error = %err, "download aborted: the archive could not be read");
                self.record();
            }
            Poll::Ready(None) => self.record(),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for DownloadBody {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClusterId, GroupId, SnapshotId};
    use crate::model::{ClusterType, OplogTs};

    const NOW: UnixSeconds = 1_000_000;
    const TOTAL: u64 = 10_000;

    fn link(max_downloads: u32) -> RestoreJobRecord {
        RestoreJobRecord {
            id: JobId::generate(),
            batch_id: None,
            group_id: GroupId::generate(),
            cluster_id: ClusterId::generate(),
            snapshot_id: SnapshotId::generate(),
            replica_set_name: "rs0".into(),
            part_type: ClusterType::ReplicaSet,
            created: NOW - 60,
            status: JobStatus::Finished,
            delivery_status: DeliveryStatus::Ready,
            method: DeliveryMethod::Http {
                max_downloads,
                expiration_hours: Some(1),
            },
            expires: Some(NOW + 3600),
            point_in_time: false,
            timestamp: OplogTs { secs: 1, inc: 1 },
            file_name: "rs0-1-job".into(),
            archive_bytes: Some(TOTAL),
            archive_sha1: None,
            downloads_started: 0,
            downloads_completed: 0,
            resume_offset: None,
            resent_bytes: 0,
            finished_at: Some(NOW - 30),
            failure: None,
            attempts: 1,
        }
    }

    fn apply(job: &mut RestoreJobRecord, ledger: DeliveryLedger) {
        job.delivery_status = ledger.status;
        job.downloads_started = ledger.downloads_started;
        job.downloads_completed = ledger.downloads_completed;
        job.resume_offset = ledger.resume_offset;
        job.resent_bytes = ledger.resent_bytes;
    }

    /// Admits a transfer of `span` (ranged or not) and ends it at `reached`, as the body
    /// would.
    fn transfer(
        job: &mut RestoreJobRecord,
        span: (u64, u64),
        ranged: bool,
        reached: u64,
    ) -> Result<Admission, Refusal> {
        let (admission, next) = admit(job, NOW, span, ranged)?;
        apply(job, next);
        let total = job.archive_bytes.unwrap();
        if let Some(next) = after_transfer(job, admission, (reached, span.1), total) {
            apply(job, next);
        }
        Ok(admission)
    }

    const WHOLE: (u64, u64) = (0, TOTAL);

    #[test]
    fn the_last_download_leaves_the_link_max_downloads_exceeded() {
        let mut job = link(1);
        let (_, during) = admit(&job, NOW, WHOLE, false).unwrap();
        assert_eq!(during.status, DeliveryStatus::MaxDownloadsExceeded);
        transfer(&mut job, WHOLE, false, TOTAL).unwrap();
        assert_eq!(job.delivery_status, DeliveryStatus::MaxDownloadsExceeded);
        assert_eq!((job.downloads_started, job.downloads_completed), (1, 1));
        assert_eq!(
            admit(&job, NOW, WHOLE, false).unwrap_err(),
            Refusal::MaxDownloadsExceeded
        );
        let (admission, _) = admit(&job, NOW, (TOTAL - 100, TOTAL), true).unwrap();
        assert_eq!(
            admission,
            Admission::Resume { stopped_at: TOTAL },
            "a tail lost in transit may be sent again"
        );
    }

    #[test]
    fn an_interrupted_download_resumes_where_it_stopped_without_taking_another() {
        let mut job = link(1);
        transfer(&mut job, WHOLE, false, 4_000).unwrap();
        assert_eq!(job.delivery_status, DeliveryStatus::Interrupted);
        assert_eq!(job.resume_offset, Some(4_000));
        let admission = transfer(&mut job, (3_900, TOTAL), true, TOTAL).unwrap();
        assert_eq!(admission, Admission::Resume { stopped_at: 4_000 });
        assert_eq!((job.downloads_started, job.downloads_completed), (1, 1));
        assert_eq!(job.resent_bytes, 100);
        assert_eq!(job.delivery_status, DeliveryStatus::MaxDownloadsExceeded);
    }

    #[test]
    fn a_range_that_stops_short_can_be_continued_before_its_end_is_recorded() {
        let mut job = link(1);
        let (_, admitted) = admit(&job, NOW, (0, 100), true).unwrap();
        apply(&mut job, admitted);
        assert_eq!(job.resume_offset, Some(100));
        assert_eq!(job.delivery_status, DeliveryStatus::Interrupted);
        let (admission, _) = admit(&job, NOW, (100, TOTAL), true).unwrap();
        assert_eq!(admission, Admission::Resume { stopped_at: 100 });
    }

    #[test]
    fn a_short_range_that_breaks_off_moves_the_resume_point_back_unless_it_was_taken() {
        let mut job = link(1);
        transfer(&mut job, (0, 100), true, 40).unwrap();
        assert_eq!(job.resume_offset, Some(40));

        let mut job = link(1);
        let (first, admitted) = admit(&job, NOW, (0, 100), true).unwrap();
        apply(&mut job, admitted);
        transfer(&mut job, (100, TOTAL), true, TOTAL).unwrap();
        assert_eq!(
            after_transfer(&job, first, (40, 100), TOTAL),
            None,
            "bytes 40..100 stay undelivered rather than be sent to a second continuation"
        );
    }

    #[test]
    fn ranged_requests_after_the_only_download_started_are_refused() {
        // The attack of the hardening issue: `bytes=0-0`, then many near-complete ranges.
        let mut job = link(1);
        transfer(&mut job, (0, 1), true, 1).unwrap();
        let near_complete = (1, TOTAL - 1);
        assert_eq!(
            transfer(&mut job, near_complete, true, TOTAL - 1).unwrap(),
            Admission::Resume { stopped_at: 1 }
        );
        assert_eq!(
            transfer(&mut job, near_complete, true, TOTAL - 1).unwrap(),
            Admission::Resume {
                stopped_at: TOTAL - 1
            },
            "one archive's worth may be sent again"
        );
        for _ in 0..5 {
            assert_eq!(
                admit(&job, NOW, near_complete, true).unwrap_err(),
                Refusal::MaxDownloadsExceeded,
                "resending {} more bytes is beyond the allowance of {}",
                TOTAL - 2,
                resend_allowance(TOTAL)
            );
        }
    }

    #[test]
    fn resumes_that_resend_more_than_the_allowance_take_a_new_download() {
        let mut job = link(2);
        let total = 1 << 40;
        job.archive_bytes = Some(total);
        let stopped = RESEND_ALLOWANCE_BYTES + 10;
        transfer(&mut job, (0, total), false, stopped).unwrap();
        let (admission, _) = admit(&job, NOW, (5, total), true).unwrap();
        assert_eq!(
            admission,
            Admission::Fresh,
            "resending all but 5 bytes is too much"
        );
        let (admission, _) = admit(&job, NOW, (10, total), true).unwrap();
        assert_eq!(
            admission,
            Admission::Resume {
                stopped_at: stopped
            }
        );
    }

    #[test]
    fn a_range_that_skips_past_where_the_transfer_stopped_is_a_new_download() {
        let mut job = link(2);
        transfer(&mut job, WHOLE, false, 4_000).unwrap();
        let (admission, _) = admit(&job, NOW, (5_000, TOTAL), true).unwrap();
        assert_eq!(admission, Admission::Fresh);
    }

    #[test]
    fn an_expired_link_is_refused_and_reads_expired_from_the_moment_of_expiry() {
        let mut job = link(3);
        job.expires = Some(NOW);
        assert_eq!(
            admit(&job, NOW, WHOLE, false).unwrap_err(),
            Refusal::Expired
        );
        assert_eq!(delivery_status_at(&job, NOW), DeliveryStatus::Expired);
        assert_eq!(delivery_status_at(&job, NOW - 1), DeliveryStatus::Ready);
        job.delivery_status = DeliveryStatus::MaxDownloadsExceeded;
        assert_eq!(
            delivery_status_at(&job, NOW),
            DeliveryStatus::MaxDownloadsExceeded
        );
    }

    #[test]
    fn the_delivery_status_follows_a_job_that_broke_or_was_cancelled() {
        let mut job = link(3);
        job.status = JobStatus::Broken;
        assert_eq!(delivery_status_at(&job, NOW), DeliveryStatus::Failed);
        job.status = JobStatus::Killed;
        assert_eq!(delivery_status_at(&job, NOW), DeliveryStatus::Interrupted);
        job.expires = Some(NOW);
        assert_eq!(
            delivery_status_at(&job, NOW),
            DeliveryStatus::Interrupted,
            "a cancelled job's link does not come back as merely expired"
        );
        job.status = JobStatus::Finished;
        assert_eq!(delivery_status_at(&job, NOW), DeliveryStatus::Expired);
    }

    #[test]
    fn a_link_not_yet_prepared_is_not_ready() {
        let mut job = link(1);
        job.delivery_status = DeliveryStatus::InProgress;
        assert_eq!(
            admit(&job, NOW, WHOLE, false).unwrap_err(),
            Refusal::NotReady
        );
    }

    #[test]
    fn ranges_are_resolved_against_the_archive_or_refused_with_its_size() {
        let from = |start, end| RangeHeader::From { start, end };
        assert_eq!(resolve_range(RangeHeader::Absent, 100).unwrap(), None);
        assert_eq!(resolve_range(from(10, None), 100).unwrap(), Some((10, 100)));
        assert_eq!(
            resolve_range(from(10, Some(19)), 100).unwrap(),
            Some((10, 20))
        );
        assert_eq!(
            resolve_range(from(10, Some(500)), 100).unwrap(),
            Some((10, 100))
        );
        assert_eq!(
            resolve_range(RangeHeader::Suffix(30), 100).unwrap(),
            Some((70, 100))
        );
        assert_eq!(
            resolve_range(RangeHeader::Suffix(300), 100).unwrap(),
            Some((0, 100))
        );
        for (range, code) in [
            (from(100, None), ErrorCode::RangeNotSatisfiable),
            (RangeHeader::Suffix(0), ErrorCode::RangeNotSatisfiable),
            (from(20, Some(10)), ErrorCode::InvalidRange),
            (RangeHeader::Malformed, ErrorCode::InvalidRange),
        ] {
            match resolve_range(range, 100).unwrap_err() {
                DomainError::Rejected {
                    code: got,
                    parameters,
                    ..
                } => {
                    assert_eq!(got, code, "{range:?}");
                    assert_eq!(parameters, vec!["100".to_owned()]);
                }
                other => panic!("{range:?}: {other}"),
            }
        }
    }
}
