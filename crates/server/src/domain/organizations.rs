//! Organizations (`GET /orgs`, `GET /orgs/{ORG-ID}`).
//!
//! An API key belongs to one organization, and that organization is all it can see: any
//! role, org-wide or on one of its projects, makes the key a member of it (as every
//! programmatic key of Cloud Manager is). An organization the key does not belong to is
//! answered as one that does not exist, so keys cannot probe for other organizations.

use super::{DomainError, DomainResult, ErrorCode, Principal, Services};
use crate::ids::OrgId;
use crate::model::{OrgRecord, PageOf, PageRequest};

fn org_not_found(id: OrgId) -> DomainError {
    DomainError::rejected(
        ErrorCode::OrgNotFound,
        format!("No organization with ID {id} exists."),
        vec![id.to_hex()],
    )
}

/// Whether `name` passes the list's `name` filter: a case-insensitive prefix, as Cloud
/// Manager's organization search matches (an empty filter matches every name).
pub fn name_matches(name: &str, filter: &str) -> bool {
    name.to_lowercase().starts_with(&filter.to_lowercase())
}

impl Services {
    /// The organizations the caller can see (its own), those whose name starts with
    /// `name` when a filter is given.
    pub async fn list_orgs(
        &self,
        principal: &Principal,
        name: Option<&str>,
        page: PageRequest,
    ) -> DomainResult<PageOf<OrgRecord>> {
        let own = self.get_org(principal, principal.org_id).await?;
        let all: Vec<OrgRecord> = std::iter::once(own)
            .filter(|org| name.is_none_or(|filter| name_matches(&org.name, filter)))
            .collect();
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .collect();
        Ok(PageOf { items, total })
    }

    /// One organization: the caller's own; any other id is `404 ORG_NOT_FOUND`.
    pub async fn get_org(&self, principal: &Principal, id: OrgId) -> DomainResult<OrgRecord> {
        if id != principal.org_id || principal.roles.is_empty() {
            return Err(org_not_found(id));
        }
        self.meta
            .get_org(id)
            .await?
            .ok_or_else(|| org_not_found(id))
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn the_name_filter_is_a_case_insensitive_prefix() {
        assert!(name_matches("Acme Backups", "acme"));
        assert!(name_matches("Acme Backups", ""));
        assert!(name_matches("Acme Backups", "ACME BACKUPS"));
        assert!(!name_matches("Acme Backups", "Backups"));
        assert!(!name_matches("Acme", "Acme Backups"));
    }
}
