//! The load driver: a fixed number of workers, each running one operation after another over
//! keep-alive connections for a fixed time; latencies recorded per operation.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub concurrency: usize,
    /// Operations (requests or flows) per second.
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub operations: u64,
    pub errors: u64,
}

/// Runs `op(worker, iteration)` on `concurrency` workers for `duration`. An `Err` counts as an
/// error; `Ok(false)` means the worker has nothing left to do (e.g. seeded users ran out).
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, op: Arc<F>) -> LevelResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let start = Instant::now();
    // Wall-clock time on purpose: the trace's lines are lined up with the server's log.
    #[allow(clippy::disallowed_methods)]
    let start_unix = std::time::SystemTime::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut started = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut first_error = None;
            let mut iteration = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                match op(worker, iteration).await {
                    Ok(true) => {
                        latencies.push(began.elapsed().as_micros() as u64);
                        started.push(began.duration_since(start).as_micros() as u64);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                iteration += 1;
            }
            (latencies, started, errors, first_error)
        }));
    }
    let mut latencies = Vec::new();
    let mut trace = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((l, s, e, first)) = worker.await {
            trace.extend(s.iter().copied().zip(l.iter().copied()));
            latencies.extend(l);
            errors += e;
            if let Some(first) = first {
                eprintln!("    first error of a worker: {first}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(0.001);
    write_trace(concurrency, start_unix, trace);
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[index.min(latencies.len() - 1)] as f64 / 1000.0
    };
    LevelResult {
        concurrency,
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        operations: latencies.len() as u64,
        errors,
    }
}

/// With `MFAGATE_BENCH_LATENCY_TRACE=FILE`, appends every operation of the level as a line
/// `concurrency start_us latency_us` (start from the level's start), in start order, after a
/// line `# level start unix_us` (to line them up with the server's log): to see *when* the slow
/// operations of a level happened (warm-up, a checkpoint, the clean-up).
fn write_trace(concurrency: usize, start_unix: std::time::SystemTime, mut trace: Vec<(u64, u64)>) {
    let Ok(path) = std::env::var("MFAGATE_BENCH_LATENCY_TRACE") else {
        return;
    };
    trace.sort_unstable();
    let mut text = String::with_capacity(trace.len() * 20);
    let unix_us = start_unix
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    text.push_str(&format!("# level start {unix_us}\n"));
    for (began, latency) in trace {
        text.push_str(&format!("{concurrency} {began} {latency}\n"));
    }
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(error) = written {
        eprintln!("    could not write the latency trace to {path}: {error}");
    }
}
