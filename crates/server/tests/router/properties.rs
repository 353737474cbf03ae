//! Property tests: whatever a client sends, the router answers with a status below 500 and
//! the API's error body, and nothing panics. Case counts are modest so the suite stays fast.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use proptest::prelude::*;
use rewind_server::http::digest::{parse_authorization, DigestCredentials};
use serde_json::Value;

use crate::support::*;

/// Cases per property: modest by default; `PROPTEST_CASES` raises it for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A failure is the API's error body, whose `error` repeats the status.
fn assert_api_answer(reply: &Reply) -> Result<(), TestCaseError> {
    prop_assert!(
        reply.status.as_u16() < 500,
        "{} {}",
        reply.status,
        reply.text()
    );
    if reply.status.is_client_error() {
        let body: Value = serde_json::from_slice(&reply.body).map_err(|e| {
            TestCaseError::fail(format!(
                "{}: not the error body ({e}): {}",
                reply.status,
                reply.text()
            ))
        })?;
        prop_assert_eq!(&body["error"], &Value::from(reply.status.as_u16()));
        prop_assert!(body["errorCode"].is_string(), "{}", reply.text());
        prop_assert!(body["parameters"].is_array(), "{}", reply.text());
    }
    Ok(())
}

fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,200}",
        "Digest [ -~]{0,300}",
        "Digest ([a-z]{1,9}=(\"[ -~]{0,20}\"|[!-~]{0,20}), ?){0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn malformed_authorization_headers_are_refused_without_a_server_error(
        text in header_text(),
        mutate_valid in any::<bool>(),
        at in any::<prop::sample::Index>(),
        with in "[ -~]",
    ) {
        let rt = runtime();
        let app = rt.block_on(App::new());
        let uri = format!("{API}/groups");
        let text = if mutate_valid {
            let mut valid: Vec<char> = app.authorization("GET", &uri).chars().collect();
            let i = at.index(valid.len());
            valid[i] = with.chars().next().unwrap();
            valid.into_iter().collect()
        } else {
            text
        };
        let Ok(value) = HeaderValue::from_str(&text) else { return Ok(()) };
        let mut req = Request::get(&uri).body(Body::empty()).unwrap();
        req.headers_mut().insert(header::AUTHORIZATION, value);
        let reply = rt.block_on(app.send(req));
        prop_assert!(
            reply.status == StatusCode::UNAUTHORIZED || reply.status == StatusCode::OK,
            "{} for {text}", reply.status
        );
        assert_api_answer(&reply)?;
        if reply.status == StatusCode::UNAUTHORIZED {
            prop_assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
        }
    }
}

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{24}",
        "[0-9a-fA-F]{0,30}",
        "[a-zA-Z0-9._~-]{1,30}",
        "([a-zA-Z0-9]|%[0-9a-fA-F]{2}){1,12}",
        Just("%2F".to_owned()),
        Just("10.0.0.0%2F8".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_path_ids_get_api_errors_not_server_errors(
        shape in 0usize..7,
        a in path_segment(),
        b in path_segment(),
        c in path_segment(),
        use_real_parent in any::<bool>(),
    ) {
        let rt = runtime();
        let app = rt.block_on(App::new());
        let (group, org) = if use_real_parent {
            (app.boot.group_id.clone(), app.boot.org_id.clone())
        } else {
            (a.clone(), a.clone())
        };
        let (method, uri) = match shape {
            0 => (Method::GET, format!("{API}/groups/{a}")),
            1 => (Method::GET, format!("{API}/groups/{group}/clusters")),
            2 => (Method::GET, format!("{API}/groups/{group}/clusters/{b}")),
            3 => (Method::GET, format!("{API}/orgs/{org}/apiKeys/{b}")),
            4 => (Method::DELETE, format!("{API}/orgs/{org}/apiKeys/{b}/accessList/{c}")),
            5 => (Method::GET, format!("{REWIND_API}/groups/{group}/clusters/{b}")),
            _ => (Method::GET, format!("{API}/{a}/{b}/{c}")),
        };
        prop_assume!(uri.parse::<axum::http::Uri>().is_ok());
        let reply = rt.block_on(app.call(method, &uri, None));
        assert_api_answer(&reply)?;
    }

    #[test]
    fn random_query_strings_get_200_or_invalid_query_parameter(
        pairs in prop::collection::vec(
            (
                prop_oneof![
                    Just("pageNum".to_owned()),
                    Just("itemsPerPage".to_owned()),
                    Just("includeCount".to_owned()),
                    Just("pretty".to_owned()),
                    Just("envelope".to_owned()),
                    "[ -~]{0,8}",
                ],
                prop_oneof![
                    "[0-9]{0,7}",
                    "-[0-9]{1,20}",
                    "[0-9]{19,25}",
                    Just("true".to_owned()),
                    Just("FALSE".to_owned()),
                    "[ -~]{0,10}",
                    "\\PC{0,6}",
                ],
            ),
            0..6,
        ),
        list in 0usize..3,
    ) {
        let rt = runtime();
        let app = rt.block_on(App::new());
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        let path = match list {
            0 => format!("{API}/groups/{}/clusters", app.boot.group_id),
            1 => format!("{API}/groups"),
            _ => format!("{API}/orgs/{}/apiKeys", app.boot.org_id),
        };
        let uri = format!("{path}?{}", query.finish());
        let reply = rt.block_on(app.get(&uri));
        assert_api_answer(&reply)?;
        if reply.status != StatusCode::OK {
            prop_assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            prop_assert_eq!(&reply.json()["errorCode"], "INVALID_QUERY_PARAMETER");
        }
    }
}

