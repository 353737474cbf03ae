//! The cluster page's timeline picture: an SVG the server draws from plain data.
//!
//! One row per replica set (a replica set cluster has one, a sharded cluster one per shard
//! and one for the config server) shows its stored oplog as blue stretches and the gaps
//! between them in red; a green row above them shows the cluster-wide restorable ranges;
//! rows below show snapshots (triangles, hollow when incomplete) and checkpoints (dots). The
//! point-in-time window is shaded, "now" is a line, and the axis is labelled in UTC with
//! months, days, hours, minutes or seconds as the span asks.
//!
//! # API
//! - [`TimelineInput`] with [`Lane`], [`Span`], [`SnapshotMark`]: what to draw, as plain
//!   data independent of the domain types (the page converts). Times are Unix seconds.
//! - [`TimelineView`]: the shown time span, always [`TimelineView::MIN_SPAN_SECS`] to
//!   [`TimelineView::MAX_SPAN_SECS`] long and inside sane bounds, built by
//!   [`TimelineView::from_query`] (the page's `from`/`to` query values, hostile or absent),
//!   [`TimelineView::new`] or [`TimelineView::default_for`]; read with `from()`, `to()`,
//!   `span()`; [`TimelineView::zoom_links`] gives the zoom links' targets as
//!   [`ZoomLink`]s for the page to render as `a.zoom`.
//! - [`render`]`(&input, &view) -> String`: the `<svg id="timeline">` markup, safe to embed
//!   in HTML (everything escaped, no inline style or script: classes from `timeline.css`).
//! - [`axis_ticks`]`(&view) -> Vec<Tick>`: the axis' ticks and labels.
//! - [`sample`]: a cluster at production scale, for the benchmark example and tests.
//!
//! ```
//! use rewind_server::console::timeline::{self, Lane, Span, TimelineInput, TimelineView};
//!
//! let now = 1_796_385_600;
//! let input = TimelineInput {
//!     now,
//!     window_start: Some(now - 7 * 86_400),
//!     lanes: vec![Lane {
//!         name: "rs0".to_owned(),
//!         stretches: vec![Span { start: now - 10 * 86_400, end: now - 5 }],
//!     }],
//!     restore_url: Some("/console/projects/G/clusters/C/restore?method=pit".to_owned()),
//!     ..TimelineInput::default()
//! };
//! // The page's `?from=&to=` values, as given (absent or hostile ones fall back).
//! let view = TimelineView::from_query(Some("1796299200"), None, &input);
//! let svg = timeline::render(&input, &view); // embed as is (a template's safe string)
//! assert!(svg.starts_with("<svg id=\"timeline\""));
//! for link in view.zoom_links(input.now) {
//!     let _ = (link.label, link.query(), link.is_current); // <a class="zoom" href="?{query}">
//! }
//! ```
//!
//! The svg element carries `data-from`, `data-to` (the view, Unix seconds),
//! `data-plot-x`, `data-plot-width` (the plot's horizontal extent in viewBox units) and,
//! when the key may restore, `data-restore-url`; `timeline.js` reads them to draw the
//! pointer's time and to open the restore wizard at the clicked second.
//!
//! # Speed
//! The output is bounded by the picture's width, not by the data: what falls in the view
//! is found by binary search, stretches closer than [`BIN_PX`] are merged (their gaps
//! gathered into one mark per column, at least a pixel wide, so a gap is never hidden), and
//! snapshots and checkpoints are binned per column, each bin's `<title>` telling how many
//! and the first and last exact times. Each row holds at most about three elements per
//! column, whatever the data. A year of a four-replica-set cluster with 10,000 snapshots
//! renders in under a millisecond (see docs/benchmarks.md).

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

const MINUTE_SECS: i64 = 60;
const HOUR_SECS: i64 = 3_600;
const DAY_SECS: i64 = 86_400;

/// The earliest moment a view may show: the Unix epoch (no oplog is older).
const EARLIEST_SECS: i64 = 0;
/// The latest "now" the view arithmetic accepts (year 9000), far from chrono's and i64's
/// limits so that no sum below overflows or leaves the formattable range.
const LATEST_NOW_SECS: i64 = 221_845_392_000;

/// Width of the whole picture in viewBox units (CSS scales it to the page).
const WIDTH: f64 = 1200.0;
/// Left edge of the plot: the column left of it holds the row labels.
pub const PLOT_X: f64 = 170.0;
/// Width of the plot in viewBox units.
pub const PLOT_WIDTH: f64 = 1010.0;
/// Width of the columns marks are binned in: snapshots and checkpoints falling into one
/// column are one mark (the marks are about as wide, so they would overlap anyway), and so
/// are the gaps narrower than a column in one column. A gap at least this wide splits the
/// stored stretches apart.
pub const BIN_PX: f64 = 6.0;
/// Narrowest drawn stretch or gap, so that one second in a year still shows.
const MIN_MARK_PX: f64 = 1.0;
/// Height of the caption line above the rows.
const TOP_PX: f64 = 24.0;
const ROW_PX: f64 = 24.0;
const BAR_PX: f64 = 14.0;
const AXIS_PX: f64 = 22.0;
const LEGEND_PX: f64 = 24.0;
/// Ticks are at least this far apart.
const MIN_TICK_SPACING_PX: f64 = 70.0;
/// Longest lane name shown in the label column and in titles; longer names are cut with
/// an ellipsis (the whole name is the label's title, up to [`MAX_TITLE_NAME_CHARS`]).
const MAX_LABEL_CHARS: usize = 22;
const MAX_TITLE_NAME_CHARS: usize = 80;

/// What the picture shows. All times are Unix seconds (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineInput {
    /// The server's clock: the "now" line and the end of the point-in-time window.
    pub now: i64,
    /// Start of the point-in-time window (it ends at `now`); `None` when there is none.
    pub window_start: Option<i64>,
    /// One lane per replica set: the replica set of a replica set cluster, or every shard
    /// and the config server of a sharded cluster.
    pub lanes: Vec<Lane>,
    /// Snapshots, sorted by `at`.
    pub snapshots: Vec<SnapshotMark>,
    /// Checkpoints (sharded clusters), sorted.
    pub checkpoints: Vec<i64>,
    /// The cluster-wide restorable ranges, sorted and disjoint.
    pub restorable: Vec<Span>,
    /// The restore wizard's URL for point-in-time restores; clicking the plot opens it with
    /// `pit=MILLIS` appended. `None` when the key may not restore: the picture then neither
    /// reacts to clicks nor mentions restoring.
    pub restore_url: Option<String>,
}

/// One replica set's stored oplog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lane {
    /// The replica set's name, as users gave it (escaped when drawn).
    pub name: String,
    /// Stored oplog, sorted by start and disjoint; abutting stretches are drawn as one.
    pub stretches: Vec<Span>,
}

/// A stretch of time, both ends inclusive (seconds `start..=end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

/// A snapshot's moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMark {
    pub at: i64,
    pub complete: bool,
}

/// The span of time the picture shows, `from` to `to` in Unix seconds.
///
/// Invariants, kept by every constructor: `to - from` is between [`Self::MIN_SPAN_SECS`]
/// and [`Self::MAX_SPAN_SECS`]; `from` is not before the epoch; `to` is at most a tenth of
/// the span after the "now" it was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineView {
    from: i64,
    to: i64,
}

/// A zoom or pan link's target: the page renders it as `<a class="zoom">` with
/// `?from=FROM&to=TO` (serializable, for templates).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ZoomLink {
    pub label: &'static str,
    pub from: i64,
    pub to: i64,
    /// The link leads to the view already shown (the active preset, or a pan that cannot
    /// go further): the page may mark it or leave it out.
    pub is_current: bool,
}

impl ZoomLink {
    /// The link's query string, `from=SECS&to=SECS`.
    pub fn query(&self) -> String {
        format!("from={}&to={}", self.from, self.to)
    }
}

/// The zoom presets, each centred on the view's centre.
const ZOOM_PRESETS: [(&str, i64); 6] = [
    ("Year", 365 * DAY_SECS),
    ("30 days", 30 * DAY_SECS),
    ("7 days", 7 * DAY_SECS),
    ("1 day", DAY_SECS),
    ("1 hour", HOUR_SECS),
    ("10 minutes", 10 * MINUTE_SECS),
];

impl TimelineView {
    /// Shortest view: a minute.
    pub const MIN_SPAN_SECS: i64 = MINUTE_SECS;
    /// Longest view: a year and some weeks, so that "Year" fits with room at both ends.
    pub const MAX_SPAN_SECS: i64 = 400 * DAY_SECS;
    /// The default view is at least this long.
    pub const DEFAULT_MIN_SPAN_SECS: i64 = DAY_SECS;

