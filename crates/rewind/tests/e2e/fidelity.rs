//! What Cloud Manager clients read beyond the restore calls, shaped as the official Go
//! client's fixtures show it: organizations, the job fields a client reads, snapshot
//! schedules and retention, and restorable time ranges. Every call goes through a real
//! Digest client against the real binary.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// `GET /orgs` as `mongocli om orgs list` reads it, and `GET /orgs/{ORG-ID}`.
#[tokio::test]
async fn organizations_list_and_read_as_the_go_client_expects() {
    let server = TestServer::start();
    let client = server.client();
    let org = &server.boot.org_id;

    let listed = get(&client, &format!("{API}/orgs")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let listed = listed.json();
    assert_eq!(listed["totalCount"], 1, "{listed}");
    let self_href = listed["links"][0]["href"].as_str().unwrap();
    assert!(
        self_href.ends_with("/api/public/v1.0/orgs?pageNum=1&itemsPerPage=100"),
        "{self_href}"
    );
    let one = &listed["results"][0];
    assert_eq!(one["id"], org.as_str());
    assert_eq!(one["name"], "Rewind");
    assert_eq!(
        one["links"],
        json!([{"href": server.at(&format!("{API}/orgs/{org}")), "rel": "self"}])
    );
    let keys: Vec<&str> = one
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["id", "links", "name"],
        "the fixture's fields, in order"
    );

    let read = get(&client, &format!("{API}/orgs/{org}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json(), *one);
    let enveloped = get(&client, &format!("{API}/orgs/{org}?envelope=true")).await;
    assert_eq!(enveloped.json(), json!({"content": one, "status": 200}));

    let filtered = get(&client, &format!("{API}/orgs?name=rew")).await.json();
    assert_eq!(
        filtered["totalCount"], 1,
        "a case-insensitive prefix matches"
    );
    let filtered = get(&client, &format!("{API}/orgs?name=other")).await.json();
    assert_eq!(filtered["results"], json!([]));
    assert_eq!(filtered["totalCount"], 0);
    let paged = get(&client, &format!("{API}/orgs?pageNum=2&itemsPerPage=1"))
        .await
        .json();
    assert_eq!(paged["results"], json!([]));
    assert_eq!(paged["links"][0]["rel"], "previous");
    let with_deleted = get(&client, &format!("{API}/orgs?includeDeletedOrgs=true")).await;
    assert_eq!(
        with_deleted.json()["totalCount"],
        1,
        "{}",
        with_deleted.text
    );
}

/// A malformed id, an unknown one and another organization's are told apart only by form:
/// keys cannot probe for other organizations. Any key of the organization may read it.
#[tokio::test]
async fn organizations_answer_errors_as_cloud_manager_documents_them() {
    let server = TestServer::start();
    let owner = server.client();
    let org = &server.boot.org_id;
    let group = &server.boot.group_id;

    get(&owner, &format!("{API}/orgs/not-an-id"))
        .await
        .assert_error(404, "INVALID_ORG_ID", &["not-an-id"]);
    let unknown = "5f0000000000000000000001";
    get(&owner, &format!("{API}/orgs/{unknown}"))
        .await
        .assert_error(404, "ORG_NOT_FOUND", &[unknown]);
    get(&owner, &format!("{API}/orgs?includeDeletedOrgs=maybe"))
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["includeDeletedOrgs"]);
    get(&owner, &format!("{API}/orgs?itemsPerPage=501"))
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["itemsPerPage"]);

    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&owner, org, &id).await;
    let reader = server.client_for(&public, &private);
    let seen = get(&reader, &format!("{API}/orgs")).await.json();
    assert_eq!(seen["results"][0]["id"], org.as_str(), "{seen}");
    let read = get(&reader, &format!("{API}/orgs/{org}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);

    let unauthenticated = reqwest::get(server.at(&format!("{API}/orgs")))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}
