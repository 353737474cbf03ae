//! Continuity: which stretches of a replica set's oplog are stored completely, and how a push
//! relates to them. Pure functions over timestamps; the domain supplies the stored entries.
//!
//! The model: a replica set's stored oplog is a set of disjoint closed *ranges*, each one
//! known to hold every entry between its first and last timestamp; between two ranges lies a
//! *gap*, where entries may be missing. A push is a run of consecutive oplog entries (whoever
//! pushes claims nothing was left out between them), optionally stating the timestamp of the
//! entry right before its first (`after`). So:
//!
//! - where a push overlaps a range, both claim to be complete there, so their entries must
//!   be the same entries, byte for byte; anything else is a conflict;
//! - `after` makes the push start at that (stored) entry, which joins the push to its range;
//! - entries outside every range are new and get stored;
//! - the push's stretch joins every range it overlaps; one that overlaps none starts a range
//!   of its own, so the gap before it is recorded rather than papered over.
//!
//! A cluster's replica sets are cut at one moment, so whether a restore can reach a moment
//! is asked of all their ranges together ([`ClusterCoverage`]).

use std::ops::Range;

use rewind_formats::oplog::EntryMark;

use crate::model::{OplogRange, OplogStream, OplogTs, SnapshotRecord};

/// The range holding `ts`, if any.
pub fn range_containing(ranges: &[OplogRange], ts: OplogTs) -> Option<OplogRange> {
    ranges
        .iter()
        .copied()
        .find(|r| r.first <= ts && ts <= r.last)
}

/// Where the stretch `span` overlaps stored ranges: one window per range it touches, each
/// inside that range and inside `span`.
pub fn overlap_windows(ranges: &[OplogRange], span: OplogRange) -> Vec<OplogRange> {
    ranges
        .iter()
        .filter(|r| r.first <= span.last && span.first <= r.last)
        .map(|r| OplogRange {
            first: r.first.max(span.first),
            last: r.last.min(span.last),
        })
        .collect()
}

