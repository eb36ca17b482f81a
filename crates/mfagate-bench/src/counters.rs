//! PostgreSQL's own counters around each scenario, per operation: WAL written (records,
//! full-page images, bytes), blocks read into shared buffers against blocks found there,
//! buffers a backend had to write out itself, checkpoints. When a scenario is slower on the
//! large database, these say which of those grew (the sixth session profiled the 30k login by
//! hand; this puts the same figures in every scale run's results).
//!
//! The WAL and buffer counters are the whole server's: with one deployment measured at a time
//! they are that deployment's, plus anything else the machine's PostgreSQL does meanwhile.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

const SNAPSHOT: &str = "SELECT w.wal_records, w.wal_fpi, w.wal_bytes::BIGINT,
        d.blks_read, d.blks_hit, d.xact_commit,
        b.buffers_backend, b.buffers_clean, b.buffers_checkpoint,
        b.checkpoints_req + b.checkpoints_timed
     FROM pg_stat_wal w, pg_stat_bgwriter b, pg_stat_database d
     WHERE d.datname = current_database()";

const NAMES: [&str; 10] = [
    "wal_records",
    "wal_full_page_images",
    "wal_bytes",
    "blocks_read",
    "blocks_hit",
    "commits",
    "buffers_written_by_backends",
    "buffers_written_by_bgwriter",
    "buffers_written_by_checkpoints",
    "checkpoints",
];

pub struct Snapshot([i64; 10]);

/// The counters now, or `None` on SQLite (or if PostgreSQL would not say).
pub async fn snapshot(url: &str) -> Option<Snapshot> {
    if !url.starts_with("postgres") {
        return None;
    }
    // A backend reports its counters when idle, at most once a second: wait for the
    // scenario's last ones.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut connection = sqlx::PgConnection::connect(url).await.ok()?;
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(SNAPSHOT)
        .fetch_one(&mut connection)
        .await
        .ok()?;
    Some(Snapshot([
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    ]))
}

/// What grew between two snapshots, per operation of the scenario (checkpoints: in all).
pub fn per_operation(before: &Snapshot, after: &Snapshot, operations: u64) -> Value {
    let mut out = serde_json::Map::new();
    for (i, name) in NAMES.iter().enumerate() {
        let grown = (after.0[i] - before.0[i]) as f64;
        let value = if *name == "checkpoints" {
            grown
        } else {
            (grown / operations.max(1) as f64 * 10.0).round() / 10.0
        };
        out.insert(name.to_string(), json!(value));
    }
    out.insert("operations".into(), json!(operations));
    Value::Object(out)
}
