//! Access tokens (HS256 or EdDSA with stored, rotating keys) and refresh-token sessions.

use super::*;

#[derive(Clone, Serialize)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

crate::debug_showing!(TokenPair {
    token_type,
    expires_in
});

/// Claims of an access token (RFC 7519, `amr` per RFC 8176).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub iss: String,
    pub amr: Vec<String>,
    /// When the user last proved who they are (OpenID Connect's `auth_time`): the login that
    /// began this session. Refreshing keeps it.
    #[serde(default)]
    pub auth_time: i64,
    /// The session (refresh family) the token belongs to: `GET /auth/sessions` marks it
    /// `current`, and a reauthentication continues it.
    #[serde(default)]
    pub sid: String,
}

impl Expiring for AccessClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

impl AccessClaims {
    /// Whether the token was issued after a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }

    /// A second factor proved within the last `max_age` seconds.
    pub fn recent_second_factor(&self, now: i64, max_age: i64) -> bool {
        self.has_second_factor() && now - self.auth_time <= max_age
    }
}

pub(super) const ACCESS_TOKEN_TYPE: &str = "JWT";

/// The `amr` values a session stores (space-separated, as `new_refresh_token` joins them).
pub(super) fn stored_amr(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(' ').filter(|m| !m.is_empty())
}

pub(super) fn signing_key_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

pub(super) fn stored_signing_key(key: &EdKey, sealer: &Sealer) -> Result<StoredSigningKey> {
    let seed = key
        .seed()
        .ok_or_else(|| Error::Internal("a verify-only key cannot be stored".into()))?;
    Ok(StoredSigningKey {
        kid: key.kid.clone(),
        private_sealed: sealer.seal(&seed, &signing_key_context(&key.kid)),
        public_key: key.public_key_b64(),
        created_at: key.created_at,
        retired_at: key.retired_at,
    })
}

pub(super) async fn load_key_ring(store: &dyn Store, sealer: &Sealer) -> Result<EdKeyRing> {
    let mut keys = Vec::new();
    for stored in store.signing_keys().await? {
        let seed = sealer.open(&stored.private_sealed, &signing_key_context(&stored.kid))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::Internal(format!("signing key {} is not 32 bytes", stored.kid)))?;
        keys.push(EdKey::from_seed(
            &seed,
            stored.created_at,
            stored.retired_at,
        ));
    }
    Ok(EdKeyRing::new(keys))
}

impl Gatekeeper {
    /// A new session (refresh family) for a user who just authenticated.
    pub(super) async fn issue_tokens(
        &self,
        user_id: &str,
        amr: &[&str],
        ctx: &Context,
    ) -> Result<TokenPair> {
        let (refresh, record) = self.new_refresh_token(user_id, amr, ctx);
        self.store.insert_refresh_token(&record).await?;
        self.token_pair(&record, amr, refresh, ctx.now)
    }

    /// The first refresh token of a new session begun by an authentication now (from where
    /// `ctx` says), and the row that stores its hash.
    pub(super) fn new_refresh_token(
        &self,
        user_id: &str,
        amr: &[&str],
        ctx: &Context,
    ) -> (String, NewRefreshToken) {
        let now = ctx.now;
        let NamedToken { id, token, hash } = NamedToken::new(now);
        let record = NewRefreshToken {
            id,
            token_hash: hash,
            user_id: user_id.to_string(),
            // The session's id too: ordered, see `new_ordered_id`.
            family_id: new_ordered_id(now),
            amr: amr.join(" "),
            auth_time: now,
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
            ip: ctx.ip.map(|ip| ip.to_string()),
            user_agent: ctx.user_agent.as_str().map(str::to_string),
        };
        (token, record)
    }

    /// Signs the access token that goes with a stored refresh token (its session and
    /// `auth_time` are the record's).
    pub(super) fn token_pair(
        &self,
        record: &NewRefreshToken,
        amr: &[&str],
        refresh: String,
        now: i64,
    ) -> Result<TokenPair> {
        self.sign_pair(
            &record.user_id,
            &record.family_id,
            amr,
            record.auth_time,
            refresh,
            now,
        )
    }

    fn sign_pair(
        &self,
        user_id: &str,
        sid: &str,
        amr: &[&str],
        auth_time: i64,
        refresh: String,
        now: i64,
    ) -> Result<TokenPair> {
        let claims = AccessClaims {
            sid: sid.to_string(),
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.config.access_ttl,
            jti: new_id(),
            iss: self.config.jwt_issuer.clone(),
            amr: amr.iter().map(|m| m.to_string()).collect(),
            auth_time,
        };
        let signed = match &self.ed_keys {
            Some(ring) => ring
                .read()
                .map_err(|_| Error::Internal("signing key lock poisoned".into()))?
                .sign(&claims),
            None => self.access_signer.sign(&claims),
        };
        let access =
            signed.map_err(|e| Error::Internal(format!("signing an access token: {e}")))?;
        Ok(TokenPair {
            access,
            refresh,
            token_type: "Bearer",
            expires_in: self.config.access_ttl,
        })
    }