    /// The view from `from` to `to` (swapped when reversed), its span clamped around its
    /// centre, then moved inside the bounds (not before the epoch, not far after `now`).
    pub fn new(from: i64, to: i64, now: i64) -> Self {
        let (low, high) = if from <= to { (from, to) } else { (to, from) };
        let span = (i128::from(high) - i128::from(low)).clamp(
            i128::from(Self::MIN_SPAN_SECS),
            i128::from(Self::MAX_SPAN_SECS),
        );
        // The mean of two i64s fits an i64.
        let centre = ((i128::from(low) + i128::from(high)) / 2) as i64;
        Self::around(centre, span as i64, now)
    }

    /// The view parsed from the page's `from` and `to` query values (Unix seconds, or an
    /// ISO-8601 date): both given, the view between them; one given, the default span from
    /// or up to it; none or unreadable, [`Self::default_for`]. Never fails.
    pub fn from_query(from: Option<&str>, to: Option<&str>, input: &TimelineInput) -> Self {
        let from = from.and_then(parse_moment);
        let to = to.and_then(parse_moment);
        let default = Self::default_for(input);
        match (from, to) {
            (Some(from), Some(to)) => Self::new(from, to, input.now),
            (Some(from), None) => Self::new(from, from.saturating_add(default.span()), input.now),
            (None, Some(to)) => Self::new(to.saturating_sub(default.span()), to, input.now),
            (None, None) => default,
        }
    }

    /// The view shown without a query: ending just after now, covering the point-in-time
    /// window and the three newest snapshots, at least a day long.
    pub fn default_for(input: &TimelineInput) -> Self {
        let now = clamp_now(input.now);
        let mut start = now - Self::DEFAULT_MIN_SPAN_SECS;
        if let Some(window_start) = input.window_start {
            start = start.min(window_start);
        }
        if let Some(third_newest) = input.snapshots.len().checked_sub(3).map_or_else(
            || input.snapshots.first(),
            |index| input.snapshots.get(index),
        ) {
            start = start.min(third_newest.at);
        }
        let start = start.max(now - Self::MAX_SPAN_SECS * 9 / 10);
        // A little room on both sides, so that the oldest mark and the now line are not
        // on the picture's edges.
        let pad = (now - start) / 20;
        Self::new(start - pad, now + pad, now)
    }

    /// First second shown.
    pub fn from(&self) -> i64 {
        self.from
    }

    /// End of the shown span.
    pub fn to(&self) -> i64 {
        self.to
    }

    /// Length of the shown span in seconds.
    pub fn span(&self) -> i64 {
        self.to - self.from
    }

    /// The zoom links' targets: the presets (Year, 30 days, 7 days, 1 day, 1 hour,
    /// 10 minutes) centred on this view's centre, then Earlier and Later (half a span),
    /// Zoom in (half the span) and Zoom out (twice the span).
    pub fn zoom_links(&self, now: i64) -> Vec<ZoomLink> {
        let centre = self.from + self.span() / 2;
        let half = self.span() / 2;
        let mut targets: Vec<(&'static str, TimelineView)> = ZOOM_PRESETS
            .iter()
            .map(|&(label, span)| (label, Self::around(centre, span, now)))
            .collect();
        targets.extend([
            ("Earlier", Self::new(self.from - half, self.to - half, now)),
            ("Later", Self::new(self.from + half, self.to + half, now)),
            ("Zoom in", Self::around(centre, half, now)),
            ("Zoom out", Self::around(centre, self.span() * 2, now)),
        ]);
        targets
            .into_iter()
            .map(|(label, view)| ZoomLink {
                label,
                from: view.from,
                to: view.to,
                is_current: view == *self,
            })
            .collect()
    }

    /// The view of `span` seconds (clamped) centred on `centre`, moved inside the bounds.
    fn around(centre: i64, span: i64, now: i64) -> Self {
        let span = span.clamp(Self::MIN_SPAN_SECS, Self::MAX_SPAN_SECS);
        let now = clamp_now(now);
        let latest_end = now + span / 10;
        let from = centre
            .saturating_sub(span / 2)
            .min(latest_end - span)
            .max(EARLIEST_SECS);
        Self {
            from,
            to: from + span,
        }
    }
}

fn clamp_now(now: i64) -> i64 {
    now.clamp(EARLIEST_SECS, LATEST_NOW_SECS)
}

/// A query value as a moment: Unix seconds, or an ISO-8601 date.
fn parse_moment(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| rewind_api_types::iso_seconds::parse_iso(text))
}

/// A tick of the time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub at: i64,
    pub label: String,
}

/// How far apart ticks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickStep {
    Seconds(i64),
    Months(u32),
}

/// Tick steps from finest to coarsest; weeks start on Monday.
const TICK_STEPS: [TickStep; 23] = [
    TickStep::Seconds(1),
    TickStep::Seconds(5),
    TickStep::Seconds(10),
    TickStep::Seconds(15),
    TickStep::Seconds(30),
    TickStep::Seconds(MINUTE_SECS),
    TickStep::Seconds(2 * MINUTE_SECS),
    TickStep::Seconds(5 * MINUTE_SECS),
    TickStep::Seconds(10 * MINUTE_SECS),
    TickStep::Seconds(15 * MINUTE_SECS),
    TickStep::Seconds(30 * MINUTE_SECS),
    TickStep::Seconds(HOUR_SECS),
    TickStep::Seconds(2 * HOUR_SECS),
    TickStep::Seconds(3 * HOUR_SECS),
    TickStep::Seconds(6 * HOUR_SECS),
    TickStep::Seconds(12 * HOUR_SECS),
    TickStep::Seconds(DAY_SECS),
    TickStep::Seconds(2 * DAY_SECS),
    TickStep::Seconds(7 * DAY_SECS),
    TickStep::Months(1),
    TickStep::Months(2),
    TickStep::Months(3),
    TickStep::Months(6),
];

/// 1970-01-05, the first Monday after the epoch: weekly ticks fall on Mondays.
const FIRST_MONDAY_SECS: i64 = 4 * DAY_SECS;

/// The axis' ticks for `view`: the finest step that keeps them [`MIN_TICK_SPACING_PX`]
/// apart, labelled by the step (months: `Jan`, January with its year; days: `Dec 4`;
/// hours and minutes: `06:30`, midnight as its day; seconds: `06:30:15`), all UTC.
pub fn axis_ticks(view: &TimelineView) -> Vec<Tick> {
    let max_ticks = (PLOT_WIDTH / MIN_TICK_SPACING_PX) as i64;
    let span = view.span();
    let step = TICK_STEPS
        .iter()
        .copied()
        .find(|step| match *step {
            TickStep::Seconds(secs) => span / secs <= max_ticks,
            TickStep::Months(months) => span / (i64::from(months) * 30 * DAY_SECS) < max_ticks,
        })
        .unwrap_or(TickStep::Months(6));
    let mut ticks = Vec::new();
    match step {
        TickStep::Seconds(secs) => {
            let offset = if secs == 7 * DAY_SECS {
                FIRST_MONDAY_SECS
            } else {
                0
            };
            let mut at = view.from - (view.from - offset).rem_euclid(secs);
            if at < view.from {
                at += secs;
            }
            while at <= view.to {
                ticks.push(Tick {
                    at,
                    label: seconds_tick_label(at, secs),
                });
                at += secs;
            }
        }
        TickStep::Months(months) => {
            let Some(start) = DateTime::<Utc>::from_timestamp(view.from, 0) else {
                return ticks;
            };
            let mut year = start.year();
            let mut month0 = start.month0();
            // Back to a month divisible by the step; the loop skips ticks before `from`.
            month0 -= month0 % months;
            let mut first = true;
            while let Some(at) = NaiveDate::from_ymd_opt(year, month0 + 1, 1)
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|time| time.and_utc().timestamp())
                .filter(|&at| at <= view.to)
            {
                if at >= view.from {
                    let label = if month0 == 0 || first {
                        format!("{} {year}", month_name(month0))
                    } else {
                        month_name(month0).to_owned()
                    };
                    first = false;
                    ticks.push(Tick { at, label });
                }
                month0 += months;
                if month0 >= 12 {
                    month0 -= 12;
                    year += 1;
                }
            }
        }
    }
    ticks
}

fn seconds_tick_label(at: i64, step: i64) -> String {
    let Some(time) = DateTime::<Utc>::from_timestamp(at, 0) else {
        return String::new();
    };
    let midnight = time.num_seconds_from_midnight() == 0;
    if step >= DAY_SECS || (midnight && step >= MINUTE_SECS) {
        format!("{} {}", month_name(time.month0()), time.day())
    } else if step >= MINUTE_SECS {
        format!("{:02}:{:02}", time.hour(), time.minute())
    } else {
        format!(
            "{:02}:{:02}:{:02}",
            time.hour(),
            time.minute(),
            time.second()
        )
    }
}

