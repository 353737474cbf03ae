//! The API's cross-cutting conventions: `pretty`, `envelope`, pagination with `links`, and
//! absolute `self` links built from the configured public base URL.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rewind_api_types::Link;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::model::PageRequest;

/// Default and largest `itemsPerPage`.
pub const DEFAULT_ITEMS_PER_PAGE: u64 = 100;
pub const MAX_ITEMS_PER_PAGE: u64 = 500;
/// Largest `pageNum` accepted; far beyond any real list, small enough that offsets never overflow.
pub const MAX_PAGE_NUM: u64 = 1_000_000;
/// Responses larger than this are passed through untouched by `pretty`/`envelope`.
const MAX_REWRITTEN_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Splits a raw query string into decoded pairs, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value given for `name`, if any.
fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a boolean query parameter (`true`/`false`, any case); absent means `default`.
pub fn query_bool(pairs: &[(String, String)], name: &str, default: bool) -> Result<bool, ApiError> {
    match query_value(pairs, name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ApiError::invalid_query(
            name,
            format!("Invalid query parameter {name} specified: {v:?} is not true or false."),
        )),
    }
}

/// Reads an integer query parameter within `min..=max`; absent means `default`.
pub fn query_u64(
    pairs: &[(String, String)],
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match query_value(pairs, name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_query(
                name,
                format!("Invalid query parameter {name} specified: expected an integer from {min} to {max}."),
            )),
        },
    }
}

/// Reads an optional integer query parameter within `0..=max`.
pub fn query_opt_u64(
    pairs: &[(String, String)],
    name: &str,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    match query_value(pairs, name) {
        None => Ok(None),
        Some(_) => query_u64(pairs, name, 0, 0, max).map(Some),
    }
}

/// Marks a response body as a list page, so `envelope=true` adds `status` instead of wrapping.
#[derive(Clone, Copy)]
pub struct ListBody;

/// Applies `pretty` and `envelope` to every JSON response of the API.
///
/// Handlers always produce compact JSON; this layer re-renders it when asked, so the two
/// options behave the same on every endpoint. Error bodies are never wrapped: they already
/// carry the status in `error`.
pub async fn output_conventions(req: Request, next: Next) -> Response {
    let pairs = query_pairs(req.uri().query());
    let (pretty, envelope) = match (
        query_bool(&pairs, "pretty", false),
        query_bool(&pairs, "envelope", false),
    ) {
        (Ok(p), Ok(e)) => (p, e),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(pretty || envelope) || !is_json {
        return response;
    }
    let status = response.status();
    let is_list = response.extensions().get::<ListBody>().is_some();
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_REWRITTEN_BODY_BYTES).await else {
        return ApiError::new(
            crate::domain::ErrorCode::UnexpectedError,
            "Unexpected error.",
            vec![],
        )
        .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if envelope && status.is_success() {
        if is_list {
            if let Value::Object(map) = &mut value {
                map.insert("status".into(), json!(status.as_u16()));
            }
        } else {
            value = json!({ "content": value, "status": status.as_u16() });
        }
    }
    let rendered = if pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rendered.unwrap_or_default()))
}

/// Renders a value as the compact JSON body of a response, with the given status.
///
/// Fields come out in alphabetical order, as the real server sends them, because the wire
/// structs declare them in that order and `serde_json::Value` maps sort their keys; the
/// router's snapshot tests compare the bytes, so a misplaced field fails them.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            ApiError::new(
                crate::domain::ErrorCode::UnexpectedError,
                "Unexpected error.",
                vec![],
            )
            .into_response()
        }
    }
}

/// Builds absolute URLs under the configured public base URL.
#[derive(Clone, Debug)]
pub struct Links {
    /// Shared, not owned: the router clones its state for every request.
    base: Arc<str>,
}

impl Links {
    pub fn new(public_url: &str) -> Self {
        Links {
            base: Arc::from(public_url.trim_end_matches('/')),
        }
    }

    /// The public base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `{base}/api/public/v1.0{path}`.
    pub fn public(&self, path: &str) -> String {
        format!("{}/api/public/v1.0{path}", self.base)
    }

    /// The `[{"href", "rel": "self"}]` links of an entity at `path` under the public API.
    pub fn self_link(&self, path: &str) -> Vec<Link> {
        vec![Link {
            href: self.public(path),
            rel: "self".into(),
        }]
    }

    /// The `self` links of an entity at `path` under Rewind's own API (`/api/rewind/v1`).
    pub fn rewind_self_link(&self, path: &str) -> Vec<Link> {
        vec![Link {
            href: format!("{}/api/rewind/v1{path}", self.base),
            rel: "self".into(),
        }]
    }
}

/// The paging parameters of a list request plus what is needed to write its `links`.
pub struct Paging {
    pub page_num: u64,
    pub items_per_page: u64,
    pub include_count: bool,
    /// Absolute URL of the list, without query.
    url: String,
    /// The request's other query parameters, kept in every page link.
    other: Vec<(String, String)>,
}

impl FromRequestParts<AppState> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let pairs = query_pairs(parts.uri.query());
        let page_num = query_u64(&pairs, "pageNum", 1, 1, MAX_PAGE_NUM)?;
        let items_per_page = query_u64(
            &pairs,
            "itemsPerPage",
            DEFAULT_ITEMS_PER_PAGE,
            1,
            MAX_ITEMS_PER_PAGE,
        )?;
        let include_count = query_bool(&pairs, "includeCount", true)?;
        let other = pairs
            .into_iter()
            .filter(|(k, _)| k != "pageNum" && k != "itemsPerPage")
            .collect();
        Ok(Paging {
            page_num,
            items_per_page,
            include_count,
            url: format!("{}{}", state.links.base(), parts.uri.path()),
            other,
        })
    }
}

impl Paging {
    pub fn request(&self) -> PageRequest {
        PageRequest {
            offset: (self.page_num - 1) * self.items_per_page,
            limit: self.items_per_page,
        }
    }

    fn href(&self, page_num: u64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.other {
            query.append_pair(k, v);
        }
        query.append_pair("pageNum", &page_num.to_string());
        query.append_pair("itemsPerPage", &self.items_per_page.to_string());
        format!("{}?{}", self.url, query.finish())
    }

    /// The list response: `links` (self, and previous/next where they exist), `results`,
    /// and `totalCount` unless `includeCount=false`.
    pub fn respond<T: Serialize>(&self, results: Vec<T>, total: u64) -> Response {
        let mut links = Vec::new();
        if self.page_num > 1 {
            links.push(Link {
                href: self.href(self.page_num - 1),
                rel: "previous".into(),
            });
        }
        links.push(Link {
            href: self.href(self.page_num),
            rel: "self".into(),
        });
        if self.page_num * self.items_per_page < total {
            links.push(Link {
                href: self.href(self.page_num + 1),
                rel: "next".into(),
            });
        }
        let body = rewind_api_types::Page {
            links,
            results,
            total_count: self.include_count.then_some(total),
        };
        let mut response = json_response(StatusCode::OK, &body);
        response.extensions_mut().insert(ListBody);
        response
    }

    /// Pages through a list already held in memory.
    pub fn respond_from_all<T: Serialize>(&self, all: Vec<T>) -> Response {
        let total = all.len() as u64;
        let page = self.request();
        let items: Vec<T> = all
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .collect();
        self.respond(items, total)
    }
}
