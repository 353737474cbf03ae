//! `rewind restore watch` (and `restore start --wait`): follows a restore job until it ends,
//! from `GET /api/rewind/v1/…/restoreJobs/{JOB}/members`.
//!
//! Three renderings of the same polls: progress bars on a terminal (the preparation, then
//! one bar per member of an automated restore), one JSON line per change with `--json`,
//! and one plain line per change otherwise (a log file, a CI job). A finished job returns
//! `Ok`; a broken or killed one an error carrying the job's reason, so the exit status
//! tells a script which it was.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rewind_api_types::agent::RestoreProgress;
use serde::Serialize;

use crate::client::ApiClient;

/// How often the job is asked about.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Polls in a row that may fail (a server restarting) before watching gives up.
const FAILED_POLLS_TOLERATED: u32 = 20;
/// The stretch of recent polls the speed is measured over.
const SPEED_WINDOW: Duration = Duration::from_secs(5);

/// How a watch shows the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Progress bars (standard error is a terminal).
    Bars,
    /// One JSON object per line, on standard output, each time something changed.
    Json,
    /// One plain line per change, on standard output.
    Lines,
}

/// One line of `--json` output: the job as last polled, with the client's own measure of
/// the transfer's speed and the time left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchEvent {
    #[serde(rename = "bytesDelivered", skip_serializing_if = "Option::is_none")]
    pub bytes_delivered: Option<u64>,
    #[serde(rename = "bytesExpected", skip_serializing_if = "Option::is_none")]
    pub bytes_expected: Option<u64>,
    /// Bytes moved per second over the last few seconds, by the step under way
    /// (preparation, then the agents' downloads).
    #[serde(rename = "bytesPerSecond", skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    #[serde(rename = "bytesPrepared")]
    pub bytes_prepared: u64,
    /// Seconds left at that speed.
    #[serde(rename = "etaSeconds", skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    #[serde(rename = "failureReason", skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(rename = "jobId")]
    pub job_id: String,
    pub members: Vec<MemberEvent>,
    /// `PREPARING` while the archive is read, `DELIVERING` while agents apply it, then
    /// `DONE`.
    pub phase: &'static str,
    #[serde(rename = "statusName")]
    pub status_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberEvent {
    #[serde(rename = "bytesDelivered")]
    pub bytes_delivered: u64,
    #[serde(rename = "memberName")]
    pub member_name: String,
    pub state: String,
}

impl WatchEvent {
    /// Whether `other` shows the same job state (speed and time left aside, which move
    /// with every poll).
    fn same_state(&self, other: &WatchEvent) -> bool {
        let strip = |e: &WatchEvent| WatchEvent {
            bytes_per_second: None,
            eta_seconds: None,
            ..e.clone()
        };
        strip(self) == strip(other)
    }
}

/// The step a job is at, and the bytes it moves: (moved, of).
fn phase(progress: &RestoreProgress) -> (&'static str, u64, Option<u64>) {
    let prepared = progress
        .bytes_expected
        .is_some_and(|e| progress.bytes_prepared >= e);
    if progress.status_name != "IN_PROGRESS" {
        ("DONE", transferred(progress), None)
    } else if !prepared || progress.bytes_delivered.is_none() {
        (
            "PREPARING",
            progress.bytes_prepared,
            progress.bytes_expected,
        )
    } else {
        let members = progress.results.len().max(1) as u64;
        (
            "DELIVERING",
            progress.bytes_delivered.unwrap_or(0),
            progress.bytes_expected.map(|e| e * members),
        )
    }
}

fn transferred(progress: &RestoreProgress) -> u64 {
    progress.bytes_delivered.unwrap_or(progress.bytes_prepared)
}

/// Speed over a window of recent samples of one phase's moved bytes.
#[derive(Default)]
struct Speed {
    phase: &'static str,
    samples: VecDeque<(Instant, u64)>,
}