fn month_name(month0: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    NAMES.get(month0 as usize).copied().unwrap_or("?")
}

/// Where seconds fall on the plot.
#[derive(Debug, Clone, Copy)]
struct Scale {
    from: i64,
    to: i64,
    px_per_sec: f64,
}

impl Scale {
    fn new(view: &TimelineView) -> Self {
        Self {
            from: view.from,
            to: view.to,
            px_per_sec: PLOT_WIDTH / view.span() as f64,
        }
    }

    /// The x of moment `t`, clipped to the plot.
    fn x(&self, t: i64) -> f64 {
        PLOT_X + (t.clamp(self.from, self.to) - self.from) as f64 * self.px_per_sec
    }
}

/// Renders the timeline picture of `input` over `view` as one `<svg id="timeline">`
/// element, safe to embed in an HTML page.
pub fn render(input: &TimelineInput, view: &TimelineView) -> String {
    let scale = Scale::new(view);
    let lane_count = input.lanes.len().max(1);
    let has_checkpoints = !input.checkpoints.is_empty();
    let rows = 1 + lane_count + 1 + usize::from(has_checkpoints);
    let rows_bottom = TOP_PX + rows as f64 * ROW_PX;
    let height = rows_bottom + AXIS_PX + LEGEND_PX;

    let mut svg = Svg::with_capacity(16 * 1024);
    svg.open_root(input, view, height);
    svg.defs();
    svg.caption(view);

    // Background first: row stripes, the window, the grid; marks on top.
    for row in 0..rows {
        let top = TOP_PX + row as f64 * ROW_PX;
        let class = if row % 2 == 0 {
            "tl-row"
        } else {
            "tl-row tl-row-alt"
        };
        let _ = write!(
            svg.out,
            "<rect class=\"{class}\" x=\"{PLOT_X}\" y=\"{top}\" width=\"{PLOT_WIDTH}\" \
             height=\"{ROW_PX}\"/>"
        );
    }
    if let Some(window_start) = input.window_start {
        svg.window(&scale, window_start, input.now, rows_bottom);
    }
    let ticks = axis_ticks(view);
    svg.axis(&scale, &ticks, rows_bottom);

    let mut row_top = TOP_PX;
    svg.row_label("Restorable", None, row_top);
    svg.spans(
        &input.restorable,
        &scale,
        row_top,
        &SpanWords {
            class: "tl-restorable",
            covered: "Restorable",
            gap: "Not restorable",
            empty: "Nothing restorable",
        },
    );
    row_top += ROW_PX;

    if input.lanes.is_empty() {
        svg.row_label("Oplog", None, row_top);
        svg.empty_row("No oplog stored", row_top);
        row_top += ROW_PX;
    }
    for lane in &input.lanes {
        let label = cut(&lane.name, MAX_LABEL_CHARS);
        let title_name = cut(&lane.name, MAX_TITLE_NAME_CHARS);
        svg.row_label(&label, Some(&title_name), row_top);
        let covered = format!("{title_name}: oplog stored");
        let gap = format!("{title_name}: no oplog stored");
        svg.spans(
            &lane.stretches,
            &scale,
            row_top,
            &SpanWords {
                class: "tl-oplog",
                covered: &covered,
                gap: &gap,
                empty: "No oplog stored",
            },
        );
        row_top += ROW_PX;
    }

    svg.row_label("Snapshots", None, row_top);
    svg.snapshots(&input.snapshots, &scale, row_top);
    row_top += ROW_PX;
    if has_checkpoints {
        svg.row_label("Checkpoints", None, row_top);
        svg.checkpoints(&input.checkpoints, &scale, row_top);
    }

    if (view.from..=view.to).contains(&input.now) {
        svg.now_line(&scale, input.now, rows_bottom);
    }
    svg.legend(input, rows_bottom + AXIS_PX);
    svg.cursor(rows_bottom);
    svg.out.push_str("</svg>");
    svg.out
}

/// How a row of spans names what it shows.
struct SpanWords<'a> {
    class: &'static str,
    covered: &'a str,
    gap: &'a str,
    empty: &'static str,
}

/// Consecutive spans drawn as one bar because no gap at least a column wide separates them.
struct Run {
    first: i64,
    /// Last second covered (inclusive).
    last: i64,
    spans: usize,
    hidden_gaps: usize,
}

/// A legend entry's sample mark.
enum Swatch {
    Bar(&'static str),
    Triangle(&'static str),
    Dot,
}

/// The gaps narrower than [`BIN_PX`] falling into one column, drawn as one mark.
struct GapBand {
    column: i64,
    /// Moment the first gap starts (the last second stored before it) and the last one ends.
    first: i64,
    last: i64,
    x0: f64,
    x1: f64,
    count: usize,
    missing_secs: i64,
}

/// The SVG being written. Writing to a `String` cannot fail, so `write!`'s result is
/// dropped throughout.
struct Svg {
    out: String,
}

impl Svg {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
        }
    }

    fn open_root(&mut self, input: &TimelineInput, view: &TimelineView, height: f64) {
        let _ = write!(
            self.out,
            "<svg id=\"timeline\" class=\"timeline{}\" xmlns=\"http://www.w3.org/2000/svg\" \
             viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" \
             role=\"img\" aria-label=\"Timeline of stored oplog, snapshots and restorable \
             ranges\" data-from=\"{}\" data-to=\"{}\" data-plot-x=\"{PLOT_X}\" \
             data-plot-width=\"{PLOT_WIDTH}\"",
            if input.restore_url.is_some() {
                " tl-clickable"
            } else {
                ""
            },
            view.from,
            view.to,
        );
        if let Some(url) = &input.restore_url {
            self.out.push_str(" data-restore-url=\"");
            push_escaped(&mut self.out, url);
            self.out.push('"');
        }
        self.out.push('>');
    }

    fn defs(&mut self) {
        self.out.push_str(
            "<defs><pattern id=\"tl-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" \
             height=\"6\" patternTransform=\"rotate(45)\"><rect class=\"tl-hatch-bg\" \
             width=\"6\" height=\"6\"/><line class=\"tl-hatch-line\" x1=\"0\" y1=\"0\" \
             x2=\"0\" y2=\"6\"/></pattern></defs>",
        );
    }

    fn caption(&mut self, view: &TimelineView) {
        let _ = write!(
            self.out,
            "<text class=\"tl-caption\" x=\"{PLOT_X}\" y=\"15\">"
        );
        push_iso(&mut self.out, view.from);
        self.out.push_str(" – ");
        push_iso(&mut self.out, view.to);
        self.out.push_str(" (");
        push_duration(&mut self.out, view.span());
        self.out.push_str(", UTC)</text>");
    }

    /// Starts a `<title>` holding already escaped text; the caller appends more and
    /// closes the element with [`Self::close_title`].
    fn open_title(&mut self) {
        self.out.push_str("><title>");
    }

    fn close_title(&mut self, element: &str) {
        let _ = write!(self.out, "</title></{element}>");
    }

    fn row_label(&mut self, label: &str, title: Option<&str>, top: f64) {
        let _ = write!(
            self.out,
            "<text class=\"tl-label\" x=\"{:.1}\" y=\"{:.1}\">",
            PLOT_X - 8.0,
            top + ROW_PX / 2.0 + 4.0
        );
        push_escaped(&mut self.out, label);
        if let Some(title) = title {
            self.out.push_str("<title>");
            push_escaped(&mut self.out, title);
            self.out.push_str("</title>");
        }
        self.out.push_str("</text>");
    }

    fn empty_row(&mut self, text: &str, top: f64) {
        let _ = write!(
            self.out,
            "<text class=\"tl-empty\" x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            PLOT_X + PLOT_WIDTH / 2.0,
            top + ROW_PX / 2.0 + 4.0
        );
    }

