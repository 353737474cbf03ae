//! Every error of the contract's table that the foundation's endpoints can produce, with its
//! status, `errorCode` and `parameters`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_body_that_is_not_json_is_invalid_json() {
    let server = TestServer::start();
    let client = server.client();
    let groups = format!("{API}/groups");
    send_raw(
        &client,
        Method::POST,
        &groups,
        b"{not json",
        "application/json",
    )
    .await
    .assert_error(400, "INVALID_JSON", &[]);
    send_raw(&client, Method::POST, &groups, b"", "application/json")
        .await
        .assert_error(400, "INVALID_JSON", &[]);
    // Valid JSON, but not the object the endpoint takes.
    post(&client, &groups, json!(["Payments"]))
        .await
        .assert_error(400, "INVALID_JSON", &[]);
    let access = format!(
        "{API}/orgs/{}/apiKeys/{}/accessList",
        server.boot.org_id, "5f0000000000000000000000"
    );
    post(&client, &access, json!({"ipAddress": "10.0.0.1"}))
        .await
        .assert_error(400, "INVALID_JSON", &[]);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_invalid_json_attribute() {
    let server = TestServer::start();
    let client = server.client();
    post(&client, &format!("{API}/groups"), json!({"name": 42}))
        .await
        .assert_error(400, "INVALID_JSON_ATTRIBUTE", &["name"]);
    let group = &server.boot.group_id;
    post(
        &client,
        &format!("{REWIND_API}/groups/{group}/clusters"),
        json!({"clusterName": "rs", "shards": "two"}),
    )
    .await
    .assert_error(400, "INVALID_JSON_ATTRIBUTE", &["shards"]);
    post(
        &client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        json!({"desc": "k", "roles": "ORG_OWNER"}),
    )
    .await
    .assert_error(400, "INVALID_JSON_ATTRIBUTE", &["roles"]);
}

#[tokio::test]
async fn a_missing_required_field_is_missing_attribute() {
    let server = TestServer::start();
    let client = server.client();
    post(&client, &format!("{API}/groups"), json!({}))
        .await
        .assert_error(400, "MISSING_ATTRIBUTE", &["name"]);
    post(
        &client,
        &format!("{REWIND_API}/groups/{}/clusters", server.boot.group_id),
        json!({"shards": 2}),
    )
    .await
    .assert_error(400, "MISSING_ATTRIBUTE", &["clusterName"]);
    post(
        &client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        json!({"desc": "no roles"}),
    )
    .await
    .assert_error(400, "MISSING_ATTRIBUTE", &["roles"]);
}

