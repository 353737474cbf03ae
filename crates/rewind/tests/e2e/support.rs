//! The harness of the end-to-end tests: the real `rewind` binary on a real socket, and
//! Digest clients to talk to it.
//!
//! Every test starts its own `TestServer` over its own temporary data directory, so tests
//! share nothing and run in parallel.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use rewind_cli::client::{ApiClient, Credentials};
use serde_json::Value;

/// The public API prefix.
pub const API: &str = "/api/public/v1.0";
/// Rewind's own API prefix.
pub const REWIND_API: &str = "/api/rewind/v1";

/// What `rewind init --json` prints.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    pub group_id: String,
    pub org_id: String,
    pub private_key: String,
    pub public_key: String,
}

/// Runs `rewind` with `args` to completion.
pub fn run_rewind(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the rewind binary runs")
}

/// `rewind init --json` on `dir`, with its metadata in `database`.
pub fn init_data_dir(dir: &Path, database: &TestDatabase) -> Bootstrap {
    let out =
        run_rewind(&database.with_args(&["init", "--data-dir", dir.to_str().unwrap(), "--json"]));
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("init --json prints the credentials")
}

/// Names the PostgreSQL server the tests keep their metadata on, as for the metadata store's
/// conformance suite. Unset (or naming no `postgres` URL), every server keeps its metadata in
/// SQLite inside its data directory.
pub const DATABASE_URL_VAR: &str = "REWIND_TEST_DATABASE_URL";

/// Where one test server keeps its metadata: SQLite in its data directory, or a schema of its
/// own on the PostgreSQL server [`DATABASE_URL_VAR`] names, dropped when this is dropped.
/// With [`E2E_S3_ENDPOINT_VAR`] set, its blocks also live on that S3 server, under a
/// prefix of their own (emptied when this is dropped); all nodes of a deployment share both.
pub struct TestDatabase {
    schema: Option<TestSchema>,
    blocks: Option<TestPrefix>,
}

/// A test's schema on the PostgreSQL server.
struct TestSchema {
    /// The server's URL, as the variable gives it (the admin connection's).
    server_url: String,
    name: String,
    /// The URL that puts the store in this schema.
    url: String,
}

impl TestDatabase {
    /// A database no other server uses: a fresh schema when the tests run on PostgreSQL.
    pub fn fresh() -> TestDatabase {
        let server_url = match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if url.starts_with("postgres") => url,
            _ => {
                return TestDatabase {
                    schema: None,
                    blocks: TestPrefix::fresh(),
                }
            }
        };
        let name = format!("rewind_e2e_{:016x}", rand::random::<u64>());
        if let Err(err) = run_admin_sql(&server_url, format!("CREATE SCHEMA {name}")) {
            panic!("cannot create the test's schema on {DATABASE_URL_VAR}: {err}");
        }
        // The store takes its schema from the connection's options (`-c search_path=…`).
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{separator}options=-c%20search_path%3D{name}");
        TestDatabase {
            schema: Some(TestSchema {
                server_url,
                name,
                url,
            }),
            blocks: TestPrefix::fresh(),
        }
    }

    /// `args` followed by the `--database-url` flag that selects this database, if any, and
    /// the flags that put the blocks on S3, if they go there.
    pub fn with_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if let Some(schema) = &self.schema {
            all.extend(["--database-url", schema.url.as_str()]);
        }
        if let Some(blocks) = &self.blocks {
            all.extend(blocks.args.iter().map(String::as_str));
        }
        all
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Not a panic: this may run while a failed test unwinds.
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(err) = run_admin_sql(&self.server_url, sql) {
            eprintln!("cannot drop the test's schema {}: {err}", self.name);
        }
    }
}

/// Whether the tests run on the PostgreSQL server [`DATABASE_URL_VAR`] names.
pub fn runs_on_postgres() -> bool {
    std::env::var(DATABASE_URL_VAR).is_ok_and(|url| url.starts_with("postgres"))
}

/// True, after saying why, when a test that needs the embedded SQLite store cannot run
/// because the tests run on PostgreSQL.
pub fn needs_embedded_store(why: &str) -> bool {
    let skip = runs_on_postgres();
    if skip {
        println!("skipped on PostgreSQL: {why}");
    }
    skip
}

