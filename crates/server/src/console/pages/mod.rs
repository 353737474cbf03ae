//! One module per page. Each page's context is a plain struct, rendered by its template.

pub mod cluster;
pub mod jobs;
pub mod keys;
pub mod projects;
pub mod restore;
pub mod signin;

use serde::Serialize;

use crate::domain::sessions::ConsoleSession;
use crate::domain::Principal;
use crate::model::{PageRequest, UnixSeconds};
use rewind_api_types::iso_seconds::format_iso;

/// What every signed-in page shows around its content.
#[derive(Serialize)]
pub struct Chrome {
    /// The signed-in key's public half.
    pub me: String,
    pub csrf: String,
    /// Whether the key may see its organization's API keys (an organization role).
    pub sees_keys: bool,
    /// The page's title.
    pub title: String,
}

impl Chrome {
    pub fn of(session: &ConsoleSession, title: impl Into<String>) -> Chrome {
        Chrome {
            me: session.principal.public_key.clone(),
            csrf: session.csrf_token.clone(),
            sees_keys: sees_keys(&session.principal),
            title: title.into(),
        }
    }
}

fn sees_keys(principal: &Principal) -> bool {
    principal.may_read_org(principal.org_id)
}

/// A moment as the pages show it: ISO-8601 UTC to the second.
pub fn moment(at: UnixSeconds) -> String {
    format_iso(at)
}

/// A byte count for people: `1.5 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Rows per page of the console's long lists.
pub const ROWS_PER_PAGE: u64 = 50;

/// Page `n` (from 1) of a long list, and the links around it.
#[derive(Serialize)]
pub struct Pager {
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub previous: Option<u64>,
    pub next: Option<u64>,
}

impl Pager {
    pub fn request(page: u64) -> PageRequest {
        PageRequest {
            offset: page.saturating_sub(1).saturating_mul(ROWS_PER_PAGE),
            limit: ROWS_PER_PAGE,
        }
    }

    pub fn of(page: u64, total: u64) -> Pager {
        let pages = total.div_ceil(ROWS_PER_PAGE).max(1);
        Pager {
            page,
            pages,
            total,
            previous: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
        }
    }
}

/// The `page` query parameter: from 1, anything else is the first page.
pub fn page_number(query: &std::collections::HashMap<String, String>) -> u64 {
    query
        .get("page")
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// The roles of a grant list, for display.
pub fn roles_text(principal_roles: &[crate::model::RoleGrant]) -> Vec<String> {
    principal_roles
        .iter()
        .map(|g| match g.group_id {
            Some(group) => format!("{} on {group}", g.role.as_str()),
            None => g.role.as_str().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn pages_are_counted_from_one() {
        let pager = Pager::of(1, 0);
        assert_eq!((pager.pages, pager.previous, pager.next), (1, None, None));
        let pager = Pager::of(2, 101);
        assert_eq!(
            (pager.pages, pager.previous, pager.next),
            (3, Some(1), Some(3))
        );
        assert_eq!(Pager::request(3).offset, 100);
    }
}
