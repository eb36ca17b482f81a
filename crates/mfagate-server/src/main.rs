use clap::Parser;
use mfagate_server::cli::{self, Cli};

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers on two or more threads, where glibc's malloc spends noticeable time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
