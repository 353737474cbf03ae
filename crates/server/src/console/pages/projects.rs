//! `GET /console/projects`: the projects the key can see, each with its clusters: type,
//! feature compatibility version, members, and when their agents last reported.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{moment, Chrome};
use crate::console::render;
use crate::console::session::{ConsoleResult, Viewer};
use crate::domain::GroupAccess;
use crate::http::AppState;
use crate::model::{ClusterRecord, ClusterType, PageRequest};

/// Projects shown at most (a key with more narrows them with the API).
const MAX_PROJECTS: u64 = 200;

#[derive(Serialize)]
struct MemberRow {
    name: String,
    type_name: &'static str,
    replica_set: Option<String>,
    last_heartbeat: Option<String>,
}

#[derive(Serialize)]
struct ClusterRow {
    id: String,
    name: String,
    type_name: &'static str,
    fcv: String,
    members: Vec<MemberRow>,
    /// The newest heartbeat of any of its agents.
    last_heartbeat: Option<String>,
}

#[derive(Serialize)]
struct ProjectRow {
    id: String,
    name: String,
    may_restore: bool,
    clusters: Vec<ClusterRow>,
}

#[derive(Serialize)]
struct ProjectsPage {
    chrome: Chrome,
    projects: Vec<ProjectRow>,
    more: bool,
}

fn member_row(member: &ClusterRecord) -> MemberRow {
    MemberRow {
        name: member.cluster_name.clone(),
        type_name: member.type_name.as_str(),
        replica_set: member.replica_set_name.clone(),
        last_heartbeat: member.last_heartbeat.map(moment),
    }
}

/// A project's clusters as the page lists them: each top-level cluster with its members
/// (itself for a replica set; its shards and config server for a sharded cluster).
fn cluster_rows(all: &[ClusterRecord]) -> Vec<ClusterRow> {
    all.iter()
        .filter(|c| c.parent_id.is_none())
        .map(|cluster| {
            let members: Vec<&ClusterRecord> =
                if cluster.type_name == ClusterType::ShardedReplicaSet {
                    all.iter()
                        .filter(|m| m.parent_id == Some(cluster.id))
                        .collect()
                } else {
                    vec![cluster]
                };
            ClusterRow {
                id: cluster.id.to_hex(),
                name: cluster.cluster_name.clone(),
                type_name: cluster.type_name.as_str(),
                fcv: cluster.fcv.clone(),
                last_heartbeat: members
                    .iter()
                    .filter_map(|m| m.last_heartbeat)
                    .max()
                    .map(moment),
                members: members.into_iter().map(member_row).collect(),
            }
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    Viewer(session): Viewer,
) -> ConsoleResult<Response> {
    let principal = &session.principal;
    let groups = state
        .services
        .list_groups(
            principal,
            PageRequest {
                offset: 0,
                limit: MAX_PROJECTS,
            },
        )
        .await?;
    let mut projects = Vec::new();
    for group in &groups.items {
        let all = PageRequest {
            offset: 0,
            limit: u64::MAX,
        };
        let clusters = state
            .services
            .list_clusters(principal, group.id, all)
            .await?;
        projects.push(ProjectRow {
            id: group.id.to_hex(),
            name: group.name.clone(),
            may_restore: principal.may(group, GroupAccess::BackupAdmin),
            clusters: cluster_rows(&clusters.items),
        });
    }
    Ok(render::page(
        StatusCode::OK,
        "projects.html",
        ProjectsPage {
            chrome: Chrome::of(&session, "Projects"),
            projects,
            more: groups.total > MAX_PROJECTS,
        },
    ))
}
