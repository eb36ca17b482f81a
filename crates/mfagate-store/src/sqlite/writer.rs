//! Group commit for SQLite: every write runs on one connection, on a thread of its own, and the
//! writes that arrive while a commit is being synced to disk are run together in the next
//! transaction and share its fsync.
//!
//! Why: with `synchronous = FULL` each commit waits for the disk, and SQLite allows one writer
//! at a time, so one commit per write caps the whole server at the disk's sync rate. Batching
//! keeps the guarantee a caller relies on (its answer is sent only after the commit that holds
//! its changes is durable) while the sync cost is paid once per batch, not once per write.
//!
//! Why rusqlite here while reads use sqlx: a sqlx SQLite connection runs its statements on a
//! thread of its own, so every statement cost two thread wake-ups (about 0.1 ms on two busy
//! cores), and the writer's batches were made of those waits. Here the writer thread calls
//! SQLite itself; a statement costs what SQLite takes to run it. Both crates link the one
//! `libsqlite3-sys`.
//!
//! With `full_sync` the sync is not SQLite's own (`synchronous = FULL` would make the writer wait
//! for the disk inside every `COMMIT`, and run no statement meanwhile): the writer commits with
//! `synchronous = NORMAL`, which writes the WAL frames without syncing them, and hands the
//! batch's answers to a thread of its own (`sync_continuously`) that syncs the WAL file and
//! only then answers. While one batch is being synced the writer runs the next, so the disk's
//! sync time and the statements' time overlap instead of adding up. An answered write is as
//! durable as under `FULL` (its frames were synced before the answer); other requests may read
//! a batch's changes a millisecond before they are durable, as they may under `NORMAL`, but
//! every write that depends on them is in a later batch, and is answered after a later sync.
//! Measured during logins with TOTP (S2, 30,000 accounts): FULL 2,120 flows/s, NORMAL 2,780.
//!
//! A write (a *job*) runs inside its own `SAVEPOINT`, so a job that fails undoes only its own
//! changes; the other jobs of the batch commit. Jobs run one after another on the connection,
//! so a conditional `UPDATE ... WHERE` in one job sees every earlier job's changes: one-time use
//! stays one-time within a batch too.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use mfagate_core::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
use crate::sqlite::statements::execute;
use crate::sqlite::statements::{map_error, open};

/// The most jobs one transaction takes; a bound on how long one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// How the writer opens the database file.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub path: PathBuf,
    /// `synchronous = FULL` (an answered write survives a power cut) or `NORMAL`.
    pub full_sync: bool,
}

/// Tells a job's caller how its batch ended (committed and durable, or the error).
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// What a job left after running: whether to keep its changes, and how to answer its caller
/// once the batch's commit is known.
struct Finished {
    keep: bool,
    answer: Answer,
}

type Job = Box<dyn FnOnce(&Connection) -> Finished + Send>;

/// What the writer thread is asked to do, in order.
enum Command {
    Run(Job),
    /// Finish what came before, close the connection, then say so.
    Stop(oneshot::Sender<()>),
}

/// The handle writes are queued through; cheap to clone.
#[derive(Clone)]
pub struct GroupWriter {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter").finish_non_exhaustive()
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable(
        "the SQLite writer stopped; see the log for why, and restart mfagate".into(),
    )
}

