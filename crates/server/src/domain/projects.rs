//! Projects ("groups" on the wire).

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{GroupId, OrgId};
use crate::meta::{GroupScope, MetaError};
use crate::model::{GroupRecord, PageOf, PageRequest};

/// Longest project or cluster name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Checks a display name: 1 to 64 characters, letters, digits, space, `-`, `_` and `.`.
pub fn validate_name(field: &str, name: &str) -> DomainResult<()> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::rejected(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute {field} specified: use 1 to {MAX_NAME_CHARS} letters, digits, spaces, '-', '_' or '.'."),
            vec![field.to_owned()],
        ))
    }
}

impl Services {
    /// Creates a project in the caller's organization (`ORG_OWNER` only).
    pub async fn create_group(
        &self,
        principal: &Principal,
        name: &str,
        org: Option<OrgId>,
    ) -> DomainResult<GroupRecord> {
        validate_name("name", name)?;
        let org = org.unwrap_or(principal.org_id);
        if !principal.may_administer_org(org) {
            return Err(DomainError::unauthorized());
        }
        let group = GroupRecord {
            id: GroupId::generate(),
            org_id: org,
            name: name.to_owned(),
            created: self.clock.now(),
        };
        match self.meta.insert_group(&group).await {
            Ok(()) => Ok(group),
            Err(MetaError::Conflict(_)) => Err(DomainError::rejected(
                ErrorCode::GroupAlreadyExists,
                format!("A group with name \"{name}\" already exists."),
                vec![name.to_owned()],
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists the projects the caller can see: all of its organization's for org roles,
    /// otherwise those it holds a project role in.
    pub async fn list_groups(
        &self,
        principal: &Principal,
        page: PageRequest,
    ) -> DomainResult<PageOf<GroupRecord>> {
        let mut scope = GroupScope::default();
        for grant in &principal.roles {
            match grant.group_id {
                Some(g) => scope.group_ids.push(g),
                None => scope.org_ids.push(principal.org_id),
            }
        }
        scope.org_ids.dedup();
        Ok(self.meta.list_groups(&scope, page).await?)
    }

    pub async fn get_group(&self, principal: &Principal, id: GroupId) -> DomainResult<GroupRecord> {
        self.authorize_group(principal, id, GroupAccess::Read).await
    }
}