impl Speed {
    fn sample(&mut self, phase: &'static str, bytes: u64, at: Instant) -> Option<u64> {
        if phase != self.phase {
            self.phase = phase;
            self.samples.clear();
        }
        self.samples.push_back((at, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > SPEED_WINDOW)
        {
            self.samples.pop_front();
        }
        let (first_at, first) = *self.samples.front()?;
        let secs = at.duration_since(first_at).as_secs_f64();
        (secs >= 0.5 && bytes >= first).then(|| ((bytes - first) as f64 / secs) as u64)
    }
}

fn event_of(progress: &RestoreProgress, speed: &mut Speed, at: Instant) -> WatchEvent {
    let (phase, moved, of) = phase(progress);
    let bytes_per_second = (phase != "DONE")
        .then(|| speed.sample(phase, moved, at))
        .flatten();
    let eta_seconds = match (bytes_per_second, of) {
        (Some(rate), Some(total)) if rate > 0 => Some(total.saturating_sub(moved).div_ceil(rate)),
        _ => None,
    };
    WatchEvent {
        bytes_delivered: progress.bytes_delivered,
        bytes_expected: progress.bytes_expected,
        bytes_per_second,
        bytes_prepared: progress.bytes_prepared,
        eta_seconds,
        failure_reason: progress.failure_reason.clone(),
        job_id: progress.job_id.clone(),
        members: progress
            .results
            .iter()
            .map(|m| MemberEvent {
                bytes_delivered: m.bytes_delivered,
                member_name: m.member_name.clone(),
                state: m.state.as_str().to_owned(),
            })
            .collect(),
        phase,
        status_name: progress.status_name.clone(),
    }
}

/// The path of a job's progress.
pub fn progress_path(group: &str, cluster: &str, job: &str) -> String {
    format!("/api/rewind/v1/groups/{group}/clusters/{cluster}/restoreJobs/{job}/members")
}

/// Follows `job` until it leaves `IN_PROGRESS`, showing it as `display` says. `Ok` with
/// the last poll when it finished; an error naming the status and the reason when it broke
/// or was killed.
pub async fn watch(
    api: &ApiClient,
    group: &str,
    cluster: &str,
    job: &str,
    display: Display,
) -> Result<RestoreProgress> {
    let path = progress_path(group, cluster, job);
    let mut bars = (display == Display::Bars).then(Bars::new);
    let mut speed = Speed::default();
    let mut last: Option<WatchEvent> = None;
    let mut failures = 0;
    let progress = loop {
        let progress: RestoreProgress = match api.get_json(&path).await {
            Ok(progress) => {
                failures = 0;
                progress
            }
            Err(err) if failures < FAILED_POLLS_TOLERATED && !is_refusal(&err) => {
                failures += 1;
                tracing::debug!(error = %format!("{err:#}"), "poll failed; trying again");
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        let event = event_of(&progress, &mut speed, Instant::now());
        match &mut bars {
            Some(bars) => bars.show(&progress),
            None if last.as_ref().is_some_and(|l| l.same_state(&event)) => {}
            None if display == Display::Json => println!("{}", serde_json::to_string(&event)?),
            None => println!("{}", plain_line(&event)),
        }
        last = Some(event);
        if progress.status_name != "IN_PROGRESS" {
            break progress;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    if let Some(bars) = bars {
        bars.finish(&progress);
    }
    match progress.status_name.as_str() {
        "FINISHED" => Ok(progress),
        status => bail!(
            "restore job {} is {status}: {}",
            progress.job_id,
            progress
                .failure_reason
                .as_deref()
                .unwrap_or("no reason given")
        ),
    }
}

/// Whether a poll's error is the server's refusal (an unknown job, a key without access),
/// which waiting does not change, rather than a failure to reach it.
fn is_refusal(err: &anyhow::Error) -> bool {
    err.downcast_ref::<reqwest::Error>().is_none()
}

fn plain_line(event: &WatchEvent) -> String {
    let mut line = format!("{} {}", event.job_id, event.status_name);
    if let Some(expected) = event.bytes_expected {
        line.push_str(&format!(" prepared {}/{}", event.bytes_prepared, expected));
    }
    for m in &event.members {
        line.push_str(&format!(
            "; {} {} {} bytes",
            m.member_name, m.state, m.bytes_delivered
        ));
    }
    if let Some(rate) = event.bytes_per_second {
        line.push_str(&format!("; {rate} bytes/s"));
    }
    if let Some(eta) = event.eta_seconds {
        line.push_str(&format!(", about {eta} s left"));
    }
    if let Some(reason) = &event.failure_reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// Progress bars on standard error: the preparation, and one per member. indicatif
/// measures speed and time left from the positions it is given.
struct Bars {
    multi: MultiProgress,
    status: ProgressBar,
    prepare: ProgressBar,
    members: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let status = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {msg}") {
            status.set_style(style);
        }
        status.enable_steady_tick(Duration::from_millis(200));
        let prepare = multi.add(byte_bar("prepared"));
        Bars {
            multi,
            status,
            prepare,
            members: HashMap::new(),
        }
    }

    fn show(&mut self, progress: &RestoreProgress) {
        self.status.set_prefix(progress.job_id.clone());
        self.status.set_message(progress.status_name.clone());
        if let Some(expected) = progress.bytes_expected {
            self.prepare.set_length(expected);
        }
        self.prepare.set_position(progress.bytes_prepared);
        for member in &progress.results {
            let bar = self
                .members
                .entry(member.member_name.clone())
                .or_insert_with(|| self.multi.add(byte_bar(&member.member_name)));
            if let Some(expected) = member.bytes_expected {
                bar.set_length(expected);
            }
            bar.set_position(member.bytes_delivered);
            bar.set_message(member.state.as_str());
        }
    }

    fn finish(self, progress: &RestoreProgress) {
        self.show_final(progress);
        self.status
            .finish_with_message(progress.status_name.clone());
        self.prepare.finish();
        for bar in self.members.values() {
            bar.finish();
        }
    }

    fn show_final(&self, progress: &RestoreProgress) {
        if let Some(expected) = progress.bytes_expected {
            self.prepare.set_length(expected);
        }
        self.prepare.set_position(progress.bytes_prepared);
    }
}

fn byte_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_api_types::agent::{MemberState, MemberStatus};

    fn progress(status: &str, prepared: u64, delivered: Option<u64>) -> RestoreProgress {
        RestoreProgress {
            bytes_delivered: delivered,
            bytes_expected: Some(1000),
            bytes_prepared: prepared,
            failure_reason: None,
            job_id: "j".into(),
            results: delivered
                .map(|d| {
                    vec![MemberStatus {
                        agent_id: None,
                        bytes_delivered: d,
                        bytes_expected: Some(1000),
                        failure_reason: None,
                        member_name: "m:27017".into(),
                        progress_bytes: d,
                        state: MemberState::Applying,
                        updated: "2026-01-01T00:00:00Z".into(),
                    }]
                })
                .unwrap_or_default(),
            status_name: status.into(),
        }
    }

    #[test]
    fn speed_and_time_left_follow_the_step_under_way() {
        let mut speed = Speed::default();
        let t0 = Instant::now();
        let first = event_of(&progress("IN_PROGRESS", 100, None), &mut speed, t0);
        assert_eq!((first.phase, first.bytes_per_second), ("PREPARING", None));
        let later = event_of(
            &progress("IN_PROGRESS", 600, None),
            &mut speed,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(later.bytes_per_second, Some(500));
        assert_eq!(later.eta_seconds, Some(1), "400 bytes left at 500 bytes/s");
        let delivering = event_of(
            &progress("IN_PROGRESS", 1000, Some(0)),
            &mut speed,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(delivering.phase, "DELIVERING");
        assert_eq!(delivering.bytes_per_second, None, "a new step starts over");
        let done = event_of(
            &progress("FINISHED", 1000, Some(1000)),
            &mut speed,
            t0 + Duration::from_secs(3),
        );
        assert_eq!((done.phase, done.eta_seconds), ("DONE", None));
    }

    #[test]
    fn a_change_is_a_change_of_the_job_not_of_the_speed() {
        let mut speed = Speed::default();
        let t0 = Instant::now();
        let a = event_of(&progress("IN_PROGRESS", 100, None), &mut speed, t0);
        let b = event_of(
            &progress("IN_PROGRESS", 100, None),
            &mut speed,
            t0 + Duration::from_secs(1),
        );
        assert!(a.same_state(&b));
        let c = event_of(
            &progress("IN_PROGRESS", 200, None),
            &mut speed,
            t0 + Duration::from_secs(2),
        );
        assert!(!b.same_state(&c));
    }
}
