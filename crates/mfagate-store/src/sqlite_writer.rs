//! Group commit for SQLite: every write runs on one connection, and the writes that arrive while
//! a commit is being synced to disk are run together in the next transaction and share its
//! fsync.
//!
//! Why: with `synchronous = FULL` each commit waits for the disk, and SQLite allows one writer
//! at a time, so one commit per write caps the whole server at the disk's sync rate. Batching
//! keeps the guarantee a caller relies on (its answer is sent only after the commit that holds
//! its changes is durable) while the sync cost is paid once per batch, not once per write.
//!
//! A write (a *job*) of several statements runs inside its own `SAVEPOINT`, so a job that fails
//! undoes only its own changes; the other jobs of the batch commit. A job of one statement
//! needs no savepoint (`write_statement`), nor does one command whose statements change all or
//! nothing by their own conditions (`write_command`). Jobs run one after another on the
//! connection, so a conditional `UPDATE ... WHERE` in one job sees every earlier job's changes:
//! one-time use stays one-time within a batch too.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use mfagate_core::StoreError;

use crate::sqlite::map_error;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

/// The most jobs one transaction takes; a bound on how long one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// The future a job's closure returns: it borrows the writer connection while it runs.
pub type JobFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// What a job left after running: whether to keep its changes, whether its failure spoiled
/// the whole transaction, and how to answer its caller once the batch's commit is known.
struct Finished {
    keep: bool,
    spoiled: Option<StoreError>,
    answer: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

type RunJob = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = Finished> + Send + 'c>>
        + Send,
>;

/// How a job's failure is contained.
#[derive(Clone, Copy)]
enum Guard {
    /// The job runs inside a savepoint, rolled back if it fails.
    Savepoint,
    /// No savepoint: the function says whether SQLite itself took back all a failed job did;
    /// if not, the whole batch is rolled back.
    UndoneBySqlite(fn(&sqlx::Error) -> bool),
}

struct Job {
    /// Whether the job runs inside a savepoint of its own. A single statement needs none:
    /// SQLite undoes a statement that fails on a constraint by itself, and any other failure
    /// spoils the batch anyway. Two round trips to SQLite's thread saved per such write.
    savepoint: bool,
    run: RunJob,
}

/// Whether SQLite, after `error`, left the transaction as it was before the statement.
fn statement_undone(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(db) => matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        ),
        // Anything else, including a row that fails to decode after its statement ran: the
        // batch is rolled back rather than keep changes whose caller hears of an error.
        _ => false,
    }
}

/// The answer for a caller: the job's own result once its batch is committed.
fn answer_after_commit<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, StoreError>,
) -> Box<dyn FnOnce(Result<(), StoreError>) + Send> {
    Box::new(move |committed| {
        // The caller may have gone (request cancelled): nobody to tell.
        let _ = reply.send(committed.and(result));
    })
}

/// What the writer task is asked to do, in order.
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

