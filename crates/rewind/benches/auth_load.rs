//! Authenticated API throughput against the real server.
//!
//! Starts the release `rewind` binary on loopback over a fresh data directory, then drives
//! `GET /health` (no authentication) and `GET /api/public/v1.0/groups/{G}/clusters` (Digest)
//! with the same load: `BENCH_CONNECTIONS` keep-alive connections (default 32), each sending
//! one request at a time for `BENCH_SECS` seconds (default 10). Each authenticated connection
//! gets its nonce from one challenge and then reuses it with an increasing `nc`, as a real
//! keep-alive Digest client does. Prints requests/s and p50/p99 latency for both, and their
//! ratio; then, when `wrk` is installed, wrk's figure for `/health` as a sanity check.
//!
//! Run with `cargo bench -p rewind --bench auth_load`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rewind_cli::client::{ApiClient, Credentials};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bootstrap {
    group_id: String,
    private_key: String,
    public_key: String,
}

/// The server under test; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &std::path::Path) -> Result<(Server, Bootstrap)> {
    let bin = env!("CARGO_BIN_EXE_rewind");
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let init = Command::new(bin)
        .args(["init", "--data-dir", dir, "--json"])
        .output()?;
    if !init.status.success() {
        bail!("init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let boot: Bootstrap = serde_json::from_slice(&init.stdout)?;
    let mut child = Command::new(bin)
        .args(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let url = loop {
        let line = lines.next().context("server exited before listening")??;
        if let Some(url) = line.strip_prefix("Rewind listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let addr = url.trim_start_matches("http://").parse()?;
    Ok((Server { child, addr }, boot))
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// What one connection needs to sign its requests, or nothing for `/health`.
#[derive(Clone)]
struct Signing {
    public_key: String,
    ha1: String,
}

/// One keep-alive connection sending requests back to back until `until`; returns the
/// latency of every request answered with `expect`, in microseconds.
async fn drive_connection(
    addr: SocketAddr,
    path: String,
    signing: Option<Signing>,
    expect: StatusCode,
    start_at: Instant,
    until: Instant,
) -> Result<Vec<u32>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let host = addr.to_string();
    let mut nonce = String::new();
    let mut nc: u32 = 0;
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        let mut request = Request::get(path.as_str()).header(HOST, host.as_str());
        if let (Some(s), false) = (&signing, nonce.is_empty()) {
            nc += 1;
            let nc = format!("{nc:08x}");
            let ha2 = md5_hex(&format!("GET:{path}"));
            let response = md5_hex(&format!("{}:{nonce}:{nc}:{cnonce}:auth:{ha2}", s.ha1));
            request = request.header(
                AUTHORIZATION,
                format!(
                    r#"Digest username="{}", realm="MMS Public API", nonce="{nonce}", uri="{path}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#,
                    s.public_key
                ),
            );
        }
        sender.ready().await?;
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new())?)
            .await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        response.into_body().collect().await?;
        match status {
            StatusCode::OK | StatusCode::NOT_FOUND if status == expect => {
                if now >= start_at {
                    latencies.push(now.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            StatusCode::UNAUTHORIZED if signing.is_some() => {
                // The first request of a connection, or a stale nonce: take the new one.
                let challenge = challenge.context("401 without a challenge")?;
                nonce = challenge
                    .split("nonce=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .context("challenge without nonce")?
                    .to_owned();
                nc = 0;
            }
            other => bail!("unexpected status {other} for {path}"),
        }
    }
    Ok(latencies)
}

struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    count: usize,
}

/// Runs `connections` connections against `path` for `warmup + measure`, counting only
/// requests started after the warm-up.
async fn run_load(
    addr: SocketAddr,
    path: &str,
    signing: Option<Signing>,
    expect: StatusCode,
    connections: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Figures> {
    let start_at = Instant::now() + warmup;
    let until = start_at + measure;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(drive_connection(
                addr,
                path.to_owned(),
                signing.clone(),
                expect,
                start_at,
                until,
            ))
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_unstable();
    let pick = |q: f64| {
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    Ok(Figures {
        requests_per_sec: all.len() as f64 / measure.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        count: all.len(),
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// wrk's requests/s for `url`, when wrk is installed.
fn wrk_requests_per_sec(url: &str, connections: usize, secs: u64) -> Option<String> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
    };
    Some(format!(
        "wrk -t2 -c{connections} -d{secs}s /health: {} requests/s, p50 {}, p99 {}",
        find("Requests/sec:")?,
        find("50%").unwrap_or_default(),
        find("99%").unwrap_or_default()
    ))
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);
    let secs: u64 = env_or("BENCH_SECS", 10);
    let measure = Duration::from_secs(secs);
    let warmup = Duration::from_secs(1);

    let data_dir = tempfile::tempdir()?;
    let (server, boot) = start_server(data_dir.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let clusters = format!("/api/public/v1.0/groups/{}/clusters", boot.group_id);

    runtime.block_on(async {
        // One registered replica set, so the list has a row to render.
        let client = ApiClient::new(Credentials {
            server: format!("http://{}", server.addr),
            public_key: boot.public_key.clone(),
            private_key: boot.private_key.clone(),
        })?;
        let _: serde_json::Value = client
            .post_json(
                &format!("/api/rewind/v1/groups/{}/clusters", boot.group_id),
                &serde_json::json!({"clusterName": "bench"}),
            )
            .await?;
        anyhow::Ok(())
    })?;

    let signing = Signing {
        ha1: md5_hex(&format!(
            "{}:MMS Public API:{}",
            boot.public_key, boot.private_key
        )),
        public_key: boot.public_key.clone(),
    };
    println!(
        "{connections} keep-alive connections, {secs} s each after 1 s warm-up, {} CPUs shared by server and load generator",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let health = runtime.block_on(run_load(
        server.addr,
        "/health",
        None,
        StatusCode::OK,
        connections,
        warmup,
        measure,
    ))?;
    let authed = runtime.block_on(run_load(
        server.addr,
        &clusters,
        Some(signing.clone()),
        StatusCode::OK,
        connections,
        warmup,
        measure,
    ))?;
    // The same Digest verification, answered before any storage access: a malformed project
    // id is refused by the handler after authentication. Separates auth from storage cost.
    let auth_only = runtime.block_on(run_load(
        server.addr,
        "/api/public/v1.0/groups/not-an-id/clusters",
        Some(signing),
        StatusCode::NOT_FOUND,
        connections,
        warmup,
        measure,
    ))?;
    println!("| endpoint | requests/s | p50 | p99 | requests |");
    println!("|---|---:|---:|---:|---:|");
    for (name, f) in [
        ("GET /health (no auth)", &health),
        ("GET /groups/{G}/clusters (Digest)", &authed),
        (
            "GET /groups/not-an-id/clusters (Digest, 404 before storage)",
            &auth_only,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            f.requests_per_sec, f.p50_ms, f.p99_ms, f.count
        );
    }
    println!(
        "authenticated / health throughput: {:.2}",
        authed.requests_per_sec / health.requests_per_sec
    );
    match wrk_requests_per_sec(&format!("http://{}/health", server.addr), connections, secs) {
        Some(line) => println!("{line}"),
        None => println!("wrk is not installed; skipped the wrk comparison"),
    }
    drop(server);
    Ok(())
}
