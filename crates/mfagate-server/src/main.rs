use clap::Parser;
use mfagate_server::cli::{self, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mfagate: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
