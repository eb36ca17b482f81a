//! Applies the SQLite migrations through rusqlite, in the bookkeeping sqlx's migrator keeps
//! (`_sqlx_migrations`: version, description, checksum = SHA-384 of the SQL, success), so a
//! database that sqlx migrated (every release before this one) carries on as if nothing changed:
//! applied steps are checked against their checksums, missing ones applied in order, each with
//! its row in one transaction.
//!
//! Why not sqlx: its SQLite driver pins a bundled SQLite with the WAL-reset corruption bug, and
//! one binary can link only one SQLite (see the workspace's Cargo.toml).

use std::path::Path;
use std::time::Instant;

use mfagate_core::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha384};

use crate::migrations::Steps;
use crate::sqlite::statements::{map_error, open};

/// sqlx's table, as sqlx creates it, so either can read what the other wrote.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Brings the database at `path` up to `steps` (in version order). Refuses a database with a
/// failed step, a step whose SQL changed since it was applied, or a step this build does not
/// know (a newer release's): running on it could lose data.
pub(crate) fn migrate(path: &Path, steps: Steps) -> Result<(), StoreError> {
    let mut connection = open(path, false)
        .map_err(|e| StoreError::Unavailable(format!("opening SQLite for migrations: {e}")))?;
    connection
        .execute_batch("PRAGMA foreign_keys = ON")
        .map_err(map_error)?;
    apply(&mut connection, steps)
}

fn checksum(sql: &str) -> Vec<u8> {
    Sha384::digest(sql.as_bytes()).to_vec()
}

fn apply(connection: &mut Connection, steps: Steps) -> Result<(), StoreError> {
    let failed = |what: String| StoreError::Other(format!("applying migrations: {what}"));
    connection.execute_batch(TABLE).map_err(map_error)?;
    let dirty: Option<i64> = connection
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(map_error)?;
    if let Some(version) = dirty {
        return Err(failed(format!(
            "migration {version} was begun and failed; restore the database from a backup"
        )));
    }
    let applied: Vec<(i64, Vec<u8>)> = {
        let mut statement = connection
            .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .map_err(map_error)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(map_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(map_error)?
    };
    for (version, sum) in &applied {
        match steps.iter().find(|(v, _, _)| v == version) {
            None => {
                return Err(failed(format!(
                    "the database has migration {version}, which this build does not know: it \
                     was made by a newer mfagate; run that release (or a newer one)"
                )))
            }
            Some((_, _, sql)) if checksum(sql) != *sum => {
                return Err(failed(format!(
                    "migration {version} was applied from different SQL than this build has"
                )))
            }
            Some(_) => {}
        }
    }
    for (version, description, sql) in steps {
        if applied.iter().any(|(v, _)| v == version) {
            continue;
        }
        let began = Instant::now();
        let transaction = connection.transaction().map_err(map_error)?;
        transaction
            .execute_batch(sql)
            .map_err(|e| failed(format!("migration {version} ({description}): {e}")))?;
        transaction
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                params![
                    version,
                    description,
                    checksum(sql),
                    began.elapsed().as_nanos() as i64
                ],
            )
            .map_err(map_error)?;
        transaction.commit().map_err(map_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: Steps = &[
        (1, "one", "CREATE TABLE a (x INTEGER);"),
        (2, "two", "CREATE TABLE b (y INTEGER);"),
    ];

    fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        std::fs::File::create(&path).unwrap();
        (dir, path)
    }

    #[test]
    fn applies_missing_steps_once_in_order_with_sqlx_checksums() {
        let (_dir, path) = fresh();
        migrate(&path, &STEPS[..1]).unwrap();
        migrate(&path, STEPS).unwrap();
        migrate(&path, STEPS).unwrap();
        let c = Connection::open(&path).unwrap();
        let rows: Vec<(i64, String, Vec<u8>, bool)> = c
            .prepare("SELECT version, description, checksum, success FROM _sqlx_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].0, rows[1].1.as_str(), rows[1].3), (2, "two", true));
        // SHA-384 of the SQL, as sqlx computes it (FIPS 180-2 test vector for "abc").
        assert_eq!(rows[0].2.len(), 48);
        assert_eq!(rows[0].2, checksum(STEPS[0].2));
        assert_eq!(rows[1].2, checksum(STEPS[1].2));
        assert_eq!(
            checksum("abc")[..8],
            [0xcb, 0x00, 0x75, 0x3f, 0x45, 0xa3, 0x5e, 0x8b]
        );
        c.execute("INSERT INTO b (y) VALUES (1)", []).unwrap();
    }

    #[test]
    fn refuses_changed_unknown_and_failed_steps() {
        let (_dir, path) = fresh();
        migrate(&path, STEPS).unwrap();
        let error = migrate(&path, &STEPS[..1]).unwrap_err().to_string();
        assert!(error.contains("does not know"), "{error}");
        let changed: Steps = &[
            (1, "one", "CREATE TABLE a (x TEXT);"),
            (2, "two", "CREATE TABLE b (y INTEGER);"),
        ];
        let error = migrate(&path, changed).unwrap_err().to_string();
        assert!(error.contains("different SQL"), "{error}");

        let broken: Steps = &[
            (1, "one", "CREATE TABLE a (x INTEGER);"),
            (2, "two", "CREATE TABLE b (y INTEGER);"),
            (3, "three", "CREATE TABLE a (x INTEGER);"),
        ];
        let error = migrate(&path, broken).unwrap_err().to_string();
        assert!(error.contains("migration 3"), "{error}");
        // The failed step left nothing behind, so it can be fixed and run again.
        let c = Connection::open(&path).unwrap();
        let count: i64 = c
            .query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
        c.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9, 'x', false, x'00', 0)",
            [],
        )
        .unwrap();
        let error = migrate(&path, STEPS).unwrap_err().to_string();
        assert!(error.contains("failed"), "{error}");
    }
}
