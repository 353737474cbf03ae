//! Shared by the load benches: starting the real server, Digest signing on keep-alive
//! connections, the closed-loop load generator, and its latency report.
//!
//! Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    pub group_id: String,
    pub private_key: String,
    pub public_key: String,
}

/// The server under test; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU seconds (user and system) process `pid` has used so far; 0 once it is gone.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; the
    // kernel counts them in USER_HZ, 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// The parent of process `pid`, if it still runs.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds used so far by process `root` and its direct children (a PostgreSQL
/// postmaster and its backends).
pub fn tree_cpu_secs(root: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_pid(pid) == Some(root))
        .map(cpu_secs)
        .sum();
    children + cpu_secs(root)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release `rewind` binary cargo built for this bench.
pub fn rewind_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rewind")
}

/// Initialises `data_dir` and serves it on an ephemeral loopback port.
pub fn start_server(data_dir: &std::path::Path) -> Result<(Server, Bootstrap)> {
    start_server_on(data_dir, None, &[])
}

/// Initialises `data_dir` (and the metadata in the database `database_url` names, if any)
/// and serves it on an ephemeral loopback port with `serve_args` added.
pub fn start_server_on(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    serve_args: &[&str],
) -> Result<(Server, Bootstrap)> {
    let boot = init(data_dir, database_url)?;
    Ok((start_node(data_dir, database_url, serve_args)?, boot))
}