/// Opens the writer's connection and sets it up: WAL, the sync level, foreign keys, no
/// checkpoint on commit (see `checkpoint_continuously`), a larger page cache.
fn open_writer(options: &WriterOptions) -> rusqlite::Result<Connection> {
    let connection = open(&options.path, false)?;
    // The writer switches the file to WAL; readers opened later find it so.
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // NORMAL either way: with `full_sync` the WAL is synced after each commit by the sync
    // thread, before any of the batch's callers is answered (see the module's comment).
    // Checkpoints sync the WAL and the database file under NORMAL as under FULL.
    connection.execute_batch("PRAGMA synchronous = NORMAL")?;
    connection.execute_batch(
        // SQLite's own checkpoint (every 1000 pages, inside a commit) would copy the WAL back,
        // with its reads, writes and fsync, while every write queued behind that commit waits.
        "PRAGMA wal_autocheckpoint = 0;
         PRAGMA foreign_keys = ON;
         -- The WAL file shrinks back to this after a busy spell.
         PRAGMA journal_size_limit = 67108864;
         -- Statement journals (a multi-row write inside a batch's transaction keeps one, to undo
         -- just that statement) in memory, not in a file created and deleted for each.
         PRAGMA temp_store = MEMORY;",
    )?;
    // The page cache stays at SQLite's default (2 MiB; misses are read from the OS's cache).
    // The pager's SQLite (3.46) scans the whole hash table of its page cache at the end of
    // every write transaction, so a larger cache costs time on every commit: at 32 MiB this
    // was 4 % of the machine's CPU during logins, and S2 went from 2,450 to 2,760 flows/s
    // with the default. (A micro-benchmark of 8 inserts per transaction: 139 us at 2 MiB,
    // 188 us at 32 MiB, 396 us at 128 MiB.)
    //
    // Every statement the store writes with stays prepared.
    connection.set_prepared_statement_cache_capacity(128);
    Ok(connection)
}

