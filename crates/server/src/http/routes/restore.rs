//! `POST/GET …/groups/{G}/clusters/{C}/restoreJobs`, `GET …/restoreJobs/{JOB}`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use rewind_api_types::iso_seconds::parse_iso;
use serde_json::Value;

use super::{views, ApiPath, PUBLIC};
use crate::domain::restore::{
    DeliveryRequest, LinkExpiry, RestoreRequest, RestoreTarget, TargetCluster,
    DEFAULT_EXPIRATION_HOURS, MAX_EXPIRATION_HOURS, UNLIMITED_DOWNLOADS,
};
use crate::domain::{ErrorCode, Principal};
use crate::http::auth::BackupAdmin;
use crate::http::body::{Fields, JsonBody};
use crate::http::conventions::{query_pairs, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{BatchId, CheckpointId, ClusterId, GroupId, JobId, SnapshotId};
use crate::model::{OplogTs, UnixSeconds};

pub fn routes() -> Router<AppState> {
    let list = format!("{PUBLIC}/groups/{{group}}/clusters/{{cluster}}/restoreJobs");
    Router::new()
        .route(&list, get(list_jobs).post(create))
        .route(&format!("{list}/{{job}}"), get(get_one))
        .route(
            &format!("{list}/restorableTimeRanges"),
            post(restorable_time_ranges),
        )
}

/// `POST …/restoreJobs/restorableTimeRanges`: no body (any sent is ignored), a bare array.
async fn restorable_time_ranges(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let ranges = state
        .services
        .restorable_time_ranges(&principal, group, cluster)
        .await?;
    Ok(crate::http::conventions::json_response(
        StatusCode::OK,
        &views::restorable_time_ranges(&ranges),
    ))
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

fn negative_or_zero(field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AttributeNegativeOrZero,
        format!("The attribute {field} cannot be negative or zero."),
        vec![field.to_owned()],
    )
}

/// An id inside a request body: malformed is `INVALID_ATTRIBUTE` naming the field.
fn body_id<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T, ApiError> {
    parse(text).ok_or_else(|| {
        invalid(
            field,
            format!("Invalid attribute {field} specified: {text:?} is not a 24-hex id."),
        )
    })
}

/// Reads a whole-number field that must fit `0..=max`.
fn ranged(fields: &mut Fields, name: &str, max: i64) -> Result<Option<i64>, ApiError> {
    let path = fields.path(name);
    match fields.opt_int(name)? {
        Some(v) if v < 0 || v > max => Err(invalid(
            &path,
            format!("Invalid attribute {path} specified: {v} is out of range."),
        )),
        other => Ok(other),
    }
}

/// Reads the restore target: exactly one of `snapshotId`, `oplogTs`+`oplogInc`,
/// `pointInTimeUTCMillis`, `checkpointId` (or the Go client's `checkPointId`).
fn read_target(f: &mut Fields) -> Result<RestoreTarget, ApiError> {
    let snapshot = f.opt_str("snapshotId")?;
    let oplog_ts = ranged(f, "oplogTs", i64::from(u32::MAX))?;
    let oplog_inc = ranged(f, "oplogInc", i64::from(u32::MAX))?;
    let pit = ranged(f, "pointInTimeUTCMillis", i64::from(u32::MAX) * 1000)?;
    let checkpoint = match (f.opt_str("checkpointId")?, f.opt_str("checkPointId")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                "checkpointId and checkPointId name different checkpoints.",
                vec!["checkpointId".into(), "checkPointId".into()],
            ))
        }
        (a, b) => a.or(b),
    };
    let oplog = match (oplog_ts, oplog_inc) {
        (Some(ts), Some(inc)) => Some(OplogTs {
            secs: ts as u32,
            inc: inc as u32,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                "oplogTs and oplogInc must be given together.",
                vec!["oplogTs".into(), "oplogInc".into()],
            ))
        }
    };
    let given: Vec<&str> = [
        snapshot.as_ref().map(|_| "snapshotId"),
        oplog.map(|_| "oplogTs"),
        pit.map(|_| "pointInTimeUTCMillis"),
        checkpoint.as_ref().map(|_| "checkpointId"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!(
                "Give exactly one restore target; this request gives {}.",
                given.join(", ")
            ),
            given.iter().map(|s| s.to_string()).collect(),
        ));
    }
    match (snapshot, oplog, pit, checkpoint) {
        (Some(s), ..) => Ok(RestoreTarget::Snapshot(body_id("snapshotId", &s, SnapshotId::parse)?)),
        (_, Some(ts), ..) => Ok(RestoreTarget::OplogTimestamp(ts)),
        (_, _, Some(millis), _) => Ok(RestoreTarget::PointInTime { millis }),
        (.., Some(c)) => Ok(RestoreTarget::Checkpoint(body_id("checkpointId", &c, CheckpointId::parse)?)),
        _ => Err(ApiError::new(
            ErrorCode::MissingAttribute,
            "The required attribute snapshotId was not specified (or one of oplogTs and oplogInc, pointInTimeUTCMillis, checkpointId).",
            vec!["snapshotId".into()],
        )),
    }
}

