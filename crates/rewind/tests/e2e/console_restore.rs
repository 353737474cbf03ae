//! Restores started and watched from the web console in a real browser: a point in time
//! picked by clicking the timeline, downloaded and checked against the SHA-1 the page
//! shows; an automated restore through three agents, whose members' progress the job page
//! shows live until it ends; and a restore cancelled from its page, which ends KILLED.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::*;
use crate::browser::Browser;
use crate::console_browser::{cluster_url, sign_in};
use crate::fixtures::*;
use crate::pit::*;
use crate::support::*;

/// Where the timeline draws `second`, in viewport pixels, and how many seconds one screen
/// pixel spans there. Computed from the svg's own data attributes and its transformation to
/// the screen (CSS scales the picture), after scrolling it into view.
async fn timeline_point(browser: &Browser, second: u32) -> (i64, i64, f64) {
    browser.element("svg#timeline").await;
    let script = r#"
        const second = arguments[0];
        const svg = document.getElementById("timeline");
        svg.scrollIntoView({ block: "center" });
        const from = Number(svg.dataset.from), to = Number(svg.dataset.to);
        const plotX = Number(svg.dataset.plotX), plotWidth = Number(svg.dataset.plotWidth);
        const box = svg.viewBox.baseVal;
        const matrix = svg.getScreenCTM();
        const point = svg.createSVGPoint();
        point.x = plotX + ((second - from) / (to - from)) * plotWidth;
        point.y = box.y + box.height / 2;
        const screen = point.matrixTransform(matrix);
        return [screen.x, screen.y, (to - from) / (plotWidth * matrix.a)];
    "#;
    let found = browser
        .execute(script, vec![json!(second)])
        .await
        .expect("the page runs the script");
    let number = |i: usize| found[i].as_f64().unwrap_or_else(|| panic!("{found}"));
    (
        number(0).round() as i64,
        number(1).round() as i64,
        number(2),
    )
}

/// The seconds of an ISO-8601 UTC moment as the wizard shows it.
fn unix_seconds(moment: &str) -> u32 {
    chrono::DateTime::parse_from_rfc3339(moment)
        .unwrap_or_else(|e| panic!("{moment:?} is not a moment: {e}"))
        .timestamp() as u32
}

#[tokio::test]
async fn a_point_in_time_clicked_on_the_timeline_is_restored_and_downloaded_with_its_sha1() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let rs = PitReplicaSet::start().await;
    let boot = &rs.server.boot;
    sign_in(&browser, &rs.server, &boot.public_key, &boot.private_key).await;

    // The stored hour, zoomed in as the page's zoom links do, so a pixel is a few seconds.
    let now = rs.base + 3700;
    let page = cluster_url(&rs.server, &rs.group, &rs.cluster);
    browser
        .goto(&format!("{page}?from={}&to={now}", rs.base))
        .await
        .unwrap();
    let wanted = rs.base + 1800;
    let (x, y, seconds_per_pixel) = timeline_point(&browser, wanted).await;
    assert!(
        seconds_per_pixel < 10.0,
        "an hour's view: {seconds_per_pixel} s a pixel"
    );
    browser.screenshot("cluster").await;
    browser.click_at(x, y).await;

    // The wizard opens on that moment, as a point-in-time restore to download.
    browser.wait_for_url("/restore").await;
    let chosen = unix_seconds(&browser.value("input#pointInTime").await);
    let tolerance = (2.0 * seconds_per_pixel).ceil() as u32;
    assert!(
        chosen.abs_diff(wanted) <= tolerance,
        "clicked at {wanted}, the wizard says {chosen} (± {tolerance} s)"
    );
    let pit_checked = browser
        .element("input#method-pit")
        .await
        .prop("checked")
        .await;
    assert_eq!(pit_checked.unwrap().as_deref(), Some("true"));
    browser.screenshot("restore").await;
    browser.click("button#restore-submit").await;

    browser.wait_for_url("/jobs/").await;
    browser
        .wait_for_text("#delivery-status", RESTORE_WITHIN, |t| t == "READY")
        .await;
    browser
        .wait_for_text("#download-sha1", Duration::from_secs(10), |t| t.len() == 40)
        .await;
    browser.screenshot("job-download").await;
    let url = browser
        .element("a#download-link")
        .await
        .attr("href")
        .await
        .unwrap()
        .expect("a download link");
    let shown_sha1 = browser.text("#download-sha1").await;

    let (status, _, archive) = fetch(&url, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&archive));
    assert_eq!(
        sha1_hex(&archive),
        shown_sha1,
        "the page's SHA-1 is the archive's"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &archive).unwrap();
    let dir = tempfile::tempdir().unwrap();
    gnu_untar(file.path(), dir.path());
    let expected = between(&rs.oplog, (rs.base + 100, 2), (chosen, u32::MAX));
    assert_restored_with_oplog(rs.source.path(), dir.path(), &expected);

    // The API tells the same job: a point in time, cut at the last entry up to the moment.
    let jobs = get(&rs.client, &rs.jobs).await.json();
    let job = &jobs["results"][0];
    assert_eq!(jobs["totalCount"], 1, "{jobs}");
    assert_eq!(job["pointInTime"], true, "{job}");
    assert_eq!(job["timestamp"], bson_ts(chosen, 3), "{job}");
    assert_eq!(
        job["delivery"]["url"],
        url.as_str(),
        "the page links the job's URL"
    );
}

