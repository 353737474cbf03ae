//! A cluster's restore history, one job's page with its live progress, and cancelling.
//!
//! The job page shows the API's own views of the job (`GET …/restoreJobs/{J}`) and of its
//! progress (`GET …/restoreJobs/{J}/members`); its script reads the same two, as JSON, from
//! `…/progress` every second.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::cluster::cluster_path;
use super::{page_number, Chrome, Pager};
use crate::console::render;
use crate::console::session::{Change, ConsoleResult, Viewer};
use crate::domain::restore::UNLIMITED_DOWNLOADS;
use crate::domain::GroupAccess;
use crate::http::conventions::json_response;
use crate::http::path::ApiPath;
use crate::http::routes::views;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId, JobId};
use crate::model::{JobStatus, RestoreJobRecord};

#[derive(Serialize)]
struct HistoryPage {
    chrome: Chrome,
    base: String,
    cluster_name: String,
    jobs: Vec<rewind_api_types::RestoreJob>,
    pager: Pager,
}

pub async fn history(
    State(state): State<AppState>,
    Viewer(session): Viewer,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    Query(query): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    let page = page_number(&query);
    let services = &state.services;
    let found = services
        .list_restores(
            &session.principal,
            group,
            cluster,
            None,
            Pager::request(page),
        )
        .await?;
    let naming = services.job_naming(group, cluster).await?;
    Ok(render::page(
        StatusCode::OK,
        "jobs.html",
        HistoryPage {
            chrome: Chrome::of(&session, format!("Restores of {}", naming.cluster_name)),
            base: cluster_path(group, cluster),
            cluster_name: naming.cluster_name.clone(),
            jobs: found
                .items
                .iter()
                .map(|j| views::restore_job(&state, &naming, j))
                .collect(),
            pager: Pager::of(page, found.total),
        },
    ))
}

/// What the job page and its script show: the API's two views, and the archive's SHA-1
/// once it is known.
#[derive(Serialize)]
struct JobState {
    job: rewind_api_types::RestoreJob,
    progress: rewind_api_types::agent::RestoreProgress,
    sha1: Option<String>,
    /// Whether the job can still be cancelled.
    running: bool,
}

async fn job_state(
    state: &AppState,
    session_principal: &crate::domain::Principal,
    group: GroupId,
    cluster: ClusterId,
    job: JobId,
) -> ConsoleResult<(JobState, RestoreJobRecord)> {
    let services = &state.services;
    let progress = services
        .restore_progress(session_principal, group, cluster, job)
        .await?;
    let naming = services.job_naming(group, cluster).await?;
    let record = progress.job.clone();
    Ok((
        JobState {
            job: views::restore_job(state, &naming, &record),
            progress: views::restore_progress(progress),
            sha1: record.archive_sha1.clone(),
            running: record.status == JobStatus::InProgress,
        },
        record,
    ))
}

#[derive(Serialize)]
struct JobPage {
    chrome: Chrome,
    base: String,
    state: JobState,
    may_cancel: bool,
    /// An HTTP job without a download limit (the API shows the sentinel number).
    unlimited_downloads: bool,
    curl: Option<String>,
    progress_url: String,
}

pub async fn show(
    State(state): State<AppState>,
    Viewer(session): Viewer,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
) -> ConsoleResult<Response> {
    let principal = &session.principal;
    let project = state
        .services
        .authorize_group(principal, group, GroupAccess::Read)
        .await?;
    let (job_state, record) = job_state(&state, principal, group, cluster, job).await?;
    let base = cluster_path(group, cluster);
    let curl = job_state
        .job
        .delivery
        .url
        .as_ref()
        .map(|url| format!("curl -fLO '{url}'"));
    Ok(render::page(
        StatusCode::OK,
        "job.html",
        JobPage {
            chrome: Chrome::of(&session, format!("Restore job {}", record.id)),
            progress_url: format!("{base}/jobs/{job}/progress"),
            base,
            may_cancel: job_state.running && principal.may(&project, GroupAccess::BackupAdmin),
            unlimited_downloads: job_state.job.delivery.max_downloads == Some(UNLIMITED_DOWNLOADS),
            state: job_state,
            curl,
        },
    ))
}

/// `GET …/jobs/{J}/progress`: the job page's live figures, as JSON.
pub async fn progress(
    State(state): State<AppState>,
    Viewer(session): Viewer,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
) -> ConsoleResult<Response> {
    let (job_state, _) = job_state(&state, &session.principal, group, cluster, job).await?;
    Ok(render::with_console_headers(json_response(
        StatusCode::OK,
        &job_state,
    )))
}

/// `POST …/jobs/{J}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
    change: Change,
) -> ConsoleResult<Response> {
    state
        .services
        .cancel_restore(&change.session.principal, group, cluster, job)
        .await?;
    let to = format!("{}/jobs/{job}", cluster_path(group, cluster));
    Ok(render::with_console_headers(
        Redirect::to(&to).into_response(),
    ))
}
