//! `GET /console/projects/{G}/clusters/{C}`: a cluster's timeline of what is restorable and
//! its snapshots, a page at a time; and the snapshot actions (delete, `doNotDelete`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::{bytes_text, moment, page_number, Chrome, Pager};
use crate::console::render;
use crate::console::session::{Change, ConsoleResult, Viewer};
use crate::console::timeline::{self, Lane, SnapshotMark, Span, TimelineInput, TimelineView};
use crate::domain::restore::pit::Restorability;
use crate::domain::GroupAccess;
use crate::http::path::ApiPath;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::model::{ClusterRecord, SnapshotRecord};

#[derive(Serialize)]
struct SnapshotRow {
    id: String,
    created: String,
    complete: bool,
    size: String,
    stored: String,
    expires: Option<String>,
    do_not_delete: bool,
}

#[derive(Serialize)]
struct ZoomLink {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Serialize)]
struct ClusterPage {
    chrome: Chrome,
    group_id: String,
    group_name: String,
    cluster: ClusterSummary,
    may_restore: bool,
    timeline: String,
    zoom: Vec<ZoomLink>,
    window_hours: u32,
    ranges: Vec<RangeRow>,
    may_plan: bool,
    snapshots: Vec<SnapshotRow>,
    pager: Pager,
    base: String,
}

#[derive(Serialize)]
struct ClusterSummary {
    id: String,
    name: String,
    type_name: &'static str,
    fcv: String,
}

#[derive(Serialize)]
struct RangeRow {
    start: String,
    end: String,
    snapshot_id: String,
}

fn snapshot_row(s: &SnapshotRecord) -> SnapshotRow {
    SnapshotRow {
        id: s.id.to_hex(),
        created: moment(i64::from(s.created.secs)),
        complete: s.complete,
        size: bytes_text(s.parts.iter().map(|p| p.file_size_bytes).sum()),
        stored: bytes_text(s.parts.iter().map(|p| p.storage_size_bytes).sum()),
        expires: s.expires.map(moment),
        do_not_delete: s.do_not_delete,
    }
}

/// The page's base path: `/console/projects/{G}/clusters/{C}`.
pub fn cluster_path(group: GroupId, cluster: ClusterId) -> String {
    format!("/console/projects/{group}/clusters/{cluster}")
}

/// What the timeline draws, from what the restore rule itself reads.
fn timeline_input(found: &Restorability, restore_url: Option<String>) -> TimelineInput {
    let rule = &found.rule;
    let lanes = rule
        .coverage
        .streams
        .iter()
        .map(|(stream, ranges)| Lane {
            name: stream.replica_set.clone(),
            stretches: ranges
                .iter()
                .map(|r| Span {
                    start: i64::from(r.first.secs),
                    end: i64::from(r.last.secs),
                })
                .collect(),
        })
        .collect();
    let mut snapshots: Vec<SnapshotMark> = rule
        .snapshots
        .iter()
        .map(|s| SnapshotMark {
            at: i64::from(s.created.secs),
            complete: s.complete,
        })
        .collect();
    snapshots.sort_by_key(|s| s.at);
    TimelineInput {
        now: rule.now,
        window_start: Some(rule.window_start),
        lanes,
        snapshots,
        checkpoints: found.checkpoints.iter().map(|t| i64::from(*t)).collect(),
        restorable: found
            .ranges
            .iter()
            .map(|r| Span {
                start: i64::from(r.start.secs),
                end: i64::from(r.end.secs),
            })
            .collect(),
        restore_url,
    }
}

fn summary(cluster: &ClusterRecord) -> ClusterSummary {
    ClusterSummary {
        id: cluster.id.to_hex(),
        name: cluster.cluster_name.clone(),
        type_name: cluster.type_name.as_str(),
        fcv: cluster.fcv.clone(),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Viewer(session): Viewer,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    Query(query): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    let principal = &session.principal;
    let services = &state.services;
    let project = services
        .authorize_group(principal, group, GroupAccess::Read)
        .await?;
    let record = services.get_cluster(principal, group, cluster).await?;
    let found = services.restorability(principal, group, cluster).await?;
    let page = page_number(&query);
    let snapshots = services
        .list_snapshots(principal, group, cluster, Pager::request(page))
        .await?;
    let base = cluster_path(group, cluster);
    let may_restore =
        principal.may(&project, GroupAccess::BackupAdmin) && record.parent_id.is_none();
    let restore_url = may_restore.then(|| format!("{base}/restore?method=pit"));
    let input = timeline_input(&found, restore_url);
    let view = TimelineView::from_query(
        query.get("from").map(String::as_str),
        query.get("to").map(String::as_str),
        &input,
    );
    let zoom = view
        .zoom_links(input.now)
        .into_iter()
        .map(|link| ZoomLink {
            current: link.is_current,
            href: format!("{base}?{}", link.query()),
            label: link.label,
        })
        .collect();
    let context = ClusterPage {
        chrome: Chrome::of(&session, record.cluster_name.clone()),
        group_id: group.to_hex(),
        group_name: project.name.clone(),
        cluster: summary(&record),
        may_restore,
        timeline: timeline::render(&input, &view),
        zoom,
        window_hours: found.rule.window_hours,
        ranges: found
            .ranges
            .iter()
            .rev()
            .take(20)
            .map(|r| RangeRow {
                start: crate::domain::restore::pit::ts_text(r.start),
                end: crate::domain::restore::pit::ts_text(r.end),
                snapshot_id: r.snapshot.to_hex(),
            })
            .collect(),
        may_plan: found.may_plan,
        snapshots: snapshots.items.iter().map(snapshot_row).collect(),
        pager: Pager::of(page, snapshots.total),
        base,
    };
    Ok(render::page(StatusCode::OK, "cluster.html", context))
}

/// Back to the cluster page after a snapshot action.
fn back_to(group: GroupId, cluster: ClusterId) -> Response {
    render::with_console_headers(Redirect::to(&cluster_path(group, cluster)).into_response())
}

/// `POST …/snapshots/{S}/delete`.
pub async fn delete_snapshot(
    State(state): State<AppState>,
    ApiPath((group, cluster, snapshot)): ApiPath<(GroupId, ClusterId, SnapshotId)>,
    change: Change,
) -> ConsoleResult<Response> {
    state
        .services
        .delete_snapshot(&change.session.principal, group, cluster, snapshot)
        .await?;
    Ok(back_to(group, cluster))
}

/// `POST …/snapshots/{S}/retention` with `doNotDelete=true|false`.
pub async fn set_retention(
    State(state): State<AppState>,
    ApiPath((group, cluster, snapshot)): ApiPath<(GroupId, ClusterId, SnapshotId)>,
    change: Change,
) -> ConsoleResult<Response> {
    let keep = change.form.get("doNotDelete") == Some("true");
    state
        .services
        .update_snapshot_retention(
            &change.session.principal,
            group,
            cluster,
            snapshot,
            None,
            Some(keep),
        )
        .await?;
    Ok(back_to(group, cluster))
}
