//! The foundation's happy paths: bootstrap, projects, keys, access lists, clusters, and the
//! output conventions (field order, `envelope`, `pretty`, paging).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn init_prints_credentials_once_and_refuses_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::fresh();
    let boot = init_data_dir(dir.path(), &database);
    assert_eq!(boot.group_id.len(), 24);
    assert_eq!(boot.org_id.len(), 24);
    assert_eq!(boot.public_key.len(), 8);
    assert!(boot.public_key.bytes().all(|b| b.is_ascii_lowercase()));
    assert_eq!(boot.private_key.len(), 36, "a UUID");

    let again = run_rewind(&database.with_args(&[
        "init",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]));
    assert!(!again.status.success());
    assert!(again.stdout.is_empty(), "no credentials the second time");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already initialized"), "{stderr}");
}

#[tokio::test]
async fn the_bootstrap_key_can_use_the_api_right_away() {
    let server = TestServer::start();
    let client = server.client();
    let reply = get(&client, &format!("{API}/groups/{}", server.boot.group_id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let group = reply.json();
    assert_eq!(group["id"], server.boot.group_id);
    assert_eq!(group["orgId"], server.boot.org_id);
    assert_eq!(group["name"], "Project 0");
    assert_eq!(
        group["links"][0]["href"],
        server.at(&format!("{API}/groups/{}", server.boot.group_id))
    );
}

#[tokio::test]
async fn projects_can_be_created_listed_and_fetched() {
    let server = TestServer::start();
    let client = server.client();
    let created = post(
        &client,
        &format!("{API}/groups"),
        json!({"name": "Payments"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let group = created.json();
    let id = group["id"].as_str().unwrap().to_owned();
    assert_eq!(group["name"], "Payments");
    assert_eq!(group["orgId"], server.boot.org_id);
    assert!(group["created"].as_str().unwrap().ends_with('Z'));

    let list = get(&client, &format!("{API}/groups")).await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list["totalCount"], 2);
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Payments") && names.contains(&"Project 0"));

    let fetched = get(&client, &format!("{API}/groups/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), group);
}

#[tokio::test]
async fn api_keys_can_be_created_listed_fetched_and_deleted() {
    let server = TestServer::start();
    let client = server.client();
    let org = &server.boot.org_id;
    let keys = format!("{API}/orgs/{org}/apiKeys");
    let created = post(
        &client,
        &keys,
        json!({"desc": "reporting", "roles": ["ORG_READ_ONLY"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json();
    let id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(key["desc"], "reporting");
    assert_eq!(key["publicKey"].as_str().unwrap().len(), 8);
    assert_eq!(key["privateKey"].as_str().unwrap().len(), 36);
    assert_eq!(
        key["roles"],
        json!([{"orgId": org, "roleName": "ORG_READ_ONLY"}])
    );

    let list = get(&client, &keys).await.json();
    assert_eq!(list["totalCount"], 2);

    let fetched = get(&client, &format!("{keys}/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    let fetched = fetched.json();
    assert_eq!(fetched["publicKey"], key["publicKey"]);
    assert!(
        fetched.get("privateKey").is_none(),
        "the private key is shown only at creation"
    );

    let deleted = delete(&client, &format!("{keys}/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    get(&client, &format!("{keys}/{id}"))
        .await
        .assert_error(404, "API_KEY_NOT_FOUND", &[&id]);
    assert_eq!(get(&client, &keys).await.json()["totalCount"], 1);
}

#[tokio::test]
async fn a_deleted_key_can_no_longer_authenticate() {
    let server = TestServer::start();
    let client = server.client();
    let org = &server.boot.org_id;
    let (id, public, private) = create_key(
        &client,
        &format!("{API}/orgs/{org}/apiKeys"),
        "ORG_READ_ONLY",
    )
    .await;
    allow_loopback(&client, org, &id).await;
    let doomed = server.client_for(&public, &private);
    assert_eq!(
        get(&doomed, &format!("{API}/groups")).await.status,
        StatusCode::OK
    );

    let deleted = delete(&client, &format!("{API}/orgs/{org}/apiKeys/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    get(&doomed, &format!("{API}/groups"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
}

#[tokio::test]
async fn access_list_entries_can_be_added_listed_and_deleted() {
    let server = TestServer::start();
    let client = server.client();
    let org = &server.boot.org_id;
    let (id, _, _) = create_key(
        &client,
        &format!("{API}/orgs/{org}/apiKeys"),
        "ORG_READ_ONLY",
    )
    .await;
    let list_path = format!("{API}/orgs/{org}/apiKeys/{id}/accessList");
    let empty = get(&client, &list_path).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json()["results"], json!([]));
    assert_eq!(empty.json()["totalCount"], 0);

    let added = post(
        &client,
        &list_path,
        json!([{"ipAddress": "192.0.2.7"}, {"cidrBlock": "10.0.0.0/8"}]),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let added = added.json();
    assert_eq!(added["totalCount"], 2);
    let blocks: Vec<&str> = added["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cidrBlock"].as_str().unwrap())
        .collect();
    assert!(blocks.contains(&"192.0.2.7/32") && blocks.contains(&"10.0.0.0/8"));
    let single = added["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cidrBlock"] == "192.0.2.7/32")
        .unwrap();
    assert_eq!(single["ipAddress"], "192.0.2.7");

    let listed = get(&client, &list_path).await.json();
    assert_eq!(listed["totalCount"], 2);

    let gone = delete(&client, &format!("{list_path}/10.0.0.0%2F8")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    let gone = delete(&client, &format!("{list_path}/192.0.2.7")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(get(&client, &list_path).await.json()["totalCount"], 0);

    delete(&client, &format!("{list_path}/192.0.2.7"))
        .await
        .assert_error(404, "ACCESS_LIST_ENTRY_NOT_FOUND", &["192.0.2.7/32"]);
}

#[tokio::test]
async fn a_replica_set_registers_as_one_cluster_row() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let registered = register_cluster(
        &client,
        group,
        json!({"clusterName": "orders", "featureCompatibilityVersion": "4.2"}),
    )
    .await;
    assert_eq!(registered["featureCompatibilityVersion"], "4.2");
    let members = registered["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    let rs = &members[0];
    assert_eq!(rs["clusterName"], "orders");
    assert_eq!(rs["replicaSetName"], "orders");
    assert_eq!(rs["typeName"], "REPLICA_SET");
    assert_eq!(rs["groupId"], *group);
    assert!(rs.get("shardName").is_none(), "absent fields are omitted");
    assert!(
        rs.get("lastHeartbeat").is_none(),
        "absent fields are omitted"
    );

    let id = rs["id"].as_str().unwrap();
    let fetched = get(&client, &format!("{API}/groups/{group}/clusters/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(&fetched.json(), rs);
    assert_eq!(
        rs["links"][0]["href"],
        server.at(&format!("{API}/groups/{group}/clusters/{id}"))
    );

    let list = get(&client, &format!("{API}/groups/{group}/clusters"))
        .await
        .json();
    assert_eq!(list["totalCount"], 1);
    assert_eq!(&list["results"][0], rs);
}

#[tokio::test]
async fn a_sharded_cluster_registers_its_shards_and_config_server() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let registered = register_cluster(
        &client,
        group,
        json!({"clusterName": "ledger", "shards": 2, "featureCompatibilityVersion": "4.2"}),
    )
    .await;
    let members = registered["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    let top = &members[0];
    assert_eq!(top["typeName"], "SHARDED_REPLICA_SET");
    assert!(top.get("replicaSetName").is_none());

    let list = get(&client, &format!("{API}/groups/{group}/clusters"))
        .await
        .json();
    assert_eq!(list["totalCount"], 4);
    let mut rows: Vec<(String, String)> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["clusterName"], "ledger");
            (
                c["typeName"].as_str().unwrap().to_owned(),
                c["replicaSetName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("CONFIG_SERVER_REPLICA_SET", "ledger-config-0"),
            ("REPLICA_SET", "ledger-shard-0"),
            ("REPLICA_SET", "ledger-shard-1"),
            ("SHARDED_REPLICA_SET", ""),
        ]
        .map(|(t, r)| (t.to_owned(), r.to_owned()))
    );
    for shard in members.iter().filter(|m| m["typeName"] == "REPLICA_SET") {
        assert_eq!(shard["shardName"], shard["replicaSetName"]);
    }

    for member in members {
        let id = member["id"].as_str().unwrap();
        let fetched = get(&client, &format!("{API}/groups/{group}/clusters/{id}")).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(&fetched.json(), member);
    }
}

/// The keys of the top-level object of a raw JSON body, in the order they were sent.
pub(crate) fn raw_key_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0;
    let mut chars = text.chars().peekable();
    let mut expect_key = false;
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' => {
                depth += 1;
                expect_key = c == '{' && depth == 1;
            }
            '}' | ']' => depth -= 1,
            ',' if depth == 1 => expect_key = true,
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                if expect_key && depth == 1 {
                    keys.push(s);
                }
                expect_key = false;
            }
            _ => {}
        }
    }
    keys
}

#[tokio::test]
async fn response_fields_appear_in_alphabetical_order() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let registered = register_cluster(&client, group, json!({"clusterName": "orders"})).await;
    let id = registered["members"][0]["id"].as_str().unwrap();

    let cluster = get(&client, &format!("{API}/groups/{group}/clusters/{id}")).await;
    let keys = raw_key_order(&cluster.text);
    assert_eq!(
        keys,
        [
            "clusterName",
            "groupId",
            "id",
            "links",
            "replicaSetName",
            "typeName"
        ]
    );

    let key = post(
        &client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        json!({"roles": ["ORG_READ_ONLY"], "desc": "ordered"}),
    )
    .await;
    let keys = raw_key_order(&key.text);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 6, "{}", key.text);

    let list = get(&client, &format!("{API}/groups")).await;
    assert_eq!(
        raw_key_order(&list.text),
        ["links", "results", "totalCount"]
    );
    let error = get(&client, &format!("{API}/groups/nope")).await;
    assert_eq!(
        raw_key_order(&error.text),
        ["detail", "error", "errorCode", "parameters", "reason"]
    );
}

#[tokio::test]
async fn envelope_wraps_an_entity_and_adds_status_to_a_list() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let plain = get(&client, &format!("{API}/groups/{group}")).await.json();
    let wrapped = get(&client, &format!("{API}/groups/{group}?envelope=true")).await;
    assert_eq!(wrapped.status, StatusCode::OK);
    assert_eq!(wrapped.json(), json!({"content": plain, "status": 200}));

    let list = get(&client, &format!("{API}/groups?envelope=true"))
        .await
        .json();
    assert_eq!(list["status"], 200);
    assert_eq!(list["totalCount"], 1);
    assert!(list.get("content").is_none());
    assert_eq!(list["results"][0], plain);

    let created = post(
        &client,
        &format!("{API}/groups?envelope=true"),
        json!({"name": "Wrapped"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["status"], 201);
    assert_eq!(created.json()["content"]["name"], "Wrapped");

    let error = get(&client, &format!("{API}/groups/nope?envelope=true")).await;
    let body = error.assert_error(404, "INVALID_GROUP_ID", &["nope"]);
    assert!(body.get("content").is_none(), "errors are never wrapped");
}

#[tokio::test]
async fn pretty_indents_the_json() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let compact = get(&client, &format!("{API}/groups/{group}")).await;
    assert!(!compact.text.contains('\n'), "compact by default");
    let pretty = get(&client, &format!("{API}/groups/{group}?pretty=true")).await;
    assert_eq!(pretty.status, StatusCode::OK);
    assert!(pretty.text.starts_with("{\n  \""), "{}", pretty.text);
    assert_eq!(pretty.json(), compact.json());
    assert_eq!(
        pretty.text,
        serde_json::to_string_pretty(&compact.json()).unwrap()
    );
}

fn links_of(page: &Value) -> Vec<(String, String)> {
    page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["rel"].as_str().unwrap().to_owned(),
                l["href"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn paging_walks_three_pages_with_absolute_links() {
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    for i in 0..5 {
        register_cluster(&client, group, json!({"clusterName": format!("rs{i}")})).await;
    }
    let list = format!("{API}/groups/{group}/clusters");
    let href = |page: u32| server.at(&format!("{list}?pageNum={page}&itemsPerPage=2"));

    let mut seen = Vec::new();
    let mut expected_links = vec![
        vec![("self", href(1)), ("next", href(2))],
        vec![("previous", href(1)), ("self", href(2)), ("next", href(3))],
        vec![("previous", href(2)), ("self", href(3))],
    ];
    for (page, expected) in (1..=3).zip(expected_links.drain(..)) {
        let reply = get(&client, &format!("{list}?pageNum={page}&itemsPerPage=2")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.json();
        assert_eq!(body["totalCount"], 5);
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(rel, href)| (rel.to_owned(), href))
            .collect();
        assert_eq!(links_of(&body), expected, "links of page {page}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), if page == 3 { 1 } else { 2 });
        seen.extend(
            results
                .iter()
                .map(|c| c["clusterName"].as_str().unwrap().to_owned()),
        );
    }
    seen.sort();
    assert_eq!(seen, ["rs0", "rs1", "rs2", "rs3", "rs4"]);

    let beyond = get(&client, &format!("{list}?pageNum=4&itemsPerPage=2"))
        .await
        .json();
    assert_eq!(beyond["results"], json!([]));

    let uncounted = get(
        &client,
        &format!("{list}?itemsPerPage=2&includeCount=false"),
    )
    .await;
    let uncounted = uncounted.json();
    assert!(uncounted.get("totalCount").is_none());
    assert_eq!(uncounted["results"].as_array().unwrap().len(), 2);
    let links = links_of(&uncounted);
    assert_eq!(
        links[0],
        (
            "self".to_owned(),
            server.at(&format!(
                "{list}?includeCount=false&pageNum=1&itemsPerPage=2"
            ))
        ),
        "other query parameters are kept in the links"
    );
}

#[tokio::test]
async fn health_and_metrics_need_no_credentials() {
    let server = TestServer::start();
    let health = reqwest::get(server.at("/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "OK"})
    );
    let metrics = reqwest::get(server.at("/metrics")).await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("rewind_http_requests_total"));
}

#[test]
fn the_readme_settings_table_lists_every_serve_flag() {
    let help = run_rewind(&["serve", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|word| word.starts_with("--") && *word != "--help")
        .collect();
    assert!(flags.len() >= 10, "serve's flags: {flags:?}");
    for flag in flags {
        assert!(
            readme.contains(&format!("| `{flag}` |")),
            "the README's settings table has no row for {flag}"
        );
    }
}
