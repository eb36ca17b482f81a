//! Signing keys for EdDSA tokens and the ids of the sealing keys the data needs.

use super::*;

pub(super) fn signing_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: row.get("kid")?,
        private_sealed: row.get("private_sealed")?,
        public_key: row.get("public_key")?,
        created_at: row.get("created_at")?,
        retired_at: row.get("retired_at")?,
    })
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT kid, private_sealed, public_key, created_at, retired_at FROM signing_keys
                     ORDER BY created_at DESC, kid",
                    [],
                    signing_key_from_row,
                )
            })
            .await
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            execute(
                c,
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [now],
            )?;
            execute(
                c,
                "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key.kid, key.private_sealed, key.public_key, key.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT key_id FROM sealing_keys ORDER BY recorded_at, key_id",
                    [],
                    |row| row.get(0),
                )
            })
            .await
    }

    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
        let key_id = key_id.to_string();
        self.write(move |c| {
            execute(
                c,
                "INSERT OR IGNORE INTO sealing_keys (key_id, recorded_at) VALUES (?1, ?2)",
                params![key_id, now],
            )
        })
        .await?;
        Ok(())
    }

    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
                params![key.kid, key.private_sealed, key.public_key, key.created_at],
            )
        })
        .await?;
        Ok(())
    }
}
