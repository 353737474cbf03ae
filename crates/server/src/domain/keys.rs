//! Programmatic API keys: creation, lookup for authentication, roles and access lists.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rand::Rng;

use super::cache::TtlCache;
use super::{Clock, DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::meta::{MetaError, MetaStore};
use crate::model::Role;
use crate::model::{AccessEntry, ApiKeyRecord, PageOf, PageRequest, RoleGrant};

/// The Digest realm every challenge names; part of each key's stored HA1.
pub const DIGEST_REALM: &str = "MMS Public API";

/// How long an authentication lookup may be served from memory. Changes made through this
/// node take effect at once; changes made on another node within this delay.
const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// A key's secret half, shown to the caller exactly once.
pub struct NewKey {
    pub record: ApiKeyRecord,
    pub private_key: String,
}

/// `MD5(username:realm:password)`: the only secret material kept for a key.
pub fn digest_ha1(public_key: &str, private_key: &str) -> String {
    hex::encode(Md5::digest(format!(
        "{public_key}:{DIGEST_REALM}:{private_key}"
    )))
}

/// Builds a fresh key: a public key of 8 lowercase letters and a UUID private key.
pub fn generate_key(
    org: OrgId,
    desc: &str,
    roles: Vec<RoleGrant>,
    access: Vec<AccessEntry>,
    now: i64,
) -> NewKey {
    let mut rng = rand::thread_rng();
    let public_key: String = (0..8).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
    let private_key = uuid::Uuid::new_v4().to_string();
    NewKey {
        record: ApiKeyRecord {
            id: ApiKeyId::generate(),
            org_id: org,
            digest_ha1: digest_ha1(&public_key, &private_key),
            public_key,
            desc: desc.to_owned(),
            created: now,
            roles,
            access_list: access,
        },
        private_key,
    }
}

/// Parses an access-list value: an IP address (stored as a /32 or /128) or a CIDR block.
pub fn parse_access_entry(text: &str) -> Option<ipnet::IpNet> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ipnet::IpNet::from(normalize_ip(ip)));
    }
    let net: ipnet::IpNet = text.parse().ok()?;
    Some(net.trunc())
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) to plain IPv4 so lists match either form.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

pub struct KeyService {
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    /// Public key → the key (`None`: no such key).
    cache: TtlCache<String, Option<Arc<ApiKeyRecord>>>,
}

