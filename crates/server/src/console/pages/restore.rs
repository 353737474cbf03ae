//! The restore wizard: what to restore (a snapshot, a point in time, an oplog timestamp),
//! then how (a download, or an automated restore into a target cluster).
//!
//! The form becomes the very body a client would send to `POST …/restoreJobs`, read by the
//! API's own parser and started by the same domain service, so the console can neither
//! accept a restore the API refuses nor word a refusal differently.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use rewind_api_types::iso_seconds::parse_iso;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::cluster::cluster_path;
use super::{moment, Chrome};
use crate::console::render;
use crate::console::session::{Change, ConsoleResult, Form, Viewer};
use crate::domain::sessions::ConsoleSession;
use crate::domain::{ErrorCode, GroupAccess, Principal};
use crate::http::error::{status_of, ApiError};
use crate::http::path::ApiPath;
use crate::http::routes::restore::parse_restore_request;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId};
use crate::model::PageRequest;

/// Snapshots offered in the wizard's list (the newest; older ones are chosen from the
/// cluster page's table, which links here with the snapshot filled in).
const SNAPSHOTS_OFFERED: u64 = 100;
/// Projects searched for target clusters.
const MAX_TARGET_PROJECTS: u64 = 200;

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
}

/// What the form shows filled in: the query's suggestion, or what was sent before a refusal.
#[derive(Serialize, Default)]
struct Entered {
    method: String,
    snapshot_id: String,
    point_in_time: String,
    oplog_ts: String,
    oplog_inc: String,
    delivery: String,
    max_downloads: String,
    expiration_hours: String,
    target: String,
}

#[derive(Serialize)]
struct WizardPage {
    chrome: Chrome,
    base: String,
    cluster_name: String,
    group_name: String,
    snapshots: Vec<Choice>,
    targets: Vec<Choice>,
    entered: Entered,
    error: Option<String>,
}

fn entered_from(values: &HashMap<String, String>) -> Entered {
    let get = |name: &str| {
        values
            .get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let pit = values
        .get("pit")
        .and_then(|millis| millis.parse::<i64>().ok())
        .map(|millis| moment(millis.div_euclid(1000)))
        .unwrap_or_else(|| get("pointInTime"));
    let method = get("method");
    Entered {
        method: if method.is_empty() {
            "snapshot".into()
        } else {
            method
        },
        snapshot_id: get("snapshotId"),
        point_in_time: pit,
        oplog_ts: get("oplogTs"),
        oplog_inc: get("oplogInc"),
        delivery: match get("delivery").as_str() {
            "" => "download".into(),
            other => other.to_owned(),
        },
        max_downloads: get("maxDownloads"),
        expiration_hours: get("expirationHours"),
        target: get("target"),
    }
}

/// The clusters an automated restore may write to: top-level clusters of the projects the
/// key administers backups of.
async fn target_choices(state: &AppState, principal: &Principal) -> ConsoleResult<Vec<Choice>> {
    let services = &state.services;
    let groups = services
        .list_groups(
            principal,
            PageRequest {
                offset: 0,
                limit: MAX_TARGET_PROJECTS,
            },
        )
        .await?;
    let mut choices = Vec::new();
    for group in groups
        .items
        .iter()
        .filter(|g| principal.may(g, GroupAccess::BackupAdmin))
    {
        let all = PageRequest {
            offset: 0,
            limit: u64::MAX,
        };
        for cluster in services
            .list_clusters(principal, group.id, all)
            .await?
            .items
        {
            if cluster.parent_id.is_none() {
                choices.push(Choice {
                    value: format!("{}/{}", group.id, cluster.id),
                    label: format!("{} / {}", group.name, cluster.cluster_name),
                });
            }
        }
    }
    Ok(choices)
}

async fn wizard_page(
    state: &AppState,
    session: &ConsoleSession,
    group: GroupId,
    cluster: ClusterId,
    entered: Entered,
    error: Option<&ApiError>,
) -> ConsoleResult<Response> {
    let principal = &session.principal;
    let services = &state.services;
    let project = services
        .authorize_group(principal, group, GroupAccess::BackupAdmin)
        .await?;
    let record = services.get_cluster(principal, group, cluster).await?;
    let newest = PageRequest {
        offset: 0,
        limit: SNAPSHOTS_OFFERED,
    };
    let snapshots = services
        .list_snapshots(principal, group, cluster, newest)
        .await?
        .items
        .iter()
        .filter(|s| s.complete)
        .map(|s| Choice {
            value: s.id.to_hex(),
            label: format!("{} ({})", moment(i64::from(s.created.secs)), s.id),
        })
        .collect();
    let status = error.map_or(StatusCode::OK, |e| status_of(e.code));
    Ok(render::page(
        status,
        "restore.html",
        WizardPage {
            chrome: Chrome::of(session, format!("Restore {}", record.cluster_name)),
            base: cluster_path(group, cluster),
            cluster_name: record.cluster_name.clone(),
            group_name: project.name.clone(),
            snapshots,
            targets: target_choices(state, principal).await?,
            entered,
            error: error.map(|e| format!("{}: {}", e.code.as_str(), e.detail)),
        },
    ))
}

/// `GET …/restore`: the wizard, filled in from the query (`method`, `snapshotId`, `pit`).
pub async fn wizard(
    State(state): State<AppState>,
    Viewer(session): Viewer,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    Query(query): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    wizard_page(&state, &session, group, cluster, entered_from(&query), None).await
}

/// A number typed into the form, as the API body carries it: a JSON number when it reads
/// as one, else the text itself, which the API's parser then refuses in its own words.
fn number_or_text(text: &str) -> Value {
    text.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(text))
}

