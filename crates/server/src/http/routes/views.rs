//! Records rendered as wire types, with their absolute `self` links.

use rewind_api_types as wire;
use rewind_api_types::iso_seconds::format_iso;

use crate::domain::checkpoints::CheckpointView;
use crate::domain::oplog::PushOutcome;
use crate::domain::restore::pit::RestorableTimeRanges;
use crate::domain::restore::JobNaming;
use crate::domain::settings::{format_offset, BackupSettings, SnapshotSchedule};
use crate::http::conventions::Links;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId};
use crate::model::{
    AccessEntry, ApiKeyRecord, ClusterRecord, ClusterType, DeliveryMethod, DeliveryStatus,
    GroupRecord, JobStatus, OplogStreamSummary, OplogTs, OrgRecord, RestoreJobRecord,
    SnapshotRecord,
};

pub fn organization(links: &Links, o: &OrgRecord) -> wire::Organization {
    wire::Organization {
        id: o.id.to_hex(),
        is_deleted: None,
        links: links.self_link(&format!("/orgs/{}", o.id)),
        name: o.name.clone(),
    }
}

pub fn group(links: &Links, g: &GroupRecord) -> wire::Group {
    wire::Group {
        created: format_iso(g.created),
        id: g.id.to_hex(),
        links: links.self_link(&format!("/groups/{}", g.id)),
        name: g.name.clone(),
        org_id: g.org_id.to_hex(),
    }
}

pub fn api_key(links: &Links, k: &ApiKeyRecord, private_key: Option<String>) -> wire::ApiKey {
    wire::ApiKey {
        desc: k.desc.clone(),
        id: k.id.to_hex(),
        links: links.self_link(&format!("/orgs/{}/apiKeys/{}", k.org_id, k.id)),
        private_key,
        public_key: k.public_key.clone(),
        roles: k
            .roles
            .iter()
            .map(|r| wire::RoleAssignment {
                group_id: r.group_id.map(|g| g.to_hex()),
                org_id: if r.group_id.is_none() {
                    Some(k.org_id.to_hex())
                } else {
                    None
                },
                role_name: r.role.as_str().to_owned(),
            })
            .collect(),
    }
}

pub fn access_entry(links: &Links, k: &ApiKeyRecord, e: &AccessEntry) -> wire::AccessListEntry {
    let is_single_address = e.cidr.prefix_len() == e.cidr.max_prefix_len();
    let cidr = e.cidr.to_string();
    wire::AccessListEntry {
        links: links.self_link(&format!(
            "/orgs/{}/apiKeys/{}/accessList/{}",
            k.org_id,
            k.id,
            cidr.replace('/', "%2F")
        )),
        cidr_block: cidr,
        created: format_iso(e.created),
        ip_address: is_single_address.then(|| e.cidr.addr().to_string()),
    }
}

pub fn cluster(links: &Links, c: &ClusterRecord) -> wire::Cluster {
    wire::Cluster {
        cluster_name: c.cluster_name.clone(),
        group_id: c.group_id.to_hex(),
        id: c.id.to_hex(),
        last_heartbeat: c.last_heartbeat.map(format_iso),
        links: links.self_link(&format!("/groups/{}/clusters/{}", c.group_id, c.id)),
        replica_set_name: c.replica_set_name.clone(),
        shard_name: c.shard_name.clone(),
        type_name: c.type_name.as_str().to_owned(),
    }
}

pub fn bson_ts(ts: OplogTs) -> wire::BsonTimestamp {
    wire::BsonTimestamp {
        date: i64::from(ts.secs),
        increment: ts.inc,
    }
}

/// Whether a snapshot is a sharded cluster's: it has a config server's part.
fn is_sharded(s: &SnapshotRecord) -> bool {
    s.parts
        .iter()
        .any(|p| p.type_name == ClusterType::ConfigServerReplicaSet)
}

pub fn snapshot(links: &Links, s: &SnapshotRecord) -> wire::Snapshot {
    wire::Snapshot {
        cluster_id: s.cluster_id.to_hex(),
        complete: s.complete,
        created: bson_ts(s.created),
        do_not_delete: s.do_not_delete,
        expires: s.expires.map(format_iso),
        group_id: s.group_id.to_hex(),
        id: s.id.to_hex(),
        // Every part of an imported snapshot is stated to hold its replica set's data at the
        // snapshot's one `created` timestamp, so a sharded snapshot is consistent as stated.
        is_possibly_inconsistent: is_sharded(s).then_some(false),
        last_oplog_applied_timestamp: Some(bson_ts(s.last_oplog_applied.unwrap_or(s.created))),
        links: links.self_link(&format!(
            "/groups/{}/clusters/{}/snapshots/{}",
            s.group_id, s.cluster_id, s.id
        )),
        namespace_filter_list: Some(wire::NamespaceFilterList {
            filter_list: Vec::new(),
            filter_type: "blacklist".into(),
        }),
        parts: s
            .parts
            .iter()
            .map(|p| wire::SnapshotPart {
                cluster_id: p.cluster_id.to_hex(),
                compression_setting: "GZIP".into(),
                data_size_bytes: p.data_size_bytes,
                encryption_enabled: false,
                file_size_bytes: p.file_size_bytes,
                mongod_version: s.mongod_version.clone(),
                replica_set_name: p.replica_set_name.clone(),
                storage_size_bytes: p.storage_size_bytes,
                type_name: p.type_name.as_str().to_owned(),
            })
            .collect(),
    }
}