/// JSON values made mostly of the field names the endpoints read, so bodies get past the
/// first checks often enough to reach the deeper ones.
fn json_ish() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("ORG_OWNER"),
            Just("ORG_READ_ONLY"),
            Just("GROUP_OWNER"),
            Just("GROUP_READ_ONLY"),
            Just("10.0.0.0/8"),
            Just("127.0.0.1"),
            Just("4.2"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("name".to_owned()),
            Just("clusterName".to_owned()),
            Just("shards".to_owned()),
            Just("featureCompatibilityVersion".to_owned()),
            Just("desc".to_owned()),
            Just("roles".to_owned()),
            Just("ipAddress".to_owned()),
            Just("cidrBlock".to_owned()),
            Just("orgId".to_owned()),
            "[a-zA-Z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn post_target(app: &App, which: usize) -> String {
    let key = "5f0000000000000000000000";
    match which {
        0 => format!("{API}/groups"),
        1 => format!("{REWIND_API}/groups/{}/clusters", app.boot.group_id),
        2 => format!("{API}/orgs/{}/apiKeys", app.boot.org_id),
        3 => format!("{API}/groups/{}/apiKeys", app.boot.group_id),
        _ => format!("{API}/orgs/{}/apiKeys/{key}/accessList", app.boot.org_id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_as_a_body_get_api_errors_not_server_errors(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        which in 0usize..5,
        content_type in prop_oneof![
            Just("application/json"), Just("application/json; charset=utf-8"),
            Just("text/plain"), Just(""),
        ],
    ) {
        let rt = runtime();
        let app = rt.block_on(App::new());
        let uri = post_target(&app, which);
        let mut req = Request::post(&uri)
            .header(header::AUTHORIZATION, app.authorization("POST", &uri));
        if !content_type.is_empty() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let reply = rt.block_on(app.send(req.body(Body::from(bytes)).unwrap()));
        assert_api_answer(&reply)?;
    }

    #[test]
    fn json_ish_bodies_get_api_errors_not_server_errors(
        body in json_ish(),
        which in 0usize..5,
    ) {
        let rt = runtime();
        let app = rt.block_on(App::new());
        let uri = post_target(&app, which);
        let reply = rt.block_on(app.post(&uri, &body));
        assert_api_answer(&reply)?;
    }
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4 * cases()))]

    #[test]
    fn parse_authorization_never_panics(text in "\\PC{0,400}|Digest [ -~]{0,400}") {
        let _ = parse_authorization(&text);
    }

    #[test]
    fn parse_authorization_round_trips_well_formed_headers(
        username in "[ -~]{0,20}",
        realm in "[ -~]{0,20}",
        nonce in "[ -~]{0,64}",
        uri in "[ -~]{0,60}",
        response in "[0-9a-f]{32}",
        algorithm in prop::option::of(prop_oneof![Just("MD5"), Just("md5")]),
        nc in prop::option::of("[0-9a-f]{8}"),
        cnonce in prop::option::of("[ -~]{0,16}"),
        opaque in prop::option::of("[ -~]{0,16}"),
        quote_qop in any::<bool>(),
        with_qop in any::<bool>(),
        tight in any::<bool>(),
        order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
    ) {
        let mut parts = vec![
            format!("username={}", quoted(&username)),
            format!("realm={}", quoted(&realm)),
            format!("nonce={}", quoted(&nonce)),
            format!("uri={}", quoted(&uri)),
            format!("response={}", quoted(&response)),
        ];
        if let Some(a) = algorithm { parts.push(format!("algorithm={a}")); }
        if with_qop {
            parts.push(if quote_qop { "qop=\"auth\"".into() } else { "qop=auth".into() });
        }
        if let Some(n) = &nc { parts.push(format!("nc={n}")); }
        if let Some(c) = &cnonce { parts.push(format!("cnonce={}", quoted(c))); }
        if let Some(o) = &opaque { parts.push(format!("opaque={}", quoted(o))); }
        // Directive order does not matter.
        let len = parts.len();
        parts.rotate_left((order % len as u64) as usize);
        let header = format!("Digest {}", parts.join(if tight { "," } else { ", " }));
        let parsed = parse_authorization(&header);
        prop_assert_eq!(
            parsed,
            Ok(DigestCredentials {
                username,
                realm,
                nonce,
                uri,
                response,
                algorithm: algorithm.map(str::to_owned),
                qop: with_qop.then(|| "auth".to_owned()),
                nc,
                cnonce,
                opaque,
            }),
            "{}", header
        );
    }
}
