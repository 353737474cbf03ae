//! Organization API keys (`/orgs/{O}/apiKeys`), their access lists, and
//! `POST /groups/{G}/apiKeys` (a key with roles on one project).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::Value;

use super::{views, ApiPath, PUBLIC};
use crate::domain::keys::parse_access_entry;
use crate::domain::{ErrorCode, Principal};
use crate::http::body::{Fields, JsonBody};
use crate::http::conventions::{json_response, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::model::{ApiKeyRecord, Role, RoleGrant};

/// Longest key description accepted, in characters.
const MAX_DESC_CHARS: usize = 250;
/// Most access list entries one request may add.
const MAX_ACCESS_ENTRIES_PER_REQUEST: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            &format!("{PUBLIC}/orgs/{{org}}/apiKeys"),
            get(list).post(create_org_key),
        )
        .route(
            &format!("{PUBLIC}/orgs/{{org}}/apiKeys/{{key}}"),
            get(get_one).delete(delete_one),
        )
        .route(
            &format!("{PUBLIC}/orgs/{{org}}/apiKeys/{{key}}/accessList"),
            get(list_access).post(add_access),
        )
        .route(
            &format!("{PUBLIC}/orgs/{{org}}/apiKeys/{{key}}/accessList/{{entry}}"),
            delete(delete_access),
        )
        .route(
            &format!("{PUBLIC}/groups/{{group}}/apiKeys"),
            post(create_group_key),
        )
}

/// Reads `{"desc", "roles"}`, checking each role is of the kind this endpoint grants.
fn read_key_body(body: Value, org_roles: bool) -> Result<(String, Vec<Role>), ApiError> {
    let mut fields = Fields::from_body(body)?;
    let desc = fields.req_str("desc")?;
    if desc.trim().is_empty() || desc.chars().count() > MAX_DESC_CHARS {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute desc specified: use 1 to {MAX_DESC_CHARS} characters."),
            vec!["desc".into()],
        ));
    }
    let raw_roles = fields
        .opt_array("roles")?
        .ok_or_else(|| fields.missing("roles"))?;
    fields.finish()?;
    if raw_roles.is_empty() {
        return Err(fields_missing_roles());
    }
    let mut roles = Vec::new();
    for raw in raw_roles {
        let Value::String(name) = raw else {
            return Err(ApiError::new(
                ErrorCode::InvalidJsonAttribute,
                "Received JSON for the roles attribute does not match expected format: expected strings.",
                vec!["roles".into()],
            ));
        };
        match Role::parse(&name) {
            Some(role) if role.is_org_role() == org_roles => {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidEnumValue,
                    format!("An invalid enumeration value {name} was specified."),
                    vec!["roles".into(), name],
                ))
            }
        }
    }
    Ok((desc, roles))
}

fn fields_missing_roles() -> ApiError {
    ApiError::new(
        ErrorCode::MissingAttribute,
        "The required attribute roles was not specified.",
        vec!["roles".into()],
    )
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath(org): ApiPath<OrgId>,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .keys
        .list(&principal, org, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|k| views::api_key(&state.links, k, None))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn create_org_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(org): ApiPath<OrgId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (desc, roles) = read_key_body(body, true)?;
    let grants = roles
        .into_iter()
        .map(|role| RoleGrant {
            group_id: None,
            role,
        })
        .collect();
    let key = state
        .services
        .keys
        .create(&principal, org, &desc, grants)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &views::api_key(&state.links, &key.record, Some(key.private_key)),
    ))
}

async fn create_group_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(group): ApiPath<GroupId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (desc, roles) = read_key_body(body, false)?;
    let key = state
        .services
        .create_group_key(&principal, group, &desc, roles)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &views::api_key(&state.links, &key.record, Some(key.private_key)),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((org, key)): ApiPath<(OrgId, ApiKeyId)>,
) -> Result<Response, ApiError> {
    let record = state.services.keys.get(&principal, org, key).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::api_key(&state.links, &record, None),
    ))
}

async fn delete_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((org, key)): ApiPath<(OrgId, ApiKeyId)>,
) -> Result<Response, ApiError> {
    state.services.keys.delete(&principal, org, key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn access_page(state: &AppState, paging: &Paging, key: &ApiKeyRecord) -> Response {
    let entries: Vec<_> = key
        .access_list
        .iter()
        .map(|e| views::access_entry(&state.links, key, e))
        .collect();
    paging.respond_from_all(entries)
}

async fn list_access(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((org, key)): ApiPath<(OrgId, ApiKeyId)>,
) -> Result<Response, ApiError> {
    let record = state.services.keys.get(&principal, org, key).await?;
    Ok(access_page(&state, &paging, &record))
}

/// Reads `[{"ipAddress": "..."} | {"cidrBlock": "..."}, ...]` as Cloud Manager takes it.
fn read_access_entries(body: Value) -> Result<Vec<ipnet::IpNet>, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "Received JSON does not match expected format: expected an array of access list entries.",
            vec![],
        ));
    };
    if items.is_empty() || items.len() > MAX_ACCESS_ENTRIES_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("Send 1 to {MAX_ACCESS_ENTRIES_PER_REQUEST} access list entries per request."),
            vec![],
        ));
    }
    let mut cidrs = Vec::with_capacity(items.len());
    for item in items {
        let mut fields = Fields::from_body(item)?;
        let ip = fields.opt_str("ipAddress")?;
        let cidr = fields.opt_str("cidrBlock")?;
        fields.finish()?;
        let (name, text) = match (ip, cidr) {
            (Some(ip), None) => ("ipAddress", ip),
            (None, Some(c)) => ("cidrBlock", c),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidAttribute,
                    "Each access list entry needs exactly one of ipAddress or cidrBlock.",
                    vec!["ipAddress".into(), "cidrBlock".into()],
                ))
            }
        };
        let valid = match name {
            "ipAddress" => text.parse::<std::net::IpAddr>().is_ok(),
            _ => text.contains('/'),
        };
        let parsed = parse_access_entry(&text).filter(|_| valid).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute {name} specified: {text:?}."),
                vec![name.to_owned(), text.clone()],
            )
        })?;
        cidrs.push(parsed);
    }
    Ok(cidrs)
}

async fn add_access(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((org, key)): ApiPath<(OrgId, ApiKeyId)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let cidrs = read_access_entries(body)?;
    let record = state
        .services
        .keys
        .add_access(&principal, org, key, &cidrs)
        .await?;
    let mut response = access_page(&state, &paging, &record);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

async fn delete_access(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((org, key, entry)): ApiPath<(OrgId, ApiKeyId, String)>,
) -> Result<Response, ApiError> {
    let cidr = parse_access_entry(&entry).ok_or_else(|| {
        ApiError::new(
            ErrorCode::AccessListEntryNotFound,
            format!("The access list entry {entry} does not exist."),
            vec![entry.clone()],
        )
    })?;
    state
        .services
        .keys
        .delete_access(&principal, org, key, &cidr)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