impl KeyService {
    pub fn new(meta: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> Self {
        KeyService {
            meta,
            clock,
            cache: TtlCache::new(KEY_CACHE_TTL, 10_000),
        }
    }

    /// Looks a key up by its public half for authentication, from a short-lived cache.
    pub async fn find_for_auth(&self, public_key: &str) -> DomainResult<Option<Arc<ApiKeyRecord>>> {
        let meta = self.meta.clone();
        let load = async move {
            Ok::<_, DomainError>(meta.get_api_key_by_public(public_key).await?.map(Arc::new))
        };
        self.cache.get_or_load(&public_key.to_owned(), load).await
    }

    fn forget(&self, public_key: &str) {
        self.cache.invalidate(&public_key.to_owned());
    }

    /// Whether a request from `ip` may use `key`. An empty list admits nobody unless the
    /// server runs with the access-list requirement off; a non-empty list is always enforced.
    pub fn admits(key: &ApiKeyRecord, ip: IpAddr, require_access_list: bool) -> bool {
        if key.access_list.is_empty() {
            return !require_access_list;
        }
        let ip = normalize_ip(ip);
        key.access_list.iter().any(|e| e.cidr.contains(&ip))
    }

    /// Creates a key in `org`. Roles must already be validated by the caller.
    pub async fn create(
        &self,
        principal: &Principal,
        org: OrgId,
        desc: &str,
        roles: Vec<RoleGrant>,
    ) -> DomainResult<NewKey> {
        if !principal.may_administer_org(org) {
            return Err(DomainError::unauthorized());
        }
        self.insert_new(org, desc, roles).await
    }

    /// Stores a new key under a free public key (retrying the rare collision).
    async fn insert_new(
        &self,
        org: OrgId,
        desc: &str,
        roles: Vec<RoleGrant>,
    ) -> DomainResult<NewKey> {
        for _ in 0..8 {
            let key = generate_key(org, desc, roles.clone(), Vec::new(), self.clock.now());
            match self.meta.insert_api_key(&key.record).await {
                Ok(()) => return Ok(key),
                Err(MetaError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Internal(
            "could not find a free public key".into(),
        ))
    }

    pub async fn list(
        &self,
        principal: &Principal,
        org: OrgId,
        page: PageRequest,
    ) -> DomainResult<PageOf<ApiKeyRecord>> {
        if !principal.may_read_org(org) {
            return Err(DomainError::unauthorized());
        }
        Ok(self.meta.list_api_keys(org, page).await?)
    }

    pub async fn get(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ApiKeyId,
    ) -> DomainResult<ApiKeyRecord> {
        if !principal.may_read_org(org) {
            return Err(DomainError::unauthorized());
        }
        self.meta
            .get_api_key(org, id)
            .await?
            .ok_or_else(|| key_not_found(id))
    }

    pub async fn delete(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ApiKeyId,
    ) -> DomainResult<()> {
        let key = self.get(principal, org, id).await?;
        if !principal.may_administer_org(org) {
            return Err(DomainError::unauthorized());
        }
        self.meta.delete_api_key(org, id).await?;
        self.forget(&key.public_key);
        Ok(())
    }

    pub async fn add_access(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ApiKeyId,
        cidrs: &[ipnet::IpNet],
    ) -> DomainResult<ApiKeyRecord> {
        let key = self.get(principal, org, id).await?;
        if !principal.may_administer_org(org) {
            return Err(DomainError::unauthorized());
        }
        let now = self.clock.now();
        let entries: Vec<AccessEntry> = cidrs
            .iter()
            .map(|c| AccessEntry {
                cidr: *c,
                created: now,
            })
            .collect();
        self.meta.add_access_entries(id, &entries).await?;
        self.forget(&key.public_key);
        self.get(principal, org, id).await
    }

    pub async fn delete_access(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ApiKeyId,
        cidr: &ipnet::IpNet,
    ) -> DomainResult<()> {
        let key = self.get(principal, org, id).await?;
        if !principal.may_administer_org(org) {
            return Err(DomainError::unauthorized());
        }
        if !self.meta.delete_access_entry(id, cidr).await? {
            return Err(DomainError::rejected(
                ErrorCode::AccessListEntryNotFound,
                format!("The access list entry {cidr} does not exist for API key {id}."),
                vec![cidr.to_string()],
            ));
        }
        self.forget(&key.public_key);
        Ok(())
    }
}

impl Services {
    /// Creates a key of the project's organization holding `roles` on that project only.
    /// Allowed to the organization's owners and the project's `GROUP_OWNER`s.
    pub async fn create_group_key(
        &self,
        principal: &Principal,
        group: GroupId,
        desc: &str,
        roles: Vec<Role>,
    ) -> DomainResult<NewKey> {
        let record = self
            .authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let is_group_owner = principal
            .roles
            .iter()
            .any(|g| g.group_id == Some(group) && g.role == Role::GroupOwner);
        if !(principal.may_administer_org(record.org_id) || is_group_owner) {
            return Err(DomainError::unauthorized());
        }
        let grants = roles
            .into_iter()
            .map(|role| RoleGrant {
                group_id: Some(group),
                role,
            })
            .collect();
        self.keys.insert_new(record.org_id, desc, grants).await
    }
}

fn key_not_found(id: ApiKeyId) -> DomainError {
    DomainError::rejected(
        ErrorCode::ApiKeyNotFound,
        format!("No API key with ID {id} exists."),
        vec![id.to_hex()],
    )
}
