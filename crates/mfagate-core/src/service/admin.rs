//! Administrators' actions on other users, and the periodic clean-up.

use super::*;

/// Rows the clean-up deletes per transaction: small enough that a write queued behind a batch
/// waits a few milliseconds, large enough that a backlog of a million rows goes in minutes.
pub const CLEANUP_BATCH: u32 = 100;

/// The deepest offset the user list takes; further pages go by cursor.
pub const MAX_USER_LIST_OFFSET: u32 = 10_000;

impl Gatekeeper {
    /// The caller, if an administrator (checked against the database on every call, so revoking
    /// the flag takes effect at once).
    pub async fn require_admin(&self, user_id: &str) -> Result<User> {
        let user = self.user(user_id).await?;
        if !user.is_admin {
            return Err(Error::Forbidden);
        }
        Ok(user)
    }

    /// A page of users in order of creation. An offset walks past every user before it, so it
    /// is bounded; `UserPageStart::After` (the cursor of the previous page) costs the same on
    /// any page.
    pub async fn list_users(&self, limit: u32, start: &UserPageStart) -> Result<Vec<User>> {
        if matches!(start, UserPageStart::Offset(offset) if *offset > MAX_USER_LIST_OFFSET) {
            return Err(Error::validation(
                "offset",
                format!("is over {MAX_USER_LIST_OFFSET}; page with `after` (the `next` of the page before) instead"),
            ));
        }
        Ok(self.store.list_users(limit.clamp(1, 1000), start).await?)
    }

    /// The newest audit events, of one user or of everyone (1 to 1000, newest first).
    pub async fn audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::store::StoredAuditEvent>> {
        Ok(self
            .store
            .recent_audit_events(user_id, limit.clamp(1, 1000))
            .await?)
    }

    pub(super) async fn target_user(&self, user_id: &str) -> Result<User> {
        if user_id.contains('\0') {
            return Err(Error::NotFound("no such user".into()));
        }
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user with id '{user_id}'")))
    }

    /// For a user who lost both device and recovery codes: removes TOTP and every recovery code,
    /// and ends every session. The user logs in with a password next (and enrols again in
    /// `required` mode).
    pub async fn admin_reset_mfa(&self, username: &str, ctx: &Context) -> Result<User> {
        let user = self.user_by_name(username).await?;
        self.reset_mfa(&user, "via command line", ctx).await?;
        Ok(user)
    }

    pub async fn admin_reset_mfa_of(
        &self,
        admin: &User,
        user_id: &str,
        ctx: &Context,
    ) -> Result<User> {
        let user = self.target_user(user_id).await?;
        self.reset_mfa(&user, &format!("by administrator {}", admin.username), ctx)
            .await?;
        Ok(user)
    }

    /// Second factors off, and every credential of the user ended, in one transaction.
    pub(super) async fn reset_mfa(&self, user: &User, how: &str, ctx: &Context) -> Result<()> {
        self.store
            .change_account(&user.id, &AccountChange::ResetMfa, None, ctx.now)
            .await?;
        self.audit(
            audit::ADMIN_RESET_MFA,
            Some(&user.id),
            ctx,
            Some(how.into()),
        )
        .await;
        self.notify(notices::Notice::MfaReset, user, ctx).await;
        Ok(())
    }

    /// Grants or withdraws administrator rights. The flag says whether anything changed: a
    /// repeat is answered as such and not audited again.
    pub async fn admin_set_admin(
        &self,
        username: &str,
        is_admin: bool,
        ctx: &Context,
    ) -> Result<(User, bool)> {
        let user = self.user_by_name(username).await?;
        let changed = self.store.set_admin(&user.id, is_admin).await?;
        if changed {
            let event = if is_admin {
                audit::ADMIN_GRANTED
            } else {
                audit::ADMIN_REVOKED
            };
            self.audit(event, Some(&user.id), ctx, None).await;
        }
        Ok((user, changed))
    }

    /// Disabled users cannot log in, refresh or finish a login begun before; their credentials
    /// end in the same transaction. Access tokens
    /// already issued stay valid until they expire (at most `access_ttl`).
    pub async fn admin_set_disabled(
        &self,
        admin: &User,
        user_id: &str,
        disabled: bool,
        ctx: &Context,
    ) -> Result<User> {
        let user = self.target_user(user_id).await?;
        if disabled {
            // Every live challenge, setup token, pending enrolment and session ends with it.
            self.store
                .change_account(&user.id, &AccountChange::Disable, None, ctx.now)
                .await?;
        } else {
            self.store.enable_user(&user.id).await?;
        }
        let event = if disabled {
            audit::ADMIN_DISABLED_USER
        } else {
            audit::ADMIN_ENABLED_USER
        };
        self.audit(
            event,
            Some(&user.id),
            ctx,
            Some(format!("by administrator {}", admin.username)),
        )
        .await;
        Ok(user)
    }

    /// Creates a user without a password and mails an invitation key. Inviting an address again
    /// while the invitation is pending sends a fresh key.
    pub async fn invite(
        &self,
        address: &str,
        username: Option<&str>,
        ctx: &Context,
    ) -> Result<User> {
        let address = EmailAddress::parse(address).map_err(|p| Error::validation("email", p))?;
        let username = Username::parse(username.unwrap_or(address.as_str()))
            .map_err(|p| Error::validation("username", p))?;
        let pending = self
            .user_with_email(address.as_str())
            .await?
            .filter(|u| u.password_hash == INVITED_PASSWORD_MARKER);
        let user = match pending {
            Some(user) => user,
            None => {
                self.store
                    .create_user(&NewUser {
                        id: new_id(),
                        username: username.as_str().to_string(),
                        email: address.as_str().to_string(),
                        password_hash: INVITED_PASSWORD_MARKER.to_string(),
                        is_admin: false,
                        created_at: ctx.now,
                    })
                    .await?
            }
        };
        self.send_key_mail(&user, KeyPurpose::Invitation, ctx)
            .await?;
        Ok(user)
    }

    /// Deletes expired and spent rows, and audit events past their retention, in bounded
    /// batches; run periodically.
    pub async fn clean_up(&self, now: i64) -> Result<u64> {
        let audit_before = (self.config.audit_retention_days > 0)
            .then(|| now - i64::from(self.config.audit_retention_days) * 86_400);
        let mut deleted = 0;
        loop {
            let began = std::time::Instant::now();
            let gone = self
                .store
                .delete_expired(now, audit_before, CLEANUP_BATCH)
                .await?;
            deleted += gone;
            // Fewer than one batch in all: no kind filled its batch, so what is left is less
            // than a batch per kind, for the next round. (Waiting for a pass that finds nothing
            // could last for ever under load, and this round holds up the signing-key reload.)
            if gone < u64::from(CLEANUP_BATCH) {
                return Ok(deleted);
            }
            // A backlog (a million expired rows after a quiet month) is worked off at a third
            // of the writer's time at most: the writes of logins and refreshes queued behind a
            // batch wait for one batch, then have the writer to themselves twice as long.
            tokio::time::sleep(began.elapsed() * 2).await;
        }
    }
}
