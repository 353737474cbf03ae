//! Records rendered as wire types, with their absolute `self` links.

use rewind_api_types as wire;
use rewind_api_types::iso_seconds::format_iso;

use crate::http::conventions::Links;
use crate::model::{AccessEntry, ApiKeyRecord, ClusterRecord, GroupRecord};

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
