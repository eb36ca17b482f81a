//! The administrators' user list.

use async_trait::async_trait;

use super::*;

/// Where a page of the administrators' user list begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPageStart {
    /// Right after this user, in order of creation (keyset pagination: the cost of a page does
    /// not grow with how far into the list it is).
    After { created_at: i64, id: String },
    /// After skipping this many users (kept for clients of the first version; bounded by the
    /// core, since its cost grows with the offset).
    Offset(u32),
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// A page of users in order of creation, from `start`.
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>>;
    /// Enables a user (disabling is an `AccountChange`, which ends their credentials).
    async fn enable_user(&self, user_id: &str) -> StoreResult<()>;
}
