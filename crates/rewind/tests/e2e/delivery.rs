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
    // The status changes when the last download starts, the hash is recorded when a
    // transfer ends: a client can have the whole body before the server has recorded it.
    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED"
            && j["hashes"][0]["hash"].is_string()
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

    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(error_code(&body), "MAX_DOWNLOADS_EXCEEDED");
}

/// The URL with its token (the second-to-last path segment) replaced.
fn with_token(url: &str, token: &str) -> String {
    let mut parts: Vec<&str> = url.rsplitn(3, '/').collect();
    parts[1] = token;
    parts.reverse();
    parts.join("/")
}

#[tokio::test]
async fn a_wrong_token_is_not_found_whatever_its_range_says() {
    let imported = ImportedReplicaSet::start(300_000, 231, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let past_the_end = "bytes=999999999999-";
    for range in [None, Some(past_the_end), Some("bytes=0-0"), Some("garbage")] {
        let (status, headers, body) = fetch(&with_token(&url, "AAAAAAAAAAAA"), range).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{range:?}");
        assert_eq!(error_code(&body), "RESOURCE_NOT_FOUND");
        assert!(
            headers.get("content-range").is_none(),
            "nothing says how large the archive is"
        );
    }
    let (status, headers, body) = fetch(&url, Some(past_the_end)).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(error_code(&body), "RANGE_NOT_SATISFIABLE");
    let size = headers["content-range"].to_str().unwrap();
    assert!(size.starts_with("bytes */"), "{size}");
    let (status, _, _) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK, "none of these spent the download");
}

#[tokio::test]
async fn head_answers_as_get_would_and_takes_no_download() {
    let imported = ImportedReplicaSet::start(300_000, 241, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let mut length = String::new();
    for _ in 0..3 {
        let (status, headers, body) = fetch_with(reqwest::Method::HEAD, &url, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        length = headers["content-length"].to_str().unwrap().to_owned();
    }
    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK, "three HEADs left the one download");
    assert_eq!(body.len().to_string(), length);
    let (status, _, _) = fetch_with(reqwest::Method::HEAD, &url, None).await;
    assert_eq!(status, StatusCode::GONE, "HEAD says what GET would");
}

#[tokio::test]
async fn ranged_requests_give_out_no_more_than_one_archive_plus_the_allowance() {
    let imported = ImportedReplicaSet::start(1 << 20, 251, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let (status, headers, first) = fetch(&url, Some("bytes=0-0")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let total: u64 = headers["content-range"].to_str().unwrap()["bytes 0-0/".len()..]
        .parse()
        .unwrap();
    let near_complete = format!("bytes=1-{}", total - 2);
    let mut given = first.len() as u64;
    let mut served = 0;
    for _ in 0..6 {
        let (status, _, body) = fetch(&url, Some(&near_complete)).await;
        match status {
            StatusCode::PARTIAL_CONTENT => {
                served += 1;
                given += body.len() as u64;
            }
            StatusCode::GONE => assert_eq!(error_code(&body), "MAX_DOWNLOADS_EXCEEDED"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        served, 2,
        "one archive's worth may be sent again, and no more"
    );
    assert!(
        given <= 2 * total,
        "{given} bytes of a {total}-byte archive"
    );
    let job = get(
        &imported.client,
        &format!("{}/{}", imported.jobs_path(), job_id(&job)),
    )
    .await
    .json();
    assert_eq!(
        job["delivery"]["statusName"], "INTERRUPTED",
        "the last byte is still owed: {job}"
    );
    let (status, _, last) = fetch(&url, Some(&format!("bytes={}-", total - 1))).await;
    assert_eq!((status, last.len()), (StatusCode::PARTIAL_CONTENT, 1));
    job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED"
    })
    .await;
}

#[tokio::test]
async fn a_malformed_range_is_refused_and_spends_nothing() {
    let imported = ImportedReplicaSet::start(300_000, 261, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    for range in [
        "bytes=0-1,5-6",
        "bytes=abc-",
        "items=0-1",
        "bytes=9-3",
        "bytes=-",
    ] {
        let (status, _, body) = fetch(&url, Some(range)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{range}");
        assert_eq!(error_code(&body), "INVALID_RANGE", "{range}");
    }
    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j.get("hashes").is_some()
    })
    .await;
    assert_eq!(sha1_hex(&body), job["hashes"][0]["hash"].as_str().unwrap());
}

#[tokio::test]
async fn curl_continues_an_interrupted_download_of_a_one_download_link() {
    let imported = ImportedReplicaSet::start(24 << 20, 271, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restore.tar.gz");
    let curl = |extra: &[&str]| {
        let mut command = std::process::Command::new("curl");
        command.args(["-sS", "-o", file.to_str().unwrap()]);
        command.args(extra).arg(&url);
        command
    };
    let mut slow = curl(&["--limit-rate", "2M"]).spawn().expect("curl runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(Instant::now() < deadline, "curl did not get going");
        pause(Duration::from_millis(20)).await;
    }
    slow.kill().unwrap();
    slow.wait().unwrap();
    eprintln!(
        "curl had {} bytes when it was stopped",
        std::fs::metadata(&file).unwrap().len()
    );
    let resumed = curl(&["-C", "-", "--fail"]).output().unwrap();
    assert!(
        resumed.status.success(),
        "curl -C - continues: {}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let whole = std::fs::read(&file).unwrap();
    let job = job_until(&imported, job_id(&job), Duration::from_secs(10), |j| {
        j["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED"
    })
    .await;
    assert_eq!(sha1_hex(&whole), job["hashes"][0]["hash"].as_str().unwrap());
    let (status, _, _) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::GONE);
}
