//! Signing keys for EdDSA tokens and the ids of the sealing keys the data needs.

use super::*;

pub(super) const SIGNING_KEYS_LOCK: i64 = 0x6d66_6167_0003;

pub(super) fn signing_key_from_row(row: &PgRow) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        kid: row.try_get("kid").store()?,
        private_sealed: row.try_get("private_sealed").store()?,
        public_key: row.try_get("public_key").store()?,
        created_at: row.try_get("created_at").store()?,
        retired_at: row.try_get("retired_at").store()?,
    })
}

#[async_trait]
impl KeyStore for PgStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        on_connection!(self, |c| {
            let rows = sqlx::query(
                "SELECT kid, private_sealed, public_key, created_at, retired_at FROM signing_keys
                 ORDER BY created_at DESC, kid",
            )
            .fetch_all(&mut *c)
            .await
            .store()?;
            rows.iter().map(signing_key_from_row).collect()
        })
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SIGNING_KEYS_LOCK)
                .execute(&mut *tx)
                .await
                .store()?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(now)
                .execute(&mut *tx)
                .await
                .store()?;
            sqlx::query(
            "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.private_sealed)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .store()?;
            tx.commit().await.store()
        })
    }

    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>> {
        on_connection!(self, |c| {
            let rows = sqlx::query("SELECT key_id FROM sealing_keys ORDER BY recorded_at, key_id")
                .fetch_all(&mut *c)
                .await
                .store()?;
            rows.iter()
                .map(|row| row.try_get("key_id").store())
                .collect()
        })
    }

    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query(
            "INSERT INTO sealing_keys (key_id, recorded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(now)
        .execute(&mut *c)
        .await
        .store()?;
            Ok(())
        })
    }

    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SIGNING_KEYS_LOCK)
                .execute(&mut *tx)
                .await
                .store()?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at)
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
            )
            .bind(&key.kid)
            .bind(&key.private_sealed)
            .bind(&key.public_key)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .store()?;
            tx.commit().await.store()
        })
    }
}
