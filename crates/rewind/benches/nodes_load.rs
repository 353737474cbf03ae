//! Authenticated throughput and restore-job creation on the embedded store, on one node
//! over PostgreSQL and on two nodes over PostgreSQL, in one run, with the PostgreSQL
//! statements per request counted.
//!
//! Needs two empty PostgreSQL databases with the `pg_stat_statements` extension, named by
//! `BENCH_ONE_NODE_URL` and `BENCH_TWO_NODES_URL` (`bench/nodes.sh` starts a throwaway
//! server and creates them). Each deployment gets one registered replica set and a tiny
//! imported snapshot; its nodes run `--role api`, so that no restore worker prepares the
//! created jobs in the background of the next load (or of another deployment's), and each
//! figure is the API's alone. The two-node deployment's load generator spreads its
//! connections round robin over both nodes.
//!
//! Each of `BENCH_ROUNDS` rounds (default 3) runs, on each deployment in turn, the same
//! loads as `job_create_load` (`BENCH_CONNECTIONS` keep-alive connections, default 32, for
//! `BENCH_SECS`, default 5, after a 1 s warm-up): the Digest-signed `GET …/clusters` back to
//! back, `POST …/restoreJobs` open-loop at 2,000/s (the p99 figure) and back to back (the
//! throughput figure). Deployments alternate within a round, so a change in the machine's
//! other load touches all three alike. Prints each round, then the medians and the ratios
//! the targets name.
//!
//! CPU per request: the Rewind nodes' and (when `BENCH_POSTGRES_PID` names its postmaster)
//! the PostgreSQL server's user and system time over a load, divided by its requests.
//!
//! Statements per request: `pg_stat_statements`' calls in the deployment's database over a
//! load (warm-up included) divided by the requests answered in it. With the extended
//! protocol each statement is one round trip (a transaction's `BEGIN` and `COMMIT` count as
//! statements, as they are round trips too).
//!
//! Run with `bench/nodes.sh` (or `cargo bench -p rewind --bench nodes_load` with the two
//! URLs set).

mod common;

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use common::{
    cpu_secs, env_or, import_snapshot, start_node, start_server_on, tree_cpu_secs, write_data_dir,
    Figures, Load, Server, Signing, Target,
};
use hyper::StatusCode;
use rewind_cli::client::{ApiClient, Credentials};

/// The open-loop rate of the latency figure.
const PACED_PER_SEC: f64 = 2000.0;

/// One deployment under test: its nodes, where its metadata lives, what its loads send.
struct Deployment {
    name: &'static str,
    nodes: Vec<Server>,
    database_url: Option<String>,
    list: Target,
    create: Target,
    _data_dir: tempfile::TempDir,
}

