//! PostgreSQL's own counters around each scenario, per operation: WAL written (records,
//! full-page images, bytes), blocks read into shared buffers against blocks found there,
//! buffers a backend had to write out itself, checkpoints; and by table and index, the blocks
//! each was read from (heap and indexes), its scans, and its vacuums and analyses. When a
//! scenario is slower on the large database, these say which of those grew and where (the sixth session profiled the 30k login
//! by hand; this puts the same figures in every scale run's results).
//!
//! The WAL and buffer counters are the whole server's: with one deployment measured at a time
//! they are that deployment's, plus anything else the machine's PostgreSQL does meanwhile.

use std::time::Duration;

use std::collections::BTreeMap;

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

/// By table: heap blocks read, heap blocks hit, index blocks read, index blocks hit, sequential
/// scans, index scans; then vacuums and analyses (autovacuum's and others'). A vacuum reads a
/// table's heap and indexes without counting a scan, so blocks that grew with no scans to
/// match are told apart from a statement's reads by these.
const TABLES: &str = "SELECT s.relname::TEXT,
        COALESCE(io.heap_blks_read, 0), COALESCE(io.heap_blks_hit, 0),
        COALESCE(io.idx_blks_read, 0), COALESCE(io.idx_blks_hit, 0),
        COALESCE(s.seq_scan, 0), COALESCE(s.idx_scan, 0),
        s.vacuum_count + s.autovacuum_count, s.analyze_count + s.autoanalyze_count
     FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)";

/// By index: blocks read, blocks hit.
const INDEXES: &str =
    "SELECT indexrelname::TEXT, idx_blks_read, idx_blks_hit FROM pg_statio_user_indexes";

type TableRow = (String, i64, i64, i64, i64, i64, i64, i64, i64);

/// How long a backend may take to report what it counted, once idle.
pub const SETTLE: Duration = Duration::from_millis(1_500);

pub struct Snapshot {
    server: [i64; 10],
    tables: BTreeMap<String, [i64; 8]>,
    indexes: BTreeMap<String, [i64; 2]>,
}

/// The counters now, or `None` on SQLite (or if PostgreSQL would not say). A backend reports
/// its counters when idle, at most once a second: after a scenario, wait `SETTLE` first.
pub async fn snapshot(url: &str) -> Option<Snapshot> {
    if !url.starts_with("postgres") {
        return None;
    }
    let mut connection = sqlx::PgConnection::connect(url).await.ok()?;
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(SNAPSHOT)
        .fetch_one(&mut connection)
        .await
        .ok()?;
    let tables: Vec<TableRow> = sqlx::query_as(TABLES)
        .fetch_all(&mut connection)
        .await
        .ok()?;
    let indexes: Vec<(String, i64, i64)> = sqlx::query_as(INDEXES)
        .fetch_all(&mut connection)
        .await
        .ok()?;
    Some(Snapshot {
        server: [
            row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
        ],
        tables: tables
            .into_iter()
            .map(|(name, a, b, c, d, e, f, g, h)| (name, [a, b, c, d, e, f, g, h]))
            .collect(),
        indexes: indexes
            .into_iter()
            .map(|(name, read, hit)| (name, [read, hit]))
            .collect(),
    })
}

/// `grown` per operation, to a tenth.
fn per(grown: i64, operations: u64) -> f64 {
    (grown as f64 / operations.max(1) as f64 * 10.0).round() / 10.0
}

/// What grew between two snapshots, per operation of the scenario (checkpoints: in all).
pub fn per_operation(before: &Snapshot, after: &Snapshot, operations: u64) -> Value {
    let mut out = serde_json::Map::new();
    for (i, name) in NAMES.iter().enumerate() {
        let grown = after.server[i] - before.server[i];
        let value = if *name == "checkpoints" {
            grown as f64
        } else {
            per(grown, operations)
        };
        out.insert(name.to_string(), json!(value));
    }
    out.insert("operations".into(), json!(operations));
    // Only what moved by a tenth of a block (or scan) per operation or more.
    let mut tables = serde_json::Map::new();
    for (name, now) in &after.tables {
        let then = before.tables.get(name).copied().unwrap_or_default();
        let grown: Vec<f64> = (0..6).map(|i| per(now[i] - then[i], operations)).collect();
        // In all, not per operation: a handful in a scenario, or none.
        let (vacuums, analyses) = (now[6] - then[6], now[7] - then[7]);
        if grown.iter().any(|g| *g >= 0.1) || vacuums + analyses > 0 {
            tables.insert(
                name.clone(),
                json!({
                    "heap_read": grown[0], "heap_hit": grown[1],
                    "index_read": grown[2], "index_hit": grown[3],
                    "sequential_scans": grown[4], "index_scans": grown[5],
                    "vacuums": vacuums, "analyses": analyses,
                }),
            );
        }
    }
    out.insert("tables".into(), Value::Object(tables));
    let mut indexes = serde_json::Map::new();
    for (name, now) in &after.indexes {
        let then = before.indexes.get(name).copied().unwrap_or_default();
        let (read, hit) = (
            per(now[0] - then[0], operations),
            per(now[1] - then[1], operations),
        );
        if read + hit >= 0.1 {
            indexes.insert(name.clone(), json!({ "read": read, "hit": hit }));
        }
    }
    out.insert("indexes".into(), Value::Object(indexes));
    Value::Object(out)
}