    /// Draws a row of sorted spans: merged runs, the gaps between them, and bands of gaps
    /// too narrow to show apart.
    fn spans(&mut self, spans: &[Span], scale: &Scale, top: f64, words: &SpanWords<'_>) {
        let bar_y = top + (ROW_PX - BAR_PX) / 2.0;
        let first_visible = spans.partition_point(|span| span.end < scale.from);
        let visible = spans[first_visible..]
            .iter()
            .take_while(|span| span.start <= scale.to)
            .filter(|span| span.start <= span.end);
        let mut run: Option<Run> = None;
        let mut band: Option<GapBand> = None;
        // Drawn after the runs, on top of them.
        let mut bands: Vec<GapBand> = Vec::new();
        let mut drawn_any = false;
        for span in visible {
            let Some(current) = run.as_mut() else {
                run = Some(Run {
                    first: span.start,
                    last: span.end,
                    spans: 1,
                    hidden_gaps: 0,
                });
                continue;
            };
            if span.start <= current.last.saturating_add(1) {
                // Abutting or overlapping: no gap at all.
                current.last = current.last.max(span.end);
                current.spans += 1;
                continue;
            }
            let gap_x0 = scale.x(current.last.saturating_add(1));
            let gap_x1 = scale.x(span.start);
            if gap_x1 - gap_x0 >= BIN_PX {
                let ended = run.take();
                if let Some(ended) = ended {
                    self.run(&ended, scale, bar_y, words);
                    self.gap(ended.last, span.start, scale, bar_y, words);
                }
                bands.extend(band.take());
                drawn_any = true;
                run = Some(Run {
                    first: span.start,
                    last: span.end,
                    spans: 1,
                    hidden_gaps: 0,
                });
                continue;
            }
            // A gap narrower than a column: merged into the run, and into its column's band
            // in the adjacent pixels.
            let missing = span.start.saturating_sub(current.last).saturating_sub(1);
            current.hidden_gaps += 1;
            let column = ((gap_x0 - PLOT_X) / BIN_PX) as i64;
            match band.as_mut() {
                Some(band) if band.column == column => {
                    band.last = span.start;
                    band.x1 = gap_x1;
                    band.count += 1;
                    band.missing_secs = band.missing_secs.saturating_add(missing);
                }
                _ => {
                    bands.extend(band.take());
                    band = Some(GapBand {
                        column,
                        first: current.last,
                        last: span.start,
                        x0: gap_x0,
                        x1: gap_x1,
                        count: 1,
                        missing_secs: missing,
                    });
                }
            }
            current.last = span.end;
            current.spans += 1;
        }
        if let Some(ended) = run {
            self.run(&ended, scale, bar_y, words);
            drawn_any = true;
        }
        bands.extend(band);
        for band in &bands {
            self.gap_band(band, bar_y, words);
        }
        if !drawn_any {
            if spans.is_empty() {
                self.empty_row(words.empty, top);
            } else {
                let text = format!("{} in this view", words.empty);
                self.empty_row(&text, top);
            }
        }
    }

    fn run(&mut self, run: &Run, scale: &Scale, bar_y: f64, words: &SpanWords<'_>) {
        let x0 = scale.x(run.first);
        let x1 = scale.x(run.last.saturating_add(1));
        let (x, width) = at_least_one_px(x0, x1);
        let _ = write!(
            self.out,
            "<rect class=\"{}\" x=\"{x:.1}\" y=\"{bar_y}\" width=\"{width:.1}\" \
             height=\"{BAR_PX}\"",
            words.class
        );
        self.open_title();
        push_escaped(&mut self.out, words.covered);
        self.out.push_str(" from ");
        push_iso(&mut self.out, run.first);
        self.out.push_str(" to ");
        push_iso(&mut self.out, run.last);
        self.out.push_str(" (");
        push_duration(
            &mut self.out,
            run.last.saturating_sub(run.first).saturating_add(1),
        );
        self.out.push(')');
        if run.spans > 1 {
            let _ = write!(self.out, ", {} stretches", run.spans);
        }
        if run.hidden_gaps > 0 {
            let _ = write!(
                self.out,
                " with {} short gap{} (the red marks; zoom in to see them apart)",
                run.hidden_gaps,
                plural(run.hidden_gaps)
            );
        }
        self.close_title("rect");
    }

    /// A gap between the stored second `after` and the next stored second `before`.
    fn gap(&mut self, after: i64, before: i64, scale: &Scale, bar_y: f64, words: &SpanWords<'_>) {
        let (x, width) = at_least_one_px(scale.x(after.saturating_add(1)), scale.x(before));
        let _ = write!(
            self.out,
            "<rect class=\"tl-gap\" x=\"{x:.1}\" y=\"{bar_y}\" width=\"{width:.1}\" \
             height=\"{BAR_PX}\""
        );
        self.gap_title(after, before, words);
    }

    /// The title of a gap between the stored seconds `after` and `before`, closing its rect.
    fn gap_title(&mut self, after: i64, before: i64, words: &SpanWords<'_>) {
        self.open_title();
        push_escaped(&mut self.out, words.gap);
        self.out.push_str(" between ");
        push_iso(&mut self.out, after);
        self.out.push_str(" and ");
        push_iso(&mut self.out, before);
        self.out.push_str(" (");
        push_duration(
            &mut self.out,
            before.saturating_sub(after).saturating_sub(1),
        );
        self.out.push_str(" missing)");
        self.close_title("rect");
    }

    fn gap_band(&mut self, band: &GapBand, bar_y: f64, words: &SpanWords<'_>) {
        let (x, width) = at_least_one_px(band.x0, band.x1);
        if band.count == 1 {
            let _ = write!(
                self.out,
                "<rect class=\"tl-gap tl-gap-narrow\" x=\"{x:.1}\" y=\"{bar_y}\" \
                 width=\"{width:.1}\" height=\"{BAR_PX}\""
            );
            self.gap_title(band.first, band.last, words);
            return;
        }
        let _ = write!(
            self.out,
            "<rect class=\"tl-gap tl-gap-many\" x=\"{x:.1}\" y=\"{bar_y}\" \
             width=\"{width:.1}\" height=\"{BAR_PX}\""
        );
        self.open_title();
        push_escaped(&mut self.out, words.gap);
        let _ = write!(self.out, " in {} gaps between ", band.count);
        push_iso(&mut self.out, band.first);
        self.out.push_str(" and ");
        push_iso(&mut self.out, band.last);
        self.out.push_str(" (");
        push_duration(&mut self.out, band.missing_secs);
        self.out.push_str(" missing)");
        self.close_title("rect");
    }

    fn snapshots(&mut self, snapshots: &[SnapshotMark], scale: &Scale, top: f64) {
        let visible = visible_marks(snapshots, scale, |mark| mark.at);
        if snapshots.is_empty() {
            self.empty_row("No snapshots", top);
            return;
        }
        if visible.is_empty() {
            self.empty_row("No snapshots in this view", top);
            return;
        }
        let y = top + ROW_PX / 2.0 - 5.0;
        for_each_bin(
            visible,
            scale,
            |mark| mark.at,
            |bin| {
                let incomplete = bin.iter().filter(|mark| !mark.complete).count();
                let (first, last) = (bin[0].at, bin[bin.len() - 1].at);
                let x = (scale.x(first) + scale.x(last)) / 2.0;
                // Hollow when none of the bin is complete: a bin of a year's view holds
                // dozens of snapshots, one incomplete among them would hollow them all.
                let class = match (incomplete == bin.len(), bin.len()) {
                    (false, 1) => "tl-snapshot",
                    (false, _) => "tl-snapshot tl-many",
                    (true, 1) => "tl-snapshot tl-incomplete",
                    (true, _) => "tl-snapshot tl-incomplete tl-many",
                };
                let _ = write!(
                    self.out,
                    "<path class=\"{class}\" d=\"M{:.1} {y:.1}h8l-4 9z\"",
                    x - 4.0
                );
                self.open_title();
                if bin.len() == 1 {
                    self.out.push_str("Snapshot at ");
                    push_iso(&mut self.out, first);
                    self.out.push_str(if incomplete == 0 {
                        " (complete)"
                    } else {
                        " (incomplete)"
                    });
                } else {
                    let _ = write!(self.out, "{} snapshots from ", bin.len());
                    push_iso(&mut self.out, first);
                    self.out.push_str(" to ");
                    push_iso(&mut self.out, last);
                    if incomplete > 0 {
                        let _ = write!(self.out, ", {incomplete} incomplete");
                    }
                }
                self.close_title("path");
            },
        );
    }

    fn checkpoints(&mut self, checkpoints: &[i64], scale: &Scale, top: f64) {
        let visible = visible_marks(checkpoints, scale, |&at| at);
        if visible.is_empty() {
            self.empty_row("No checkpoints in this view", top);
            return;
        }
        let y = top + ROW_PX / 2.0;
        for_each_bin(
            visible,
            scale,
            |&at| at,
            |bin| {
                let (first, last) = (bin[0], bin[bin.len() - 1]);
                let x = (scale.x(first) + scale.x(last)) / 2.0;
                let class = if bin.len() == 1 {
                    "tl-checkpoint"
                } else {
                    "tl-checkpoint tl-many"
                };
                let _ = write!(
                    self.out,
                    "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\""
                );
                self.open_title();
                if bin.len() == 1 {
                    self.out.push_str("Checkpoint at ");
                    push_iso(&mut self.out, first);
                } else {
                    let _ = write!(self.out, "{} checkpoints from ", bin.len());
                    push_iso(&mut self.out, first);
                    self.out.push_str(" to ");
                    push_iso(&mut self.out, last);
                }
                self.close_title("circle");
            },
        );
    }