/// Statements PostgreSQL ran in the database `url` names, so far.
fn statements_run(url: &str) -> Result<f64> {
    let out = Command::new("psql")
        .args([url, "-Atc"])
        .arg(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .output()
        .context("run psql")?;
    ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn start(name: &'static str, nodes: usize, database_url: Option<String>) -> Result<Deployment> {
    let data_dir = tempfile::tempdir()?;
    let url = database_url.as_deref();
    let (first, boot) = start_server_on(data_dir.path(), url, &["--role", "api"])?;
    let mut servers = vec![first];
    for _ in 1..nodes {
        servers.push(start_node(data_dir.path(), url, &["--role", "api"])?);
    }
    let runtime = common::runtime()?;
    let client = ApiClient::new(Credentials {
        server: servers[0].url(),
        public_key: boot.public_key.clone(),
        private_key: boot.private_key.clone(),
    })?;
    let group = boot.group_id.clone();
    let registered: serde_json::Value = runtime.block_on(client.post_json(
        &format!("/api/rewind/v1/groups/{group}/clusters"),
        &serde_json::json!({"clusterName": "rs0"}),
    ))?;
    let cluster = registered["members"][0]["id"]
        .as_str()
        .context("registration without members[0].id")?
        .to_owned();
    let source = tempfile::tempdir()?;
    write_data_dir(source.path(), 64)?;
    let snapshot = import_snapshot(&servers[0].url(), &boot, &cluster, source.path())?;
    let signing = Signing::new(&boot);
    let clusters = format!("/api/public/v1.0/groups/{group}/clusters");
    let body = serde_json::json!({
        "delivery": {"methodName": "HTTP", "maxDownloads": 1, "expirationHours": 1},
        "snapshotId": snapshot,
    });
    Ok(Deployment {
        name,
        list: Target::get(&clusters, Some(signing.clone()), StatusCode::OK),
        create: Target::post_json(format!("{clusters}/{cluster}/restoreJobs"), &body, signing),
        nodes: servers,
        database_url,
        _data_dir: data_dir,
    })
}

/// One load's figures and what each request cost.
struct Measured {
    figures: Figures,
    statements_per_request: Option<f64>,
    /// CPU time per request of the Rewind nodes and of PostgreSQL, in microseconds.
    rewind_cpu_us: f64,
    postgres_cpu_us: Option<f64>,
}

impl Deployment {
    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    fn measure(
        &self,
        runtime: &tokio::runtime::Runtime,
        load: impl std::future::Future<Output = Result<Figures>>,
    ) -> Result<Measured> {
        let postmaster = self.database_url.as_ref().and(postmaster_pid());
        let nodes_cpu = || self.nodes.iter().map(|n| cpu_secs(n.pid())).sum::<f64>();
        let before = self
            .database_url
            .as_deref()
            .map(statements_run)
            .transpose()?;
        let (rewind_before, postgres_before) = (nodes_cpu(), postmaster.map(tree_cpu_secs));
        let figures = runtime.block_on(load)?;
        figures.ensure_no_errors()?;
        let requests = figures.ok_total.max(1) as f64;
        let statements_per_request = match (&self.database_url, before) {
            (Some(url), Some(before)) => Some((statements_run(url)? - before) / requests),
            _ => None,
        };
        let micros = |secs: f64| secs * 1e6 / requests;
        Ok(Measured {
            statements_per_request,
            rewind_cpu_us: micros(nodes_cpu() - rewind_before),
            postgres_cpu_us: postmaster
                .zip(postgres_before)
                .map(|(pid, before)| micros(tree_cpu_secs(pid) - before)),
            figures,
        })
    }
}

/// One round's three figures of one deployment.
struct Round {
    list: Measured,
    paced: Measured,
    created: Measured,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The PostgreSQL server's postmaster, named by `BENCH_POSTGRES_PID` (for its CPU time).
fn postmaster_pid() -> Option<u32> {
    std::env::var("BENCH_POSTGRES_PID")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Statements, then Rewind's and PostgreSQL's CPU microseconds, per request.
fn per_request(m: &Measured) -> String {
    let statements = m
        .statements_per_request
        .map_or("–".to_owned(), |s| format!("{s:.3}"));
    let postgres = m
        .postgres_cpu_us
        .map_or("–".to_owned(), |us| format!("{us:.0}"));
    format!("{statements} · {:.0} · {postgres}", m.rewind_cpu_us)
}

fn main() -> Result<()> {
    let load = Load::from_env();
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let one = std::env::var("BENCH_ONE_NODE_URL").context("BENCH_ONE_NODE_URL is unset")?;
    let two = std::env::var("BENCH_TWO_NODES_URL").context("BENCH_TWO_NODES_URL is unset")?;
    let deployments = [
        start("embedded", 1, None)?,
        start("one node, PostgreSQL", 1, Some(one))?,
        start("two nodes, PostgreSQL", 2, Some(two))?,
    ];
    let runtime = common::runtime()?;
    println!("{}; {rounds} rounds", load.describe());
    println!("per request: PostgreSQL statements · Rewind CPU µs · PostgreSQL CPU µs");
    let mut results: Vec<Vec<Round>> = deployments.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        println!("\nround {round}");
        println!("| deployment | clusters GET/s | per GET | creations/s | per creation | p50 / p99 at 2,000/s | per creation at 2,000/s |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (d, out) in deployments.iter().zip(results.iter_mut()) {
            let addrs = d.addrs();
            let list = d.measure(&runtime, load.run_spread(&addrs, &d.list))?;
            let paced = d.measure(
                &runtime,
                load.run_paced_spread(&addrs, &d.create, PACED_PER_SEC),
            )?;
            let created = d.measure(&runtime, load.run_spread(&addrs, &d.create))?;
            println!(
                "| {} | {:.0} | {} | {:.0} | {} | {:.2} / {:.2} ms | {} |",
                d.name,
                list.figures.requests_per_sec,
                per_request(&list),
                created.figures.requests_per_sec,
                per_request(&created),
                paced.figures.p50_ms,
                paced.figures.p99_ms,
                per_request(&paced),
            );
            out.push(Round {
                list,
                paced,
                created,
            });
        }
    }
    let med = |i: usize, f: fn(&Round) -> f64| median(results[i].iter().map(f).collect());
    let list = |r: &Round| r.list.figures.requests_per_sec;
    let created = |r: &Round| r.created.figures.requests_per_sec;
    let p99 = |r: &Round| r.paced.figures.p99_ms;
    let paced_rate = |r: &Round| r.paced.figures.requests_per_sec;
    println!("\nmedians of {rounds} rounds");
    println!("| deployment | clusters GET/s | creations/s | p99 at 2,000/s (achieved rate) |");
    println!("|---|---:|---:|---:|");
    for (i, d) in deployments.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} ms ({:.0}/s) |",
            d.name,
            med(i, list),
            med(i, created),
            med(i, p99),
            med(i, paced_rate)
        );
    }
    let ratio = |a: f64, b: f64, target: f64, at_least: bool| {
        let met = if at_least {
            a / b >= target
        } else {
            a / b <= target
        };
        format!("{:.2} ({})", a / b, if met { "met" } else { "MISSED" })
    };
    println!("\nratios (targets in brackets)");
    for (i, name) in [(1, "one node"), (2, "two nodes")] {
        println!(
            "{name} over PostgreSQL / embedded: creations {} [>= 0.8], p99 {} [<= 1.5], clusters GET {} [>= 0.5]",
            ratio(med(i, created), med(0, created), 0.8, true),
            ratio(med(i, p99), med(0, p99), 1.5, false),
            ratio(med(i, list), med(0, list), 0.5, true),
        );
    }
    println!(
        "two nodes / one node: creations {} [>= 0.9], clusters GET {} [>= 0.9]",
        ratio(med(2, created), med(1, created), 0.9, true),
        ratio(med(2, list), med(1, list), 0.9, true),
    );
    Ok(())
}
