//! `GET /console/keys`: the organization's API keys and their access lists, for keys with
//! an organization role; owners may add and remove access-list entries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::{roles_text, Chrome};
use crate::console::render;
use crate::console::session::{Change, ConsoleResult, Viewer};
use crate::domain::keys::parse_access_entry;
use crate::domain::ErrorCode;
use crate::http::error::ApiError;
use crate::http::path::ApiPath;
use crate::http::AppState;
use crate::ids::ApiKeyId;
use crate::model::PageRequest;

/// Keys listed at most.
const MAX_KEYS: u64 = 500;

#[derive(Serialize)]
struct KeyRow {
    id: String,
    public_key: String,
    desc: String,
    roles: Vec<String>,
    access: Vec<String>,
    is_me: bool,
}

#[derive(Serialize)]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    may_manage: bool,
    more: bool,
}

pub async fn list(
    State(state): State<AppState>,
    Viewer(session): Viewer,
) -> ConsoleResult<Response> {
    let principal = &session.principal;
    let page = PageRequest {
        offset: 0,
        limit: MAX_KEYS,
    };
    let found = state
        .services
        .keys
        .list(principal, principal.org_id, page)
        .await?;
    let keys = found
        .items
        .iter()
        .map(|k| KeyRow {
            id: k.id.to_hex(),
            public_key: k.public_key.clone(),
            desc: k.desc.clone(),
            roles: roles_text(&k.roles),
            access: k.access_list.iter().map(|e| e.cidr.to_string()).collect(),
            is_me: k.id == principal.key_id,
        })
        .collect();
    Ok(render::page(
        StatusCode::OK,
        "keys.html",
        KeysPage {
            chrome: Chrome::of(&session, "API keys"),
            keys,
            may_manage: principal.may_administer_org(principal.org_id),
            more: found.total > MAX_KEYS,
        },
    ))
}

fn entry_of(change: &Change) -> ConsoleResult<ipnet::IpNet> {
    let text = change.form.get("entry").unwrap_or("");
    parse_access_entry(text).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute ipAddress specified: {text:?} is not an IP address or CIDR block."),
            vec!["ipAddress".into()],
        )
        .into()
    })
}

fn back() -> Response {
    render::with_console_headers(Redirect::to("/console/keys").into_response())
}

/// `POST /console/keys/{K}/access` with `entry`.
pub async fn add_access(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<ApiKeyId>,
    change: Change,
) -> ConsoleResult<Response> {
    let entry = entry_of(&change)?;
    let principal = &change.session.principal;
    state
        .services
        .keys
        .add_access(principal, principal.org_id, key, &[entry])
        .await?;
    Ok(back())
}

/// `POST /console/keys/{K}/access/delete` with `entry`.
pub async fn delete_access(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<ApiKeyId>,
    change: Change,
) -> ConsoleResult<Response> {
    let entry = entry_of(&change)?;
    let principal = &change.session.principal;
    state
        .services
        .keys
        .delete_access(principal, principal.org_id, key, &entry)
        .await?;
    Ok(back())
}