    fn window(&mut self, scale: &Scale, start: i64, now: i64, rows_bottom: f64) {
        if start > scale.to || now < scale.from || start > now {
            return;
        }
        let (x, width) = at_least_one_px(scale.x(start), scale.x(now));
        let _ = write!(
            self.out,
            "<rect class=\"tl-window\" x=\"{x:.1}\" y=\"{TOP_PX}\" width=\"{width:.1}\" \
             height=\"{:.1}\"",
            rows_bottom - TOP_PX
        );
        self.open_title();
        self.out.push_str("Point-in-time window from ");
        push_iso(&mut self.out, start);
        self.out.push_str(" to now (");
        push_duration(&mut self.out, now.saturating_sub(start));
        self.out.push(')');
        self.close_title("rect");
    }

    fn axis(&mut self, scale: &Scale, ticks: &[Tick], rows_bottom: f64) {
        for tick in ticks {
            let x = scale.x(tick.at);
            // Labels on the plot's edges grow inwards, clear of the label column.
            let class = if x < PLOT_X + MIN_TICK_SPACING_PX / 3.0 {
                "tl-tick tl-tick-start"
            } else if x > PLOT_X + PLOT_WIDTH - MIN_TICK_SPACING_PX / 3.0 {
                "tl-tick tl-tick-end"
            } else {
                "tl-tick"
            };
            let _ = write!(
                self.out,
                "<line class=\"tl-grid\" x1=\"{x:.1}\" y1=\"{TOP_PX}\" x2=\"{x:.1}\" \
                 y2=\"{:.1}\"/><text class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\">",
                rows_bottom + 4.0,
                rows_bottom + 16.0
            );
            push_escaped(&mut self.out, &tick.label);
            self.out.push_str("</text>");
        }
        let _ = write!(
            self.out,
            "<line class=\"tl-axis\" x1=\"{PLOT_X}\" y1=\"{rows_bottom:.1}\" x2=\"{}\" \
             y2=\"{rows_bottom:.1}\"/><text class=\"tl-label\" x=\"{:.1}\" y=\"{:.1}\">UTC</text>",
            PLOT_X + PLOT_WIDTH,
            PLOT_X - 8.0,
            rows_bottom + 16.0
        );
    }

    fn now_line(&mut self, scale: &Scale, now: i64, rows_bottom: f64) {
        let x = scale.x(now);
        let _ = write!(
            self.out,
            "<line class=\"tl-now\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" \
             y2=\"{rows_bottom:.1}\"",
            TOP_PX - 4.0
        );
        self.open_title();
        self.out.push_str("Now: ");
        push_iso(&mut self.out, now);
        self.close_title("line");
        let _ = write!(
            self.out,
            "<text class=\"tl-now-label\" x=\"{x:.1}\" y=\"{:.1}\">now</text>",
            TOP_PX - 6.0
        );
    }

    fn legend(&mut self, input: &TimelineInput, top: f64) {
        let y = top + 8.0;
        let mut items = vec![
            (Swatch::Bar("tl-restorable"), "restorable"),
            (Swatch::Bar("tl-oplog"), "oplog stored"),
            (Swatch::Bar("tl-gap"), "gap"),
        ];
        if input.window_start.is_some() {
            items.push((
                Swatch::Bar("tl-window tl-window-swatch"),
                "point-in-time window",
            ));
        }
        items.push((Swatch::Triangle("tl-snapshot"), "snapshot"));
        items.push((
            Swatch::Triangle("tl-snapshot tl-incomplete"),
            "incomplete snapshot",
        ));
        if !input.checkpoints.is_empty() {
            items.push((Swatch::Dot, "checkpoint"));
        }
        let mut x = PLOT_X;
        for (swatch, text) in items {
            let _ = match swatch {
                Swatch::Bar(class) => write!(
                    self.out,
                    "<rect class=\"tl-swatch {class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"12\" \
                     height=\"10\"/>"
                ),
                Swatch::Triangle(class) => write!(
                    self.out,
                    "<path class=\"tl-swatch {class}\" d=\"M{:.1} {y:.1}h8l-4 9z\"/>",
                    x + 2.0
                ),
                Swatch::Dot => write!(
                    self.out,
                    "<circle class=\"tl-swatch tl-checkpoint\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
                    x + 6.0,
                    y + 5.0
                ),
            };
            let _ = write!(
                self.out,
                "<text class=\"tl-legend\" x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
                x + 16.0,
                y + 9.0
            );
            // About 6.5 units a character at the legend's font size.
            x += 16.0 + 6.5 * text.len() as f64 + 18.0;
        }
        if input.restore_url.is_some() {
            let _ = write!(
                self.out,
                "<text class=\"tl-legend tl-hint\" x=\"{}\" y=\"{:.1}\">Click a moment to \
                 restore to it</text>",
                PLOT_X + PLOT_WIDTH,
                y + 9.0
            );
        }
    }

    /// The pointer's line and time, hidden until timeline.js moves them.
    fn cursor(&mut self, rows_bottom: f64) {
        let _ = write!(
            self.out,
            "<g class=\"tl-cursor\"><line class=\"tl-cursor-line\" x1=\"{PLOT_X}\" \
             y1=\"{TOP_PX}\" x2=\"{PLOT_X}\" y2=\"{rows_bottom:.1}\"/><text \
             class=\"tl-cursor-label\" x=\"{PLOT_X}\" y=\"{:.1}\"></text></g>",
            TOP_PX - 6.0
        );
    }
}

/// The marks of sorted `marks` inside the view (ends included).
fn visible_marks<'a, T>(marks: &'a [T], scale: &Scale, at: impl Fn(&T) -> i64) -> &'a [T] {
    let start = marks.partition_point(|mark| at(mark) < scale.from);
    let end = start + marks[start..].partition_point(|mark| at(mark) <= scale.to);
    &marks[start..end]
}

/// Calls `draw` with each run of `marks` falling into one [`BIN_PX`]-wide column.
fn for_each_bin<T>(marks: &[T], scale: &Scale, at: impl Fn(&T) -> i64, mut draw: impl FnMut(&[T])) {
    let column = |mark: &T| ((scale.x(at(mark)) - PLOT_X) / BIN_PX) as i64;
    let mut rest = marks;
    while let Some(first) = rest.first() {
        let bin = column(first);
        // Marks are sorted, so a bin's marks are consecutive.
        let len = rest.partition_point(|mark| column(mark) <= bin).max(1);
        let (head, tail) = rest.split_at(len);
        draw(head);
        rest = tail;
    }
}

/// `x0..x1` as `(x, width)`, widened around its centre to at least [`MIN_MARK_PX`].
fn at_least_one_px(x0: f64, x1: f64) -> (f64, f64) {
    let width = x1 - x0;
    if width >= MIN_MARK_PX {
        (x0, width)
    } else {
        let x =
            ((x0 + x1) / 2.0 - MIN_MARK_PX / 2.0).clamp(PLOT_X, PLOT_X + PLOT_WIDTH - MIN_MARK_PX);
        (x, MIN_MARK_PX)
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// `text` cut to `max_chars` characters, an ellipsis marking the cut.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_owned(),
    }
}

/// Appends `text` escaped for HTML and XML text and attribute values.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Appends `secs` as `YYYY-MM-DDTHH:MM:SSZ` (what `iso_seconds::format_iso` writes), without
/// a format string: a year's picture formats a few thousand times.
fn push_iso(out: &mut String, secs: i64) {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        None => out.push_str("invalid-date"),
    }
}

/// Appends a duration the way an operator reads it: `3 d 4 h`, `2 h 5 min`, `45 s`.
fn push_duration(out: &mut String, secs: i64) {
    let secs = secs.max(0);
    let (days, hours) = (secs / DAY_SECS, secs % DAY_SECS / HOUR_SECS);
    let (minutes, seconds) = (secs % HOUR_SECS / MINUTE_SECS, secs % MINUTE_SECS);
    let _ = match (days, hours, minutes) {
        (0, 0, 0) => write!(out, "{seconds} s"),
        (0, 0, _) if seconds == 0 => write!(out, "{minutes} min"),
        (0, 0, _) => write!(out, "{minutes} min {seconds} s"),
        (0, _, _) if minutes == 0 => write!(out, "{hours} h"),
        (0, _, _) => write!(out, "{hours} h {minutes} min"),
        (_, 0, _) => write!(out, "{days} d"),
        _ => write!(out, "{days} d {hours} h"),
    };
}

/// A cluster at production scale, generated deterministically: the benchmark example and
/// the size tests draw it.
pub mod sample {
    use super::{Lane, SnapshotMark, Span, TimelineInput, DAY_SECS, HOUR_SECS, MINUTE_SECS};