    pub async fn refresh(&self, refresh_token: &str, ctx: &Context) -> Result<TokenPair> {
        let presented = PresentedToken::of(refresh_token).ok_or(Error::InvalidToken)?;
        let NamedToken {
            id,
            token: refresh,
            hash,
        } = NamedToken::new(ctx.now);
        let successor = RefreshSuccessor {
            id,
            token_hash: hash,
            created_at: ctx.now,
            expires_at: ctx.now + self.config.refresh_ttl,
        };
        match self
            .store
            .rotate_refresh_token(&presented, &successor, ctx.now)
            .await?
        {
            RefreshOutcome::Rotated {
                user_id,
                family_id,
                amr,
                auth_time,
            } => {
                let amr: Vec<&str> = stored_amr(&amr).collect();
                self.sign_pair(&user_id, &family_id, &amr, auth_time, refresh, ctx.now)
            }
            RefreshOutcome::Reused { user_id, family_id } => {
                self.audit(
                    audit::REFRESH_REUSE_DETECTED,
                    Some(&user_id),
                    ctx,
                    Some(format!("family {family_id} revoked")),
                )
                .await;
                Err(Error::InvalidToken)
            }
            RefreshOutcome::Invalid => Err(Error::InvalidToken),
        }
    }

    pub async fn logout(&self, refresh_token: &str, ctx: &Context) -> Result<()> {
        let presented = PresentedToken::of(refresh_token).ok_or(Error::InvalidToken)?;
        let user_id = self
            .store
            .revoke_refresh_family(&presented, ctx.now)
            .await?
            .ok_or(Error::InvalidToken)?;
        self.audit(audit::LOGOUT, Some(&user_id), ctx, None).await;
        Ok(())
    }

    /// Verifies an access token: signature, type, expiry and issuer.
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<AccessClaims> {
        let verified = match &self.ed_keys {
            None => self.access_signer.verify(token, now),
            Some(_) => match self.verify_ed(token, now) {
                // A key another instance (or `mfagate keys rotate`) added since we last looked.
                Err(crate::jwt::JwtError::UnknownKey) if self.may_reload_keys(now) => {
                    self.reload_signing_keys(now).await?;
                    self.verify_ed(token, now)
                }
                other => other,
            },
        };
        let claims: AccessClaims = verified.map_err(|reason| {
            tracing::debug!(%reason, "access token refused");
            Error::NotAuthenticated
        })?;
        if claims.iss != self.config.jwt_issuer {
            tracing::debug!("access token refused: another issuer");
            return Err(Error::NotAuthenticated);
        }
        Ok(claims)
    }

    pub(super) fn verify_ed(
        &self,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, crate::jwt::JwtError> {
        match &self.ed_keys {
            Some(ring) => ring
                .read()
                .map_err(|_| crate::jwt::JwtError::UnknownKey)?
                .verify(token, now),
            None => Err(crate::jwt::JwtError::UnknownKey),
        }
    }

    /// At most one reload every few seconds, so forged `kid`s cannot hammer the database.
    pub(super) fn may_reload_keys(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.keys_loaded_at.load(Ordering::Relaxed);
        now - last >= 5
            && self
                .keys_loaded_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Re-reads the Ed25519 keys (new ones from a rotation, retirements). A no-op under HS256.
    pub async fn reload_signing_keys(&self, now: i64) -> Result<()> {
        let Some(ring) = &self.ed_keys else {
            return Ok(());
        };
        let fresh = load_key_ring(&*self.store, &self.sealer).await?;
        self.keys_loaded_at
            .store(now, std::sync::atomic::Ordering::Relaxed);
        *ring
            .write()
            .map_err(|_| Error::Internal("signing key lock poisoned".into()))? = fresh;
        Ok(())
    }

    /// Adds a new Ed25519 key that signs from now on; the old ones stay published until their
    /// tokens expire. Returns the new key id.
    pub async fn rotate_signing_key(&self, now: i64) -> Result<String> {
        if self.ed_keys.is_none() {
            return Err(Error::InvalidMethod(
                "key rotation applies to MFAGATE_JWT_ALGORITHM=EdDSA; under HS256 change MFAGATE_SECRET_KEY".into(),
            ));
        }
        let key = EdKey::generate(now);
        self.store
            .add_signing_key(&stored_signing_key(&key, &self.sealer)?, now)
            .await?;
        self.reload_signing_keys(now).await?;
        Ok(key.kid)
    }

    /// The public keys that verify access tokens (`{"keys": []}` under HS256).
    pub fn jwks(&self, now: i64) -> serde_json::Value {
        match self.ed_keys.as_ref().and_then(|ring| ring.read().ok()) {
            Some(ring) => ring.jwks(now, self.config.access_ttl),
            None => serde_json::json!({ "keys": [] }),
        }
    }
}
