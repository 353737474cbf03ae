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
