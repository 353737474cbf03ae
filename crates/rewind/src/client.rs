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
    /// Answered challenges not in use. Each request takes one for its whole exchange, so
    /// every nonce's `nc` reaches the server in increasing order even when requests run
    /// concurrently (the server refuses a counter that does not increase).
    prompts: Mutex<Vec<WwwAuthenticateHeader>>,
}

/// Most attempts at one request when the server keeps answering with a new challenge
/// (an expired nonce is answered `stale=true`).
const AUTH_ATTEMPTS: usize = 3;

/// How long an idle connection is kept for the next request: well under the server's
/// default idle limit, so a request never goes out on a connection the server has already
/// closed (which fails as "connection closed before message completed" when the client
/// had not yet read the server's close, as after a long pause between requests).
const IDLE_CONNECTION_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(rewind_server::http::DEFAULT_HEADER_TIMEOUT.as_secs() / 2);

impl ApiClient {
    pub fn new(creds: Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(IDLE_CONNECTION_LIFETIME)
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
            prompts: Mutex::new(Vec::new()),
        }
    }

    pub fn server(&self) -> &str {
        &self.creds.server
    }

    /// A challenge to answer: an idle one, or a fresh one fetched with a bodiless request
    /// (so a large body is never sent just to be refused).
    async fn take_prompt(&self) -> Result<WwwAuthenticateHeader> {
        if let Some(prompt) = self.prompts.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(prompt);
        }
        let url = format!("{}/api/public/v1.0/groups", self.creds.server);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("the server sent no Digest challenge (HTTP {status})"))?;
        digest_auth::parse(challenge).context("the server sent an unreadable Digest challenge")
    }

    fn answer(
        &self,
        prompt: &mut WwwAuthenticateHeader,
        method: &Method,
        uri: &str,
    ) -> Result<String> {
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
        Ok(header.to_header_string())
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&bytes::Bytes>,
        content_type: &str,
        authorization: String,
    ) -> Result<RawResponse> {
        let url = format!("{}{path}", self.creds.server);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(AUTHORIZATION, authorization);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, content_type)
                .body(body.clone());
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

    /// Sends a request with `path` (path plus query, under the server URL), answering the
    /// server's Digest challenge; a new challenge in a 401 (an expired nonce) is answered
    /// again, a few times at most.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<RawResponse> {
        let body = body.map(bytes::Bytes::copy_from_slice);
        self.send_bytes(method, path, body, content_type).await
    }

    /// [`Self::send`] with a body the client owns, which is sent (and resent after a new
    /// challenge) without being copied.
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<bytes::Bytes>,
        content_type: &str,
    ) -> Result<RawResponse> {
        let mut prompt = self.take_prompt().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let authorization = self.answer(&mut prompt, &method, path)?;
            let response = self
                .send_once(&method, path, body.as_ref(), content_type, authorization)
                .await?;
            let renewed = (response.status == StatusCode::UNAUTHORIZED && attempt < AUTH_ATTEMPTS)
                .then(|| response.headers.get(WWW_AUTHENTICATE)?.to_str().ok())
                .flatten()
                .and_then(|c| digest_auth::parse(c).ok());
            match renewed {
                Some(fresh) => prompt = fresh,
                None => {
                    self.prompts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(prompt);
                    return Ok(response);
                }
            }
        }
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