fn invalid(field: &str, detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

/// The `POST …/restoreJobs` body the form stands for.
fn request_body(form: &Form) -> Result<Value, ApiError> {
    let mut body = Map::new();
    match form.get("method").unwrap_or("snapshot") {
        "snapshot" => {
            body.insert(
                "snapshotId".into(),
                json!(form.get("snapshotId").unwrap_or("")),
            );
        }
        "pit" => {
            let text = form.get("pointInTime").unwrap_or("");
            let at = parse_iso(text).ok_or_else(|| {
                invalid(
                    "pointInTimeUTCMillis",
                    format!("Invalid attribute pointInTimeUTCMillis specified: {text:?} is not a UTC date and time such as 2026-12-04T03:00:00Z."),
                )
            })?;
            body.insert(
                "pointInTimeUTCMillis".into(),
                json!(at.saturating_mul(1000)),
            );
        }
        "oplog" => {
            body.insert(
                "oplogTs".into(),
                number_or_text(form.get("oplogTs").unwrap_or("")),
            );
            body.insert(
                "oplogInc".into(),
                number_or_text(form.get("oplogInc").unwrap_or("")),
            );
        }
        other => {
            return Err(invalid(
                "method",
                format!(
                    "Invalid attribute method specified: {other:?} is not snapshot, pit or oplog."
                ),
            ))
        }
    }
    let mut delivery = Map::new();
    if form.get("delivery") == Some("automated") {
        delivery.insert("methodName".into(), json!("AUTOMATED_RESTORE"));
        let target = form.get("target").unwrap_or("");
        let (group, cluster) = target.split_once('/').unwrap_or((target, ""));
        delivery.insert("targetGroupId".into(), json!(group));
        delivery.insert("targetClusterId".into(), json!(cluster));
    } else {
        delivery.insert("methodName".into(), json!("HTTP"));
        for field in ["maxDownloads", "expirationHours"] {
            if let Some(value) = form.get(field) {
                delivery.insert(field.into(), number_or_text(value));
            }
        }
    }
    body.insert("delivery".into(), Value::Object(delivery));
    Ok(Value::Object(body))
}

/// `POST …/restore`: starts the restore and shows its job, or the wizard again with the
/// API's refusal.
pub async fn start(
    State(state): State<AppState>,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    change: Change,
) -> ConsoleResult<Response> {
    let principal = &change.session.principal;
    state
        .services
        .authorize_group(principal, group, GroupAccess::BackupAdmin)
        .await?;
    let now = state.services.clock.now();
    let created = match request_body(&change.form).and_then(|b| parse_restore_request(b, now)) {
        Ok(request) => state
            .services
            .create_restore(principal, group, cluster, request)
            .await
            .map_err(ApiError::from),
        Err(err) => Err(err),
    };
    match created {
        Ok(jobs) => {
            let first = jobs.first().map(|j| j.id);
            let to = match first {
                Some(job) if jobs.len() == 1 => {
                    format!("{}/jobs/{job}", cluster_path(group, cluster))
                }
                _ => format!("{}/jobs", cluster_path(group, cluster)),
            };
            Ok(render::with_console_headers(
                Redirect::to(&to).into_response(),
            ))
        }
        Err(err) => {
            wizard_page(
                &state,
                &change.session,
                group,
                cluster,
                entered_from(&change.form.0),
                Some(&err),
            )
            .await
        }
    }
}
