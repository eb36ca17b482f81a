use clap::Parser;
use mfagate_server::cli::{self, Cli};

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers on two or more threads, where glibc's malloc spends noticeable time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    without_huge_pages();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mfagate: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mfagate: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, before the runtime's threads allocate.
///
/// mimalloc asks the kernel for huge pages on its arenas (`MADV_HUGEPAGE`), so on a kernel set
/// to `madvise` (Debian's default) each thread's first allocations fault in 2 MiB at once: an
/// idle server was 19.5 MiB of anonymous memory, 16 of it huge pages, against 6.8 MiB without
/// (measured 2026-12-07; `grep AnonHugePages /proc/PID/smaps_rollup`). The heap is a few
/// megabytes, so the TLB gains nothing worth that. (`MIMALLOC_ALLOW_THP=0` does the same, but is
/// read when the process loads, before any code of ours runs.)
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and changes nothing
    // but this process's paging; its result is ignored (an old kernel without it keeps THP).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