/// The pushed entries that lie outside every range, as maximal runs of indices into `marks`.
pub fn new_runs(ranges: &[OplogRange], marks: &[EntryMark]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, mark) in marks.iter().enumerate() {
        if range_containing(ranges, mark.ts).is_some() {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.end == i => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// The ranges once `added` is known complete: it absorbs every range it intersects.
pub fn merge(ranges: &[OplogRange], added: OplogRange) -> Vec<OplogRange> {
    let mut merged = added;
    let mut out: Vec<OplogRange> = Vec::with_capacity(ranges.len() + 1);
    for range in ranges {
        if range.first <= merged.last && merged.first <= range.last {
            merged.first = merged.first.min(range.first);
            merged.last = merged.last.max(range.last);
        } else {
            out.push(*range);
        }
    }
    out.push(merged);
    out.sort_by_key(|r| r.first);
    out
}

/// The gaps between consecutive ranges: `(last entry before, first entry after)`.
pub fn gaps(ranges: &[OplogRange]) -> Vec<(OplogTs, OplogTs)> {
    ranges.windows(2).map(|w| (w[0].last, w[1].first)).collect()
}

/// How a push disagrees with what is stored inside a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// The push holds an entry at this ts that the (complete) stored range does not.
    NotStored(OplogTs),
    /// The stored range holds an entry at this ts that the push skips.
    NotPushed(OplogTs),
    /// Both hold an entry at this ts, with different bytes.
    Differs(OplogTs),
}

/// Compares the pushed and stored entries of one window, in ts order. A pushed entry without
/// bytes (the `after` entry) is only required to exist.
pub fn compare_window<'a>(
    pushed: impl IntoIterator<Item = (OplogTs, Option<&'a [u8]>)>,
    stored: impl IntoIterator<Item = (OplogTs, &'a [u8])>,
) -> Result<(), Disagreement> {
    let mut pushed = pushed.into_iter().peekable();
    let mut stored = stored.into_iter().peekable();
    loop {
        match (pushed.peek().copied(), stored.peek().copied()) {
            (None, None) => return Ok(()),
            (Some((ts, _)), None) => return Err(Disagreement::NotStored(ts)),
            (None, Some((ts, _))) => return Err(Disagreement::NotPushed(ts)),
            (Some((p, _)), Some((s, _))) if p < s => return Err(Disagreement::NotStored(p)),
            (Some((p, _)), Some((s, _))) if s < p => return Err(Disagreement::NotPushed(s)),
            (Some((ts, Some(bytes))), Some((_, kept))) if bytes != kept => {
                return Err(Disagreement::Differs(ts))
            }
            _ => {
                pushed.next();
                stored.next();
            }
        }
    }
}

/// The stored oplog ranges of every replica set of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCoverage {
    pub streams: Vec<(OplogStream, Vec<OplogRange>)>,
}

impl ClusterCoverage {
    /// Whether every replica set's stored oplog holds, without a gap, everything from
    /// `from` to `to`.
    pub fn spans(&self, from: OplogTs, to: OplogTs) -> bool {
        !self.streams.is_empty()
            && self
                .streams
                .iter()
                .all(|(_, ranges)| range_containing(ranges, from).is_some_and(|r| to <= r.last))
    }

    /// The snapshot a restore to `target` starts from: the first of `snapshots` (which must
    /// be newest first) taken at or before `target` from which every replica set's oplog reaches
    /// `target` without a gap.
    ///
    /// The ranges being disjoint, a snapshot reaches `target` exactly when it was taken inside
    /// every replica set's range holding `target`, so only the newest snapshot taken at or
    /// before `target` needs a look: found by bisection, this keeps a cluster page's ranges of
    /// 10,000 snapshots (one call per snapshot and range edge) from scanning the list each
    /// time.
    pub fn base_snapshot<'a>(
        &self,
        snapshots: &'a [SnapshotRecord],
        target: OplogTs,
    ) -> Option<&'a SnapshotRecord> {
        let stretch_start = self.stretch_start(target)?;
        let newest_not_after = snapshots.partition_point(|s| s.created > target);
        snapshots
            .get(newest_not_after)
            .filter(|s| s.created >= stretch_start)
    }

    /// Where the gap-free stretch holding `at` on every replica set starts (`None` when one
    /// has no entry at `at`, or there is no replica set).
    fn stretch_start(&self, at: OplogTs) -> Option<OplogTs> {
        if self.streams.is_empty() {
            return None;
        }
        self.streams
            .iter()
            .map(|(_, ranges)| range_containing(ranges, at).map(|r| r.first))
            .try_fold(OplogTs { secs: 0, inc: 0 }, |start, first| {
                first.map(|f| start.max(f))
            })
    }

    /// How far a restore starting at `from` can reach: the end of the shortest gap-free
    /// stretch from `from` over all replica sets (`None` when one has no entry at `from`).
    pub fn reach(&self, from: OplogTs) -> Option<OplogTs> {
        if self.streams.is_empty() {
            return None;
        }
        self.streams
            .iter()
            .map(|(_, ranges)| range_containing(ranges, from).map(|r| r.last))
            .try_fold(OplogTs::MAX, |reach, last| last.map(|l| reach.min(l)))
    }
}

/// Coverage values for tests of the code that reads it.
#[cfg(test)]
pub(crate) mod test_data {
    use super::ClusterCoverage;
    use crate::ids::ClusterId;
    use crate::model::{OplogRange, OplogStream};