/// Runs `sql` on a connection of its own to `server_url`, on a runtime of its own: the
/// harness is synchronous and may be called inside a test's runtime.
fn run_admin_sql(server_url: &str, sql: String) -> Result<(), String> {
    use sqlx::{Connection, Executor};
    let url = server_url.to_owned();
    let admin = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            conn.execute(sqlx::raw_sql(&sql))
                .await
                .map_err(|e| e.to_string())?;
            conn.close().await.map_err(|e| e.to_string())
        })
    });
    admin
        .join()
        .unwrap_or_else(|_| Err("the admin thread panicked".to_owned()))
}

/// A `rewind serve` child process on a free loopback port; killed when dropped.
pub struct TestServer {
    child: Child,
    pub url: String,
    pub boot: Bootstrap,
    /// The `serve` flags the server was started with, reused by `restart`.
    extra: Vec<String>,
    /// The `--listen` address, reused by `restart`.
    listen: String,
    /// The server's `RUST_LOG`, reused by `restart`.
    log_filter: String,
    /// The command `rewind serve` runs under (a tracer), empty to run it directly.
    wrapper: Vec<String>,
    /// Removed, with the server's log, when the last node on it is dropped.
    data_dir: Arc<tempfile::TempDir>,
    /// Where the metadata lives; dropped with the last node on it.
    database: Arc<TestDatabase>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Starts a server with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> TestServer {
        TestServer::start_listening("127.0.0.1:0", extra)
    }

    /// Starts a server listening on `listen` (restarts listen there again).
    pub fn start_listening(listen: &str, extra: &[&str]) -> TestServer {
        TestServer::start_logging(listen, extra, DEFAULT_LOG_FILTER)
    }

    /// Starts a server whose log (`server_log`) keeps what `log_filter` (a `RUST_LOG`
    /// value) selects, for tests that watch what the server did.
    pub fn start_logging(listen: &str, extra: &[&str], log_filter: &str) -> TestServer {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        TestServer::start_in(data_dir, &[], listen, extra, log_filter)
    }

    /// Starts a server on `data_dir` (a directory the test prepared, such as one on a small
    /// file system), run as the last argument of `wrapper` (a tracer) unless it is empty.
    pub fn start_in(
        data_dir: tempfile::TempDir,
        wrapper: &[&str],
        listen: &str,
        extra: &[&str],
        log_filter: &str,
    ) -> TestServer {
        let database = Arc::new(TestDatabase::fresh());
        let boot = init_data_dir(data_dir.path(), &database);
        TestServer::spawn_node(
            Arc::new(data_dir),
            database,
            boot,
            wrapper,
            listen,
            extra,
            log_filter,
        )
    }

    /// Starts another node of `other`'s deployment: the same data directory (block store and
    /// log) and the same metadata, with its own `serve` flags.
    pub fn start_node_of(other: &TestServer, extra: &[&str]) -> TestServer {
        TestServer::spawn_node(
            other.data_dir.clone(),
            other.database.clone(),
            other.boot.clone(),
            &[],
            "127.0.0.1:0",
            extra,
            &other.log_filter,
        )
    }

