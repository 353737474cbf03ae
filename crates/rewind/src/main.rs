use clap::Parser;

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