/// The job page's member rows as shown now: name → (state, bytes).
async fn member_rows(browser: &Browser) -> BTreeMap<String, (String, String)> {
    let script = r#"
        const rows = document.querySelectorAll("table#members tbody tr[data-member]");
        return Array.from(rows, (row) => [
            row.dataset.member,
            row.querySelector(".state").textContent,
            row.querySelector(".bytes").textContent,
        ]);
    "#;
    let rows = browser
        .execute(script, vec![])
        .await
        .expect("the page runs the script");
    let field = |row: &Value, i: usize| row[i].as_str().unwrap_or_default().to_owned();
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| (field(row, 0), (field(row, 1), field(row, 2))))
        .collect()
}

#[tokio::test]
async fn an_automated_restore_started_in_the_console_shows_each_members_progress_until_finished() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (imported, proxy) = proxied_replica_set(4 << 20, 1671).await;
    let server = &imported.server;
    let (target, members, _agents) = three_member_target(server).await;
    // The agents' downloads crawl, so the page has figures to show on the way.
    proxy.slow.store(true, Ordering::SeqCst);
    let boot = &server.boot;
    sign_in(&browser, server, &boot.public_key, &boot.private_key).await;

    browser
        .goto(&cluster_url(server, &imported.group, &imported.cluster))
        .await
        .unwrap();
    browser.click("a#restore-link").await;
    browser.wait_for_url("/restore").await;
    browser.click("input#method-snapshot").await;
    browser
        .element("select#snapshotId")
        .await
        .select_by_value(&imported.snapshot)
        .await
        .expect("the snapshot is offered");
    browser.click("input#delivery-automated").await;
    browser
        .element("select#target")
        .await
        .select_by_value(&format!("{}/{}", target.group, target.cluster))
        .await
        .expect("the target cluster is offered");
    browser.screenshot("restore-automated").await;
    browser.click("button#restore-submit").await;
    browser.wait_for_url("/jobs/").await;
    // A mark on the page, gone if anything reloads it: the figures must come live.
    browser
        .execute("window.rewindTestMark = 1;", vec![])
        .await
        .unwrap();

    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pictured = false;
    let deadline = Instant::now() + RESTORE_WITHIN;
    let status = loop {
        let status = browser.text("#job-status").await;
        let rows = member_rows(&browser).await;
        for (name, (_, bytes)) in &rows {
            seen.entry(name.clone()).or_default().insert(bytes.clone());
        }
        if !pictured && rows.len() == 3 && rows.values().all(|(_, b)| !b.starts_with("0 B")) {
            browser.screenshot("job-automated").await;
            pictured = true;
        }
        if status != "IN_PROGRESS" {
            break status;
        }
        assert!(Instant::now() < deadline, "still in progress: {rows:?}");
        pause(Duration::from_millis(250)).await;
    };
    assert_eq!(status, "FINISHED", "{}", browser.page_text().await);
    let mark = browser
        .execute("return window.rewindTestMark;", vec![])
        .await;
    assert_eq!(mark.unwrap(), json!(1), "the job page was never reloaded");

    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), names);
    for (name, values) in &seen {
        assert!(
            values.len() >= 3,
            "{name}'s bytes showed only {values:?} on the way"
        );
    }
    // The last figures: every member applied, all of its bytes delivered.
    browser
        .wait_for_text("table#members", Duration::from_secs(10), |t| {
            t.matches("APPLIED").count() + t.matches("COMMITTED").count() == 3
        })
        .await;
    for m in &members {
        assert_member_restored(m, imported.source.path());
    }
}

#[tokio::test]
async fn a_restore_cancelled_from_its_page_ends_killed_and_the_members_roll_back() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let imported = ImportedReplicaSet::start(1 << 20, 1681, &[]).await;
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let member = Member::new(target.root.path(), "solo:27017", 1682);
    let before = read_tree(&member.dbpath);
    // A slow start keeps the job in progress long enough to cancel it.
    let slow = format!("sleep 5; {}", member.start_command());
    let _agent = target.agent(&server.url, "target", "solo", &[(&member, slow)]);
    eventually_heartbeat(&server.client(), &target).await;
    let boot = &server.boot;
    sign_in(&browser, server, &boot.public_key, &boot.private_key).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let id = job_id(&jobs[0]);
    let page = cluster_url(server, &imported.group, &imported.cluster);
    browser.goto(&format!("{page}/jobs/{id}")).await.unwrap();
    assert_eq!(browser.text("#job-status").await, "IN_PROGRESS");
    eventually("the member has begun", || {
        member.beside("journal.json").exists()
    })
    .await;

    browser.click("button#cancel-job").await;
    let question = browser.accept_dialog().await;
    assert!(question.contains("Cancel this restore"), "{question}");
    browser
        .wait_for_text("#job-status", Duration::from_secs(15), |t| t == "KILLED")
        .await;
    assert!(
        !browser.has("form#cancel-form").await,
        "nothing left to cancel"
    );
    browser.screenshot("job-killed").await;
    let job = wait_until_ended(server, &imported.jobs_path(), id).await;
    assert_eq!(job["statusName"], "KILLED", "{job}");
    eventually("the member is back on its previous data", || {
        try_read_tree(&member.dbpath).is_ok_and(|t| t == before) && no_restore_leftovers(&member)
    })
    .await;

    // The history lists it, killed.
    browser.click("p.crumbs a[href$=\"/jobs\"]").await;
    browser.wait_for_url("/jobs").await;
    let history = browser.text("table#jobs").await;
    assert!(
        history.contains(id) && history.contains("KILLED"),
        "{history}"
    );
    browser.screenshot("jobs").await;
}
