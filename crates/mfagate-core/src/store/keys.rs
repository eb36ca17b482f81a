//! Signing keys of EdDSA tokens and the sealing keys the data needs.

use async_trait::async_trait;

use super::*;

/// An Ed25519 key for EdDSA access tokens.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    /// The 32-byte seed, sealed.
    pub private_sealed: String,
    /// The 32-byte public key, base64url.
    pub public_key: String,
    pub created_at: i64,
    /// When a newer key took over signing; the key stays published while its tokens live.
    pub retired_at: Option<i64>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every stored key, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// Adds a key and retires every key that was signing, in one transaction.
    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()>;
    /// Adds the first key unless one exists (instances starting together agree on one).
    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
    /// The ids of every sealing key the database has been used with, oldest first: data sealed
    /// under any of them may be stored, so a key set must be able to open them all.
    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>>;
    /// Records that the database is used with this sealing key (idempotent).
    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()>;
}
