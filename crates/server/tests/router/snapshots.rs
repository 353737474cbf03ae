//! Pins the JSON shapes of the foundation's responses. Ids, dates, keys, nonces and the
//! host are redacted; everything else, including field order, is compared byte for byte.

use axum::http::{header, StatusCode};
use insta::internals::Content;
use insta::{assert_json_snapshot, dynamic_redaction, Settings};
use serde_json::{json, Value};

use crate::support::*;

/// Redactions shared by every snapshot.
fn settings() -> Settings {
    let mut settings = Settings::clone_current();
    settings.add_redaction(".**.id", "[id]");
    settings.add_redaction(".**.groupId", "[group-id]");
    settings.add_redaction(".**.orgId", "[org-id]");
    settings.add_redaction(".**.created", "[date]");
    settings.add_redaction(".**.publicKey", "[public-key]");
    settings.add_redaction(".**.privateKey", "[private-key]");
    let hrefs = dynamic_redaction(|value: Content, _| match value.as_str() {
        Some(href) => {
            assert!(href.starts_with(PUBLIC_URL), "links are absolute: {href}");
            redact_ids(&href.replacen(PUBLIC_URL, "{host}", 1)).into()
        }
        None => value,
    });
    settings.add_redaction(".**.href", hrefs);
    settings.add_redaction(
        ".detail",
        dynamic_redaction(|value: Content, _| match value.as_str() {
            Some(text) => redact_ids(text).into(),
            None => value,
        }),
    );
    settings.add_redaction(
        ".parameters[]",
        dynamic_redaction(|value: Content, _| match value.as_str() {
            Some(text) => redact_ids(text).into(),
            None => value,
        }),
    );
    settings
}

/// The raw body, checked to be exactly what re-serialising its parsed form gives: compact,
/// keys in the order sent (so the snapshot's alphabetical order is the wire's).
fn body(reply: &Reply) -> Value {
    let value: Value = reply.json();
    assert_eq!(serde_json::to_string(&value).unwrap(), reply.text());
    value
}

#[tokio::test]
async fn group_shape() {
    let app = App::new().await;
    let reply = app
        .post(&format!("{API}/groups"), &json!({"name": "Payments"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    settings().bind(|| assert_json_snapshot!("group", body(&reply)));
}

#[tokio::test]
async fn list_of_groups_shape() {
    let app = App::new().await;
    app.post(&format!("{API}/groups"), &json!({"name": "Payments"}))
        .await;
    let reply = app
        .get(&format!("{API}/groups?itemsPerPage=1&pageNum=2"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    settings().bind(|| assert_json_snapshot!("group_list", body(&reply)));
}

#[tokio::test]
async fn api_key_shapes() {
    let app = App::new().await;
    let keys = format!("{API}/orgs/{}/apiKeys", app.boot.org_id);
    let created = app
        .post(
            &keys,
            &json!({"desc": "reporting", "roles": ["ORG_READ_ONLY"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let created = body(&created);
    settings().bind(|| assert_json_snapshot!("api_key_created", created));

    let id = created["id"].as_str().unwrap();
    let fetched = app.get(&format!("{keys}/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    settings().bind(|| assert_json_snapshot!("api_key", body(&fetched)));

    let project_key = app
        .post(
            &format!("{API}/groups/{}/apiKeys", app.boot.group_id),
            &json!({"desc": "backups", "roles": ["GROUP_BACKUP_ADMIN", "GROUP_READ_ONLY"]}),
        )
        .await;
    assert_eq!(project_key.status, StatusCode::CREATED);
    settings().bind(|| assert_json_snapshot!("api_key_of_a_project", body(&project_key)));
}

#[tokio::test]
async fn access_list_shape() {
    let app = App::new().await;
    let keys = format!("{API}/orgs/{}/apiKeys", app.boot.org_id);
    let list = app.get(&keys).await.json();
    let id = list["results"][0]["id"].as_str().unwrap().to_owned();
    let reply = app
        .post(
            &format!("{keys}/{id}/accessList"),
            &json!([{"cidrBlock": "10.0.0.0/8"}, {"ipAddress": "192.0.2.7"}]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = app.get(&format!("{keys}/{id}/accessList")).await;
    settings().bind(|| assert_json_snapshot!("access_list", body(&reply)));
}

#[tokio::test]
async fn cluster_list_shape() {
    let app = App::new().await;
    let group = app.boot.group_id.clone();
    let register = format!("{REWIND_API}/groups/{group}/clusters");
    let rs = app
        .post(
            &register,
            &json!({"clusterName": "orders", "featureCompatibilityVersion": "4.2"}),
        )
        .await;
    assert_eq!(rs.status, StatusCode::CREATED);
    settings().bind(|| assert_json_snapshot!("registered_replica_set", body(&rs)));
    let sharded = app
        .post(
            &register,
            &json!({"clusterName": "ledger", "shards": 2, "featureCompatibilityVersion": "4.2"}),
        )
        .await;
    assert_eq!(sharded.status, StatusCode::CREATED);
    settings().bind(|| assert_json_snapshot!("registered_sharded_cluster", body(&sharded)));

    let reply = app.get(&format!("{API}/groups/{group}/clusters")).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Row order within one registration is the store's; sort for a stable snapshot.
    let mut list = body(&reply);
    list["results"].as_array_mut().unwrap().sort_by_key(|c| {
        (
            c["clusterName"].to_string(),
            c["typeName"].to_string(),
            c["replicaSetName"].to_string(),
        )
    });
    settings().bind(|| assert_json_snapshot!("cluster_list", list));
}

#[tokio::test]
async fn error_shapes() {
    let app = App::new().await;
    let group = app.boot.group_id.clone();
    let missing = "5f1111111111111111111111";
    let reply = app
        .get(&format!("{API}/groups/{group}/clusters/{missing}"))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    settings().bind(|| assert_json_snapshot!("error_cluster_not_found", body(&reply)));

    let reply = app
        .post(
            &format!("{API}/groups"),
            &json!({"name": "x", "colour": "blue"}),
        )
        .await;
    settings().bind(|| assert_json_snapshot!("error_invalid_attribute", body(&reply)));

    let unauthenticated = app
        .send(
            axum::http::Request::get(format!("{API}/groups"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let challenge = unauthenticated.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    let shown = json!({
        "body": body(&unauthenticated),
        "wwwAuthenticate": challenge,
    });
    let mut settings = settings();
    settings.add_redaction(
        ".wwwAuthenticate",
        dynamic_redaction(|value: Content, _| {
            let text = value.as_str().unwrap_or_default();
            let nonce = text
                .split("nonce=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            assert_eq!(nonce.len(), 64, "a signed nonce");
            Content::from(text.replace(nonce, "[nonce]"))
        }),
    );
    settings.bind(|| assert_json_snapshot!("error_unauthenticated", shown));
}

/// The Go client's `Organizations.List` and `Get` fixtures: `id`, `links`, `name`.
#[tokio::test]
async fn organization_shapes_follow_the_go_client_fixture() {
    let app = App::new().await;
    let list = app.get(&format!("{API}/orgs")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    settings().bind(|| assert_json_snapshot!("organization_list", body(&list)));
    let org = &app.boot.org_id;
    let one = app.get(&format!("{API}/orgs/{org}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text());
    assert_eq!(body(&one), list.json()["results"][0]);
    let missing = app.get(&format!("{API}/orgs/{}", app.boot.group_id)).await;
    settings().bind(|| assert_json_snapshot!("error_org_not_found", body(&missing)));
}