/// The download URL of an HTTP job: `{base}/backup/restore/v2/pull/{JOB}/{TOKEN}/{FILE}.tar.gz`.
pub fn download_url(state: &AppState, job: &RestoreJobRecord) -> String {
    format!(
        "{}/backup/restore/v2/pull/{}/{}/{}.tar.gz",
        state.links.base(),
        job.id,
        state.services.download_token(job.id),
        job.file_name
    )
}

pub fn restore_job(state: &AppState, naming: &JobNaming, j: &RestoreJobRecord) -> wire::RestoreJob {
    // A cancelled job's delivery reads INTERRUPTED, but it has no link to resume.
    let prepared = j.status != JobStatus::Killed
        && !matches!(
            j.delivery_status,
            DeliveryStatus::NotStarted | DeliveryStatus::InProgress | DeliveryStatus::Failed
        );
    let delivery = match &j.method {
        DeliveryMethod::Http {
            max_downloads,
            expiration_hours,
        } => wire::RestoreDelivery {
            expiration_hours: *expiration_hours,
            expires: j.expires.map(format_iso),
            max_downloads: Some(*max_downloads),
            method_name: "HTTP".into(),
            status_name: Some(j.delivery_status.as_str().into()),
            target_cluster_id: None,
            target_group_id: None,
            url: prepared.then(|| download_url(state, j)),
        },
        DeliveryMethod::Automated {
            target_group,
            target_cluster,
        } => wire::RestoreDelivery {
            expiration_hours: None,
            expires: None,
            max_downloads: None,
            method_name: "HTTP".into(),
            status_name: Some(j.delivery_status.as_str().into()),
            target_cluster_id: Some(target_cluster.to_hex()),
            target_group_id: Some(target_group.to_hex()),
            url: None,
        },
    };
    let hashes = match (&j.archive_sha1, j.downloads_completed) {
        (Some(sha1), n) if n > 0 => Some(vec![wire::ArchiveHash {
            file_name: format!("{}.tar.gz", j.file_name),
            hash: sha1.clone(),
            type_name: "SHA1".into(),
        }]),
        _ => None,
    };
    wire::RestoreJob {
        batch_id: j.batch_id.map(|b| b.to_hex()),
        cluster_id: naming.part_of(j).to_hex(),
        cluster_name: Some(naming.cluster_name.clone()),
        created: format_iso(j.created),
        delivery,
        encryption_enabled: false,
        failure_reason: j.failure.clone(),
        group_id: j.group_id.to_hex(),
        hashes,
        id: j.id.to_hex(),
        links: state.links.self_link(&format!(
            "/groups/{}/clusters/{}/restoreJobs/{}",
            j.group_id, j.cluster_id, j.id
        )),
        point_in_time: j.point_in_time,
        snapshot_id: Some(j.snapshot_id.to_hex()),
        status_name: j.status.as_str().into(),
        timestamp: bson_ts(j.timestamp),
    }
}

pub fn oplog_status(
    links: &Links,
    group: GroupId,
    cluster: ClusterId,
    s: &OplogStreamSummary,
) -> wire::OplogStatus {
    wire::OplogStatus {
        cluster_id: cluster.to_hex(),
        data_size_bytes: s.raw_bytes,
        entry_count: s.entries,
        first_timestamp: s.ranges.first().map(|r| bson_ts(r.first)),
        gaps: crate::oplog::coverage::gaps(&s.ranges)
            .into_iter()
            .map(|(start, end)| wire::OplogGap {
                end: bson_ts(end),
                start: bson_ts(start),
            })
            .collect(),
        group_id: group.to_hex(),
        last_timestamp: s.ranges.last().map(|r| bson_ts(r.last)),
        links: links.rewind_self_link(&format!(
            "/groups/{group}/clusters/{cluster}/oplog/{}",
            wire::path_segment(&s.replica_set)
        )),
        ranges: s
            .ranges
            .iter()
            .map(|r| wire::OplogRange {
                first: bson_ts(r.first),
                last: bson_ts(r.last),
            })
            .collect(),
        replica_set_name: s.replica_set.clone(),
        slice_count: s.slices,
        storage_size_bytes: s.stored_bytes,
    }
}

pub fn oplog_push(
    links: &Links,
    group: GroupId,
    cluster: ClusterId,
    o: &PushOutcome,
) -> wire::OplogPushSummary {
    wire::OplogPushSummary {
        bytes_received: o.bytes_received,
        bytes_stored: o.bytes_stored,
        coverage: oplog_status(links, group, cluster, &o.coverage),
        entries_already_stored: o.entries_already_stored,
        entries_received: o.entries_received,
        entries_stored: o.entries_stored,
        gap_opened: o.gap_opened,
        slices_written: o.slices_written,
    }
}