/// Initialises `data_dir` (and the metadata in the database `database_url` names, if any)
/// with `rewind init`; returns the bootstrap project and key it printed.
pub fn init(data_dir: &std::path::Path, database_url: Option<&str>) -> Result<Bootstrap> {
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let mut init = Command::new(rewind_bin());
    init.args(["init", "--data-dir", dir, "--json"]);
    if let Some(url) = database_url {
        init.args(["--database-url", url]);
    }
    let init = init.output()?;
    if !init.status.success() {
        bail!("init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    Ok(serde_json::from_slice(&init.stdout)?)
}

/// Serves an initialised deployment (another node of it, when one already runs) on an
/// ephemeral loopback port, with `serve_args` added.
pub fn start_node(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    serve_args: &[&str],
) -> Result<Server> {
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let mut serve = Command::new(rewind_bin());
    serve.args(["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    if let Some(url) = database_url {
        serve.args(["--database-url", url]);
    }
    serve.args(serve_args);
    let mut child = serve
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
    Ok(Server { child, addr })
}

pub fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// What one connection needs to sign its requests.
#[derive(Clone)]
pub struct Signing {
    pub public_key: String,
    pub ha1: String,
}

impl Signing {
    pub fn new(boot: &Bootstrap) -> Self {
        Signing {
            ha1: md5_hex(&format!(
                "{}:MMS Public API:{}",
                boot.public_key, boot.private_key
            )),
            public_key: boot.public_key.clone(),
        }
    }

    /// The `Authorization` header for request number `nc` under `nonce`.
    fn authorization(
        &self,
        method: &Method,
        uri: &str,
        nonce: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let nc = format!("{nc:08x}");
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let response = md5_hex(&format!("{}:{nonce}:{nc}:{cnonce}:auth:{ha2}", self.ha1));
        format!(
            r#"Digest username="{}", realm="MMS Public API", nonce="{nonce}", uri="{uri}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#,
            self.public_key
        )
    }
}

/// The request every connection of a load sends, and the status that counts as success.
#[derive(Clone)]
pub struct Target {
    pub method: Method,
    pub path: String,
    /// A JSON body, for `POST`.
    pub body: Option<Bytes>,
    pub signing: Option<Signing>,
    pub expect: StatusCode,
}

impl Target {
    pub fn get(path: impl Into<String>, signing: Option<Signing>, expect: StatusCode) -> Self {
        Target {
            method: Method::GET,
            path: path.into(),
            body: None,
            signing,
            expect,
        }
    }

    pub fn post_json(path: impl Into<String>, body: &serde_json::Value, signing: Signing) -> Self {
        Target {
            method: Method::POST,
            path: path.into(),
            body: Some(Bytes::from(body.to_string())),
            signing: Some(signing),
            expect: StatusCode::OK,
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Latencies (µs) of successful requests started after the warm-up.
    latencies: Vec<u32>,
    /// Successful requests, warm-up included.
    ok_total: u64,
    /// Answers other than the expected status (a Digest challenge excepted), warm-up included.
    errors: u64,
    first_error: Option<String>,
}

/// One keep-alive connection sending `target` back to back until `until`. Each signed
/// connection takes its nonce from one challenge, then reuses it with an increasing `nc`,
/// as a real keep-alive Digest client does; a later challenge (stale nonce) is answered
/// the same way and not counted.
///
/// With a `pace`, the connection is open-loop instead of back to back: its `k`-th request is
/// due at `first_due + k * pace`, it waits for that moment when ahead, and its latency counts
/// from the due time, not from the send. A server that falls behind therefore shows its whole
/// queueing delay (no coordinated omission), as `wrk2` measures.
async fn drive_connection(
    addr: SocketAddr,
    target: Target,
    start_at: Instant,
    until: Instant,
    pace: Option<(Instant, Duration)>,
) -> Result<Tally> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let host = addr.to_string();
    let path = target.path.as_str();
    let mut nonce = String::new();
    let mut nc: u32 = 0;
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let mut tally = Tally {
        latencies: Vec::with_capacity(1 << 16),
        ..Tally::default()
    };
    let mut due = pace.map(|(first_due, _)| first_due);
    loop {
        let now = match due {
            Some(due) => {
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if now >= until {
            break;
        }
        let mut request = Request::builder()
            .method(target.method.clone())
            .uri(path)
            .header(HOST, host.as_str());
        if let (Some(s), false) = (&target.signing, nonce.is_empty()) {
            nc += 1;
            request = request.header(
                AUTHORIZATION,
                s.authorization(&target.method, path, &nonce, nc, &cnonce),
            );
        }
        if target.body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(target.body.clone().unwrap_or_default());
        sender.ready().await?;
        let response = sender.send_request(request.body(body)?).await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        if let (Some(next), Some((_, every))) = (&mut due, pace) {
            // A challenge answered is not a paced request: only successes move the schedule.
            if status != StatusCode::UNAUTHORIZED || target.signing.is_none() {
                *next += every;
            }
        }
        if status == target.expect {
            tally.ok_total += 1;
            if now >= start_at {
                let micros = now.elapsed().as_micros();
                tally.latencies.push(micros.min(u32::MAX as u128) as u32);
            }
        } else if let (StatusCode::UNAUTHORIZED, Some(_), Some(challenge)) =
            (status, &target.signing, challenge)
        {
            // The first request of a connection, or a stale nonce: take the new one.
            nonce = challenge
                .split("nonce=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .context("challenge without nonce")?
                .to_owned();
            nc = 0;
        } else {
            tally.errors += 1;
            if tally.first_error.is_none() {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(300).collect();
                tally.first_error = Some(format!("{status} for {} {path}: {text}", target.method));
            }
        }
    }
    Ok(tally)
}

/// The result of one load.
pub struct Figures {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Successful requests started in the measured window.
    pub count: usize,
    /// Successful requests, warm-up included.
    pub ok_total: u64,
    /// Unexpected answers, warm-up included.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Figures {
    /// Fails with the first unexpected answer, if there was one.
    pub fn ensure_no_errors(&self) -> Result<()> {
        match &self.first_error {
            Some(first) => bail!("{} unexpected answers; first: {first}", self.errors),
            None => Ok(()),
        }
    }

    /// One row of the Markdown table printed by [`print_table`].
    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} |",
            self.requests_per_sec, self.p50_ms, self.p99_ms, self.max_ms, self.count, self.errors
        )
    }
}

/// Prints named figures as a Markdown table.
pub fn print_table(rows: &[(&str, &Figures)]) {
    println!("| endpoint | requests/s | p50 | p99 | max | requests | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, figures) in rows {
        println!("{}", figures.row(name));
    }
    for (name, figures) in rows {
        if let Some(first) = &figures.first_error {
            println!("{name}: {} errors, first: {first}", figures.errors);
        }
    }
}

/// Runs `connections` connections sending `target` for `warmup + measure`, connection `i`
/// to `addrs[i % addrs.len()]` (round robin, as a load balancer spreads keep-alive
/// connections); latencies and throughput count only requests started after the warm-up.
///
/// With `rate` (requests per second, all connections together) the load is open-loop: the
/// connections' schedules are staggered evenly so requests are due at a steady rate, and
/// latency is measured from each request's due time (see [`drive_connection`]).
pub async fn run_load(
    addrs: &[SocketAddr],
    target: &Target,
    connections: usize,
    warmup: Duration,
    measure: Duration,
    rate: Option<f64>,
) -> Result<Figures> {
    let begin = Instant::now();
    let start_at = begin + warmup;
    let until = start_at + measure;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let pace = rate.map(|rate| {
                let every = Duration::from_secs_f64(connections as f64 / rate);
                (begin + every.mul_f64(i as f64 / connections as f64), every)
            });
            tokio::spawn(drive_connection(
                addrs[i % addrs.len()],
                target.clone(),
                start_at,
                until,
                pace,
            ))
        })
        .collect();
    let mut all = Vec::new();
    let (mut ok_total, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let tally = task.await??;
        all.extend(tally.latencies);
        ok_total += tally.ok_total;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    all.sort_unstable();
    let pick = |q: f64| {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    Ok(Figures {
        requests_per_sec: all.len() as f64 / measure.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        count: all.len(),
        ok_total,
        errors,
        first_error,
    })
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The multi-threaded runtime the load generator runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The load parameters shared by the benches: `BENCH_CONNECTIONS` (default 32) and
/// `BENCH_SECS` (default 10), after a 1 s warm-up.
pub struct Load {
    pub connections: usize,
    pub secs: u64,
    pub warmup: Duration,
    pub measure: Duration,
}

impl Load {
    pub fn from_env() -> Self {
        let secs = env_or("BENCH_SECS", 10);
        Load {
            connections: env_or("BENCH_CONNECTIONS", 32),
            secs,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(secs),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} keep-alive connections, {} s each after 1 s warm-up, {} CPUs shared by server and load generator",
            self.connections,
            self.secs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
    }

    pub async fn run(&self, addr: SocketAddr, target: &Target) -> Result<Figures> {
        self.run_spread(&[addr], target).await
    }

    /// The same load spread round robin over `addrs` (see [`run_load`]).
    pub async fn run_spread(&self, addrs: &[SocketAddr], target: &Target) -> Result<Figures> {
        run_load(
            addrs,
            target,
            self.connections,
            self.warmup,
            self.measure,
            None,
        )
        .await
    }

    /// The same load, open-loop at `rate` requests per second in total (see [`run_load`]).
    pub async fn run_paced(&self, addr: SocketAddr, target: &Target, rate: f64) -> Result<Figures> {
        self.run_paced_spread(&[addr], target, rate).await
    }

    /// The paced load spread round robin over `addrs`.
    pub async fn run_paced_spread(
        &self,
        addrs: &[SocketAddr],
        target: &Target,
        rate: f64,
    ) -> Result<Figures> {
        run_load(
            addrs,
            target,
            self.connections,
            self.warmup,
            self.measure,
            Some(rate),
        )
        .await
    }
}

/// Writes `kib` KiB of incompressible bytes in four files, so the snapshot has real chunks.
pub fn write_data_dir(dir: &std::path::Path, kib: usize) -> Result<()> {
    let per_file = kib * 1024 / 4;
    for i in 0..4 {
        let bytes: Vec<u8> = (0..per_file).map(|_| rand::random::<u8>()).collect();
        std::fs::write(dir.join(format!("collection-{i}.wt")), bytes)?;
    }
    Ok(())
}

/// Imports `dir` as a snapshot of `cluster` with the CLI; returns the snapshot id.
pub fn import_snapshot(
    server_url: &str,
    boot: &Bootstrap,
    cluster: &str,
    dir: &std::path::Path,
) -> Result<String> {
    let out = Command::new(rewind_bin())
        .args(["snapshot", "import", "--group", &boot.group_id])
        .args(["--cluster", cluster, "--json", "--from"])
        .arg(dir)
        .env("REWIND_SERVER", server_url)
        .env("REWIND_PUBLIC_KEY", &boot.public_key)
        .env("REWIND_PRIVATE_KEY", &boot.private_key)
        .output()?;
    if !out.status.success() {
        bail!(
            "snapshot import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    summary["snapshotId"]
        .as_str()
        .map(str::to_owned)
        .context("import summary without snapshotId")
}
