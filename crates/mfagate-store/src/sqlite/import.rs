//! Importing accounts with everything they hold, in batches (the benchmark's seed).

use super::*;

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_accounts(&self, accounts: &[ImportedAccount]) -> StoreResult<()> {
        use serde_json::json;
        // Each table's rows go in as one JSON array read by `json_each`: one prepared statement
        // per table for any batch size.
        let mut users = Vec::new();
        let mut devices = Vec::new();
        let mut codes = Vec::new();
        let mut tokens = Vec::new();
        let mut keys = Vec::new();
        let mut challenges = Vec::new();
        for a in accounts {
            let u = &a.user;
            users.push(json!([
                u.id,
                u.username,
                u.username.to_lowercase(),
                u.email,
                u.email.to_lowercase(),
                u.password_hash,
                a.email_verified,
                u.is_admin,
                mfagate_core::factors::preference_name(a.preferred_method),
                a.email_otp,
                u.created_at
            ]));
            if let Some(t) = &a.totp {
                devices.push(json!([
                    mfagate_core::secret::new_id(),
                    u.id,
                    t.secret_sealed,
                    t.created_at,
                    t.last_used_at,
                    t.last_step
                ]));
            }
            for (code, used_at) in &a.recovery_codes {
                codes.push(json!([u.id, code, used_at]));
            }
            for t in &a.sessions {
                tokens.push(json!([
                    t.token_hash,
                    t.user_id,
                    t.family_id,
                    t.amr,
                    t.auth_time,
                    t.created_at,
                    t.expires_at,
                    t.id
                ]));
            }
            for (hash, purpose, expires_at) in &a.email_keys {
                keys.push(json!([hash, u.id, purpose.as_str(), expires_at]));
            }
            for c in &a.challenges {
                challenges.push(json!([
                    c.id,
                    c.user_id,
                    c.token_hash,
                    c.created_at,
                    c.expires_at
                ]));
            }
        }
        let batches: Vec<(&'static str, String)> = [
            (IMPORT_USERS, users),
            (IMPORT_DEVICES, devices),
            (IMPORT_CODES, codes),
            // Sessions first: a token's family is a session (its foreign key).
            (IMPORT_SESSIONS, tokens.clone()),
            (IMPORT_TOKENS, tokens),
            (IMPORT_KEYS, keys),
            (IMPORT_CHALLENGES, challenges),
        ]
        .into_iter()
        .map(|(sql, rows)| (sql, serde_json::Value::Array(rows).to_string()))
        .chain(std::iter::once((
            IMPORT_EVENTS,
            audit_rows(accounts.iter().flat_map(|a| &a.audit)).to_string(),
        )))
        .collect();
        // One job: its statements run in the writer's transaction, so all or nothing.
        self.write(move |c| {
            for (sql, rows) in &batches {
                execute(c, sql, [rows])?;
            }
            Ok(())
        })
        .await
    }
}

pub(super) const IMPORT_USERS: &str =
    "INSERT INTO users (id, username, username_lower, email, email_lower,
        password_hash, email_verified, is_admin, preferred_method, email_otp, created_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
            value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10
     FROM json_each(?1) ORDER BY key";

pub(super) const IMPORT_DEVICES: &str = "INSERT INTO factors (id, user_id, kind, name, name_lower,
        secret_sealed, created_at, last_used_at, last_step, verified_at)
     SELECT value ->> 0, value ->> 1, 'totp', 'Authenticator', 'authenticator',
            value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 3
     FROM json_each(?1) ORDER BY key";

pub(super) const IMPORT_CODES: &str = "INSERT INTO recovery_codes (user_id, code_sealed, used_at)
     SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) ORDER BY key";

pub(super) const IMPORT_TOKENS: &str = "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
     SELECT value ->> 7, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
     FROM json_each(?1) ORDER BY key";

/// Each imported family becomes a session (from its tokens; no IP or user agent known). A family
/// id already stored, or given to two users, is a conflict (the primary key): a token must never
/// join another user's session.
pub(super) const IMPORT_SESSIONS: &str = "INSERT INTO sessions (id, user_id, amr, created_at, last_used_at, expires_at)
     SELECT value ->> 2, value ->> 1, MIN(value ->> 3), MIN(value ->> 5), MAX(value ->> 5), MAX(value ->> 6)
     FROM json_each(?1) GROUP BY value ->> 2, value ->> 1";

pub(super) const IMPORT_KEYS: &str =
    "INSERT INTO email_keys (key_hash, user_id, purpose, expires_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1) ORDER BY key";

pub(super) const IMPORT_CHALLENGES: &str =
    "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
     FROM json_each(?1) ORDER BY key";

/// Audit events as the JSON rows `IMPORT_EVENTS` reads.
pub(super) fn audit_rows<'a>(records: impl Iterator<Item = &'a AuditRecord>) -> serde_json::Value {
    serde_json::Value::Array(
        records
            .map(|r| serde_json::json!([r.at, r.user_id, r.event, r.ip, r.detail]))
            .collect(),
    )
}

/// Also the statement of every audit batch the server writes.
pub(super) const IMPORT_EVENTS: &str = "INSERT INTO audit_events (at, user_id, event, ip, detail)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
     FROM json_each(?1) ORDER BY key";
