//! The console's side of sessions: the cookie, the request's own origin, the CSRF token of
//! every form that changes something, and the console's one error type.
//!
//! A page handler takes a [`Viewer`] (a signed-in session) and a changing handler a
//! [`Change`] (a signed-in session whose request came from the console's own pages and
//! carries that session's CSRF token, with its form fields). What a key may do is decided by
//! the domain services they call, exactly as for the API.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::render;
use crate::domain::sessions::{tokens_match, ConsoleSession};
use crate::domain::DomainError;
use crate::http::auth::client_ip;
use crate::http::error::{status_of, ApiError};
use crate::http::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rewind_session";
/// The cookie that ties a sign-in form to the browser that loaded it.
pub const SIGN_IN_COOKIE: &str = "rewind_signin";
/// The form field (or `X-CSRF-Token` header) that carries a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// Largest form body the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What can go wrong in a console request, each answered once, as a page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: back to the sign-in page.
    SignInFirst,
    /// A changing request that did not come from this session's own pages.
    Forged(&'static str),
    /// Refused by the same rules as the API, with the API's code and words.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(err: ApiError) -> Self {
        ConsoleError::Api(err)
    }
}

impl From<DomainError> for ConsoleError {
    fn from(err: DomainError) -> Self {
        ConsoleError::Api(ApiError::from(err))
    }
}

#[derive(Serialize)]
struct ErrorPage<'a> {
    status: u16,
    error_code: &'a str,
    detail: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignInFirst => {
                render::with_console_headers(Redirect::to("/console/signin").into_response())
            }
            ConsoleError::Forged(why) => error_page(StatusCode::FORBIDDEN, "FORBIDDEN", why),
            ConsoleError::Api(err) => {
                error_page(status_of(err.code), err.code.as_str(), &err.detail)
            }
        }
    }
}

fn error_page(status: StatusCode, error_code: &str, detail: &str) -> Response {
    render::page(
        status,
        "error.html",
        ErrorPage {
            status: status.as_u16(),
            error_code,
            detail,
        },
    )
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether cookies must say `Secure`: the console is reached over HTTPS, directly or
/// through the trusted proxy.
fn served_over_https(state: &AppState, parts: &Parts) -> bool {
    if state.links.base().starts_with("https://") {
        return true;
    }
    let from_proxy = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|peer| Some(peer.0.ip()) == state.trusted_proxy);
    from_proxy
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for `name`, readable by no script and sent only with requests
/// from the console's own pages; `max_age` 0 removes it.
pub fn set_cookie(
    state: &AppState,
    parts: &Parts,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if served_over_https(state, parts) {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("rewind_invalid=1"))
}

/// The address the request came from (see the API's `client_ip`).
pub fn request_ip(state: &AppState, parts: &Parts) -> ConsoleResult<IpAddr> {
    client_ip(parts, state.trusted_proxy).ok_or(ConsoleError::Forged(
        "The address this request came from is unknown.",
    ))
}

/// Refuses a changing request that a page of another site made the browser send: its
/// `Origin` (or, without one, its `Sec-Fetch-Site`) must name this very site. A request
/// with neither comes from no browser, and still needs the CSRF token.
pub fn check_same_origin(parts: &Parts, state: &AppState) -> ConsoleResult<()> {
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let foreign =
        || ConsoleError::Forged("This request came from a page of another site, and is refused.");
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        let origin_host = origin.split_once("://").map(|(_, host)| host);
        let own_host = text("host").unwrap_or_default();
        // Behind a proxy that rewrites `Host`, the browser's origin is the public URL's.
        let same = origin_host.is_some_and(|h| h.eq_ignore_ascii_case(own_host))
            || origin.eq_ignore_ascii_case(state.links.base());
        if !same {
            return Err(foreign());
        }
    } else if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(foreign());
        }
    }
    Ok(())
}

/// A signed-in console session acting as its API key.
pub struct Viewer(pub ConsoleSession);

impl Viewer {
    pub async fn resolve(parts: &Parts, state: &AppState) -> ConsoleResult<ConsoleSession> {
        let value = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::SignInFirst)?;
        let ip = request_ip(state, parts)?;
        state
            .services
            .console_session(value, ip, state.require_access_list)
            .await?
            .ok_or(ConsoleError::SignInFirst)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        Ok(Viewer(Viewer::resolve(parts, state).await?))
    }
}

/// A form's fields, by name (the last value of a repeated name wins).
#[derive(Debug, Default)]
pub struct Form(pub HashMap<String, String>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Reads a urlencoded body of at most [`MAX_FORM_BYTES`].
    pub async fn read(body: axum::body::Body) -> ConsoleResult<Form> {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::Api(crate::http::body::too_large(MAX_FORM_BYTES)))?;
        Ok(Form(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

/// A changing request of a signed-in session: same origin, this session's CSRF token, and
/// its form fields.
pub struct Change {
    pub session: ConsoleSession,
    pub form: Form,
}

impl Change {
    /// Checks a changing request's origin, session and CSRF token, and reads its form.
    pub async fn check(
        parts: &Parts,
        body: axum::body::Body,
        state: &AppState,
    ) -> ConsoleResult<Change> {
        check_same_origin(parts, state)?;
        let session = Viewer::resolve(parts, state).await?;
        let form = Form::read(body).await?;
        let presented = form
            .get(CSRF_FIELD)
            .or_else(|| {
                parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or_default();
        if !tokens_match(presented, &session.csrf_token) {
            return Err(ConsoleError::Forged(
                "This form's security token is missing or belongs to another session; reload the page and try again.",
            ));
        }
        Ok(Change { session, form })
    }
}

impl FromRequest<AppState> for Change {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> ConsoleResult<Self> {
        let (parts, body) = req.into_parts();
        Change::check(&parts, body, state).await
    }
}