    /// Coverage of one cluster whose replica sets `rs0`, `rs1`, … hold `per_set`'s ranges.
    pub fn coverage_of(per_set: &[&[OplogRange]]) -> ClusterCoverage {
        let cluster = ClusterId::generate();
        let streams = per_set.iter().enumerate().map(|(i, ranges)| {
            let replica_set = format!("rs{i}");
            (
                OplogStream {
                    cluster,
                    replica_set,
                },
                ranges.to_vec(),
            )
        });
        ClusterCoverage {
            streams: streams.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::test_data::coverage_of;
    use super::*;

    fn ts(secs: u32) -> OplogTs {
        OplogTs { secs, inc: 1 }
    }

    fn range(first: u32, last: u32) -> OplogRange {
        OplogRange {
            first: ts(first),
            last: ts(last),
        }
    }

    fn at(secs: u32, inc: u32) -> OplogTs {
        OplogTs { secs, inc }
    }

    #[test]
    fn merging_joins_only_intersecting_ranges() {
        let ranges = vec![range(1, 10), range(20, 30), range(40, 50)];
        assert_eq!(
            merge(&ranges, range(10, 20)),
            vec![range(1, 30), range(40, 50)],
            "sharing an entry at each end closes the gap"
        );
        assert_eq!(
            merge(&ranges, range(11, 19)),
            vec![range(1, 10), range(11, 19), range(20, 30), range(40, 50)],
            "touching in order is not contiguity"
        );
        assert_eq!(
            merge(&ranges, range(60, 70)),
            vec![range(1, 10), range(20, 30), range(40, 50), range(60, 70)]
        );
        assert_eq!(merge(&[], range(5, 6)), vec![range(5, 6)]);
        assert_eq!(gaps(&[range(1, 10), range(20, 30)]), vec![(ts(10), ts(20))]);
    }

    #[test]
    fn windows_and_new_runs_follow_the_ranges() {
        let ranges = vec![range(1, 10), range(20, 30)];
        assert_eq!(
            overlap_windows(&ranges, range(5, 25)),
            vec![range(5, 10), range(20, 25)]
        );
        assert!(overlap_windows(&ranges, range(11, 19)).is_empty());
        let marks: Vec<EntryMark> = [9, 10, 11, 12, 20, 31]
            .iter()
            .enumerate()
            .map(|(i, s)| EntryMark {
                ts: ts(*s),
                offset: i,
                len: 1,
            })
            .collect();
        assert_eq!(new_runs(&ranges, &marks), vec![2..4, 5..6]);
    }

    #[test]
    fn windows_compare_entry_by_entry() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        let stored = [(ts(1), a), (ts(2), b)];
        assert_eq!(
            compare_window([(ts(1), Some(a)), (ts(2), Some(b))], stored),
            Ok(())
        );
        assert_eq!(
            compare_window([(ts(1), None), (ts(2), Some(b))], stored),
            Ok(())
        );
        assert_eq!(
            compare_window([(ts(1), Some(a)), (ts(2), Some(a))], stored),
            Err(Disagreement::Differs(ts(2)))
        );
        assert_eq!(
            compare_window([(ts(2), Some(b))], stored),
            Err(Disagreement::NotPushed(ts(1)))
        );
        assert_eq!(
            compare_window([(ts(1), Some(a)), (ts(3), Some(b))], stored),
            Err(Disagreement::NotPushed(ts(2)))
        );
        assert_eq!(
            compare_window(
                [(ts(1), Some(a)), (ts(2), Some(b)), (ts(3), Some(b))],
                stored
            ),
            Err(Disagreement::NotStored(ts(3)))
        );
    }

    /// A store of entries and ranges driven only by this module's functions, as the domain
    /// drives it.
    #[derive(Default)]
    struct Model {
        entries: BTreeMap<OplogTs, u8>,
        ranges: Vec<OplogRange>,
    }

    impl Model {
        /// Pushes `pushed` (strictly increasing), optionally continuing from `after`.
        fn push(&mut self, pushed: &[(OplogTs, u8)], after: Option<OplogTs>) -> Result<(), ()> {
            let (first, last) = (pushed[0].0, pushed[pushed.len() - 1].0);
            if let Some(after) = after {
                if range_containing(&self.ranges, after).is_none()
                    || !self.entries.contains_key(&after)
                {
                    return Err(());
                }
            }
            let span = OplogRange {
                first: after.unwrap_or(first),
                last,
            };
            for window in overlap_windows(&self.ranges, span) {
                let inside = |t: &OplogTs| window.first <= *t && *t <= window.last;
                let bytes: Vec<[u8; 1]> = pushed.iter().map(|(_, b)| [*b]).collect();
                let mine = after
                    .filter(inside)
                    .map(|t| (t, None))
                    .into_iter()
                    .chain(
                        pushed
                            .iter()
                            .zip(&bytes)
                            .filter(|((t, _), _)| inside(t))
                            .map(|((t, _), b)| (*t, Some(b.as_slice()))),
                    )
                    .collect::<Vec<_>>();
                let kept: Vec<(OplogTs, [u8; 1])> = self
                    .entries
                    .range(window.first..=window.last)
                    .map(|(t, b)| (*t, [*b]))
                    .collect();
                compare_window(mine, kept.iter().map(|(t, b)| (*t, b.as_slice())))
                    .map_err(|_| ())?;
            }
            let marks: Vec<EntryMark> = pushed
                .iter()
                .enumerate()
                .map(|(i, (t, _))| EntryMark {
                    ts: *t,
                    offset: i,
                    len: 1,
                })
                .collect();
            for run in new_runs(&self.ranges, &marks) {
                for (t, b) in &pushed[run] {
                    self.entries.insert(*t, *b);
                }
            }
            self.ranges = merge(&self.ranges, span);
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Windows of one true oplog pushed in any order, some continuing from the entry
        /// before them: every push is accepted, what is stored is exactly what was pushed,
        /// ranges are disjoint and each is complete. A window with one entry altered is
        /// refused wherever it overlaps, and changes nothing.
        #[test]
        fn pushes_of_one_oplog_build_complete_ranges(
            truth_len in 5usize..60,
            windows in prop::collection::vec((0usize..60, 1usize..20, any::<bool>()), 1..12),
            tamper in prop::option::of((0usize..12, 0usize..20)),
        ) {
            let truth: Vec<(OplogTs, u8)> =
                (0..truth_len).map(|i| (ts(i as u32 * 2 + 1), (i * 7 % 251) as u8)).collect();
            let mut model = Model::default();
            let mut pushed_any = std::collections::BTreeSet::new();
            let mut tampered_any = false;
            for (n, (start, len, continues)) in windows.into_iter().enumerate() {
                let start = start % truth_len;
                let end = (start + len).min(truth_len);
                let mut window = truth[start..end].to_vec();
                let after = (continues && start > 0 && model.entries.contains_key(&truth[start - 1].0))
                    .then(|| truth[start - 1].0);
                let altered = tamper.filter(|(w, at)| *w == n && *at < window.len()).map(|(_, at)| at);
                if let Some(at) = altered {
                    window[at].1 ^= 0xff;
                }
                // An altered entry is detectable only where a complete range already holds it.
                let detectable = altered.is_some_and(|at| range_containing(&model.ranges, window[at].0).is_some());
                let before = (model.entries.clone(), model.ranges.clone());
                let result = model.push(&window, after);
                if detectable {
                    prop_assert!(result.is_err());
                    prop_assert_eq!(&(model.entries.clone(), model.ranges.clone()), &before);
                } else {
                    prop_assert!(result.is_ok());
                    pushed_any.extend(window.iter().map(|(t, _)| *t));
                }
                if altered.is_some() {
                    // What the store holds may no longer be `truth`: stop here.
                    tampered_any = true;
                    break;
                }
            }
            for t in &pushed_any {
                prop_assert!(model.entries.contains_key(t));
            }
            prop_assert!(model.ranges.windows(2).all(|w| w[0].last < w[1].first));
            for r in &model.ranges {
                for (t, b) in truth.iter().filter(|(t, _)| r.first <= *t && *t <= r.last) {
                    prop_assert!(model.entries.contains_key(t), "range {:?} is complete", r);
                    if !tampered_any {
                        prop_assert_eq!(model.entries.get(t), Some(b));
                    }
                }
            }
        }
    }

    #[test]
    fn every_replica_set_must_span_the_stretch_without_a_gap() {
        let one = coverage_of(&[&[range(100, 200), range(300, 400)]]);
        assert!(one.spans(at(150, 1), at(200, 1)));
        assert!(!one.spans(at(150, 1), at(200, 2)), "past the end");
        assert!(!one.spans(at(150, 1), at(350, 1)), "across the gap");
        assert!(one.spans(at(300, 1), at(350, 0)));
        let two = coverage_of(&[&[range(100, 200)], &[range(120, 180)]]);
        assert!(two.spans(at(130, 0), at(180, 1)));
        assert!(!two.spans(at(110, 0), at(150, 0)), "one set starts later");
        assert_eq!(two.reach(at(130, 0)), Some(at(180, 1)));
        assert_eq!(two.reach(at(110, 0)), None);
        assert!(!coverage_of(&[]).spans(at(1, 0), at(1, 0)));
        assert_eq!(coverage_of(&[]).reach(at(1, 0)), None);
    }
}
