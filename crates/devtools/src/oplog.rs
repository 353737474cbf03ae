//! A generator of oplog files: concatenated BSON entries as `mongodump` writes `oplog.bson`,
//! shaped like a MongoDB 4.2+ replica set's oplog (`op`, `ns`, `ui`, `o`, `o2`, `ts`, `t`,
//! `v`, `wall` in that order; no `h`, which 4.2 dropped), for tests and benchmarks.
//!
//! The mix: inserts of orders and events, `$v: 2` diff updates of recent orders, deletes of
//! sessions, and a few periodic no-ops. Timestamps are spread evenly over the span, with
//! increments counting up within each second. The same spec always yields the same bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use bson::oid::ObjectId;
use bson::raw::RawDocumentBuf;
use bson::spec::BinarySubtype;
use bson::{rawdoc, Binary, DateTime, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OplogSpec {
    pub entries: u64,
    /// The span the timestamps cover, ending at `end_secs`.
    pub span_secs: u32,
    pub end_secs: u32,
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplogFileSummary {
    pub entries: u64,
    pub bytes: u64,
    /// `(seconds, increment)` of the first and last entries.
    pub first: (u32, u32),
    pub last: (u32, u32),
}

const CITIES: [&str; 6] = ["Paris", "Lyon", "Berlin", "Madrid", "Oslo", "Lisbon"];
const STATUSES: [&str; 4] = ["shipped", "paid", "cancelled", "delivered"];
const EVENT_KINDS: [&str; 5] = ["login", "view", "search", "checkout", "logout"];
/// Recent order ids kept for updates.
const RECENT_IDS: usize = 4096;

/// The entries of a spec, in order: `(seconds, increment, bytes)`.
pub struct OplogGenerator {
    spec: OplogSpec,
    rng: StdRng,
    next: u64,
    last_secs: u32,
    inc: u32,
    uuids: [[u8; 16]; 4],
    recent: Vec<ObjectId>,
}

impl OplogGenerator {
    pub fn new(spec: OplogSpec) -> OplogGenerator {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mut uuids = [[0u8; 16]; 4];
        for uuid in &mut uuids {
            rng.fill_bytes(uuid);
        }
        OplogGenerator {
            spec,
            rng,
            next: 0,
            last_secs: 0,
            inc: 0,
            uuids,
            recent: Vec::with_capacity(RECENT_IDS),
        }
    }

    fn object_id(&mut self, secs: u32) -> ObjectId {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        self.rng.fill_bytes(&mut bytes[4..]);
        ObjectId::from_bytes(bytes)
    }

    fn ui(&self, collection: usize) -> Binary {
        Binary {
            subtype: BinarySubtype::Uuid,
            bytes: self.uuids[collection].to_vec(),
        }
    }

    fn entry(&mut self, secs: u32, inc: u32) -> RawDocumentBuf {
        let ts = Timestamp {
            time: secs,
            increment: inc,
        };
        let wall = DateTime::from_millis(i64::from(secs) * 1000 + self.rng.gen_range(0..1000));
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=39 => {
                let id = self.object_id(secs);
                if self.recent.len() < RECENT_IDS {
                    self.recent.push(id);
                } else {
                    let at = self.rng.gen_range(0..RECENT_IDS);
                    self.recent[at] = id;
                }
                let mut items = bson::raw::RawArrayBuf::new();
                for _ in 0..self.rng.gen_range(1..=4) {
                    items.push(rawdoc! {
                        "sku": format!("sku-{:05}", self.rng.gen_range(0..50_000)),
                        "qty": self.rng.gen_range(1..10),
                        "price": f64::from(self.rng.gen_range(100..100_000)) / 100.0,
                    });
                }
                let customer = rawdoc! {
                    "name": format!("customer-{}", self.rng.gen_range(0..1_000_000)),
                    "city": CITIES[self.rng.gen_range(0..CITIES.len())],
                };
                rawdoc! {
                    "op": "i",
                    "ns": "shop.orders",
                    "ui": self.ui(0),
                    "o": {
                        "_id": id,
                        "customer": customer,
                        "items": items,
                        "total": f64::from(self.rng.gen_range(100..1_000_000)) / 100.0,
                        "status": "pending",
                        "created": wall,
                    },
                    "o2": { "_id": id },
                    "ts": ts,
                    "t": 1_i64,
                    "v": 2_i64,
                    "wall": wall,
                }
            }
            40..=54 => {
                let id = self.object_id(secs);
                rawdoc! {
                    "op": "i",
                    "ns": "app.events",
                    "ui": self.ui(1),
                    "o": {
                        "_id": id,
                        "kind": EVENT_KINDS[self.rng.gen_range(0..EVENT_KINDS.len())],
                        "user": self.rng.gen_range(0..5_000_000_i64),
                        "at": wall,
                        "meta": {
                            "agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                            "ip": format!("10.{}.{}.{}", self.rng.gen_range(0..255), self.rng.gen_range(0..255), self.rng.gen_range(1..255)),
                        },
                    },
                    "o2": { "_id": id },
                    "ts": ts,
                    "t": 1_i64,
                    "v": 2_i64,
                    "wall": wall,
                }
            }
            55..=84 if !self.recent.is_empty() => {
                let id = self.recent[self.rng.gen_range(0..self.recent.len())];
                rawdoc! {
                    "op": "u",
                    "ns": "shop.orders",
                    "ui": self.ui(0),
                    "o": {
                        "$v": 2,
                        "diff": { "u": {
                            "status": STATUSES[self.rng.gen_range(0..STATUSES.len())],
                            "updated": wall,
                        } },
                    },
                    "o2": { "_id": id },
                    "ts": ts,
                    "t": 1_i64,
                    "v": 2_i64,
                    "wall": wall,
                }
            }
            85..=96 => {
                let id = self.object_id(secs.saturating_sub(3600));
                rawdoc! {
                    "op": "d",
                    "ns": "app.sessions",
                    "ui": self.ui(2),
                    "o": { "_id": id },
                    "ts": ts,
                    "t": 1_i64,
                    "v": 2_i64,
                    "wall": wall,
                }
            }
            _ => rawdoc! {
                "op": "n",
                "ns": "",
                "o": { "msg": "periodic noop" },
                "ts": ts,
                "t": 1_i64,
                "v": 2_i64,
                "wall": wall,
            },
        }
    }
}

impl Iterator for OplogGenerator {
    type Item = (u32, u32, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.spec.entries {
            return None;
        }
        let start = self.spec.end_secs - self.spec.span_secs;
        let offset = u128::from(self.next) * u128::from(self.spec.span_secs)
            / u128::from(self.spec.entries.max(1));
        let secs = start + offset as u32;
        self.inc = if secs == self.last_secs {
            self.inc + 1
        } else {
            1
        };
        self.last_secs = secs;
        self.next += 1;
        let entry = self.entry(secs, self.inc);
        Some((secs, self.inc, entry.into_bytes()))
    }
}

/// Writes the entries of `spec` to `path`.
pub fn write_oplog(path: &Path, spec: OplogSpec) -> Result<OplogFileSummary> {
    ensure!(spec.entries > 0, "generate at least one entry");
    ensure!(
        spec.span_secs < spec.end_secs,
        "the span must end after the epoch"
    );
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut summary = OplogFileSummary {
        entries: 0,
        bytes: 0,
        first: (0, 0),
        last: (0, 0),
    };
    for (secs, inc, bytes) in OplogGenerator::new(spec) {
        if summary.entries == 0 {
            summary.first = (secs, inc);
        }
        summary.last = (secs, inc);
        summary.entries += 1;
        summary.bytes += bytes.len() as u64;
        out.write_all(&bytes)?;
    }
    out.flush()?;
    Ok(summary)
}

/// One insert entry at `(secs, inc)` carrying `note`: for tests that craft files entry by
/// entry (out of order, duplicated, altered).
pub fn oplog_entry(secs: u32, inc: u32, note: &str) -> Vec<u8> {
    rawdoc! {
        "op": "i",
        "ns": "test.notes",
        "o": { "_id": i64::from(secs) * 100_000 + i64::from(inc), "note": note },
        "ts": Timestamp { time: secs, increment: inc },
        "t": 1_i64,
        "v": 2_i64,
        "wall": DateTime::from_millis(i64::from(secs) * 1000),
    }
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_spec_gives_the_same_entries_in_order() {
        let spec = OplogSpec {
            entries: 2_000,
            span_secs: 600,
            end_secs: 1_700_000_000,
            seed: 4,
        };
        let a: Vec<_> = OplogGenerator::new(spec).collect();
        let b: Vec<_> = OplogGenerator::new(spec).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2_000);
        assert_eq!((a[0].0, a[0].1), (1_700_000_000 - 600, 1));
        assert!(a.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        let mean = a.iter().map(|e| e.2.len()).sum::<usize>() / a.len();
        assert!((120..400).contains(&mean), "mean entry size {mean}");
        for (_, _, bytes) in &a {
            let doc = bson::RawDocument::from_bytes(bytes).unwrap();
            assert!(doc.get_timestamp("ts").is_ok());
            assert!(doc.get_str("op").is_ok());
        }
    }
}