impl GroupWriter {
    /// Opens the writer connection and starts the thread that runs the batches.
    ///
    /// The batches run on a thread of their own rather than as a task among the request
    /// handlers: SQLite's calls block, and the write lock should be held only as long as the
    /// statements take, not while the writer waits its turn behind ready request handlers.
    pub async fn start(options: WriterOptions) -> Result<Self, StoreError> {
        let (commands, queue) = mpsc::unbounded_channel();
        let (opened, connected) = oneshot::channel();
        std::thread::Builder::new()
            .name("mfagate-sqlite-writer".into())
            .spawn(move || match open_writer(&options) {
                Ok(connection) => {
                    // The WAL is there once the writer has switched to it (`open_writer`).
                    let syncs = if options.full_sync {
                        match start_syncs(&options.path) {
                            Ok(syncs) => Some(syncs),
                            Err(error) => {
                                let _ = opened.send(Err(error));
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    let _ = opened.send(Ok(()));
                    let tail_ready = Arc::new(AtomicBool::new(false));
                    let (stop_checkpoints, stopped) = std_mpsc::channel::<()>();
                    let path = options.path.clone();
                    let checkpoints = {
                        let tail_ready = tail_ready.clone();
                        std::thread::Builder::new()
                            .name("mfagate-sqlite-checkpoint".into())
                            .spawn(move || checkpoint_continuously(&path, &tail_ready, &stopped))
                    };
                    let (to_sync, sync_thread) = syncs.unzip();
                    let stop = run_batches(&connection, queue, &tail_ready, to_sync.as_ref());
                    // Every committed batch is synced and answered before the connection closes
                    // and the writer says it stopped.
                    drop(to_sync);
                    if let Some(thread) = sync_thread {
                        let _ = thread.join();
                    }
                    drop(connection);
                    if let Some(done) = stop {
                        let _ = done.send(());
                    }
                    drop(stop_checkpoints);
                    if let Ok(checkpoints) = checkpoints {
                        let _ = checkpoints.join();
                    }
                }
                Err(error) => {
                    let _ = opened.send(Err(error.to_string()));
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        match connected.await {
            Ok(Ok(())) => Ok(Self { commands }),
            Ok(Err(error)) => Err(StoreError::Unavailable(format!(
                "cannot open the SQLite database for writing: {error}"
            ))),
            Err(_) => Err(writer_gone()),
        }
    }

    /// Runs `job` in the next batch, inside a savepoint of its own, and answers once that batch
    /// is committed (or the job's error, or the commit's). A job that fails is rolled back to its
    /// savepoint; the rest of the batch commits.
    pub async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |connection| {
            let result = job(connection).map_err(map_error);
            Finished {
                keep: result.is_ok(),
                answer: Box::new(move |committed| {
                    // The caller may have gone (request cancelled): nobody to tell.
                    let _ = reply.send(committed.and(result));
                }),
            }
        });
        self.commands
            .send(Command::Run(job))
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs the writes queued so far, then closes the connection; later writes fail.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

/// How often the WAL is copied back into the database file while the server runs.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// A PASSIVE checkpoint; answers the frames it found in the WAL (those written before it began)
/// and how many of them have been copied back, and reports both with its time at debug level
/// to `mfagate_store::checkpoint`.
fn checkpoint(connection: &Connection, by: &'static str) -> Option<(i64, i64)> {
    let started = std::time::Instant::now();
    match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    }) {
        Ok((wal_pages, copied)) => {
            tracing::debug!(
                target: "mfagate_store::checkpoint",
                by,
                wal_pages,
                copied,
                elapsed_us = started.elapsed().as_micros() as u64,
            );
            Some((wal_pages, copied))
        }
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint failed; trying again shortly");
            None
        }
    }
}

/// The checkpointer repeats its copy (up to `MAX_PASSES`) while a pass finds more than this
/// many frames written during the one before: what is left for the writer to copy, holding
/// every write, is then at most about this many pages.
const SMALL_REMAINDER: i64 = 128;
const MAX_PASSES: u32 = 4;

/// Keeps the WAL short in two steps, every `CHECKPOINT_INTERVAL` until `stop` is dropped.
///
/// 1. Here, on a connection of its own, a PASSIVE checkpoint copies what the WAL holds into the
///    database file, alongside the writer and the readers, waiting for neither; then this
///    thread syncs the database file itself (SQLite would not: see the loop).
/// 2. Under steady writes that copy never quite reaches the end of the WAL, and SQLite only
///    starts the WAL over once all of it is copied. So `tail_ready` asks the writer to copy the
///    little that came in meanwhile, between two batches (`run_batches`); its next transaction
///    then starts the WAL from the beginning. Without step 2 the WAL grows without bound.
///
///    That copy holds the writer until the database file is synced, so it must be small. With
///    `RUST_LOG=mfagate_store::checkpoint=debug`, refreshes at 300,000 accounts showed a single
///    pass here leaving 400-700 frames (those written while it copied) and the writer's copy of
///    them taking 27 ms every 200 ms, most of S4's p99 at a million. So this side copies again
///    until a pass finds only a few frames new (`SMALL_REMAINDER`); each pass is shorter than
///    the one before, as long as copying is faster than writing. (Asking the writer only once a
///    second instead made the WAL 200 MB long and each of its copies 30-90 ms.) And each pass
///    is synced here, so the writer's sync holds only the tail's pages: at a million accounts
///    its copy went from a median of 35-60 ms to 8-9 ms, and S7's p99 from about 100 ms to
///    about 63 (2026-12-05, `bench/results/stalls-2026-12-05.json`).
fn checkpoint_continuously(path: &Path, tail_ready: &AtomicBool, stop: &std_mpsc::Receiver<()>) {
    let mut connection = None;
    let mut database_file = None;
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        if connection.is_none() {
            connection = match open(path, false) {
                Ok(connection) => Some(connection),
                Err(error) => {
                    // The writer then checkpoints all of it itself: slower, never unbounded.
                    tracing::warn!(%error, "cannot open a connection for WAL checkpoints; the writer does them meanwhile");
                    None
                }
            };
        }
        if let Some(connection) = &connection {
            let mut copied_before = None;
            for _ in 0..MAX_PASSES {
                let Some((wal_pages, copied)) = checkpoint(connection, "checkpointer") else {
                    break;
                };
                // SQLite syncs the database file only when a checkpoint finds, as it ends, that
                // it copied the whole WAL; under steady writes more has always come in by then,
                // so no pass syncs, and the writer's copy of the tail synced the pages of all of
                // them while it held every write: at a million accounts thousands of scattered
                // pages, 20-100 ms (README, "What holds the p99 at a million accounts"). Each
                // pass is synced here instead, so the writer's sync is left with the tail's own.
                if let Err(error) = sync_file(path, &mut database_file) {
                    tracing::warn!(%error, "could not sync the database file after a checkpoint; the writer's copy of the WAL's tail will");
                    break;
                }
                // Frames this pass found that the one before had not (the WAL may have started
                // over in between: then all of them).
                let new = copied_before.map_or(wal_pages, |before| {
                    if copied >= before {
                        copied - before
                    } else {
                        wal_pages
                    }
                });
                copied_before = Some(copied);
                if new <= SMALL_REMAINDER || copied < wal_pages {
                    // Little came in meanwhile, or a reader holds back the rest: the writer
                    // copies what is left (or SQLite starts over once the reader is done).
                    break;
                }
            }
        }
        tail_ready.store(true, Ordering::Release);
    }
}

/// The WAL file of the database at `database`.
fn wal_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Starts the thread that syncs the WAL after each commit (see the module's comment).
fn start_syncs(
    database: &Path,
) -> Result<(std_mpsc::Sender<Vec<Answer>>, std::thread::JoinHandle<()>), String> {
    let (batches, committed) = std_mpsc::channel::<Vec<Answer>>();
    let wal = wal_path(database);
    let mut file = None;
    let thread = std::thread::Builder::new()
        .name("mfagate-sqlite-sync".into())
        .spawn(move || sync_continuously(committed, || sync_file(&wal, &mut file)))
        .map_err(|e| format!("cannot start the thread that syncs the WAL: {e}"))?;
    Ok((batches, thread))
}

/// Syncs the WAL (`sync`) for committed batches and then answers their callers, until the
/// writer drops its end. Batches that were committed while a sync ran share the next one.
fn sync_continuously(
    committed: std_mpsc::Receiver<Vec<Answer>>,
    mut sync: impl FnMut() -> Result<(), StoreError>,
) {
    let mut failures = FailureLog::default();
    while let Ok(first) = committed.recv() {
        let mut waiting = vec![first];
        waiting.extend(committed.try_iter());
        let started = std::time::Instant::now();
        let synced = sync();
        metrics::histogram!("mfagate_sqlite_wal_sync_seconds")
            .record(started.elapsed().as_secs_f64());
        match &synced {
            Ok(()) => failures.succeeded(),
            Err(error) => failures.failed(
                error,
                "the database's WAL could not be synced to disk; the writes of the batches \
                 waiting for it were committed but may not survive a power cut, and their \
                 callers hear the error",
            ),
        };
        for answer in waiting.into_iter().flatten() {
            answer(synced.clone());
        }
    }
}

/// Syncs a file's data to disk (the WAL for the sync thread, the database file for the
/// checkpointer) through a descriptor of its own (`file`, opened when `None`): on Linux an fsync
/// writes out the file's data whichever descriptor asks. SQLite keeps the WAL file (never
/// deletes or replaces it) while the writer's connection is open, and the sync thread ends
/// before that connection closes; the database file is never replaced while the store is open.
fn sync_file(path: &Path, file: &mut Option<std::fs::File>) -> Result<(), StoreError> {
    let result = match file {
        Some(file) => file.sync_data(),
        None => std::fs::File::open(path).and_then(|opened| {
            let synced = opened.sync_data();
            *file = Some(opened);
            synced
        }),
    };
    result.map_err(|error| {
        // Opened again next time, in case the error was the descriptor's.
        *file = None;
        StoreError::Unavailable(format!(
            "cannot sync the SQLite file {} to disk: {error}; check the disk",
            path.display()
        ))
    })
}

/// Runs batches until the queue closes or a stop is asked for; answers the stop's sender.
fn run_batches(
    connection: &Connection,
    mut queue: mpsc::UnboundedReceiver<Command>,
    tail_ready: &AtomicBool,
    to_sync: Option<&std_mpsc::Sender<Vec<Answer>>>,
) -> Option<oneshot::Sender<()>> {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut stop = None;
    let mut failures = FailureLog::default();
    while stop.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Run(job) if stop.is_none() => jobs.push(job),
                // Jobs after a stop are dropped: their callers hear the writer is gone.
                Command::Run(_) => {}
                Command::Stop(done) => stop = Some(done),
            }
            if jobs.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            // What an operator watches for a writer falling behind: batch sizes and commit time.
            metrics::histogram!("mfagate_sqlite_writer_batch_size").record(jobs.len() as f64);
            let started = std::time::Instant::now();
            let (committed, answers) = run_batch(connection, jobs.drain(..), &mut failures);
            match (committed, to_sync) {
                // Answered once the sync thread has synced the WAL.
                (Ok(()), Some(to_sync)) => {
                    if let Err(std_mpsc::SendError(answers)) = to_sync.send(answers) {
                        // Only if the sync thread panicked: nobody can say these are durable.
                        tracing::error!("the WAL sync thread stopped; restart mfagate");
                        for answer in answers {
                            answer(Err(writer_gone()));
                        }
                    }
                }
                (committed, _) => {
                    for answer in answers {
                        answer(committed.clone());
                    }
                }
            }
            metrics::histogram!("mfagate_sqlite_writer_batch_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        if tail_ready.swap(false, Ordering::Acquire) {
            checkpoint(connection, "writer");
        }
    }
    stop
}

/// A lasting fault (a full disk, a failing device) fails every batch until it ends: it is
/// logged when it begins and when writes succeed again, with the count of batches it failed,
/// not once per batch (thousands a second under load).
#[derive(Default)]
struct FailureLog {
    current: Option<String>,
    failed_batches: u64,
}

impl FailureLog {
    /// Counts a failed batch; logs it when it is not the fault already being counted.
    /// Answers whether it logged.
    fn failed(&mut self, error: &StoreError, what: &str) -> bool {
        self.failed_batches += 1;
        let text = error.to_string();
        if self.current.as_deref() == Some(text.as_str()) {
            return false;
        }
        tracing::error!(%error, "{what}; its callers get the error (until writes succeed again, repeats of it are counted, not logged)");
        self.current = Some(text);
        true
    }