    /// Three shards and a config server with a year of oplog in `stretches_per_lane`
    /// stretches each (one boundary in `gap_one_in` a gap of up to ten minutes, the others
    /// abutting), 10,000 snapshots over the
    /// year (one in fifty incomplete), checkpoints every 15 minutes over the last 60 days,
    /// restorable ranges between the gaps, and a 7-day point-in-time window.
    pub fn production_cluster(
        now: i64,
        stretches_per_lane: usize,
        gap_one_in: i64,
    ) -> TimelineInput {
        let year_ago = now - 365 * DAY_SECS;
        // A small linear congruential generator: deterministic, no crate for it.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: i64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % bound.max(1) as u64) as i64
        };
        let stretch = (now - year_ago) / stretches_per_lane.max(1) as i64;
        let mut lanes = Vec::new();
        for name in ["shard0", "shard1", "shard2", "config"] {
            let mut stretches = Vec::with_capacity(stretches_per_lane);
            let mut start = year_ago;
            for _ in 0..stretches_per_lane {
                if start > now {
                    break;
                }
                let end = (start + stretch - 1).max(start).min(now);
                stretches.push(Span { start, end });
                start = end + 1;
                if next(gap_one_in) == 0 {
                    start += 1 + next(10 * MINUTE_SECS);
                }
            }
            lanes.push(Lane {
                name: name.to_owned(),
                stretches,
            });
        }
        let restorable = lanes[0].stretches.clone();
        let snapshots = (0..10_000)
            .map(|i| SnapshotMark {
                at: year_ago + i * (365 * DAY_SECS / 10_000) + next(HOUR_SECS / 4),
                complete: i % 50 != 7,
            })
            .collect();
        let checkpoints = (0..(60 * DAY_SECS / (15 * MINUTE_SECS)))
            .map(|i| now - 60 * DAY_SECS + i * 15 * MINUTE_SECS)
            .collect();
        TimelineInput {
            now,
            window_start: Some(now - 7 * DAY_SECS),
            lanes,
            snapshots,
            checkpoints,
            restorable,
            restore_url: Some("/console/projects/g/clusters/c/restore?method=pit".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04T12:00:00Z.
    const NOW: i64 = 1_796_385_600;

    fn input_with(lanes: Vec<Lane>) -> TimelineInput {
        TimelineInput {
            now: NOW,
            lanes,
            ..TimelineInput::default()
        }
    }

    fn lane(name: &str, stretches: &[(i64, i64)]) -> Lane {
        Lane {
            name: name.to_owned(),
            stretches: stretches
                .iter()
                .map(|&(start, end)| Span { start, end })
                .collect(),
        }
    }

    /// The elements of `svg` whose class attribute starts with `class`, each up to the end
    /// of its title or of its tag.
    fn elements<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let needle = format!("class=\"{class}");
        svg.match_indices(&needle)
            .map(|(index, _)| {
                let start = svg[..index].rfind('<').unwrap_or(0);
                let rest = &svg[index..];
                let end = [rest.find("/>"), rest.find("</title>")]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(svg.len(), |offset| index + offset);
                &svg[start..end]
            })
            .collect()
    }

    fn attr(element: &str, name: &str) -> f64 {
        let needle = format!(" {name}=\"");
        let start = element.find(&needle).expect("attribute") + needle.len();
        let end = start + element[start..].find('"').expect("closing quote");
        element[start..end].parse().expect("a number")
    }

    #[test]
    fn stretches_and_gaps_sit_where_their_times_are() {
        // A 1000 s view: a px per 0.99 s; stretches 100..=299 and 600..=799.
        let view = TimelineView::new(NOW - 1000, NOW, NOW);
        let from = view.from();
        let input = input_with(vec![lane(
            "rs0",
            &[(from + 100, from + 299), (from + 600, from + 799)],
        )]);
        let svg = render(&input, &view);
        let scale = PLOT_WIDTH / 1000.0;
        let stretches = elements(&svg, "tl-oplog\" x=");
        assert_eq!(stretches.len(), 2, "{svg}");
        assert!((attr(stretches[0], "x") - (PLOT_X + 100.0 * scale)).abs() < 0.1);
        assert!((attr(stretches[0], "width") - 200.0 * scale).abs() < 0.1);
        assert!((attr(stretches[1], "x") - (PLOT_X + 600.0 * scale)).abs() < 0.1);
        let gaps = elements(&svg, "tl-gap\" x=");
        assert_eq!(gaps.len(), 1);
        assert!((attr(gaps[0], "x") - (PLOT_X + 300.0 * scale)).abs() < 0.1);
        assert!((attr(gaps[0], "width") - 300.0 * scale).abs() < 0.1);
        assert!(
            gaps[0].contains(&format!(
                "rs0: no oplog stored between {} and {} (5 min missing)",
                rewind_api_types::iso_seconds::format_iso(from + 299),
                rewind_api_types::iso_seconds::format_iso(from + 600)
            )),
            "{}",
            gaps[0]
        );
        assert!(stretches[0].contains("rs0: oplog stored from"));
    }

    #[test]
    fn stretches_beyond_the_view_are_clipped_but_titled_with_their_real_times() {
        let view = TimelineView::new(NOW - 1000, NOW, NOW);
        let input = input_with(vec![lane("rs0", &[(NOW - 5000, NOW + 5000)])]);
        let svg = render(&input, &view);
        let stretch = elements(&svg, "tl-oplog\" x=")[0];
        assert!((attr(stretch, "x") - PLOT_X).abs() < 0.01);
        assert!((attr(stretch, "width") - PLOT_WIDTH).abs() < 0.01);
        assert!(stretch.contains(&rewind_api_types::iso_seconds::format_iso(NOW - 5000)));
    }

    #[test]
    fn a_one_second_stretch_in_a_year_is_still_a_pixel_wide() {
        let view = TimelineView::new(NOW - 365 * DAY_SECS, NOW, NOW);
        let input = input_with(vec![lane(
            "rs0",
            &[(NOW - 100 * DAY_SECS, NOW - 100 * DAY_SECS)],
        )]);
        let svg = render(&input, &view);
        let stretches = elements(&svg, "tl-oplog\" x=");
        assert_eq!(stretches.len(), 1);
        assert!(attr(stretches[0], "width") >= 1.0);
        assert!(stretches[0].contains("(1 s)"));
    }

    #[test]
    fn a_one_second_gap_in_a_year_is_still_shown() {
        let view = TimelineView::new(NOW - 365 * DAY_SECS, NOW, NOW);
        let t = NOW - 100 * DAY_SECS;
        let input = input_with(vec![lane(
            "rs0",
            &[(t - DAY_SECS, t), (t + 2, t + DAY_SECS)],
        )]);
        let svg = render(&input, &view);
        assert_eq!(
            elements(&svg, "tl-oplog\" x=").len(),
            1,
            "merged into one run"
        );
        let gaps = elements(&svg, "tl-gap");
        assert_eq!(gaps.len(), 1);
        assert!(attr(gaps[0], "width") >= 1.0);
        assert!(gaps[0].contains("(1 s missing)"), "{}", gaps[0]);
    }

    #[test]
    fn abutting_stretches_are_one_stretch_without_a_gap() {
        let view = TimelineView::new(NOW - 1000, NOW, NOW);
        let input = input_with(vec![lane(
            "rs0",
            &[(NOW - 900, NOW - 500), (NOW - 499, NOW - 100)],
        )]);
        let svg = render(&input, &view);
        assert_eq!(elements(&svg, "tl-oplog\" x=").len(), 1);
        assert!(elements(&svg, "tl-gap\" x=").is_empty());
    }

    #[test]
    fn a_year_of_production_data_stays_small() {
        let input = sample::production_cluster(NOW, 5_000, 20);
        for view in [
            TimelineView::new(NOW - 365 * DAY_SECS, NOW, NOW),
            TimelineView::new(NOW - 30 * DAY_SECS, NOW, NOW),
            TimelineView::default_for(&input),
            TimelineView::new(NOW - 600, NOW, NOW),
        ] {
            let svg = render(&input, &view);
            assert!(svg.len() < 200_000, "{} bytes for {view:?}", svg.len());
            assert!(svg.contains("tl-snapshot"));
        }
    }

    #[test]
    fn marks_are_binned_per_column_with_their_count_and_extremes() {
        let view = TimelineView::new(NOW - 365 * DAY_SECS, NOW, NOW);
        let input = TimelineInput {
            now: NOW,
            snapshots: (0..10_000)
                .map(|i| SnapshotMark {
                    at: NOW - 365 * DAY_SECS + i * 3_000,
                    complete: true,
                })
                .collect(),
            checkpoints: (0..5_000).map(|i| NOW - 100 * DAY_SECS + i * 600).collect(),
            ..TimelineInput::default()
        };
        let svg = render(&input, &view);
        let bins = (PLOT_WIDTH / BIN_PX).ceil() as usize + 1;
        let snapshots = elements(&svg, "tl-snapshot");
        assert!(
            snapshots.len() <= bins,
            "{} snapshot marks",
            snapshots.len()
        );
        let total: usize = snapshots
            .iter()
            .map(|mark| {
                mark.split("<title>")
                    .nth(1)
                    .and_then(|title| title.split(' ').next())
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1)
            })
            .sum();
        assert_eq!(total, 10_000, "every snapshot counted in one bin");
        assert!(snapshots[0].contains(&format!(
            "snapshots from {} to",
            rewind_api_types::iso_seconds::format_iso(NOW - 365 * DAY_SECS)
        )));
        assert!(elements(&svg, "tl-checkpoint").len() <= bins);
    }

