//! The administrators' user list and enabling users.

use super::*;

#[async_trait]
impl AdminStore for SqliteStore {
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>> {
        let limit = i64::from(limit);
        self.readers
            .read(|c| match start {
                UserPageStart::After { created_at, id } => query_all(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users WHERE (created_at, id) > (?2, ?3) ORDER BY created_at, id LIMIT ?1"
                    ),
                    params![limit, created_at, id],
                    user_from_row,
                ),
                UserPageStart::Offset(offset) => query_all(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
                    ),
                    params![limit, i64::from(*offset)],
                    user_from_row,
                ),
            })
            .await
    }

    async fn enable_user(&self, user_id: &str) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            execute(
                c,
                "UPDATE users SET disabled = 0 WHERE id = ?1",
                params![user_id],
            )
        })
        .await?;
        Ok(())
    }
}
