//! A Digest-authenticating client of the Rewind API, used by every client command.
//!
//! It behaves like Cloud Manager's own clients: the first request goes without credentials,
//! the 401 challenge is answered, and the nonce is then reused with an increasing `nc` until
//! the server says it is stale.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use rewind_api_types::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where to reach the server and with which key.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub server: String,
    pub public_key: String,
    pub private_key: String,
}

/// A response as received: status, headers and body bytes.
#[derive(Debug)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl RawResponse {
    /// Decodes a successful JSON body, or turns an API error body into a readable error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if !self.status.is_success() {
            bail!("{}", describe_error(self.status, &self.body));
        }
        serde_json::from_slice(&self.body).context("the server's response is not the expected JSON")
    }
}

/// One line explaining an API error: `409 DUPLICATE_CLUSTER_NAME: A cluster named ...`.
pub fn describe_error(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => format!("{} {}: {}", e.error, e.error_code, e.detail),
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(body)),
    }
}

pub struct ApiClient {
    creds: Credentials,
    http: reqwest::Client,
    challenge: Mutex<Option<WwwAuthenticateHeader>>,
}

impl ApiClient {
    pub fn new(creds: Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self::with_http(creds, http))
    }

    /// Uses a preconfigured `reqwest` client (for example one bound to a local address).
    pub fn with_http(mut creds: Credentials, http: reqwest::Client) -> Self {
        creds.server = creds.server.trim_end_matches('/').to_owned();
        ApiClient {
            creds,
            http,
            challenge: Mutex::new(None),
        }
    }

    pub fn server(&self) -> &str {
        &self.creds.server
    }

    fn authorization(&self, method: &Method, uri: &str) -> Result<Option<String>> {
        let mut guard = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
        let Some(prompt) = guard.as_mut() else {
            return Ok(None);
        };
        let context = AuthContext::new_with_method(
            self.creds.public_key.as_str(),
            self.creds.private_key.as_str(),
            uri,
            Option::<&[u8]>::None,
            HttpMethod(method.as_str().to_owned().into()),
        );
        let header = prompt
            .respond(&context)
            .context("cannot answer the Digest challenge")?;
        Ok(Some(header.to_header_string()))
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<RawResponse> {
        let url = format!("{}{path}", self.creds.server);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(auth) = self.authorization(method, path)? {
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, content_type)
                .body(body.to_vec());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        Ok(RawResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.context("the response broke off")?,
        })
    }

    /// Sends a request with `path` (path plus query, under the server URL), answering a
    /// Digest challenge when one comes back.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<RawResponse> {
        let mut response = self.send_once(&method, path, body, content_type).await?;
        for _ in 0..2 {
            if response.status != StatusCode::UNAUTHORIZED {
                break;
            }
            let Some(challenge) = response
                .headers
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
            else {
                break;
            };
            let prompt = digest_auth::parse(challenge)
                .context("the server sent an unreadable Digest challenge")?;
            *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(prompt);
            response = self.send_once(&method, path, body, content_type).await?;
        }
        Ok(response)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::GET, path, None, "").await?.json()
    }

    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body)?;
        self.send(Method::POST, path, Some(&bytes), "application/json")
            .await?
            .json()
    }
}
