//! HTTP delivery end to end: the download budget under concurrency, link expiry, and
//! `Range` resume.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// Polls the job until `check` holds, for at most `within`.
async fn job_until(
    imported: &ImportedReplicaSet,
    id: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = get(&imported.client, &format!("{}/{id}", imported.jobs_path()))
            .await
            .json();
        if check(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "after {within:?}: {job}");
        pause(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn twenty_concurrent_downloads_of_a_three_download_link_serve_exactly_three() {
    let imported = ImportedReplicaSet::start(1 << 20, 201, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 3})).await;
    let job = imported.ready_job(&jobs[0]).await;
    assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();

    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { fetch(&url, None).await })
        })
        .collect();
    let mut served = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        let (status, _, body) = attempt.await.unwrap();
        match status {
            StatusCode::OK => served.push(body),
            StatusCode::GONE => {
                assert_eq!(error_code(&body), "MAX_DOWNLOADS_EXCEEDED");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert_eq!(served.len(), 3, "exactly maxDownloads downloads are served");
    assert_eq!(refused, 17);
    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED"
    })
    .await;
    let hash = job["hashes"][0]["hash"].as_str().unwrap();
    for body in &served {
        assert_eq!(
            sha1_hex(body),
            hash,
            "every served body is the whole archive"
        );
    }
}

#[tokio::test]
async fn an_expired_link_is_refused_and_its_delivery_reads_expired() {
    let imported = ImportedReplicaSet::start(300_000, 211, &["--sweep-interval-secs", "1"]).await;
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let jobs = imported.restore(json!({"expires": expires})).await;
    assert_eq!(jobs[0]["delivery"]["expires"], expires);
    assert!(jobs[0]["delivery"].get("expirationHours").is_none());
    let job = imported.ready_job(&jobs[0]).await;
    assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();

    let deadline = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    while chrono::Utc::now() <= deadline + chrono::Duration::milliseconds(1100) {
        pause(Duration::from_millis(100)).await;
    }
    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(error_code(&body), "DOWNLOAD_EXPIRED");

    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j["delivery"]["statusName"] == "EXPIRED"
    })
    .await;
    assert_eq!(
        job["statusName"], "FINISHED",
        "expiry does not change the job: {job}"
    );
}

#[tokio::test]
async fn a_range_request_resumes_a_single_download_and_a_fresh_start_is_refused() {
    let imported = ImportedReplicaSet::start(1 << 20, 221, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();

    let split = 100_000u64;
    let (status, headers, head) = fetch(&url, Some(&format!("bytes=0-{split}"))).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(head.len() as u64, split + 1);
    let content_range = headers["content-range"].to_str().unwrap().to_owned();
    let total: u64 = content_range
        .strip_prefix(&format!("bytes 0-{split}/"))
        .unwrap_or_else(|| panic!("Content-Range {content_range}"))
        .parse()
        .unwrap();
    assert_eq!(headers["content-length"], (split + 1).to_string().as_str());

    let (status, headers, tail) = fetch(&url, Some(&format!("bytes={}-", split + 1))).await;
    assert_eq!(
        status,
        StatusCode::PARTIAL_CONTENT,
        "the started download resumes"
    );
    assert_eq!(
        headers["content-range"],
        format!("bytes {}-{}/{total}", split + 1, total - 1).as_str()
    );
    let whole = [head, tail].concat();
    assert_eq!(whole.len() as u64, total);

    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j.get("hashes").is_some()
    })
    .await;
    assert_eq!(job["hashes"][0]["hash"], sha1_hex(&whole));
    assert_eq!(
        job["delivery"]["statusName"], "MAX_DOWNLOADS_EXCEEDED",
        "{job}"
    );

    let (status, _, body) = fetch(&url, Some("bytes=0-")).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(error_code(&body), "MAX_DOWNLOADS_EXCEEDED");
}