impl GroupWriter {
    /// Opens the writer connection and starts the thread that runs the batches.
    ///
    /// The batches run on a thread of their own rather than as a task among the request
    /// handlers: every statement is a round trip to the connection's SQLite thread, and a task
    /// woken from there would wait its turn behind every ready request before sending the next
    /// statement. On its own thread the writer answers at once, and the write lock is held
    /// only as long as the statements take.
    pub async fn start(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let (commands, queue) = mpsc::unbounded_channel();
        let (opened, connected) = oneshot::channel();
        let options = options.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(sqlx::Error::Io)?;
        std::thread::Builder::new()
            .name("mfagate-sqlite-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // The writer does not checkpoint on commit (SQLite's default, every 1000
                    // pages): copying the WAL back into the database, with its reads, writes
                    // and fsync, would hold up every write queued behind that commit. See
                    // `checkpoint_continuously`.
                    let writer_options = options
                        .clone()
                        .pragma("wal_autocheckpoint", "0")
                        // The WAL file shrinks back to this after a busy spell.
                        .pragma("journal_size_limit", "67108864")
                        // 32 MiB of page cache (SQLite's default is 2 MiB): at a million users
                        // the indexes of random keys (token hashes, ids) no longer fit in 2 MiB,
                        // and every insert would read its index pages back from the OS.
                        .pragma("cache_size", "-32768");
                    match writer_options.connect().await {
                        Ok(connection) => {
                            let _ = opened.send(Ok(()));
                            let tail_ready = Arc::new(AtomicBool::new(false));
                            let (stop_checkpoints, stopped) = oneshot::channel();
                            let checkpoints = tokio::spawn(checkpoint_continuously(
                                options,
                                tail_ready.clone(),
                                stopped,
                            ));
                            run_batches(connection, queue, &tail_ready).await;
                            let _ = stop_checkpoints.send(());
                            let _ = checkpoints.await;
                        }
                        Err(error) => {
                            let _ = opened.send(Err(error));
                        }
                    }
                })
            })
            .map_err(sqlx::Error::Io)?;
        connected.await.map_err(|_| sqlx::Error::PoolClosed)??;
        Ok(Self { commands })
    }

    /// Runs `job` in the next batch, inside a savepoint of its own, and answers once that batch
    /// is committed (or the job's error, or the commit's). A job that fails is rolled back to its
    /// savepoint; the rest of the batch commits.
    pub async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        self.submit(job, Guard::Savepoint).await
    }

    /// `write` for a job of exactly one statement: it runs without a savepoint of its own.
    pub async fn write_statement<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        self.submit(job, Guard::UndoneBySqlite(statement_undone))
            .await
    }

    /// `write` for a job of one command of several statements that, by their own conditions,
    /// change all or nothing (nothing else runs on the writer between them). It runs without a
    /// savepoint; should it fail, SQLite may have kept some of its statements, so any error
    /// rolls back the whole batch.
    pub async fn write_command<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        self.submit(job, Guard::UndoneBySqlite(|_| false)).await
    }

    async fn submit<T, F>(&self, job: F, guard: Guard) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let run: RunJob = Box::new(move |connection| {
            Box::pin(async move {
                let (keep, spoiled, result) = match (job(connection).await, guard) {
                    (Ok(value), _) => (true, None, Ok(value)),
                    (Err(error), Guard::Savepoint) => (false, None, Err(map_error(error))),
                    (Err(error), Guard::UndoneBySqlite(undone)) if undone(&error) => {
                        (true, None, Err(map_error(error)))
                    }
                    (Err(error), Guard::UndoneBySqlite(_)) => {
                        let error = map_error(error);
                        (true, Some(error.clone()), Err(error))
                    }
                };
                Finished {
                    keep,
                    spoiled,
                    answer: answer_after_commit(reply, result),
                }
            })
        });
        self.send(Job {
            savepoint: matches!(guard, Guard::Savepoint),
            run,
        })?;
        answer.await.map_err(|_| writer_gone())?
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.commands
            .send(Command::Run(job))
            .map_err(|_| writer_gone())
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
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Keeps the WAL short in two steps, every `CHECKPOINT_INTERVAL` until `stop`.
///
/// 1. Here, on a connection of its own, a PASSIVE checkpoint copies what the WAL holds into the
///    database file and syncs it, alongside the writer and the readers, waiting for neither.
/// 2. Under steady writes that copy never quite reaches the end of the WAL, and SQLite only
///    starts the WAL over once all of it is copied. So `tail_ready` asks the writer to copy the
///    little that came in meanwhile, between two batches (`run_batches`); its next transaction
///    then starts the WAL from the beginning. Without step 2 the WAL grows without bound.
async fn checkpoint_continuously(
    options: SqliteConnectOptions,
    tail_ready: Arc<AtomicBool>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connection = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
        }
        if connection.is_none() {
            connection = match options.connect().await {
                Ok(connection) => Some(connection),
                Err(error) => {
                    // The writer then checkpoints all of it itself: slower, never unbounded.
                    tracing::warn!(%error, "cannot open a connection for WAL checkpoints; the writer does them meanwhile");
                    None
                }
            };
        }
        if let Some(connection) = connection.as_mut() {
            if let Err(error) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!(%error, "WAL checkpoint failed; trying again shortly");
            }
        }
        tail_ready.store(true, Ordering::Release);
    }
    if let Some(connection) = connection {
        let _ = connection.close().await;
    }
}