    #[test]
    fn dense_gaps_are_bounded_by_the_width() {
        // 100,000 one-minute stretches with one-minute gaps: far more than pixels.
        let stretches: Vec<(i64, i64)> = (0..100_000)
            .map(|i| {
                (
                    NOW - 200 * DAY_SECS + i * 120,
                    NOW - 200 * DAY_SECS + i * 120 + 59,
                )
            })
            .collect();
        let input = input_with(vec![lane("rs0", &stretches)]);
        let svg = render(&input, &TimelineView::new(NOW - 365 * DAY_SECS, NOW, NOW));
        let columns = (PLOT_WIDTH / BIN_PX).ceil() as usize + 1;
        let gaps = elements(&svg, "tl-gap");
        assert!(gaps.len() <= columns, "{} gap marks", gaps.len());
        assert_eq!(elements(&svg, "tl-oplog\" x=").len(), 1);
        let counted: usize = gaps
            .iter()
            .map(|gap| {
                gap.split(" in ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1)
            })
            .sum();
        assert_eq!(counted, 99_999, "every gap counted in one column");
        assert!(svg.len() < 100_000, "{} bytes", svg.len());
    }

    #[test]
    fn a_hostile_lane_name_is_escaped() {
        let name = "<script>alert('x')</script>\"&<title>";
        let input = input_with(vec![lane(name, &[(NOW - 100, NOW - 50)])]);
        let svg = render(&input, &TimelineView::new(NOW - 1000, NOW, NOW));
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("'x'"));
        assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert_eq!(
            svg.matches("<title>").count(),
            svg.matches("</title>").count()
        );
    }

    #[test]
    fn the_restore_url_is_escaped_and_absent_when_the_key_may_not_restore() {
        let mut input = input_with(vec![]);
        input.restore_url = Some("/restore?method=pit&x=\"><script>".to_owned());
        let view = TimelineView::new(NOW - 1000, NOW, NOW);
        let svg = render(&input, &view);
        assert!(
            svg.contains("data-restore-url=\"/restore?method=pit&amp;x=&quot;&gt;&lt;script&gt;\"")
        );
        assert!(svg.contains("restore"));
        input.restore_url = None;
        let svg = render(&input, &view);
        assert!(!svg.contains("data-restore-url"));
        assert!(!svg.to_lowercase().contains("restore to"), "{svg}");
        assert!(!svg.contains("tl-clickable"));
    }

