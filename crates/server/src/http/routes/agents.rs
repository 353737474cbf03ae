//! `rewind agent` endpoints under `/api/rewind/v1/groups/{G}/clusters/{C}/agents/…`, where
//! `{G}`/`{C}` are the target of automated restores, and the operator's cancel:
//! `POST /api/rewind/v1/groups/{G}/clusters/{C}/restoreJobs/{JOB}/cancel`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use rewind_api_types::agent::{
    AgentHello, AgentTask, HeartbeatAck, MemberReport, ReportAck, WorkRequest, WorkResponse,
};
use rewind_api_types::iso_seconds::format_iso;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{views, ApiPath, REWIND};
use crate::domain::{ErrorCode, Principal};
use crate::http::auth::BackupAdmin;
use crate::http::body::JsonBody;
use crate::http::conventions::json_response;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId, JobId};

pub fn routes() -> Router<AppState> {
    let agents = format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/agents");
    Router::new()
        .route(&format!("{agents}/heartbeat"), post(heartbeat))
        .route(&format!("{agents}/work"), post(work))
        .route(&format!("{agents}/reports"), post(report))
        .route(
            &format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/restoreJobs/{{job}}/cancel"),
            post(cancel),
        )
        .route(
            &format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/restoreJobs/{{job}}/members"),
            get(members),
        )
}

/// Decodes an agent payload; the detail names the expected shape, not the parser's words.
fn decode<T: DeserializeOwned>(body: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidJsonAttribute,
            format!("The body is not a valid {what}."),
            vec![],
        )
    })
}

async fn heartbeat(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let hello: AgentHello = decode(body, "agent heartbeat")?;
    let at = state
        .services
        .agent_heartbeat(&principal, group, cluster, &hello)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &HeartbeatAck {
            last_heartbeat: format_iso(at),
        },
    ))
}

async fn work(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: WorkRequest = decode(body, "agent work request")?;
    let tasks = state
        .services
        .agent_work(
            &principal,
            group,
            cluster,
            &request.hello,
            Duration::from_secs(request.wait_secs),
            state.agent_timeout,
        )
        .await?;
    let tasks = tasks
        .iter()
        .map(|t| AgentTask {
            action: t.action,
            file_name: format!("{}.tar.gz", t.job.file_name),
            job_id: t.job.id.to_hex(),
            member_name: t.member_name.clone(),
            sha1: t.job.archive_sha1.clone().unwrap_or_default(),
            size_bytes: t.job.archive_bytes.unwrap_or_default(),
            url: views::download_url(&state, &t.job),
        })
        .collect();
    Ok(json_response(StatusCode::OK, &WorkResponse { tasks }))
}

async fn report(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let report: MemberReport = decode(body, "agent report")?;
    let status = state
        .services
        .agent_report(&principal, group, cluster, &report)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &ReportAck {
            status_name: status.as_str().to_owned(),
        },
    ))
}

async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
) -> Result<Response, ApiError> {
    let record = state
        .services
        .cancel_restore(&principal, group, cluster, job)
        .await?;
    let naming = state.services.job_naming(group, cluster).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::restore_job(&state, &naming, &record),
    ))
}

/// `GET …/restoreJobs/{JOB}/members`: where a restore job stands (its preparation, and the
/// members of an automated restore with their state and bytes), with `{G}`/`{C}` the job's
/// own project and cluster, as for `cancel`.
async fn members(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
) -> Result<Response, ApiError> {
    let progress = state
        .services
        .restore_progress(&principal, group, cluster, job)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::restore_progress(progress),
    ))
}