    fn spawn_node(
        data_dir: Arc<tempfile::TempDir>,
        database: Arc<TestDatabase>,
        boot: Bootstrap,
        wrapper: &[&str],
        listen: &str,
        extra: &[&str],
        log_filter: &str,
    ) -> TestServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn_server(
            data_dir.path(),
            &database,
            listen,
            &extra,
            log_filter,
            &wrapper,
        );
        TestServer {
            child,
            url,
            boot,
            extra,
            listen: listen.to_owned(),
            log_filter: log_filter.to_owned(),
            wrapper,
            data_dir,
            database,
        }
    }

    /// Kills a wrapped server (SIGKILL to the processes its wrapper started) and waits for
    /// the wrapper to exit on its own, so that a tracer has written all it saw.
    pub fn kill_wrapped_server(&mut self) {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", child]).status();
        }
        let _ = self.child.wait();
    }

    /// What the server has logged so far (empty before its first line).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's data directory (metadata store, block store, log).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Kills the server without warning (SIGKILL) and starts it again on the same data
    /// directory and flags, as a crash and a supervisor's restart would. Unless started
    /// with a fixed address, the new process listens on a fresh port: `url` changes.
    pub fn restart(&mut self) {
        if !self.wrapper.is_empty() {
            self.kill_wrapped_server();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.respawn();
    }

    /// Stops the server as an operator would (SIGTERM, then waits for it to exit) and starts
    /// it again on the same data directory and flags; `url` changes as with `restart`.
    pub fn restart_gracefully(&mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered");
        let exit = self.child.wait().expect("the server exits");
        assert!(exit.success(), "a clean exit on SIGTERM: {exit:?}");
        self.respawn();
    }

    fn respawn(&mut self) {
        let (child, url) = spawn_server(
            self.data_dir.path(),
            &self.database,
            &self.listen,
            &self.extra,
            &self.log_filter,
            &self.wrapper,
        );
        self.child = child;
        self.url = url;
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// `{url}{path}`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A Digest client holding the bootstrap (`ORG_OWNER`) key.
    pub fn client(&self) -> ApiClient {
        self.client_for(&self.boot.public_key, &self.boot.private_key)
    }

    pub fn client_for(&self, public_key: &str, private_key: &str) -> ApiClient {
        ApiClient::new(Credentials {
            server: self.url.clone(),
            public_key: public_key.to_owned(),
            private_key: private_key.to_owned(),
        })
        .unwrap()
    }

    /// A Digest client whose connections leave from `local` (any 127/8 address is loopback).
    pub fn client_from(&self, local: IpAddr) -> ApiClient {
        let http = reqwest::Client::builder()
            .local_address(local)
            .build()
            .unwrap();
        ApiClient::with_http(
            Credentials {
                server: self.url.clone(),
                public_key: self.boot.public_key.clone(),
                private_key: self.boot.private_key.clone(),
            },
            http,
        )
    }

    /// A hand-driven Digest signer for the bootstrap key.
    pub fn signer(&self) -> Signer {
        Signer::new(&self.url, &self.boot.public_key, &self.boot.private_key)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A tracer killed first would leave the server running, detached.
        if !self.wrapper.is_empty() {
            self.kill_wrapped_server();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rewind serve` on `dir` and waits until it listens; returns the child and its URL.
/// What a test server logs unless a test asks for more.
const DEFAULT_LOG_FILTER: &str = "warn";

fn spawn_server(
    dir: &Path,
    database: &TestDatabase,
    listen: &str,
    extra: &[String],
    log_filter: &str,
    wrapper: &[String],
) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let binary = env!("CARGO_BIN_EXE_rewind");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(database.with_args(&["serve", "--data-dir", dir.to_str().unwrap()]))
        .args(["--listen", listen])
        .args(extra)
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("rewind serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("Rewind listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("server.log"));
                panic!("rewind serve exited before listening: {log:?}");
            }
        }
    };
    // Keep draining stdout so the child can never block on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// A response, decoded as far as the tests need.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an API error: status, `errorCode`, `parameters`, and the body's other fields.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, parameters: &[&str]) -> Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        let body = self.json();
        assert_eq!(body["errorCode"], code, "errorCode of {}", self.text);
        assert_eq!(body["error"], status, "error of {}", self.text);
        assert_eq!(
            body["reason"],
            self.status.canonical_reason().unwrap(),
            "reason of {}",
            self.text
        );
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        let given: Vec<&str> = body["parameters"]
            .as_array()
            .expect("parameters is a list")
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(given, parameters, "parameters of {}", self.text);
        body
    }
}

impl From<rewind_cli::client::RawResponse> for Reply {
    fn from(raw: rewind_cli::client::RawResponse) -> Reply {
        Reply {
            status: raw.status,
            headers: raw.headers,
            text: String::from_utf8_lossy(&raw.body).into_owned(),
        }
    }
}

/// Sends a request through the authenticating client.
pub async fn call(client: &ApiClient, method: Method, path: &str, body: Option<Value>) -> Reply {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    client
        .send(method, path, bytes.as_deref(), "application/json")
        .await
        .expect("the server answers")
        .into()
}

pub async fn get(client: &ApiClient, path: &str) -> Reply {
    call(client, Method::GET, path, None).await
}

pub async fn post(client: &ApiClient, path: &str, body: Value) -> Reply {
    call(client, Method::POST, path, Some(body)).await
}

pub async fn delete(client: &ApiClient, path: &str) -> Reply {
    call(client, Method::DELETE, path, None).await
}

/// Sends raw bytes with a chosen content type through the authenticating client.
pub async fn send_raw(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: &[u8],
    content_type: &str,
) -> Reply {
    client
        .send(method, path, Some(body), content_type)
        .await
        .expect("the server answers")
        .into()
}

/// Registers a cluster through Rewind's API and returns the response body.
pub async fn register_cluster(client: &ApiClient, group: &str, body: Value) -> Value {
    let reply = post(
        client,
        &format!("{REWIND_API}/groups/{group}/clusters"),
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

/// Creates an API key with the bootstrap client; returns `(id, public, private)`.
pub async fn create_key(client: &ApiClient, path: &str, role: &str) -> (String, String, String) {
    let reply = post(
        client,
        path,
        serde_json::json!({"desc": format!("a {role} key"), "roles": [role]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let key = reply.json();
    (
        key["id"].as_str().unwrap().to_owned(),
        key["publicKey"].as_str().unwrap().to_owned(),
        key["privateKey"].as_str().unwrap().to_owned(),
    )
}

/// Adds loopback to a key's access list so it can be used from the tests.
pub async fn allow_loopback(client: &ApiClient, org: &str, key_id: &str) {
    let reply = post(
        client,
        &format!("{API}/orgs/{org}/apiKeys/{key_id}/accessList"),
        serde_json::json!([{"ipAddress": "127.0.0.1"}]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// Computes Digest `Authorization` headers by hand, for tests that need to bend the rules
/// (replay a header, reuse a nonce, lie about the `uri`).
pub struct Signer {
    base: String,
    public_key: String,
    private_key: String,
    http: reqwest::Client,
    nc: AtomicU32,
}

impl Signer {
    pub fn new(base: &str, public_key: &str, private_key: &str) -> Signer {
        Signer {
            base: base.to_owned(),
            public_key: public_key.to_owned(),
            private_key: private_key.to_owned(),
            http: reqwest::Client::new(),
            nc: AtomicU32::new(0),
        }
    }

    /// Fetches a fresh nonce from a challenge.
    pub async fn nonce(&self) -> String {
        let reply = self.send(Method::GET, &format!("{API}/groups"), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        nonce_of(reply.header(WWW_AUTHENTICATE.as_str()).unwrap())
    }

    /// The `Authorization` header for `method uri` with `nonce` and counter `nc`.
    pub fn header(&self, method: &str, uri: &str, nonce: &str, nc: u32) -> String {
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let nc = format!("{nc:08x}");
        let ha1 = md5_hex(&format!(
            "{}:MMS Public API:{}",
            self.public_key, self.private_key
        ));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        format!(
            r#"Digest username="{}", realm="MMS Public API", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#,
            self.public_key
        )
    }

    /// The next header for `nonce`, with a counter one above the last.
    pub fn next_header(&self, method: &str, uri: &str, nonce: &str) -> String {
        let nc = self.nc.fetch_add(1, Ordering::SeqCst) + 1;
        self.header(method, uri, nonce, nc)
    }

    /// Sends `method path` with an optional `Authorization` header, no body.
    pub async fn send(&self, method: Method, path: &str, authorization: Option<&str>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = authorization {
            request = request.header(AUTHORIZATION, auth);
        }
        into_reply(request.send().await.expect("the server answers")).await
    }

    /// Sends a JSON body with an optional `Authorization` header.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: &Value,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).unwrap());
        if let Some(auth) = authorization {
            request = request.header(AUTHORIZATION, auth);
        }
        into_reply(request.send().await.expect("the server answers")).await
    }
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap_or_default(),
    }
}

/// The nonce of a `WWW-Authenticate` challenge.
pub fn nonce_of(challenge: &str) -> String {
    let rest = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no nonce in {challenge}"));
    rest.split('"').next().unwrap().to_owned()
}

/// Asserts a challenge is exactly the contract's, with any nonce, and `stale` as given.
#[track_caller]
pub fn assert_challenge(challenge: &str, stale: bool) {
    let nonce = nonce_of(challenge);
    assert!(!nonce.is_empty());
    assert_eq!(
        challenge,
        format!(
            r#"Digest realm="MMS Public API", domain="", nonce="{nonce}", algorithm=MD5, qop="auth", stale={stale}"#
        )
    );
}

/// Waits for a little while without blocking the runtime.
pub async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Writes `head` and then `body` on a fresh connection and returns what the server answers
/// within ten seconds (one read). The body may be shorter than the head declares: that is
/// how tests show the server answers without waiting for the rest.
pub async fn raw_exchange(port: u16, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buffer = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the server answers without waiting for the rest of the body")
        .unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

/// Names an S3-compatible server (`http://127.0.0.1:8333`) every test server keeps its blocks
/// on, in the bucket `REWIND_TEST_S3_BUCKET` (default `rewind`) with the standard `AWS_*`
/// keys; unset, blocks stay in the data directory.
pub const E2E_S3_ENDPOINT_VAR: &str = "REWIND_TEST_E2E_S3_ENDPOINT";

/// Whether test servers keep their blocks on S3 ([`E2E_S3_ENDPOINT_VAR`]).
pub fn runs_on_s3() -> bool {
    std::env::var(E2E_S3_ENDPOINT_VAR).is_ok()
}

/// True, after saying why, when a test that looks at (or breaks) the block store's files
/// in the data directory cannot run because blocks are on S3.
pub fn needs_local_blocks(why: &str) -> bool {
    let skip = runs_on_s3();
    if skip {
        println!("skipped with blocks on S3: {why}");
    }
    skip
}

/// True, after saying why, when a test that needs PostgreSQL (several nodes on one
/// metadata store) cannot run because [`DATABASE_URL_VAR`] names none.
pub fn needs_postgres(why: &str) -> bool {
    let skip = !runs_on_postgres();
    if skip {
        println!("skipped without {DATABASE_URL_VAR}: {why}");
    }
    skip
}

/// One deployment's random prefix in the test bucket, and the `serve` flags naming it.
struct TestPrefix {
    endpoint: String,
    bucket: String,
    prefix: String,
    args: Vec<String>,
}

impl TestPrefix {
    fn fresh() -> Option<TestPrefix> {
        Some(TestPrefix::on(&std::env::var(E2E_S3_ENDPOINT_VAR).ok()?))
    }

    /// A fresh prefix on the S3 server at `endpoint`.
    fn on(endpoint: &str) -> TestPrefix {
        let endpoint = endpoint.to_owned();
        let bucket = std::env::var("REWIND_TEST_S3_BUCKET").unwrap_or_else(|_| "rewind".into());
        let prefix = format!("e2e-{:016x}", rand::random::<u64>());
        let args = vec![
            "--blocks-url".to_owned(),
            format!("s3://{bucket}/{prefix}"),
            "--s3-endpoint".to_owned(),
            endpoint.clone(),
            "--s3-allow-http".to_owned(),
            endpoint.starts_with("http://").to_string(),
        ];
        TestPrefix {
            endpoint,
            bucket,
            prefix,
            args,
        }
    }
}

impl TestServer {
    /// Starts a server whose blocks live on the S3 server at `endpoint` (a test's own),
    /// under a fresh prefix, whatever [`E2E_S3_ENDPOINT_VAR`] says.
    pub fn start_on_s3(endpoint: &str, extra: &[&str]) -> TestServer {
        let mut database = TestDatabase::fresh();
        database.blocks = Some(TestPrefix::on(endpoint));
        let database = Arc::new(database);
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let boot = init_data_dir(data_dir.path(), &database);
        TestServer::spawn_node(
            Arc::new(data_dir),
            database,
            boot,
            &[],
            "127.0.0.1:0",
            extra,
            DEFAULT_LOG_FILTER,
        )
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        use futures::{StreamExt, TryStreamExt};
        use object_store::ObjectStore;
        // Briefly: the server may be gone (a fault test stopped it).
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(5),
            ..object_store::RetryConfig::default()
        };
        let built = object_store::aws::AmazonS3Builder::from_env()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_retry(retry)
            .build();
        let Ok(store) = built else {
            return;
        };
        let prefix = object_store::path::Path::from(self.prefix.as_str());
        // Not a panic: this may run while a failed test unwinds.
        let emptied = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let locations = store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location)
                    .boxed();
                store
                    .delete_stream(locations)
                    .try_collect::<Vec<_>>()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup thread panicked".to_owned()));
        if let Err(err) = emptied {
            eprintln!("cannot empty the test's S3 prefix {}: {err}", self.prefix);
        }
    }
}
/// A loopback address with a port free a moment ago, for a node that must listen where a
/// balancer already points (its printed URL is then the public one, not its own).
pub fn free_loopback_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

impl TestServer {
    /// As `start_node_of`, listening on `listen`; `url` is that address (a public URL
    /// among `extra` names the balancer in front).
    pub fn start_node_of_listening(other: &TestServer, listen: &str, extra: &[&str]) -> TestServer {
        let mut node = TestServer::spawn_node(
            other.data_dir.clone(),
            other.database.clone(),
            other.boot.clone(),
            &[],
            listen,
            extra,
            &other.log_filter,
        );
        node.url = format!("http://{listen}");
        node
    }

    /// Kills the server without warning (SIGKILL) and leaves it dead, as a node that
    /// crashed with no supervisor to restart it. Its data directory stays with the others.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A round-robin HTTP load balancer on loopback in front of the nodes of a deployment: each
/// client connection starts at the next node in turn, and each request on it goes to the
/// node after the one that took the connection's previous request to the same path (so a
/// client's successive long-polls alternate, and so do its reports, instead of a poll-report
/// cycle pinning each kind to one node; a Digest challenge and its answer land on different
/// nodes too). A request goes to the next node when its node fails to answer it (a dead
/// node), as an operator's balancer with health checks would. Responses are streamed as they
/// come, so a node that dies mid-download cuts the client's transfer. It records which node
/// answered each request, for tests that check the work was really spread.
pub struct LoadBalancer {
    pub url: String,
    upstreams: Arc<std::sync::Mutex<Vec<String>>>,
    answered: Answers,
    /// A runtime of its own: tests block their own thread on `rewind` commands that talk
    /// through the balancer.
    runtime: Option<tokio::runtime::Runtime>,
}

impl LoadBalancer {
    /// Listens on a free loopback port; it forwards nothing until given upstreams.
    pub fn start() -> LoadBalancer {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", std_listener.local_addr().unwrap());
        let upstreams = Arc::new(std::sync::Mutex::new(Vec::new()));
        let turn = Arc::new(AtomicU32::new(0));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let answered = Answers::default();
        let (balanced, recorded) = (upstreams.clone(), answered.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            while let Ok((conn, _)) = listener.accept().await {
                let (upstreams, http, answered) =
                    (balanced.clone(), http.clone(), recorded.clone());
                let home = turn.fetch_add(1, Ordering::SeqCst) as usize;
                // Requests per path so far on this connection.
                let sent = std::sync::Mutex::new(std::collections::HashMap::<String, usize>::new());
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<_>| {
                        let next = {
                            let mut sent = sent.lock().unwrap();
                            let before = sent.entry(request.uri().path().to_owned()).or_default();
                            *before += 1;
                            home + *before - 1
                        };
                        forward(
                            request,
                            upstreams.clone(),
                            next,
                            http.clone(),
                            answered.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        LoadBalancer {
            url,
            upstreams,
            answered,
            runtime: Some(runtime),
        }
    }

    /// The nodes requests go to, in turn.
    pub fn balance(&self, nodes: &[&TestServer]) {
        *self.upstreams.lock().unwrap() = nodes.iter().map(|n| n.url.clone()).collect();
    }

    /// Which node (its index in `balance` order) answered each request whose path contains
    /// `part`, and with what status, in the order the answers came.
    pub fn answers(&self, part: &str) -> Vec<(usize, StatusCode)> {
        let answered = self.answered.lock().unwrap();
        answered
            .iter()
            .filter(|a| a.path.contains(part))
            .map(|a| (a.node, a.status))
            .collect()
    }
}

/// One request the balancer forwarded: which node answered it, how.
struct Answered {
    node: usize,
    path: String,
    status: StatusCode,
}

type Answers = Arc<std::sync::Mutex<Vec<Answered>>>;

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type ProxiedBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

async fn forward(
    request: hyper::Request<hyper::body::Incoming>,
    upstreams: Arc<std::sync::Mutex<Vec<String>>>,
    first: usize,
    http: reqwest::Client,
    answered: Answers,
) -> Result<hyper::Response<ProxiedBody>, std::convert::Infallible> {
    use futures::TryStreamExt;
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let nodes = upstreams.lock().unwrap().clone();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    for i in 0..nodes.len() {
        let at = (first + i) % nodes.len();
        let node = &nodes[at];
        let mut upstream = http.request(parts.method.clone(), format!("{node}{path}"));
        for (name, value) in &parts.headers {
            if name != reqwest::header::HOST {
                upstream = upstream.header(name, value);
            }
        }
        let response = match upstream.body(body.clone()).send().await {
            Ok(response) => response,
            // A dead node (refused, or reset on a kept connection): the next one answers.
            Err(_) => continue,
        };
        answered.lock().unwrap().push(Answered {
            node: at,
            path: parts.uri.path().to_owned(),
            status: response.status(),
        });
        let mut answer = hyper::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            if name != reqwest::header::TRANSFER_ENCODING && name != reqwest::header::CONNECTION {
                answer = answer.header(name, value);
            }
        }
        let stream = response
            .bytes_stream()
            .map_ok(hyper::body::Frame::data)
            .map_err(std::io::Error::other);
        let body = http_body_util::StreamBody::new(stream).boxed();
        return Ok(answer.body(body).unwrap());
    }
    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed();
    Ok(hyper::Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(empty)
        .unwrap())
}
