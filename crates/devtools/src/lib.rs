//! Generators of data directories shaped like a MongoDB dbpath, for tests and benchmarks.
//!
//! The layout follows a WiredTiger dbpath: `WiredTiger*` metadata files, `_mdb_catalog.wt`,
//! `sizeStorer.wt`, `collection-*.wt` and `index-*.wt` data files, `journal/` and
//! `diagnostic.data/`. Content is a deterministic mix of incompressible bytes (like
//! compressed WiredTiger pages) and compressible document-like text, so dedup and
//! compression are both exercised. The same seed always yields the same bytes.

pub mod oplog;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Bytes written per generator call; keeps memory flat for any file size.
const WRITE_BLOCK: usize = 1 << 20;

/// Fills `buf` with document-like text that compresses roughly 4:1.
fn fill_compressible(rng: &mut StdRng, buf: &mut [u8]) {
    const WORDS: [&str; 12] = [
        "\"_id\":",
        "ObjectId(",
        "\"name\":\"",
        "\"status\":\"active\"",
        "\"qty\":",
        "\"tags\":[",
        "\"created\":ISODate(",
        "\"price\":",
        "\"customer\":{",
        "\"city\":\"Paris\"",
        "},",
        "\"sku\":\"",
    ];
    let mut at = 0;
    while at < buf.len() {
        let word = WORDS[rng.gen_range(0..WORDS.len())].as_bytes();
        let number = rng.gen_range(0..100_000u32).to_string();
        for piece in [word, number.as_bytes(), b" "] {
            let n = piece.len().min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&piece[..n]);
            at += n;
        }
    }
}

/// Writes `size` bytes to `path`, `compressible` deciding the content's nature.
pub fn write_file(path: &Path, size: u64, compressible: bool, rng: &mut StdRng) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut buf = vec![0u8; WRITE_BLOCK];
    let mut left = size;
    while left > 0 {
        let n = left.min(WRITE_BLOCK as u64) as usize;
        if compressible {
            fill_compressible(rng, &mut buf[..n]);
        } else {
            rng.fill_bytes(&mut buf[..n]);
        }
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Generates a dbpath of about `total_bytes` under `dir`; returns the files written.
///
/// About 60% of the data bytes are incompressible, 40% compressible; file sizes range from
/// a few bytes (metadata) to a large share of the total (the biggest collections).
pub fn generate_dbpath(dir: &Path, total_bytes: u64, seed: u64) -> Result<Vec<PathBuf>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut files = Vec::new();
    let mut emit = |name: &str, size: u64, compressible: bool, rng: &mut StdRng| -> Result<()> {
        let path = dir.join(name);
        write_file(&path, size, compressible, rng)?;
        files.push(path);
        Ok(())
    };
    fs::create_dir_all(dir)?;
    emit("WiredTiger", 50, true, &mut rng)?;
    emit("WiredTiger.lock", 21, true, &mut rng)?;
    emit("WiredTiger.turtle", 1_400, true, &mut rng)?;
    emit("mongod.lock", 0, true, &mut rng)?;
    emit("storage.bson", 114, false, &mut rng)?;
    emit("_mdb_catalog.wt", 36_864, true, &mut rng)?;
    emit("sizeStorer.wt", 20_480, false, &mut rng)?;
    emit("WiredTigerHS.wt", 4_096, false, &mut rng)?;
    let meta_size = (total_bytes / 100).max(4096);
    emit("WiredTiger.wt", meta_size, false, &mut rng)?;
    let journal = (total_bytes / 50).max(1024);
    emit("journal/WiredTigerLog.0000000001", journal, false, &mut rng)?;
    emit(
        "journal/WiredTigerPreplog.0000000001",
        4_096,
        false,
        &mut rng,
    )?;
    for i in 0..3u64 {
        emit(
            &format!("diagnostic.data/metrics.2026-11-28T0{i}-00-00Z-00000"),
            100_000 + i * 50_000,
            true,
            &mut rng,
        )?;
    }
    let mut left = total_bytes.saturating_sub(meta_size + journal + 400_000);
    let mut n = 0u32;
    while left > 0 {
        // Sizes shrink geometrically: a few large collections and many small ones.
        let size = if left < 64 * 1024 {
            left
        } else {
            (left / 3).max(4096 + rng.gen_range(0..60_000))
        };
        let kind = if n % 3 == 2 { "index" } else { "collection" };
        emit(&format!("{kind}-{n}-{seed}.wt"), size, n % 5 < 2, &mut rng)?;
        left -= size;
        n += 1;
    }
    Ok(files)
}

/// Overwrites `writes` regions of `write_bytes` (4 KiB aligned) at pseudo-random places in
/// the directory's `collection-*`/`index-*` files, in place, as WiredTiger page writes do.
/// Returns the bytes changed.
pub fn scatter_overwrites(dir: &Path, writes: u32, write_bytes: u64, seed: u64) -> Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data_files: Vec<(PathBuf, u64)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with("collection-") || name.starts_with("index-")) && name.ends_with(".wt")
        })
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .filter(|(_, len)| *len >= write_bytes)
        .collect();
    data_files.sort();
    let total: u64 = data_files.iter().map(|(_, l)| l).sum();
    anyhow::ensure!(
        total > 0,
        "no data file large enough for {write_bytes}-byte writes"
    );
    let mut buf = vec![0u8; write_bytes as usize];
    let mut changed = 0;
    for _ in 0..writes {
        // Pick a file with probability proportional to its size.
        let mut pick = rng.gen_range(0..total);
        let (path, len) = data_files
            .iter()
            .find(|(_, l)| {
                let hit = pick < *l;
                pick = pick.saturating_sub(*l);
                hit
            })
            .context("no file picked")?;
        let slots = (len - write_bytes) / 4096;
        let offset = rng.gen_range(0..=slots) * 4096;
        rng.fill_bytes(&mut buf);
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&buf)?;
        changed += write_bytes;
    }
    Ok(changed)
}

/// Writes a file of `size` bytes made of one pseudo-random block of `block` bytes repeated:
/// a large file whose chunks deduplicate to about one block, for memory benchmarks that need
/// a big snapshot without storing it.
pub fn write_repeated(path: &Path, size: u64, block: usize, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pattern = vec![0u8; block];
    rng.fill_bytes(&mut pattern);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block as u64) as usize;
        file.write_all(&pattern[..n])?;
        left -= n as u64;
    }
    Ok(())
}