    /// A committed batch: ends the fault being counted, if any, and says so. Answers whether
    /// it logged.
    fn succeeded(&mut self) -> bool {
        if self.current.take().is_none() {
            return false;
        }
        tracing::warn!(failed_batches = self.failed_batches, "writes succeed again");
        self.failed_batches = 0;
        true
    }
}

/// Runs one batch of jobs in one transaction; answers how the commit went and the jobs'
/// answers, for the caller to give once the commit is durable.
fn run_batch(
    connection: &Connection,
    jobs: impl Iterator<Item = Job>,
    failures: &mut FailureLog,
) -> (Result<(), StoreError>, Vec<Answer>) {
    let control = |sql: &str| {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(|_| ())
            .map_err(map_error)
    };
    // IMMEDIATE: take the write lock now (waiting out another process, such as the CLI, for up
    // to the busy timeout) rather than fail half-way through the batch.
    if let Err(error) = control("BEGIN IMMEDIATE") {
        failures.failed(&error, "cannot begin a write transaction");
        // Dropping a job drops its reply channel: its caller gets `Unavailable`.
        return (Err(error), Vec::new());
    }
    let mut answers = Vec::new();
    let mut broken: Option<StoreError> = None;
    for job in jobs {
        if broken.is_some() {
            continue;
        }
        if let Err(error) = control("SAVEPOINT job") {
            broken = Some(error);
            continue;
        }
        // A panicking job must not take the writer (and every later write) down with it: its
        // batch is rolled back and its caller, whose reply went with the panic, hears
        // `Unavailable`.
        let finished = match std::panic::catch_unwind(AssertUnwindSafe(|| job(connection))) {
            Ok(finished) => finished,
            Err(_) => {
                tracing::error!("a database write panicked; its batch is rolled back");
                broken = Some(StoreError::Other("a database write panicked".into()));
                continue;
            }
        };
        answers.push(finished.answer);
        if connection.is_autocommit() {
            // SQLite rolled the whole transaction back itself (an I/O error, a full disk).
            broken = Some(StoreError::Unavailable(
                "SQLite rolled back a write transaction; see the log".into(),
            ));
            continue;
        }
        let closed = if finished.keep {
            control("RELEASE job")
        } else {
            control("ROLLBACK TO job").and_then(|()| control("RELEASE job"))
        };
        if let Err(error) = closed {
            broken = Some(error);
        }
    }
    let committed = match broken {
        None => control("COMMIT"),
        Some(error) => Err(error),
    };
    match &committed {
        Ok(()) => failures.succeeded(),
        Err(error) => failures.failed(error, "a batch of writes was rolled back"),
    };
    if committed.is_err() {
        // After a failed COMMIT SQLite may still be inside the transaction.
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
    }
    (committed, answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer_on_a_fresh_file() -> (tempfile::TempDir, GroupWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        std::fs::File::create(&path).unwrap();
        let writer = GroupWriter::start(WriterOptions {
            path,
            full_sync: true,
        })
        .await
        .unwrap();
        writer
            .write(|c| c.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)"))
            .await
            .unwrap();
        (dir, writer)
    }

    fn insert(
        writer: &GroupWriter,
        v: i64,
    ) -> impl std::future::Future<Output = Result<usize, StoreError>> {
        let writer = writer.clone();
        async move {
            writer
                .write(move |c| execute(c, "INSERT INTO t (v) VALUES (?1)", [v]))
                .await
        }
    }

    async fn count(writer: &GroupWriter) -> i64 {
        writer
            .write(|c| c.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_failing_write_in_a_batch_leaves_the_others_committed() {
        let (_dir, writer) = writer_on_a_fresh_file().await;
        // Sent together, so they share batches; 7 collides with the first 7.
        let answers =
            futures_util::future::join_all([1, 2, 7, 3, 7, 4].map(|v| insert(&writer, v))).await;
        let failed = answers.iter().filter(|a| a.is_err()).count();
        assert_eq!(failed, 1, "{answers:?}");
        assert!(
            matches!(answers[4], Err(StoreError::Conflict(_))),
            "{answers:?}"
        );
        assert_eq!(count(&writer).await, 5);
        // A job of several statements that fails is undone to its savepoint, and only it.
        let several = writer
            .write(|c| {
                execute(c, "INSERT INTO t (v) VALUES (100)", [])?;
                execute(c, "INSERT INTO t (v) VALUES (1)", [])
            })
            .await;
        assert!(several.is_err());
        assert_eq!(
            count(&writer).await,
            5,
            "the first INSERT was rolled back too"
        );
    }

    #[tokio::test]
    async fn a_panicking_write_does_not_stop_the_writer() {
        let (_dir, writer) = writer_on_a_fresh_file().await;
        let panicked = writer
            .write(|_| -> rusqlite::Result<()> { panic!("a bug") })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Unavailable(_))),
            "{panicked:?}"
        );
        assert_eq!(insert(&writer, 1).await.unwrap(), 1);
        assert_eq!(count(&writer).await, 1);
    }

    #[test]
    fn a_committed_batch_is_answered_only_after_its_sync_and_waiting_batches_share_one() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Mutex;
        let (batches, committed) = std_mpsc::channel::<Vec<Answer>>();
        let (open_gate, gate) = std_mpsc::channel::<()>();
        let (sync_began, syncing) = std_mpsc::channel::<()>();
        let syncs = Arc::new(AtomicUsize::new(0));
        let thread = {
            let syncs = syncs.clone();
            std::thread::spawn(move || {
                sync_continuously(committed, || {
                    sync_began.send(()).unwrap();
                    gate.recv().unwrap();
                    syncs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            })
        };
        let answered = Arc::new(Mutex::new(Vec::new()));
        let answer = |n: u32| -> Answer {
            let answered = answered.clone();
            Box::new(move |result| answered.lock().unwrap().push((n, result.is_ok())))
        };
        batches.send(vec![answer(1), answer(2)]).unwrap();
        syncing.recv().unwrap();
        // Committed while the first sync runs: they wait for the next one, together.
        batches.send(vec![answer(3)]).unwrap();
        batches.send(vec![answer(4)]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            answered.lock().unwrap().is_empty(),
            "answered before the sync"
        );
        open_gate.send(()).unwrap();
        syncing.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(*answered.lock().unwrap(), [(1, true), (2, true)]);
        open_gate.send(()).unwrap();
        drop(batches);
        thread.join().unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "3 and 4 shared a sync");
        assert_eq!(answered.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_failed_sync_is_unavailable_and_the_file_is_opened_again_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("w.db-wal");
        let mut file = None;
        // No WAL yet: the callers waiting for this sync hear Unavailable.
        let failed = sync_file(&wal, &mut file);
        assert!(
            matches!(&failed, Err(StoreError::Unavailable(m)) if m.contains("check the disk")),
            "{failed:?}"
        );
        assert!(file.is_none());
        std::fs::write(&wal, b"frames").unwrap();
        sync_file(&wal, &mut file).unwrap();
        assert!(file.is_some(), "kept for the next sync");
        sync_file(&wal, &mut file).unwrap();
    }

    #[test]
    fn the_linked_sqlite_has_the_wal_reset_fix() {
        // https://sqlite.org/wal.html#walresetbug: before 3.51.3 a checkpoint racing a commit
        // that resets the WAL on another connection could corrupt the file; the checkpointer
        // and this writer are two such connections. A dependency update must not undo it.
        assert!(
            rusqlite::version_number() >= 3_051_003,
            "SQLite {} is linked; mfagate needs 3.51.3 or later",
            rusqlite::version()
        );
    }

    #[test]
    fn a_lasting_fault_is_logged_when_it_begins_and_ends_not_once_per_batch() {
        let mut log = FailureLog::default();
        let full = StoreError::Unavailable("disk full".into());
        let io = StoreError::Unavailable("I/O error".into());
        assert!(!log.succeeded(), "nothing to end");
        assert!(log.failed(&full, "a batch"));
        assert!(!log.failed(&full, "a batch"));
        assert!(!log.failed(&full, "a batch"));
        assert!(log.failed(&io, "a batch"), "another fault is logged");
        assert_eq!(log.failed_batches, 4);
        assert!(log.succeeded());
        assert_eq!(log.failed_batches, 0);
        assert!(!log.succeeded());
        assert!(
            log.failed(&full, "a batch"),
            "the same fault again, after a success"
        );
    }

    #[tokio::test]
    async fn a_full_disk_answers_unavailable_saying_so_and_writes_resume_when_there_is_room() {
        let (_dir, writer) = writer_on_a_fresh_file().await;
        // A cap on the database's pages fails a write as SQLITE_FULL, as a full disk does
        // (the soak fills a real file system too).
        let cap = |pages: i64| {
            let writer = writer.clone();
            async move {
                writer
                    .write(move |c| {
                        c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                    })
                    .await
                    .unwrap()
            }
        };
        let pages: i64 = writer
            .write(|c| c.query_row("PRAGMA page_count", [], |row| row.get(0)))
            .await
            .unwrap();
        cap(pages).await;
        let wide = |v: i64| {
            let writer = writer.clone();
            async move {
                writer
                    .write(move |c| {
                        execute(
                            c,
                            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
                             INSERT INTO t (v) SELECT ?1 * 1000 + i FROM n",
                            [v],
                        )
                    })
                    .await
            }
        };
        let full = wide(1).await;
        match &full {
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    message.contains("disk holding the database is full"),
                    "{message}"
                )
            }
            other => panic!("a full disk answered {other:?}"),
        }
        assert_eq!(count(&writer).await, 0, "the failed write left rows behind");
        cap(1_000_000).await;
        assert_eq!(wide(2).await.unwrap(), 500);
        assert_eq!(count(&writer).await, 500);
    }

    #[tokio::test]
    async fn an_answered_write_is_seen_by_another_connection_and_a_stopped_writer_refuses_more() {
        let (dir, writer) = writer_on_a_fresh_file().await;
        for v in 0..10 {
            insert(&writer, v).await.unwrap();
        }
        let other = Connection::open(dir.path().join("w.db")).unwrap();
        let seen: i64 = other
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, 10);
        writer.stop().await;
        assert!(matches!(
            insert(&writer, 11).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
