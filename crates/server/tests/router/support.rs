//! An in-process application over a temporary SQLite store, and requests signed with
//! hand-computed Digest headers, driven through `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use md5::{Digest, Md5};
use rewind_api_types::BootstrapCredentials;
use rewind_server::config::{ServerConfig, Settings};
use rewind_server::http::router;
use rewind_server::server::{app_state, initialize};
use rewind_server::storage::StorageConfig;
use serde_json::Value;
use tower::ServiceExt;

/// The public base URL every link of the in-process application is built from.
pub const PUBLIC_URL: &str = "http://rewind.test:8080";
pub const API: &str = "/api/public/v1.0";
pub const REWIND_API: &str = "/api/rewind/v1";

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The application of one fresh data directory, with the bootstrap key.
pub struct App {
    pub router: Router,
    pub services: std::sync::Arc<rewind_server::domain::Services>,
    pub boot: BootstrapCredentials,
    nonce: String,
    nc: AtomicU32,
    _dir: tempfile::TempDir,
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

impl App {
    pub async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig::embedded(dir.path()).open().await.unwrap();
        let boot = initialize(&storage).await.unwrap().expect("a fresh store");
        let config = ServerConfig::resolve(Settings {
            data_dir: Some(dir.path().to_owned()),
            ..Settings::default()
        })
        .unwrap();
        let state = app_state(&config, &storage, PUBLIC_URL).await.unwrap();
        let nonce = state.nonces.issue(chrono::Utc::now().timestamp());
        App {
            services: state.services.clone(),
            router: router(state, axum::Router::new()),
            boot,
            nonce,
            nc: AtomicU32::new(0),
            _dir: dir,
        }
    }

    /// A valid `Authorization` header for the bootstrap key, with the next `nc`.
    pub fn authorization(&self, method: &str, uri: &str) -> String {
        let nc = format!("{:08x}", self.nc.fetch_add(1, Ordering::SeqCst) + 1);
        authorization(
            &self.boot.public_key,
            &self.boot.private_key,
            &self.nonce,
            method,
            uri,
            &nc,
        )
    }

    /// Sends `req` from 127.0.0.1 and reads the whole response.
    pub async fn send(&self, mut req: Request<Body>) -> Reply {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50_000))));
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An authenticated request with an optional JSON body.
    pub async fn call(&self, method: Method, uri: &str, body: Option<&Value>) -> Reply {
        let mut req = Request::builder().method(method.clone()).uri(uri).header(
            header::AUTHORIZATION,
            self.authorization(method.as_str(), uri),
        );
        let body = match body {
            Some(value) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(value).unwrap())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// An authenticated request with a raw body of the given content type.
    pub async fn send_bytes(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(
                header::AUTHORIZATION,
                self.authorization(method.as_str(), uri),
            )
            .header(header::CONTENT_TYPE, content_type);
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.call(Method::POST, uri, Some(body)).await
    }
}

/// `Digest ...` for `qop=auth`, computed by hand as RFC 7616 spells it.
pub fn authorization(
    user: &str,
    password: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    nc: &str,
) -> String {
    let cnonce = "0a4f113b";
    let ha1 = md5_hex(&format!("{user}:MMS Public API:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        r#"Digest username="{user}", realm="MMS Public API", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#
    )
}

/// Replaces every run of 24 hex digits (an ObjectId) with `{id}`.
pub fn redact_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 24 { "{id}" } else { &run });
        run.clear();
        out.push(c);
    }
    out.push_str(if run.len() == 24 { "{id}" } else { &run });
    out
}