async fn run_batches(
    mut connection: SqliteConnection,
    mut queue: mpsc::UnboundedReceiver<Command>,
    tail_ready: &AtomicBool,
) {
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut stop = None;
    while stop.is_none() && queue.recv_many(&mut commands, MAX_BATCH).await > 0 {
        for command in commands.drain(..) {
            match command {
                Command::Run(job) if stop.is_none() => jobs.push(job),
                // Jobs after a stop are dropped: their callers hear the writer is gone.
                Command::Run(_) => {}
                Command::Stop(done) => stop = Some(done),
            }
        }
        if !jobs.is_empty() {
            run_batch(&mut connection, jobs.drain(..)).await;
        }
        if tail_ready.swap(false, Ordering::Acquire) {
            if let Err(error) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!(%error, "WAL checkpoint failed; trying again shortly");
            }
        }
    }
    let _ = connection.close().await;
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

async fn run_batch(connection: &mut SqliteConnection, jobs: impl Iterator<Item = Job>) {
    // IMMEDIATE: take the write lock now (waiting out another process, such as the CLI, for up
    // to the busy timeout) rather than fail half-way through the batch.
    if let Err(error) = connection.execute("BEGIN IMMEDIATE").await {
        tracing::error!(%error, "cannot begin a write transaction; the writes of this batch fail");
        // Dropping a job drops its reply channel: its caller gets `Unavailable`.
        return;
    }
    let mut answers = Vec::new();
    let mut broken: Option<StoreError> = None;
    for job in jobs {
        if broken.is_some() {
            continue;
        }
        if job.savepoint {
            if let Err(error) = connection.execute("SAVEPOINT job").await {
                broken = Some(map_error(error));
                continue;
            }
        }
        // A panicking job must not take the writer (and every later write) down with it: its
        // batch is rolled back and its caller, whose reply went with the panic, hears
        // `Unavailable`.
        let finished = match AssertUnwindSafe((job.run)(connection)).catch_unwind().await {
            Ok(finished) => finished,
            Err(_) => {
                tracing::error!("a database write panicked; its batch is rolled back");
                broken = Some(StoreError::Other("a database write panicked".into()));
                continue;
            }
        };
        answers.push(finished.answer);
        if finished.spoiled.is_some() {
            broken = finished.spoiled;
            continue;
        }
        if !job.savepoint {
            continue;
        }
        let closed = if finished.keep {
            connection.execute("RELEASE job").await
        } else {
            match connection.execute("ROLLBACK TO job").await {
                Ok(_) => connection.execute("RELEASE job").await,
                Err(error) => Err(error),
            }
        };
        if let Err(error) = closed {
            broken = Some(map_error(error));
        }
    }
    let committed = match broken {
        None => connection
            .execute("COMMIT")
            .await
            .map(|_| ())
            .map_err(map_error),
        Some(error) => Err(error),
    };
    if let Err(error) = &committed {
        tracing::error!(%error, "a batch of writes was rolled back; its callers get the error");
        // After a failed COMMIT SQLite may still be inside the transaction.
        let _ = connection.execute("ROLLBACK").await;
    }
    for answer in answers {
        answer(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn writer_on_a_fresh_file() -> (tempfile::TempDir, GroupWriter) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let writer = GroupWriter::start(&options).await.unwrap();
        writer
            .write(|c| {
                Box::pin(async move {
                    c.execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
                        .await
                        .map(|_| ())
                })
            })
            .await
            .unwrap();
        (dir, writer)
    }

    fn insert(writer: &GroupWriter, v: i64) -> impl Future<Output = Result<u64, StoreError>> {
        let writer = writer.clone();
        async move {
            writer
                .write_statement(move |c| {
                    Box::pin(async move {
                        let done = sqlx::query("INSERT INTO t (v) VALUES (?1)")
                            .bind(v)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected())
                    })
                })
                .await
        }
    }

    async fn count(writer: &GroupWriter) -> i64 {
        writer
            .write_statement(|c| {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT COUNT(*) FROM t")
                        .fetch_one(&mut *c)
                        .await
                })
            })
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
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (v) VALUES (100)")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query("INSERT INTO t (v) VALUES (1)")
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                })
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
            .write_statement(|_| -> JobFuture<'_, ()> { Box::pin(async { panic!("a bug") }) })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Unavailable(_))),
            "{panicked:?}"
        );
        assert_eq!(insert(&writer, 1).await.unwrap(), 1);
        assert_eq!(count(&writer).await, 1);
    }
}
