//! Refresh tokens: sessions that rotate and die whole on reuse.

use async_trait::async_trait;

use super::*;

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// The row's id, which the token names (`secret::token_naming`): ordered, so that the
    /// inserts of one commit share the primary key's last page.
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    /// The `amr` of the login that began the family, space-separated.
    pub amr: String,
    /// When the user last proved who they are (the login that began the family).
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// Where the session began (a new family's first token; ignored for later ones).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The token that replaces a rotated one; it inherits user, family, `amr` and `auth_time`.
#[derive(Debug, Clone)]
pub struct RefreshSuccessor {
    pub id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A refresh token as a client presented it, as the store looks it up: the row it names and the
/// hash that row must keep (`PresentedToken::of`). Its row is found by `id` only when
/// `token_hash` matches too.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub id: String,
    pub token_hash: String,
}

impl PresentedToken {
    /// `None` when the token names no row any token can have.
    pub fn of(token: &str) -> Option<Self> {
        Some(Self {
            id: crate::secret::token_row(token)?,
            token_hash: crate::secret::hash_token(token),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now used; its successor is stored in the same family, in the
    /// same transaction (so a concurrent reuse that revokes the family revokes it too).
    Rotated {
        user_id: String,
        family_id: String,
        amr: String,
        auth_time: i64,
    },
    /// The token had already been rotated: stolen or replayed. Its family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or revoked, or its user is disabled.
    Invalid,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Uses the token iff it is live and its user active, storing `successor` in the same
    /// transaction; a token used before revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        token: &PresentedToken,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the family of this token; its user, or `None` for an unknown token.
    async fn revoke_refresh_family(
        &self,
        token: &PresentedToken,
        now: i64,
    ) -> StoreResult<Option<String>>;
}
