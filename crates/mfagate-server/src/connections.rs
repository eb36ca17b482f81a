//! Serving HTTP/1 connections with limits, so that idle, slow or too many clients cannot take
//! the server down (each open socket is a file descriptor and a task).
//!
//! - **Header timeout**: a client has `header_timeout_seconds` to send a request's headers,
//!   counted from the connection's start and, on a keep-alive connection, from the end of the
//!   previous answer; so it also closes connections left idle between requests.
//! - **Body timeout**: `body_timeout_seconds` to send the body (applied in `app`'s layers).
//! - **Connection cap**: at most `max_connections` open; further clients wait in the kernel's
//!   listen backlog until one closes, rather than failing with "too many open files".
//! - The soft file-descriptor limit is raised to the hard limit at start-up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::settings::HttpLimits;

/// How long in-flight requests may take to finish once a shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their request in flight (at most `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let header_timeout = Duration::from_secs(limits.header_timeout_seconds);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory for a moment: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection; retrying shortly (raise the file-descriptor limit or lower MFAGATE_MAX_CONNECTIONS)");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // Only ever sent `true`, when the server stops.
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    let _ = stop.send(true);
    // Every slot back means every connection has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, and says so when the cap on
/// connections cannot fit under it.
pub fn raise_open_files_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if read != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        // The database, the log and the listener need descriptors of their own.
        let needed = libc::rlim_t::try_from(max_connections)
            .unwrap_or(libc::rlim_t::MAX)
            .saturating_add(64);
        if limit.rlim_cur < needed {
            tracing::warn!(
                open_files = limit.rlim_cur,
                max_connections,
                "the open-files limit is below MFAGATE_MAX_CONNECTIONS + 64; raise it (ulimit -n) or lower MFAGATE_MAX_CONNECTIONS"
            );
        }
    }
}
