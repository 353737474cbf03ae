//! `rewind-devtools`: generate test data directories for Rewind's tests and benchmarks.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Test-data tools for Rewind")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a dbpath-shaped directory of about SIZE_MIB MiB.
    GenDbpath {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        size_mib: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write a SIZE_MIB file of one random BLOCK_MIB block repeated (deduplicates to one block).
    Repeated {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        size_mib: u64,
        #[arg(long, default_value_t = 64)]
        block_mib: usize,
    },
    /// Generate a file of ENTRIES oplog entries (mongodump's oplog.bson format) whose
    /// timestamps span HOURS hours up to END (Unix seconds, default now).
    GenOplog {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        entries: u64,
        #[arg(long, default_value_t = 24)]
        hours: u32,
        #[arg(long)]
        end: Option<u32>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Overwrite WRITES scattered regions of WRITE_BYTES in the data files, in place.
    Scatter {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        writes: u32,
        #[arg(long, default_value_t = 65536)]
        write_bytes: u64,
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::GenDbpath {
            dir,
            size_mib,
            seed,
        } => {
            let files = rewind_devtools::generate_dbpath(&dir, size_mib << 20, seed)?;
            println!("wrote {} files under {}", files.len(), dir.display());
        }
        Command::Repeated {
            file,
            size_mib,
            block_mib,
        } => rewind_devtools::write_repeated(&file, size_mib << 20, block_mib << 20, 3)?,
        Command::GenOplog {
            out,
            entries,
            hours,
            end,
            seed,
        } => {
            let end = match end {
                Some(end) => end,
                None => u32::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs(),
                )?,
            };
            let spec = rewind_devtools::oplog::OplogSpec {
                entries,
                span_secs: hours * 3600,
                end_secs: end,
                seed,
            };
            let s = rewind_devtools::oplog::write_oplog(&out, spec)?;
            println!(
                "wrote {} entries ({} bytes) from {}:{} to {}:{} to {}",
                s.entries,
                s.bytes,
                s.first.0,
                s.first.1,
                s.last.0,
                s.last.1,
                out.display()
            );
        }
        Command::Scatter {
            dir,
            writes,
            write_bytes,
            seed,
        } => {
            let changed = rewind_devtools::scatter_overwrites(&dir, writes, write_bytes, seed)?;
            println!("{changed}");
        }
    }
    Ok(())
}