#[tokio::test]
async fn an_unknown_field_or_a_value_out_of_range_is_invalid_attribute() {
    let server = TestServer::start();
    let client = server.client();
    post(
        &client,
        &format!("{API}/groups"),
        json!({"name": "Payments", "colour": "blue"}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["colour"]);
    post(
        &client,
        &format!("{API}/groups"),
        json!({"name": "no/slashes"}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["name"]);
    let clusters = format!("{REWIND_API}/groups/{}/clusters", server.boot.group_id);
    post(
        &client,
        &clusters,
        json!({"clusterName": "rs", "shards": 0}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["shards"]);
    post(
        &client,
        &clusters,
        json!({"clusterName": "rs", "featureCompatibilityVersion": "four"}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["featureCompatibilityVersion"]);
    let access = format!(
        "{API}/orgs/{}/apiKeys/{}/accessList",
        server.boot.org_id, "5f0000000000000000000000"
    );
    post(&client, &access, json!([{"ipAddress": "10.0.0.0/8"}]))
        .await
        .assert_error(400, "INVALID_ATTRIBUTE", &["ipAddress", "10.0.0.0/8"]);
}

#[tokio::test]
async fn a_role_that_does_not_exist_is_invalid_enum_value() {
    let server = TestServer::start();
    let client = server.client();
    post(
        &client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        json!({"desc": "k", "roles": ["ORG_SUPERUSER"]}),
    )
    .await
    .assert_error(400, "INVALID_ENUM_VALUE", &["roles", "ORG_SUPERUSER"]);
    // A project role is not an organization role, and the other way round.
    post(
        &client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        json!({"desc": "k", "roles": ["GROUP_OWNER"]}),
    )
    .await
    .assert_error(400, "INVALID_ENUM_VALUE", &["roles", "GROUP_OWNER"]);
    post(
        &client,
        &format!("{API}/groups/{}/apiKeys", server.boot.group_id),
        json!({"desc": "k", "roles": ["ORG_OWNER"]}),
    )
    .await
    .assert_error(400, "INVALID_ENUM_VALUE", &["roles", "ORG_OWNER"]);
}

#[tokio::test]
async fn bad_query_parameters_are_invalid_query_parameter() {
    let server = TestServer::start();
    let client = server.client();
    let clusters = format!("{API}/groups/{}/clusters", server.boot.group_id);
    for (query, param) in [
        ("pageNum=0", "pageNum"),
        ("pageNum=x", "pageNum"),
        ("itemsPerPage=501", "itemsPerPage"),
        ("itemsPerPage=0", "itemsPerPage"),
        ("includeCount=sometimes", "includeCount"),
        ("pretty=maybe", "pretty"),
        ("envelope=1", "envelope"),
    ] {
        get(&client, &format!("{clusters}?{query}"))
            .await
            .assert_error(400, "INVALID_QUERY_PARAMETER", &[param]);
    }
    let ok = get(&client, &format!("{clusters}?itemsPerPage=500&pageNum=1")).await;
    assert_eq!(ok.status, StatusCode::OK, "500 is the largest page");
}

#[tokio::test]
async fn malformed_ids_are_404_with_their_own_codes() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let org = &server.boot.org_id;
    get(&client, &format!("{API}/groups/not-an-id"))
        .await
        .assert_error(404, "INVALID_GROUP_ID", &["not-an-id"]);
    get(
        &client,
        &format!("{API}/groups/5F0000000000000000000000Z/clusters"),
    )
    .await
    .assert_error(404, "INVALID_GROUP_ID", &["5F0000000000000000000000Z"]);
    get(&client, &format!("{API}/groups/{group}/clusters/123"))
        .await
        .assert_error(404, "INVALID_CLUSTER_ID", &["123"]);
    get(&client, &format!("{API}/orgs/acme/apiKeys"))
        .await
        .assert_error(404, "INVALID_ORG_ID", &["acme"]);
    get(&client, &format!("{API}/orgs/{org}/apiKeys/xyz"))
        .await
        .assert_error(404, "INVALID_API_KEY_ID", &["xyz"]);
    // A segment that does not even decode to UTF-8 is malformed too.
    get(&client, &format!("{API}/groups/%A0/clusters"))
        .await
        .assert_error(404, "INVALID_GROUP_ID", &["%A0"]);
    get(&client, &format!("{API}/groups/{group}/clusters/%FF%FE"))
        .await
        .assert_error(404, "INVALID_CLUSTER_ID", &["%FF%FE"]);
}

#[tokio::test]
async fn unknown_entities_are_404_or_not_in_group() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let org = &server.boot.org_id;
    let missing = "5f1111111111111111111111";
    // A project that does not exist is indistinguishable from one the key is not in.
    get(&client, &format!("{API}/groups/{missing}"))
        .await
        .assert_error(401, "NOT_IN_GROUP", &[missing]);
    get(&client, &format!("{API}/groups/{missing}/clusters"))
        .await
        .assert_error(401, "NOT_IN_GROUP", &[missing]);
    get(&client, &format!("{API}/groups/{group}/clusters/{missing}"))
        .await
        .assert_error(404, "CLUSTER_NOT_FOUND", &[missing, group]);
    get(&client, &format!("{API}/orgs/{org}/apiKeys/{missing}"))
        .await
        .assert_error(404, "API_KEY_NOT_FOUND", &[missing]);
    get(
        &client,
        &format!("{API}/orgs/{org}/apiKeys/{missing}/accessList"),
    )
    .await
    .assert_error(404, "API_KEY_NOT_FOUND", &[missing]);
}

#[tokio::test]
async fn an_unknown_path_is_resource_not_found() {
    let server = TestServer::start();
    let client = server.client();
    let path = format!("{API}/groups/{}/widgets", server.boot.group_id);
    get(&client, &path)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND", &[&path]);
    get(&client, "/nowhere")
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND", &["/nowhere"]);
}

#[tokio::test]
async fn a_method_the_path_does_not_take_is_method_not_allowed() {
    let server = TestServer::start();
    let client = server.client();
    let path = format!("{API}/groups/{}", server.boot.group_id);
    call(&client, Method::DELETE, &path, None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED", &["DELETE", &path]);
    let path = format!("{API}/groups");
    call(&client, Method::PUT, &path, Some(json!({})))
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED", &["PUT", &path]);
}

#[tokio::test]
async fn a_body_over_64_kib_is_request_too_large() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let path = format!("{API}/groups");
    // Refused on the declared length, before the body is read: only its start is sent.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        signer.next_header("POST", &path, &nonce),
        64 * 1024 + 1
    );
    let answer = raw_exchange(server.port(), &head, b"{\"name\": \"").await;
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["errorCode"], "REQUEST_TOO_LARGE");
    assert_eq!(body["error"], 413);
    assert_eq!(body["parameters"], json!([]));

    // Exactly at the limit is read (and then judged on its content).
    let name = "a".repeat(64 * 1024 - r#"{"name":""}"#.len());
    let at_limit = serde_json::to_vec(&json!({ "name": name })).unwrap();
    assert_eq!(at_limit.len(), 64 * 1024);
    send_raw(
        &server.client(),
        Method::POST,
        &path,
        &at_limit,
        "application/json",
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["name"]);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_unsupported_media_type() {
    let server = TestServer::start();
    let client = server.client();
    send_raw(
        &client,
        Method::POST,
        &format!("{API}/groups"),
        br#"{"name":"Payments"}"#,
        "text/plain",
    )
    .await
    .assert_error(415, "UNSUPPORTED_MEDIA_TYPE", &["Content-Type"]);
    let ok = send_raw(
        &client,
        Method::POST,
        &format!("{API}/groups"),
        br#"{"name":"Payments"}"#,
        "application/json; charset=utf-8",
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "a charset is fine");
}

#[tokio::test]
async fn a_second_project_with_the_same_name_is_group_already_exists() {
    let server = TestServer::start();
    let client = server.client();
    post(
        &client,
        &format!("{API}/groups"),
        json!({"name": "Project 0"}),
    )
    .await
    .assert_error(409, "GROUP_ALREADY_EXISTS", &["Project 0"]);
}

#[tokio::test]
async fn a_second_cluster_with_the_same_name_is_duplicate_cluster_name() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    register_cluster(&client, group, json!({"clusterName": "orders"})).await;
    post(
        &client,
        &format!("{REWIND_API}/groups/{group}/clusters"),
        json!({"clusterName": "orders", "shards": 2}),
    )
    .await
    .assert_error(409, "DUPLICATE_CLUSTER_NAME", &["orders"]);
    let list = get(&client, &format!("{API}/groups/{group}/clusters"))
        .await
        .json();
    assert_eq!(
        list["totalCount"], 1,
        "nothing of the refused cluster was stored"
    );
}
