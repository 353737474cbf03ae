//! The web console's defences over plain HTTP, no browser: forms that change something
//! need the session's own CSRF token and the console's own origin; a session ends at
//! sign-out and at expiry; its cookie is `HttpOnly` and `SameSite=Strict`; no page ever
//! shows a private key; failed sign-ins are slowed down, then refused.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::fixtures::*;
use crate::support::*;

/// The console's session cookie and the sign-in form's own one.
pub(crate) const SESSION_COOKIE: &str = "rewind_session";
const SIGN_IN_COOKIE: &str = "rewind_signin";

/// Where a console client says its pages come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The console's own origin, as a browser on its pages sends it.
    Console,
    /// Another site's origin.
    Site(&'a str),
    /// No `Origin` header, only `Sec-Fetch-Site: cross-site` (a browser's navigation from
    /// another site that withholds the origin).
    CrossSite,
}

/// A console client over HTTP: it keeps the cookies the server sets, as a browser would,
/// but sends exactly what a test asks for and follows no redirect.
pub(crate) struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    pub(crate) cookies: BTreeMap<String, String>,
}

impl ConsoleClient {
    pub(crate) fn new(server: &TestServer) -> ConsoleClient {
        ConsoleClient {
            base: server.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("; ")
    }

    /// Keeps what the response's `Set-Cookie` headers set, forgets what they remove.
    fn keep_cookies(&mut self, reply: &Reply) {
        for value in reply.headers.get_all(SET_COOKIE) {
            let parsed = cookie::Cookie::parse(value.to_str().unwrap().to_owned())
                .unwrap_or_else(|e| panic!("a malformed Set-Cookie {value:?}: {e}"));
            if parsed.max_age() == Some(cookie::time::Duration::ZERO) || parsed.value().is_empty() {
                self.cookies.remove(parsed.name());
            } else {
                self.cookies
                    .insert(parsed.name().to_owned(), parsed.value().to_owned());
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        let reply = into_reply(request.send().await.expect("the server answers")).await;
        self.keep_cookies(&reply);
        reply
    }

    /// POSTs `fields` as a form, saying it comes `from` where it says.
    pub(crate) async fn post<T: serde::Serialize + ?Sized>(
        &mut self,
        path: &str,
        fields: &T,
        from: Source<'_>,
    ) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(fields);
        request = match from {
            Source::Console => request.header(ORIGIN, &self.base),
            Source::Site(origin) => request.header(ORIGIN, origin),
            Source::CrossSite => request.header("sec-fetch-site", "cross-site"),
        };
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        let reply = into_reply(request.send().await.expect("the server answers")).await;
        self.keep_cookies(&reply);
        reply
    }

    /// Loads the sign-in form and posts the key pair with its token; returns the answer.
    pub(crate) async fn try_sign_in(&mut self, public_key: &str, private_key: &str) -> Reply {
        let form = self.get("/console/signin").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = hidden_value(&form.text, "csrf");
        self.post(
            "/console/signin",
            &[
                ("publicKey", public_key),
                ("privateKey", private_key),
                ("csrf", &csrf),
            ],
            Source::Console,
        )
        .await
    }

    /// Signs in, which must succeed.
    pub(crate) async fn sign_in(&mut self, public_key: &str, private_key: &str) {
        let reply = self.try_sign_in(public_key, private_key).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        assert_eq!(reply.header(LOCATION.as_str()), Some("/console/projects"));
        assert!(
            self.cookies.contains_key(SESSION_COOKIE),
            "{:?}",
            reply.headers
        );
    }

    /// The session's CSRF token, as its pages carry it in their forms.
    pub(crate) async fn csrf(&mut self) -> String {
        let page = self.get("/console/projects").await;
        assert_eq!(page.status, StatusCode::OK, "signed in: {}", page.text);
        hidden_value(&page.text, "csrf")
    }
}

/// The value of the hidden `<input name=NAME>` of an HTML page, whatever the attributes'
/// order.
pub(crate) fn hidden_value(html: &str, name: &str) -> String {
    let wanted = format!("name=\"{name}\"");
    html.split("<input")
        .skip(1)
        .map(|tag| tag.split('>').next().unwrap_or_default())
        .find(|tag| tag.contains(&wanted))
        .and_then(|tag| tag.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no <input {wanted}> in {html}"))
        .to_owned()
}

/// A form's fields, with the CSRF token when given.
fn form(fields: &[(&str, &str)], csrf: Option<&str>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(token) = csrf {
        all.push(("csrf".to_owned(), token.to_owned()));
    }
    all
}

/// Whether a page answer sends the browser to sign in.
#[track_caller]
fn assert_sent_to_sign_in(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(reply.header(LOCATION.as_str()), Some("/console/signin"));
}

fn cluster_page(rs: &ImportedReplicaSet) -> String {
    format!("/console/projects/{}/clusters/{}", rs.group, rs.cluster)
}

/// Whether the snapshot is marked `doNotDelete`, as the API tells.
async fn kept_forever(rs: &ImportedReplicaSet) -> bool {
    let path = format!("{}/{}", snapshots_path(&rs.group, &rs.cluster), rs.snapshot);
    let snapshot = get(&rs.client, &path).await.json();
    snapshot["doNotDelete"].as_bool().expect("doNotDelete")
}

async fn restore_jobs(rs: &ImportedReplicaSet) -> usize {
    let page = get(&rs.client, &rs.jobs_path()).await.json();
    page["totalCount"].as_u64().expect("totalCount") as usize
}

#[tokio::test]
async fn changes_without_the_token_with_another_sessions_or_from_another_site_are_refused() {
    let rs = ImportedReplicaSet::start(64 * 1024, 1601, &[]).await;
    let (public, private) = (&rs.server.boot.public_key, &rs.server.boot.private_key);
    let mut mine = ConsoleClient::new(&rs.server);
    mine.sign_in(public, private).await;
    let mut other = ConsoleClient::new(&rs.server);
    other.sign_in(public, private).await;
    let my_token = mine.csrf().await;
    let other_token = other.csrf().await;
    assert_ne!(my_token, other_token, "each session has a token of its own");

    let retention = format!("{}/snapshots/{}/retention", cluster_page(&rs), rs.snapshot);
    let restore = format!("{}/restore", cluster_page(&rs));
    let keep = |token: Option<&str>| form(&[("doNotDelete", "true")], token);
    let start = |token: Option<&str>| {
        let fields = [
            ("method", "snapshot"),
            ("snapshotId", rs.snapshot.as_str()),
            ("delivery", "download"),
        ];
        form(&fields, token)
    };
    let (mine_t, other_t) = (Some(my_token.as_str()), Some(other_token.as_str()));
    let attacker = Source::Site("http://attacker.example");
    let attempts = [
        ("no token", &retention, keep(None), Source::Console),
        (
            "another session's token",
            &retention,
            keep(other_t),
            Source::Console,
        ),
        ("another site's origin", &retention, keep(mine_t), attacker),
        (
            "a cross-site navigation",
            &retention,
            keep(mine_t),
            Source::CrossSite,
        ),
        (
            "a restore with no token",
            &restore,
            start(None),
            Source::Console,
        ),
        (
            "a restore with another's token",
            &restore,
            start(other_t),
            Source::Console,
        ),
        (
            "a restore from another site",
            &restore,
            start(mine_t),
            attacker,
        ),
    ];
    for (what, path, fields, from) in attempts {
        let reply = mine.post(path, &fields, from).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.text
        );
    }
    assert!(
        !kept_forever(&rs).await,
        "no refused request marked the snapshot"
    );
    assert_eq!(
        restore_jobs(&rs).await,
        0,
        "no refused request started a restore"
    );

    // Sign-out is a change too: without the token the session lives on.
    let reply = mine
        .post("/console/signout", &form(&[], None), Source::Console)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(mine.get("/console/projects").await.status, StatusCode::OK);
    // A sign-in form posted from another site opens no session.
    let mut stranger = ConsoleClient::new(&rs.server);
    let form = stranger.get("/console/signin").await;
    let token = hidden_value(&form.text, "csrf");
    let fields = [
        ("publicKey", public.as_str()),
        ("privateKey", private.as_str()),
        ("csrf", &token),
    ];
    let reply = stranger
        .post(
            "/console/signin",
            &fields,
            Source::Site("http://attacker.example"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(!stranger.cookies.contains_key(SESSION_COOKIE));
    // … nor one posted without the form's own cookie (a page elsewhere knows no token).
    stranger.cookies.clear();
    let reply = stranger
        .post("/console/signin", &fields, Source::Console)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(!stranger.cookies.contains_key(SESSION_COOKIE));

    // The same requests with the session's own token, from its own pages, do change things.
    let reply = mine.post(&retention, &keep(mine_t), Source::Console).await;
    assert!(reply.status.is_redirection(), "{}", reply.text);
    assert!(kept_forever(&rs).await, "the console marked the snapshot");
    let reply = mine.post(&restore, &start(mine_t), Source::Console).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(restore_jobs(&rs).await, 1, "the console started a restore");
}

#[tokio::test]
async fn a_session_cookie_stops_working_after_sign_out() {
    let rs = ImportedReplicaSet::start(64 * 1024, 1602, &[]).await;
    let mut console = ConsoleClient::new(&rs.server);
    console
        .sign_in(&rs.server.boot.public_key, &rs.server.boot.private_key)
        .await;
    let token = console.csrf().await;
    let kept = console.cookies.clone();

    let reply = console
        .post("/console/signout", &[("csrf", &token)], Source::Console)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert_eq!(reply.header(LOCATION.as_str()), Some("/console/signin"));
    assert!(
        !console.cookies.contains_key(SESSION_COOKIE),
        "sign-out removes the cookie: {:?}",
        reply.headers
    );

    // The old cookie, sent again as a thief who copied it would: no longer a session.
    console.cookies = kept;
    assert_sent_to_sign_in(&console.get("/console/projects").await);
    assert_sent_to_sign_in(&console.get(&cluster_page(&rs)).await);
    let retention = format!("{}/snapshots/{}/retention", cluster_page(&rs), rs.snapshot);
    let reply = console
        .post(
            &retention,
            &[("doNotDelete", "true"), ("csrf", &token)],
            Source::Console,
        )
        .await;
    assert!(
        !reply.status.is_success() && reply.header(LOCATION.as_str()) != Some(&retention),
        "{}",
        reply.text
    );
    assert!(
        !kept_forever(&rs).await,
        "a signed-out session changes nothing"
    );
}

#[tokio::test]
async fn a_session_cookie_stops_working_once_it_expires() {
    let server = TestServer::start_with(&["--console-session-secs", "2"]);
    let mut console = ConsoleClient::new(&server);
    let reply = console
        .try_sign_in(&server.boot.public_key, &server.boot.private_key)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    let set = session_set_cookie(&reply);
    assert_eq!(
        set.max_age(),
        Some(cookie::time::Duration::seconds(2)),
        "{set}"
    );
    let signed_in = Instant::now();
    assert_eq!(
        console.get("/console/projects").await.status,
        StatusCode::OK
    );
    // Past its lifetime (and past the second it is counted in), the server refuses it
    // even from a client that ignores Max-Age.
    pause(Duration::from_secs(2) + Duration::from_millis(1200)).await;
    assert!(signed_in.elapsed() > Duration::from_secs(3));
    assert_sent_to_sign_in(&console.get("/console/projects").await);
}

/// The `Set-Cookie` that opens the session.
fn session_set_cookie(reply: &Reply) -> cookie::Cookie<'static> {
    reply
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
        .find(|c| c.name() == SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie: {:?}", reply.headers))
}

#[tokio::test]
async fn the_cookies_are_http_only_and_same_site_strict() {
    let server = TestServer::start();
    let mut console = ConsoleClient::new(&server);
    let form = console.get("/console/signin").await;
    let reply = console
        .try_sign_in(&server.boot.public_key, &server.boot.private_key)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    let form_cookie = form
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
        .find(|c| c.name() == SIGN_IN_COOKIE)
        .expect("the sign-in form sets its own cookie");
    for set in [session_set_cookie(&reply), form_cookie] {
        assert_eq!(set.http_only(), Some(true), "{set}");
        assert_eq!(set.same_site(), Some(cookie::SameSite::Strict), "{set}");
        assert_eq!(
            set.secure(),
            None,
            "plain HTTP on loopback: not Secure: {set}"
        );
    }
    let session = session_set_cookie(&reply);
    assert_eq!(session.path(), Some("/console"), "{session}");
    assert!(
        !session.value().contains(&server.boot.private_key),
        "the cookie holds no private key"
    );
}

#[tokio::test]
async fn no_console_page_ever_shows_a_private_key() {
    let rs = ImportedReplicaSet::start(64 * 1024, 1603, &[]).await;
    let server = &rs.server;
    let (key_id, other_public, other_private) = create_key(
        &rs.client,
        &format!("{API}/orgs/{}/apiKeys", server.boot.org_id),
        "ORG_OWNER",
    )
    .await;
    allow_loopback(&rs.client, &server.boot.org_id, &key_id).await;
    let job = rs.restore(json!({})).await;
    let job = rs.ready_job(&job[0]).await;
    let secrets = [server.boot.private_key.as_str(), other_private.as_str()];
    let assert_clean = |what: &str, reply: &Reply| {
        let headers = format!("{:?}", reply.headers);
        for secret in secrets {
            assert!(
                !reply.text.contains(secret) && !headers.contains(secret),
                "{what} shows a private key"
            );
        }
    };

    // A failed sign-in does not echo the private key typed (nor leak the right one).
    let mut console = ConsoleClient::new(server);
    for wrong in [
        format!("{}x", server.boot.private_key),
        server.boot.private_key[..35].to_owned(),
    ] {
        let reply = console.try_sign_in(&server.boot.public_key, &wrong).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert!(
            !reply.text.contains(&wrong),
            "the refusal echoes the key typed"
        );
        assert_clean("a refused sign-in", &reply);
    }

    console.sign_in(&other_public, &other_private).await;
    let cluster = cluster_page(&rs);
    let id = job_id(&job);
    let pages = [
        "/console".to_owned(),
        "/console/signin".to_owned(),
        "/console/projects".to_owned(),
        cluster.clone(),
        format!("{cluster}/restore"),
        format!(
            "{cluster}/restore?method=snapshot&snapshotId={}",
            rs.snapshot
        ),
        format!("{cluster}/jobs"),
        format!("{cluster}/jobs/{id}"),
        format!("{cluster}/jobs/{id}/progress"),
        "/console/keys".to_owned(),
    ];
    for page in &pages {
        let reply = console.get(page).await;
        assert!(
            reply.status.is_success() || reply.status.is_redirection(),
            "{page}: {} {}",
            reply.status,
            reply.text
        );
        assert_clean(page, &reply);
    }
    // The keys page lists both keys, by their public halves.
    let keys = console.get("/console/keys").await;
    assert!(keys.text.contains(&other_public) && keys.text.contains(&server.boot.public_key));
    // A refused restore's error page neither.
    let token = console.csrf().await;
    let reply = console
        .post(
            &format!("{cluster}/restore"),
            &[
                ("method", "pit"),
                ("pointInTime", "2001-01-01T00:00:00Z"),
                ("delivery", "download"),
                ("csrf", &token),
            ],
            Source::Console,
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.text);
    assert_clean("a refused restore", &reply);
}

#[tokio::test]
async fn failed_sign_ins_are_slowed_down_and_then_refused_for_a_while() {
    let server = TestServer::start();
    let public = &server.boot.public_key;
    let mut console = ConsoleClient::new(&server);
    let started = Instant::now();
    let reply = console.try_sign_in(public, "not-the-private-key").await;
    let failed_in = started.elapsed();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert!(reply.text.contains("signin-error"), "{}", reply.text);
    assert!(
        failed_in >= Duration::from_millis(500),
        "a wrong key is answered only after a while, not in {failed_in:?}"
    );
    let started = Instant::now();
    let mut other = ConsoleClient::new(&server);
    other.sign_in(public, &server.boot.private_key).await;
    let succeeded_in = started.elapsed();
    assert!(
        succeeded_in < failed_in,
        "the right key is not held back: {succeeded_in:?}"
    );

    // Guessing on: after a few more failures the address is refused outright, even with
    // the right key, and says for how long.
    let mut refused = None;
    for _ in 0..10 {
        let reply = console.try_sign_in(public, "still-not-it").await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    let refused = refused.expect("refused with 429 after repeated failures");
    assert!(refused.text.contains("RATE_LIMITED"), "{}", refused.text);
    let reply = console.try_sign_in(public, &server.boot.private_key).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert!(!console.cookies.contains_key(SESSION_COOKIE));
}
