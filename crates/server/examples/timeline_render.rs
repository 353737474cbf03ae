//! Benchmark of the console's timeline picture: renders a cluster at production scale
//! (three shards and a config server with a year of oplog in 5,000 stretches each, one
//! boundary in twenty a gap, 10,000 snapshots, 5,760 checkpoints) at several zooms, and a
//! worst case (100,000 stretches a lane, every boundary a gap) over the year, and prints
//! the median, 90th percentile and size of N renders of each.
//!
//! `cargo run --release -p rewind-server --example timeline_render -- [N] [--html FILE]`,
//! or `bench/timeline_render.sh` for several runs
//! (`--html` also writes a page showing the pictures with timeline.css and timeline.js,
//! to look at in a browser.)

use std::time::Instant;

use rewind_server::console::timeline::{
    render, sample, Lane, SnapshotMark, Span, TimelineInput, TimelineView,
};

fn main() {
    let mut renders = 200usize;
    let mut html = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--html" {
            html = args.next();
        } else if let Ok(count) = arg.parse() {
            renders = count;
        } else {
            eprintln!("usage: timeline_render [N] [--html FILE]");
            std::process::exit(2);
        }
    }
    // 2026-12-04T12:00:00Z: fixed, so that runs compare.
    let now = 1_796_385_600;
    let input = sample::production_cluster(now, 5_000, 20);
    let worst = sample::production_cluster(now, 100_000, 1);
    let year = TimelineView::new(now - 365 * 86_400, now, now);
    let views = [
        ("year", &input, year),
        (
            "30 days",
            &input,
            TimelineView::new(now - 30 * 86_400, now, now),
        ),
        ("default", &input, TimelineView::default_for(&input)),
        ("1 hour", &input, TimelineView::new(now - 3_600, now, now)),
        ("10 minutes", &input, TimelineView::new(now - 600, now, now)),
        ("worst year", &worst, year),
    ];
    println!("view        median_us  p90_us  bytes");
    let mut page = String::new();
    for (name, input, view) in &views {
        let mut times = Vec::with_capacity(renders);
        let mut svg = String::new();
        for _ in 0..renders.max(1) {
            let start = Instant::now();
            svg = render(input, view);
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        println!("{name:<10} {median:>10.0} {p90:>7.0} {:>6}", svg.len());
        page.push_str(&format!("<h2>{name}</h2>\n{svg}\n"));
    }
    // A replica set whose agent stopped for six hours yesterday, seen by a read-only key.
    let troubled = TimelineInput {
        now,
        window_start: Some(now - 2 * 86_400),
        lanes: vec![Lane {
            name: "rs-<prod>&\"eu\"".to_owned(),
            stretches: vec![
                Span {
                    start: now - 3 * 86_400,
                    end: now - 30 * 3_600,
                },
                Span {
                    start: now - 24 * 3_600,
                    end: now - 8 * 3_600 - 1,
                },
                Span {
                    start: now - 8 * 3_600 + 90,
                    end: now - 60,
                },
            ],
        }],
        snapshots: [
            (3 * 86_400 - 600, true),
            (2 * 86_400, true),
            (86_400, true),
            (3_600, false),
        ]
        .iter()
        .map(|&(ago, complete)| SnapshotMark {
            at: now - ago,
            complete,
        })
        .collect(),
        checkpoints: Vec::new(),
        restorable: vec![
            Span {
                start: now - 3 * 86_400 + 600,
                end: now - 30 * 3_600,
            },
            Span {
                start: now - 86_400,
                end: now - 8 * 3_600 - 1,
            },
        ],
        restore_url: None,
    };
    let view = TimelineView::default_for(&troubled);
    page.push_str(&format!(
        "<h2>a replica set with a gap, read-only</h2>\n{}\n",
        render(&troubled, &view)
    ));
    if let Some(path) = html {
        let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/assets");
        let document = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>timeline</title>\
             <link rel=\"stylesheet\" href=\"{assets}/timeline.css\"></head><body>{page}\
             <script src=\"{assets}/timeline.js\"></script></body></html>"
        );
        if let Err(error) = std::fs::write(&path, document) {
            eprintln!("cannot write {path}: {error}");
            std::process::exit(1);
        }
    }
}