    #[test]
    fn the_svg_carries_its_view_and_plot_for_the_script() {
        let view = TimelineView::new(NOW - 1000, NOW, NOW);
        let svg = render(&input_with(vec![]), &view);
        assert!(svg.starts_with("<svg id=\"timeline\""));
        assert!(svg.contains(&format!("data-from=\"{}\"", view.from())));
        assert!(svg.contains(&format!("data-to=\"{}\"", view.to())));
        assert!(svg.contains(&format!("data-plot-x=\"{PLOT_X}\"")));
        assert!(svg.contains(&format!("data-plot-width=\"{PLOT_WIDTH}\"")));
        assert!(!svg.contains("style="), "no inline style under the CSP");
        assert!(!svg.contains("<style"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn empty_data_says_no_oplog_stored_per_lane() {
        let input = input_with(vec![lane("rs0", &[]), lane("rs1", &[])]);
        let svg = render(&input, &TimelineView::default_for(&input));
        assert_eq!(svg.matches(">No oplog stored<").count(), 2);
        assert!(svg.contains("Nothing restorable"));
        assert!(svg.contains("No snapshots"));
        assert!(svg.ends_with("</svg>"));

        let without_lanes = render(&input_with(vec![]), &TimelineView::default_for(&input));
        assert_eq!(without_lanes.matches(">No oplog stored<").count(), 1);

        let old = input_with(vec![lane(
            "rs0",
            &[(NOW - 90 * DAY_SECS, NOW - 80 * DAY_SECS)],
        )]);
        let svg = render(&old, &TimelineView::new(NOW - 1000, NOW, NOW));
        assert!(svg.contains(">No oplog stored in this view<"));
    }

    #[test]
    fn the_window_and_the_now_line_are_drawn_when_in_view() {
        let mut input = input_with(vec![]);
        input.window_start = Some(NOW - 3 * DAY_SECS);
        let view = TimelineView::new(NOW - 4 * DAY_SECS, NOW, NOW);
        let svg = render(&input, &view);
        let window = elements(&svg, "tl-window\" x=");
        assert_eq!(window.len(), 1);
        let scale = PLOT_WIDTH / view.span() as f64;
        let expected_x = PLOT_X + (NOW - 3 * DAY_SECS - view.from()) as f64 * scale;
        assert!((attr(window[0], "x") - expected_x).abs() < 0.1);
        assert!(window[0].contains("(3 d)"));
        assert_eq!(elements(&svg, "tl-now\"").len(), 1);

        let past = TimelineView::new(NOW - 30 * DAY_SECS, NOW - 20 * DAY_SECS, NOW);
        let svg = render(&input, &past);
        assert!(elements(&svg, "tl-window\" x=").is_empty());
        assert!(elements(&svg, "tl-now\"").is_empty());
    }

    #[test]
    fn views_are_clamped_to_sane_spans_and_bounds() {
        let tiny = TimelineView::new(NOW - 10, NOW - 5, NOW);
        assert_eq!(tiny.span(), TimelineView::MIN_SPAN_SECS);
        let huge = TimelineView::new(NOW - 5_000 * DAY_SECS, NOW, NOW);
        assert_eq!(huge.span(), TimelineView::MAX_SPAN_SECS);
        let reversed = TimelineView::new(NOW, NOW - DAY_SECS, NOW);
        assert_eq!((reversed.from(), reversed.to()), (NOW - DAY_SECS, NOW));
        let future = TimelineView::new(NOW + 100 * DAY_SECS, NOW + 101 * DAY_SECS, NOW);
        assert!(future.to() <= NOW + DAY_SECS / 10);
        assert_eq!(future.span(), DAY_SECS);
        let ancient = TimelineView::new(-1_000_000_000, -999_000_000, NOW);
        assert_eq!(ancient.from(), 0);
        for (from, to) in [
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MAX, i64::MAX),
            (i64::MIN, i64::MIN),
            (0, 0),
        ] {
            let view = TimelineView::new(from, to, NOW);
            assert!(view.span() >= TimelineView::MIN_SPAN_SECS);
            assert!(view.span() <= TimelineView::MAX_SPAN_SECS);
            assert!(view.from() >= 0 && view.to() <= NOW + TimelineView::MAX_SPAN_SECS);
        }
        let odd_now = TimelineView::new(0, 100, i64::MAX);
        assert!(odd_now.from() >= 0);
    }

    #[test]
    fn views_parse_from_hostile_query_values_without_failing() {
        let input = input_with(vec![]);
        let default = TimelineView::default_for(&input);
        for (from, to) in [
            (None, None),
            (Some("abc"), Some("")),
            (Some("99999999999999999999999"), None),
            (Some("-"), Some("1e9")),
            (Some("<script>"), Some("NaN")),
        ] {
            assert_eq!(
                TimelineView::from_query(from, to, &input),
                default,
                "{from:?} {to:?}"
            );
        }
        let given = TimelineView::from_query(
            Some(&(NOW - 7_200).to_string()),
            Some(&format!(" {} ", NOW - 3_600)),
            &input,
        );
        assert_eq!((given.from(), given.to()), (NOW - 7_200, NOW - 3_600));
        let iso = TimelineView::from_query(
            Some("2026-12-04T10:00:00Z"),
            Some("2026-12-04T11:00:00Z"),
            &input,
        );
        assert_eq!((iso.from(), iso.to()), (NOW - 7_200, NOW - 3_600));
        let only_to = TimelineView::from_query(None, Some(&(NOW - DAY_SECS).to_string()), &input);
        assert_eq!(only_to.to(), NOW - DAY_SECS);
        assert_eq!(only_to.span(), default.span());
        let extreme = TimelineView::from_query(
            Some(&i64::MIN.to_string()),
            Some(&i64::MAX.to_string()),
            &input,
        );
        assert_eq!(extreme.span(), TimelineView::MAX_SPAN_SECS);
    }

    #[test]
    fn the_default_view_ends_at_now_and_covers_the_window_and_newest_snapshots() {
        let mut input = input_with(vec![]);
        let bare = TimelineView::default_for(&input);
        assert!(bare.from() <= NOW - DAY_SECS && bare.to() >= NOW);
        assert!(bare.to() - NOW < DAY_SECS / 10);

        input.window_start = Some(NOW - 7 * DAY_SECS);
        input.snapshots = [40, 20, 10, 1]
            .iter()
            .map(|days| SnapshotMark {
                at: NOW - days * DAY_SECS,
                complete: true,
            })
            .collect();
        let view = TimelineView::default_for(&input);
        assert!(view.from() <= NOW - 20 * DAY_SECS, "{view:?}");
        assert!(view.from() > NOW - 40 * DAY_SECS, "{view:?}");
        assert!(view.to() >= NOW);
    }

    #[test]
    fn zoom_presets_have_their_spans_around_the_centre() {
        let view = TimelineView::new(NOW - 20 * DAY_SECS, NOW - 10 * DAY_SECS, NOW);
        let centre = view.from() + view.span() / 2;
        let links = view.zoom_links(NOW);
        let labels: Vec<&str> = links.iter().map(|link| link.label).collect();
        assert_eq!(
            labels,
            [
                "Year",
                "30 days",
                "7 days",
                "1 day",
                "1 hour",
                "10 minutes",
                "Earlier",
                "Later",
                "Zoom in",
                "Zoom out"
            ]
        );
        let spans: Vec<i64> = links.iter().map(|link| link.to - link.from).collect();
        assert_eq!(
            spans,
            [
                365 * DAY_SECS,
                30 * DAY_SECS,
                7 * DAY_SECS,
                DAY_SECS,
                HOUR_SECS,
                600,
                10 * DAY_SECS,
                10 * DAY_SECS,
                5 * DAY_SECS,
                20 * DAY_SECS
            ]
        );
        for link in &links[2..6] {
            assert_eq!(link.from + (link.to - link.from) / 2, centre, "{link:?}");
        }
        assert_eq!(links[6].from, view.from() - 5 * DAY_SECS);
        assert_eq!(links[7].from, view.from() + 5 * DAY_SECS);
        assert!(
            links[0].to <= NOW + 365 * DAY_SECS / 10,
            "the year stops near now"
        );
        assert!(links.iter().all(|link| !link.is_current));
        assert_eq!(
            links[0].query(),
            format!("from={}&to={}", links[0].from, links[0].to)
        );

        let last_day = TimelineView::new(NOW - DAY_SECS + DAY_SECS / 10, NOW + DAY_SECS / 10, NOW);
        let links = last_day.zoom_links(NOW);
        assert!(links[3].is_current, "1 day is the view shown");
        assert!(links[7].is_current, "Later cannot go past now");

        let minute = TimelineView::new(NOW - 60, NOW, NOW);
        assert!(
            minute.zoom_links(NOW)[8].is_current,
            "no zooming in below a minute"
        );
    }

    fn labels(from: i64, to: i64) -> Vec<String> {
        axis_ticks(&TimelineView::new(from, to, NOW))
            .into_iter()
            .map(|tick| tick.label)
            .collect()
    }

    #[test]
    fn tick_labels_follow_the_span() {
        // A year: months, the year with January.
        let year = labels(NOW - 365 * DAY_SECS, NOW);
        assert!(year.len() >= 10, "{year:?}");
        assert!(year.contains(&"Jan 2026".to_owned()), "{year:?}");
        assert!(year.contains(&"Jun".to_owned()), "{year:?}");
        // 30 days: Mondays.
        let month = labels(NOW - 30 * DAY_SECS, NOW);
        assert_eq!(month, ["Nov 9", "Nov 16", "Nov 23", "Nov 30"]);
        // 7 days: days and noons.
        let week = labels(NOW - 7 * DAY_SECS, NOW);
        assert!(
            week.contains(&"Dec 1".to_owned()) && week.contains(&"12:00".to_owned()),
            "{week:?}"
        );
        // A day: hours, midnight as its date.
        let day = labels(NOW - DAY_SECS, NOW);
        assert!(day.contains(&"Dec 4".to_owned()), "{day:?}");
        assert!(day.contains(&"14:00".to_owned()), "{day:?}");
        // An hour and ten minutes: minutes.
        let hour = labels(NOW - HOUR_SECS, NOW);
        assert_eq!(hour.first().map(String::as_str), Some("11:00"), "{hour:?}");
        assert!(hour.contains(&"11:05".to_owned()), "{hour:?}");
        let ten = labels(NOW - 600, NOW);
        assert!(ten.contains(&"11:51".to_owned()), "{ten:?}");
        // A minute: seconds.
        let minute = labels(NOW - 60, NOW);
        assert!(minute.contains(&"11:59:05".to_owned()), "{minute:?}");
        for (from, to) in [
            (NOW - 365 * DAY_SECS, NOW),
            (NOW - 60, NOW),
            (NOW - 600, NOW),
        ] {
            let count = labels(from, to).len() as f64;
            assert!(count <= PLOT_WIDTH / MIN_TICK_SPACING_PX + 1.0);
            assert!(count >= 3.0);
        }
    }

    #[test]
    fn tick_labels_on_the_plot_edges_grow_inwards() {
        let svg = render(
            &input_with(vec![]),
            &TimelineView::new(NOW - HOUR_SECS, NOW, NOW),
        );
        let first = svg.find("class=\"tl-tick").expect("a tick");
        assert!(
            svg[first..].starts_with("class=\"tl-tick tl-tick-start\""),
            "11:00 at the left edge"
        );
        assert!(
            svg.contains("class=\"tl-tick tl-tick-end\""),
            "12:00 at the right edge"
        );
        assert!(svg.contains("class=\"tl-tick\" "));
    }

    #[test]
    fn durations_read_naturally() {
        for (secs, text) in [
            (0, "0 s"),
            (45, "45 s"),
            (60, "1 min"),
            (125, "2 min 5 s"),
            (3_600, "1 h"),
            (7_500, "2 h 5 min"),
            (DAY_SECS, "1 d"),
            (3 * DAY_SECS + 4 * HOUR_SECS + 5, "3 d 4 h"),
        ] {
            let mut out = String::new();
            push_duration(&mut out, secs);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn iso_times_match_the_api_format() {
        for secs in [0, NOW, 253_402_300_799, -1] {
            let mut out = String::new();
            push_iso(&mut out, secs);
            assert_eq!(out, rewind_api_types::iso_seconds::format_iso(secs));
        }
        let mut out = String::new();
        push_iso(&mut out, i64::MAX);
        assert_eq!(out, "invalid-date");
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        fn span() -> impl Strategy<Value = Span> {
            (any::<i64>(), any::<i64>()).prop_map(|(start, end)| Span { start, end })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            #[test]
            fn render_never_panics_on_arbitrary_input(
                now in any::<i64>(),
                from in any::<i64>(),
                to in any::<i64>(),
                window_start in proptest::option::of(any::<i64>()),
                stretches in proptest::collection::vec(span(), 0..20),
                restorable in proptest::collection::vec(span(), 0..20),
                marks in proptest::collection::vec((any::<i64>(), any::<bool>()), 0..20),
                checkpoints in proptest::collection::vec(any::<i64>(), 0..20),
                name in ".{0,40}",
            ) {
                let mut sorted = stretches.clone();
                sorted.sort_by_key(|span| span.start);
                let mut snapshots: Vec<SnapshotMark> = marks
                    .into_iter()
                    .map(|(at, complete)| SnapshotMark { at, complete })
                    .collect();
                snapshots.sort_by_key(|mark| mark.at);
                let input = TimelineInput {
                    now,
                    window_start,
                    lanes: vec![Lane { name: name.clone(), stretches }, Lane { name, stretches: sorted }],
                    snapshots,
                    checkpoints,
                    restorable,
                    restore_url: Some("/r?method=pit".to_owned()),
                };
                let view = TimelineView::from_query(Some(&from.to_string()), Some(&to.to_string()), &input);
                let svg = render(&input, &view);
                prop_assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
                // Whatever the times, nothing is drawn outside the plot.
                for rect in svg.split("<rect ").skip(1).filter(|rect| rect.contains(" x=")) {
                    let (x, width) = (attr(rect, "x"), attr(rect, "width"));
                    prop_assert!(x >= PLOT_X - 0.05 && x + width <= PLOT_X + PLOT_WIDTH + 0.15, "{rect}");
                }
                let _ = TimelineView::default_for(&input).zoom_links(now);
            }
        }
    }
}