pub fn backup_settings(links: &Links, s: &BackupSettings) -> wire::BackupSettings {
    wire::BackupSettings {
        checkpoint_interval_minutes: s.checkpoint_interval_minutes,
        group_id: s.group.to_hex(),
        links: links.rewind_self_link(&format!("/groups/{}/backupSettings", s.group)),
        point_in_time_window_hours: s.pit_window_hours,
    }
}

/// A checkpoint with its `self`, `cluster` and `group` links. Rewind records a checkpoint in
/// one step, so `started` and `completed` are both when it was recorded.
pub fn checkpoint(links: &Links, v: &CheckpointView) -> wire::Checkpoint {
    let c = &v.record;
    let cluster_path = format!("/groups/{}/clusters/{}", c.group_id, c.cluster_id);
    let link = |path: &str, rel: &str| wire::Link {
        href: links.public(path),
        rel: rel.into(),
    };
    wire::Checkpoint {
        cluster_id: c.cluster_id.to_hex(),
        completed: Some(format_iso(c.recorded)),
        group_id: c.group_id.to_hex(),
        id: c.id.to_hex(),
        links: vec![
            link(&format!("{cluster_path}/checkpoints/{}", c.id), "self"),
            link(&cluster_path, "cluster"),
            link(&format!("/groups/{}", c.group_id), "group"),
        ],
        parts: c
            .parts
            .iter()
            .map(|p| wire::CheckpointPart {
                replica_set_name: p.replica_set_name.clone(),
                shard_name: p.shard_name.clone(),
                token_discovered: true,
                token_timestamp: bson_ts(p.token),
                type_name: p.type_name.as_str().to_owned(),
            })
            .collect(),
        restorable: v.restorable,
        started: format_iso(c.recorded),
        timestamp: format_iso(i64::from(c.timestamp)),
    }
}

/// The restorable time ranges of a cluster, as Ops Manager lists them.
pub fn restorable_time_ranges(r: &RestorableTimeRanges) -> Vec<wire::RestorableTimeRange> {
    r.ranges
        .iter()
        .map(|range| wire::RestorableTimeRange {
            config_server_type: r.sharded.map(|_| "Dedicated".to_owned()),
            end: bson_ts(range.end),
            shard_count: r.sharded.map(|s| s.shard_count),
            snapshot_id: range.snapshot.to_hex(),
            start: bson_ts(range.start),
        })
        .collect()
}

/// A cluster's snapshot schedule: the project's settings as Cloud Manager names them.
pub fn snapshot_schedule(
    links: &Links,
    group: GroupId,
    s: &SnapshotSchedule,
) -> wire::SnapshotSchedule {
    let settings = &s.settings;
    let retention = settings.retention;
    wire::SnapshotSchedule {
        cluster_checkpoint_interval_min: s.sharded.then_some(settings.checkpoint_interval_minutes),
        cluster_id: s.cluster.to_hex(),
        daily_snapshot_retention_days: retention.map(|r| r.daily_days),
        group_id: group.to_hex(),
        links: links.self_link(&format!(
            "/groups/{group}/backupConfigs/{}/snapshotSchedule",
            s.cluster
        )),
        monthly_snapshot_retention_months: retention.map(|r| r.monthly_months),
        point_in_time_window_hours: settings.pit_window_hours,
        reference_hour_of_day: settings.reference_hour_of_day,
        reference_minute_of_hour: settings.reference_minute_of_hour,
        reference_time_zone_offset: settings.reference_offset_minutes.map(format_offset),
        snapshot_interval_hours: settings.snapshot_interval_hours,
        snapshot_retention_days: retention.map(|r| r.snapshot_days),
        weekly_snapshot_retention_weeks: retention.map(|r| r.weekly_weeks),
    }
}

/// `GET …/restoreJobs/{JOB}/members`: a job's preparation and its members' state and bytes.
pub fn restore_progress(
    progress: crate::domain::agents::RestoreProgress,
) -> wire::agent::RestoreProgress {
    let results = progress
        .members
        .into_iter()
        .map(|m| wire::agent::MemberStatus {
            agent_id: m.agent_id,
            bytes_delivered: m.progress_bytes,
            bytes_expected: progress.expected_bytes,
            failure_reason: m.failure,
            member_name: m.member_name,
            progress_bytes: m.progress_bytes,
            state: m.state,
            updated: format_iso(m.updated),
        })
        .collect();
    wire::agent::RestoreProgress {
        bytes_delivered: progress.delivered_bytes,
        bytes_expected: progress.expected_bytes,
        bytes_prepared: progress.prepared_bytes,
        failure_reason: progress.job.failure,
        job_id: progress.job.id.to_hex(),
        results,
        status_name: progress.job.status.as_str().to_owned(),
    }
}
