//! The administrators' user list and enabling users.

use super::*;

#[async_trait]
impl AdminStore for PgStore {
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>> {
        on_connection!(self, |c| {
            let sql = match start {
                UserPageStart::After { .. } => concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE (created_at, id) > ($2, $3)
                     ORDER BY created_at, id LIMIT $1"
                ),
                UserPageStart::Offset(_) => concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
                ),
            };
            let query = sqlx::query(sql).bind(i64::from(limit));
            let query = match start {
                UserPageStart::After { created_at, id } => query.bind(*created_at).bind(id.clone()),
                UserPageStart::Offset(offset) => query.bind(i64::from(*offset)),
            };
            let rows = query.fetch_all(&mut *c).await.store()?;
            rows.iter().map(user_from_row).collect()
        })
    }

    async fn enable_user(&self, user_id: &str) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query("UPDATE users SET disabled = FALSE WHERE id = $1")
                .bind(user_id)
                .execute(&mut *c)
                .await
                .store()?;
            Ok(())
        })
    }
}
