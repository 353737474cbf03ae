use clap::Parser;

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers on whichever runtime thread polls it, and glibc's malloc spent about 15 % of the
/// server's CPU on that under load (see docs/benchmarks.md, authenticated throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = rewind_cli::commands::Cli::parse();
    match rewind_cli::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
