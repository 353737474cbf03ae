//! First-run bootstrap: one organization, one project and one `ORG_OWNER` key usable from loopback.

use rewind_api_types::BootstrapCredentials;

use super::keys::{generate_key, parse_access_entry};
use super::{Clock, DomainError, DomainResult};
use crate::ids::{GroupId, OrgId};
use crate::meta::{BootstrapRecords, MetaStore};
use crate::model::{AccessEntry, GroupRecord, OrgRecord, Role, RoleGrant};

pub const BOOTSTRAP_ORG_NAME: &str = "Rewind";
pub const BOOTSTRAP_GROUP_NAME: &str = "Project 0";
/// The bootstrap key may be used from the local machine only.
pub const BOOTSTRAP_ACCESS_LIST: [&str; 2] = ["127.0.0.1", "::1"];

/// Writes the bootstrap identity. Returns `None`, changing nothing, when the store already
/// holds an organization: the private key is shown once, at creation, and never again.
pub async fn bootstrap(
    meta: &dyn MetaStore,
    clock: &dyn Clock,
) -> DomainResult<Option<BootstrapCredentials>> {
    let now = clock.now();
    let org = OrgRecord {
        id: OrgId::generate(),
        name: BOOTSTRAP_ORG_NAME.to_owned(),
        created: now,
    };
    let group = GroupRecord {
        id: GroupId::generate(),
        org_id: org.id,
        name: BOOTSTRAP_GROUP_NAME.to_owned(),
        created: now,
    };
    let access = BOOTSTRAP_ACCESS_LIST
        .iter()
        .map(|ip| {
            parse_access_entry(ip)
                .map(|cidr| AccessEntry { cidr, created: now })
                .ok_or_else(|| DomainError::Internal(format!("bad bootstrap address {ip}")))
        })
        .collect::<DomainResult<Vec<_>>>()?;
    let grants = vec![RoleGrant {
        group_id: None,
        role: Role::OrgOwner,
    }];
    let key = generate_key(org.id, "bootstrap key", grants, access, now);
    let records = BootstrapRecords {
        org: org.clone(),
        group: group.clone(),
        key: key.record.clone(),
    };
    if !meta.bootstrap(&records).await? {
        return Ok(None);
    }
    Ok(Some(BootstrapCredentials {
        group_id: group.id.to_hex(),
        org_id: org.id.to_hex(),
        private_key: key.private_key,
        public_key: key.record.public_key,
    }))
}