fn read_http_delivery(d: &mut Fields, now: UnixSeconds) -> Result<DeliveryRequest, ApiError> {
    for field in ["targetGroupId", "targetClusterId", "targetClusterName"] {
        if d.has(field) {
            let path = d.path(field);
            return Err(invalid(
                &path,
                format!(
                    "Invalid attribute {path} specified: it applies only to AUTOMATED_RESTORE."
                ),
            ));
        }
    }
    let max_downloads = match d.opt_int("maxDownloads")? {
        None => UNLIMITED_DOWNLOADS,
        Some(n) if n < 1 => return Err(negative_or_zero("delivery.maxDownloads")),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= UNLIMITED_DOWNLOADS)
            .ok_or_else(|| {
                invalid(
                    "delivery.maxDownloads",
                    "Invalid attribute delivery.maxDownloads specified: it is too large.",
                )
            })?,
    };
    let expires = d.opt_str("expires")?;
    let hours = d.opt_int("expirationHours")?;
    let expiry = match (expires, hours) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                "Set delivery.expires or delivery.expirationHours, not both.",
                vec!["delivery.expires".into(), "delivery.expirationHours".into()],
            ))
        }
        (Some(text), None) => {
            let at = parse_iso(&text).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidJsonAttribute,
                    format!("Received JSON for the delivery.expires attribute does not match expected format: {text:?} is not an ISO-8601 date."),
                    vec!["delivery.expires".into()],
                )
            })?;
            if at <= now {
                return Err(invalid("delivery.expires", "Invalid attribute delivery.expires specified: it is in the past."));
            }
            LinkExpiry::At(at)
        }
        (None, Some(h)) if h < 1 => return Err(negative_or_zero("delivery.expirationHours")),
        (None, Some(h)) if h > i64::from(MAX_EXPIRATION_HOURS) => {
            return Err(invalid(
                "delivery.expirationHours",
                format!("Invalid attribute delivery.expirationHours specified: at most {MAX_EXPIRATION_HOURS}."),
            ))
        }
        (None, Some(h)) => LinkExpiry::Hours(h as u32),
        (None, None) => LinkExpiry::Hours(DEFAULT_EXPIRATION_HOURS),
    };
    Ok(DeliveryRequest::Http {
        max_downloads,
        expiry,
    })
}

