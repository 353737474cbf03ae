//! Signing in with an API key pair, and out.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use serde::Serialize;

use crate::console::render;
use crate::console::session::{
    check_same_origin, cookie, request_ip, set_cookie, Change, ConsoleError, ConsoleResult, Form,
    Viewer, CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::domain::sessions::tokens_match;
use crate::http::error::status_of;
use crate::http::AppState;

/// Where the sign-in form's own token cookie is sent: only back to the form.
const SIGN_IN_PATH: &str = "/console/signin";
/// How long a loaded sign-in form stays usable.
const SIGN_IN_FORM_SECS: u64 = 3600;

#[derive(Serialize)]
struct SignInPage<'a> {
    csrf: &'a str,
    /// The public key typed before a failed attempt (never the private key).
    public_key: &'a str,
    error: Option<String>,
}

fn fresh_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `GET /console`: the projects when signed in, else the sign-in form.
pub async fn home(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match Viewer::resolve(&parts, &state).await {
        Ok(_) => Redirect::to("/console/projects").into_response(),
        Err(_) => Redirect::to(SIGN_IN_PATH).into_response(),
    }
}

/// Renders the form with a fresh token, set as a cookie too (a form posted from elsewhere
/// lacks the cookie's value).
fn form_page(
    state: &AppState,
    parts: &axum::http::request::Parts,
    status: StatusCode,
    public_key: &str,
    error: Option<String>,
) -> Response {
    let token = fresh_token();
    let mut response = render::page(
        status,
        "signin.html",
        SignInPage {
            csrf: &token,
            public_key,
            error,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            parts,
            SIGN_IN_COOKIE,
            &token,
            SIGN_IN_PATH,
            SIGN_IN_FORM_SECS,
        ),
    );
    response
}

/// `GET /console/signin`.
pub async fn form(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if Viewer::resolve(&parts, &state).await.is_ok() {
        return Redirect::to("/console/projects").into_response();
    }
    form_page(&state, &parts, StatusCode::OK, "", None)
}

/// `POST /console/signin`: opens a session and sends the browser to its projects, or shows
/// the form again with why not.
pub async fn sign_in(State(state): State<AppState>, req: Request) -> ConsoleResult<Response> {
    let (parts, body) = req.into_parts();
    check_same_origin(&parts, &state)?;
    let form = Form::read(body).await?;
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    let presented = form.get(CSRF_FIELD).unwrap_or_default();
    if expected.is_empty() || !tokens_match(presented, expected) {
        return Err(ConsoleError::Forged(
            "This sign-in form was not loaded from this server in this browser; load it again.",
        ));
    }
    let public_key = form.get("publicKey").unwrap_or_default();
    let private_key = form.get("privateKey").unwrap_or_default();
    let ip = request_ip(&state, &parts)?;
    let opened = state
        .services
        .console_sign_in(
            &state.console_sessions,
            public_key,
            private_key,
            ip,
            state.require_access_list,
        )
        .await;
    match opened {
        Ok(opened) => {
            let mut response =
                render::with_console_headers(Redirect::to("/console/projects").into_response());
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    &state,
                    &parts,
                    SESSION_COOKIE,
                    &opened.cookie_value,
                    "/console",
                    state.console_sessions.lifetime_secs,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, &parts, SIGN_IN_COOKIE, "", SIGN_IN_PATH, 0),
            );
            Ok(response)
        }
        Err(err) => {
            let err = crate::http::error::ApiError::from(err);
            let message = format!("{}: {}", err.code.as_str(), err.detail);
            Ok(form_page(
                &state,
                &parts,
                status_of(err.code),
                public_key,
                Some(message),
            ))
        }
    }
}

/// `POST /console/signout`: ends the session here and on every node, and forgets the cookie.
pub async fn sign_out(State(state): State<AppState>, req: Request) -> ConsoleResult<Response> {
    let (parts, body) = req.into_parts();
    let value = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned);
    Change::check(&parts, body, &state).await?;
    if let Some(value) = value {
        state.services.console_sign_out(&value).await?;
    }
    let mut response = render::with_console_headers(Redirect::to(SIGN_IN_PATH).into_response());
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, &parts, SESSION_COOKIE, "", "/console", 0),
    );
    Ok(response)
}
