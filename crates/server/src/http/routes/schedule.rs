//! `GET/PATCH /groups/{G}/backupConfigs/{C}/snapshotSchedule`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{views, ApiPath, PUBLIC};
use crate::domain::settings::ScheduleChange;
use crate::domain::{ErrorCode, Principal};
use crate::http::auth::BackupAdmin;
use crate::http::body::{Fields, JsonBody};
use crate::http::conventions::json_response;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        &format!("{PUBLIC}/groups/{{group}}/backupConfigs/{{cluster}}/snapshotSchedule"),
        get(read).patch(update),
    )
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let schedule = state
        .services
        .snapshot_schedule(&principal, group, cluster)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::snapshot_schedule(&state.links, group, &schedule),
    ))
}

/// The Go client sends the whole `SnapshotSchedule`: its `groupId` and `clusterId` (empty
/// when it did not fill them) and `links` are accepted when they agree with the path.
async fn update(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut f = Fields::from_body(body)?;
    if let Some(given) = f.opt_str("groupId")? {
        if !given.is_empty() && given != group.to_hex() {
            return Err(ApiError::new(
                ErrorCode::GroupMismatch,
                format!("The specified group ID {given} does not match the URL."),
                vec![given],
            ));
        }
    }
    if let Some(given) = f.opt_str("clusterId")? {
        if !given.is_empty() && given != cluster.to_hex() {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute clusterId specified: {given} does not match the URL."),
                vec!["clusterId".into()],
            ));
        }
    }
    f.opt_array("links")?;
    let change = ScheduleChange {
        pit_window_hours: f.opt_int("pointInTimeWindowHours")?,
        checkpoint_interval_minutes: f.opt_int("clusterCheckpointIntervalMin")?,
        snapshot_interval_hours: f.opt_int("snapshotIntervalHours")?,
        snapshot_retention_days: f.opt_int("snapshotRetentionDays")?,
        daily_retention_days: f.opt_int("dailySnapshotRetentionDays")?,
        weekly_retention_weeks: f.opt_int("weeklySnapshotRetentionWeeks")?,
        monthly_retention_months: f.opt_int("monthlySnapshotRetentionMonths")?,
        reference_hour_of_day: f.opt_int("referenceHourOfDay")?,
        reference_minute_of_hour: f.opt_int("referenceMinuteOfHour")?,
        reference_offset: f.opt_str("referenceTimeZoneOffset")?,
    };
    f.finish()?;
    let schedule = state
        .services
        .update_snapshot_schedule(&principal, group, cluster, &change)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::snapshot_schedule(&state.links, group, &schedule),
    ))
}
