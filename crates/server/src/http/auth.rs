//! The authentication layer: Digest credentials, then the key's access list, then the
//! authenticated `Principal` handed to the handler. It never reads the request body, so an
//! unauthenticated POST is answered before its body is looked at.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::digest::{
    challenge_header, expected_response, parse_authorization, responses_match, NonceVerdict,
};
use super::error::ApiError;
use super::AppState;
use crate::domain::keys::{KeyService, DIGEST_REALM};
use crate::domain::{ErrorCode, GroupAccess, Principal};

/// A 401 carrying a fresh challenge.
fn challenge(state: &AppState, stale: bool) -> Response {
    let nonce = state.nonces.issue(state.services.clock.now());
    let value = HeaderValue::from_str(&challenge_header(&nonce, stale))
        .unwrap_or(HeaderValue::from_static("Digest"));
    ApiError::new(
        ErrorCode::UserUnauthorized,
        "You are not authorized for this resource.",
        vec![],
    )
    .with_header(header::WWW_AUTHENTICATE, value)
    .into_response()
}

/// The address the request came from: the socket peer, or, when the peer is the configured
/// trusted proxy, the last address that proxy appended to `X-Forwarded-For`.
pub fn client_ip(req: &Parts, trusted_proxy: Option<IpAddr>) -> Option<IpAddr> {
    let peer = req
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if trusted_proxy != Some(peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

/// Authenticates every request of the API routers it wraps.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match verify(&state, &parts).await {
        Ok(principal) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(rejection) => {
            super::body::discard_body(body);
            rejection
        }
    }
}

async fn verify(state: &AppState, req: &Parts) -> Result<Principal, Response> {
    let Some(header) = req.headers.get(header::AUTHORIZATION) else {
        return Err(challenge(state, false));
    };
    let creds = header
        .to_str()
        .ok()
        .and_then(|h| parse_authorization(h).ok())
        .ok_or_else(|| challenge(state, false))?;
    let algorithm_ok = creds
        .algorithm
        .as_deref()
        .is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
    let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if creds.realm != DIGEST_REALM
        || !algorithm_ok
        || creds.qop.as_deref() != Some("auth")
        || creds.uri != target
    {
        return Err(challenge(state, false));
    }
    let (Some(nc_text), Some(cnonce)) = (creds.nc.as_deref(), creds.cnonce.as_deref()) else {
        return Err(challenge(state, false));
    };
    let nc = u32::from_str_radix(nc_text, 16).map_err(|_| challenge(state, false))?;
    let now = state.services.clock.now();
    let nonce = match state.nonces.check_signature(&creds.nonce, now) {
        Ok(nonce) => nonce,
        Err(NonceVerdict::Stale) => return Err(challenge(state, true)),
        Err(_) => return Err(challenge(state, false)),
    };
    let key = match state.services.keys.find_for_auth(&creds.username).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(challenge(state, false)),
        Err(err) => return Err(ApiError::from(err).into_response()),
    };
    let expected = expected_response(
        &key.digest_ha1,
        &creds,
        req.method.as_str(),
        nc_text,
        cnonce,
    );
    if !responses_match(&expected, &creds.response) {
        return Err(challenge(state, false));
    }
    match state.nonces.record_use(nonce, nc, now).await {
        Ok(NonceVerdict::Accepted) => {}
        Ok(_) => return Err(challenge(state, false)),
        Err(err) => return Err(ApiError::from(err).into_response()),
    }
    let ip = client_ip(req, state.trusted_proxy);
    let admitted = ip.is_some_and(|ip| KeyService::admits(&key, ip, state.require_access_list));
    if !admitted {
        let shown = ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(ApiError::new(
            ErrorCode::IpAddressNotOnAccessList,
            format!("IP address {shown} is not allowed to access this resource."),
            vec![shown],
        )
        .into_response());
    }
    Ok(Principal {
        key_id: key.id,
        org_id: key.org_id,
        public_key: key.public_key.clone(),
        roles: key.roles.clone(),
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::UserUnauthorized,
                "You are not authorized for this resource.",
                vec![],
            )
        })
    }
}

/// The authenticated principal, already known to administer backups in the path's project
/// (`{group}`): taken before a handler's body, so that a key without the role is refused
/// before a byte of its body is parsed (a 401 rather than, say, a `400 INVALID_JSON` that
/// would tell it how far its request got). The domain checks again; this only checks first.
pub struct BackupAdmin(pub Principal);

impl FromRequestParts<AppState> for BackupAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if let Some(group) = super::path::group_of(parts, state).await? {
            state
                .services
                .authorize_group(&principal, group, GroupAccess::BackupAdmin)
                .await?;
        }
        Ok(BackupAdmin(principal))
    }
}
