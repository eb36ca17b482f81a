//! Importing accounts with everything they hold, in batches (the benchmark's seed).

use super::*;

#[async_trait]
impl ImportStore for PgStore {
    async fn import_accounts(&self, accounts: &[ImportedAccount]) -> StoreResult<()> {
        // One statement per table with the rows as arrays (UNNEST): a few round trips per
        // batch rather than one per row.
        let users = accounts.iter().map(|a| &a.user);
        let ids: Vec<&str> = users.clone().map(|u| u.id.as_str()).collect();
        let names: Vec<&str> = users.clone().map(|u| u.username.as_str()).collect();
        let names_lower: Vec<String> = users.clone().map(|u| u.username.to_lowercase()).collect();
        let emails: Vec<&str> = users.clone().map(|u| u.email.as_str()).collect();
        let emails_lower: Vec<String> = users.clone().map(|u| u.email.to_lowercase()).collect();
        let hashes: Vec<&str> = users.clone().map(|u| u.password_hash.as_str()).collect();
        let verified: Vec<bool> = accounts.iter().map(|a| a.email_verified).collect();
        let admins: Vec<bool> = users.clone().map(|u| u.is_admin).collect();
        let methods: Vec<&str> = accounts
            .iter()
            .map(|a| mfagate_core::factors::preference_name(a.preferred_method))
            .collect();
        let email_otp: Vec<bool> = accounts.iter().map(|a| a.email_otp).collect();
        let created: Vec<i64> = users.map(|u| u.created_at).collect();

        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash,
                                email_verified, is_admin, preferred_method, email_otp, created_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                                  $6::TEXT[], $7::BOOLEAN[], $8::BOOLEAN[], $9::TEXT[],
                                  $10::BOOLEAN[], $11::BIGINT[])",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&names_lower)
        .bind(&emails)
        .bind(&emails_lower)
        .bind(&hashes)
        .bind(&verified)
        .bind(&admins)
        .bind(&methods)
        .bind(&email_otp)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .store()?;

        let devices: Vec<(&str, &TotpDevice)> = accounts
            .iter()
            .filter_map(|a| a.totp.as_ref().map(|t| (a.user.id.as_str(), t)))
            .collect();
        sqlx::query(
            "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, created_at,
                                  last_used_at, last_step, verified_at)
             SELECT replace(gen_random_uuid()::text, '-', ''), u, 'totp', 'Authenticator',
                    'authenticator', s, c, l, st, c
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])
                  AS d (u, s, c, l, st)",
        )
        .bind(devices.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(
            devices
                .iter()
                .map(|d| d.1.secret_sealed.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(devices.iter().map(|d| d.1.created_at).collect::<Vec<_>>())
        .bind(devices.iter().map(|d| d.1.last_used_at).collect::<Vec<_>>())
        .bind(devices.iter().map(|d| d.1.last_step).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let codes: Vec<(&str, &str, Option<i64>)> = accounts
            .iter()
            .flat_map(|a| {
                a.recovery_codes
                    .iter()
                    .map(move |(code, used)| (a.user.id.as_str(), code.as_str(), *used))
            })
            .collect();
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_sealed, used_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[])",
        )
        .bind(codes.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(codes.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(codes.iter().map(|c| c.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let tokens: Vec<&NewRefreshToken> = accounts.iter().flat_map(|a| &a.sessions).collect();
        // Each imported family becomes a session (no IP or user agent known); sessions first, since
        // a token's family is a session (its foreign key). A family id already stored, or given
        // to two users, is a conflict (the primary key): a token must never join another user's
        // session.
        sqlx::query(
            "INSERT INTO sessions (id, user_id, amr, created_at, last_used_at, expires_at)
             SELECT family, user_id, MIN(amr), MIN(created), MAX(created), MAX(expires)
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
                  AS t(family, user_id, amr, created, expires)
             GROUP BY family, user_id",
        )
        .bind(
            tokens
                .iter()
                .map(|t| t.family_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            tokens
                .iter()
                .map(|t| t.user_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(tokens.iter().map(|t| t.amr.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.expires_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at, id)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                  $6::BIGINT[], $7::BIGINT[], $8::TEXT[])",
        )
        .bind(tokens.iter().map(|t| t.token_hash.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.user_id.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.family_id.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.amr.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.auth_time).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.expires_at).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.id.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let keys: Vec<(&str, &str, &'static str, i64)> = accounts
            .iter()
            .flat_map(|a| {
                a.email_keys.iter().map(move |(hash, purpose, expires)| {
                    (
                        hash.as_str(),
                        a.user.id.as_str(),
                        purpose.as_str(),
                        *expires,
                    )
                })
            })
            .collect();
        sqlx::query(
            "INSERT INTO email_keys (key_hash, user_id, purpose, expires_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])",
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.3).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let challenges: Vec<&NewChallenge> = accounts.iter().flat_map(|a| &a.challenges).collect();
        sqlx::query(
            "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])",
        )
        .bind(challenges.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(
            challenges
                .iter()
                .map(|c| c.user_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            challenges
                .iter()
                .map(|c| c.token_hash.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(challenges.iter().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(challenges.iter().map(|c| c.expires_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let events: Vec<&AuditRecord> = accounts.iter().flat_map(|a| &a.audit).collect();
        sqlx::query(
            "INSERT INTO audit_events (at, user_id, event, ip, detail)
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])",
        )
        .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.user_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.event).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.ip.as_deref()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.detail.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }
}