fn read_automated_delivery(d: &mut Fields) -> Result<DeliveryRequest, ApiError> {
    for field in ["maxDownloads", "expires", "expirationHours"] {
        if d.has(field) {
            let path = d.path(field);
            return Err(invalid(
                &path,
                format!("Invalid attribute {path} specified: it applies only to HTTP delivery."),
            ));
        }
    }
    let group = d
        .opt_str("targetGroupId")?
        .ok_or_else(|| d.missing("targetGroupId"))?;
    let target_group = body_id("delivery.targetGroupId", &group, GroupId::parse)?;
    let target_cluster = match (
        d.opt_str("targetClusterId")?,
        d.opt_str("targetClusterName")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                "Set delivery.targetClusterId or delivery.targetClusterName, not both.",
                vec![
                    "delivery.targetClusterId".into(),
                    "delivery.targetClusterName".into(),
                ],
            ))
        }
        (Some(id), None) => {
            TargetCluster::Id(body_id("delivery.targetClusterId", &id, ClusterId::parse)?)
        }
        (None, Some(name)) => TargetCluster::Name(name),
        (None, None) => return Err(d.missing("targetClusterId")),
    };
    Ok(DeliveryRequest::Automated {
        target_group,
        target_cluster,
    })
}

/// Parses a create body with every rule of the contract; each violation has its own code
/// and names the field.
pub fn parse_restore_request(body: Value, now: UnixSeconds) -> Result<RestoreRequest, ApiError> {
    let mut f = Fields::from_body(body)?;
    let mut d = f
        .opt_object("delivery")?
        .ok_or_else(|| f.missing("delivery"))?;
    let target = read_target(&mut f)?;
    f.finish()?;
    let method = d.req_str("methodName")?;
    let delivery = match method.as_str() {
        "HTTP" => read_http_delivery(&mut d, now)?,
        "AUTOMATED_RESTORE" => read_automated_delivery(&mut d)?,
        "SCP" => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedDeliveryMethod,
                "The specified delivery method is not supported: SCP delivery was removed; use HTTP or AUTOMATED_RESTORE.",
                vec!["delivery.methodName".into()],
            ))
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidEnumValue,
                format!("An invalid enumeration value {other} was specified for delivery.methodName."),
                vec!["delivery.methodName".into(), other.to_owned()],
            ))
        }
    };
    d.finish()?;
    if matches!(target, RestoreTarget::Checkpoint(_))
        && matches!(delivery, DeliveryRequest::Http { .. })
    {
        return Err(invalid(
            "delivery.methodName",
            "Checkpoint restores are delivered by AUTOMATED_RESTORE only.",
        ));
    }
    Ok(RestoreRequest { target, delivery })
}

/// Answers `200` with a list page holding the created jobs, as Cloud Manager does.
async fn create(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    paging: Paging,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request = parse_restore_request(body, state.services.clock.now())?;
    let jobs = state
        .services
        .create_restore(&principal, group, cluster, request)
        .await?;
    let naming = state.services.job_naming(group, cluster).await?;
    let items: Vec<_> = jobs
        .iter()
        .map(|j| views::restore_job(&state, &naming, j))
        .collect();
    Ok(paging.respond_from_all(items))
}

async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    req: Request,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(req.uri().query());
    let batch = match pairs.iter().rev().find(|(k, _)| k == "batchId") {
        None => None,
        Some((_, v)) => Some(BatchId::parse(v).ok_or_else(|| {
            ApiError::invalid_query(
                "batchId",
                format!("Invalid query parameter batchId specified: {v:?} is not a 24-hex id."),
            )
        })?),
    };
    let page = state
        .services
        .list_restores(&principal, group, cluster, batch, paging.request())
        .await?;
    let naming = state.services.job_naming(group, cluster).await?;
    let items = page
        .items
        .iter()
        .map(|j| views::restore_job(&state, &naming, j))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, job)): ApiPath<(GroupId, ClusterId, JobId)>,
) -> Result<Response, ApiError> {
    let record = state
        .services
        .get_restore(&principal, group, cluster, job)
        .await?;
    let naming = state.services.job_naming(group, cluster).await?;
    Ok(crate::http::conventions::json_response(
        StatusCode::OK,
        &views::restore_job(&state, &naming, &record),
    ))
}
