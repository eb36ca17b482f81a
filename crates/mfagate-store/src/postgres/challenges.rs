//! Login challenges: created under a per-user limit, attempts claimed before checking, completed once.

use super::*;

/// The columns `challenge_from_row` reads, of `challenges c` (its id and user named apart from
/// a joined factor's).
macro_rules! challenge_columns {
    () => {
        "c.id AS challenge_id, c.user_id AS challenge_user_id, c.token_hash, c.expires_at, c.failures, c.spent_at, c.email_code_hash, c.webauthn_state, c.session_id"
    };
}

fn challenge_from_row(row: &PgRow) -> Result<Challenge, StoreError> {
    let failures: i64 = row.try_get("failures").store()?;
    let spent_at: Option<i64> = row.try_get("spent_at").store()?;
    Ok(Challenge {
        id: row.try_get("challenge_id").store()?,
        user_id: row.try_get("challenge_user_id").store()?,
        token_hash: row.try_get("token_hash").store()?,
        expires_at: row.try_get("expires_at").store()?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        spent: spent_at.is_some(),
        email_code_hash: row.try_get("email_code_hash").store()?,
        webauthn_state: row.try_get("webauthn_state").store()?,
        session_id: row.try_get("session_id").store()?,
    })
}

/// The count of one attempt at a challenge (`$id`) still open at `$now` with fewer than
/// `$max_failures`.
macro_rules! count_attempt {
    ($id:literal, $max_failures:literal, $now:literal) => {
        concat!(
            "UPDATE challenges SET failures = failures + 1 WHERE id = ",
            $id,
            " AND spent_at IS NULL AND expires_at > ",
            $now,
            " AND failures < ",
            $max_failures
        )
    };
}

/// Claims one attempt on `c`, inside the caller's transaction (`claim_challenge_attempt`): the
/// caller commits only a `Claimed`; anything else must be rolled back (a full user window has
/// counted the challenge already).
async fn claim_attempt(
    c: &mut sqlx::PgConnection,
    challenge_id: &str,
    max_failures: u32,
    user_window: Option<&WindowLimit>,
    now: i64,
) -> Result<AttemptClaim, sqlx::Error> {
    // The challenge's row lock makes concurrent claims wait and re-check the count. With the
    // user's window, both are claimed in one statement (one round trip): the window counts
    // only when the attempt did, and says whether it had room; when it had none, the caller's
    // rollback takes the attempt back too. The challenge's row is locked first, then the
    // window's, as when they were two statements.
    let claimed: Option<(i64, bool)> = match user_window {
        None => sqlx::query_scalar(concat!(
            count_attempt!("$1", "$2", "$3"),
            " RETURNING failures"
        ))
        .bind(challenge_id)
        .bind(i64::from(max_failures))
        .bind(now)
        .fetch_optional(&mut *c)
        .await?
        .map(|failures| (failures, true)),
        Some(window) => {
            sqlx::query_as(concat!(
                "WITH attempt AS (",
                count_attempt!("$5", "$6", "$2"),
                " RETURNING failures), counted AS (",
                claim_window!("throttle_windows", "SELECT $1, $2, $2 + $3, 1 FROM attempt"),
                ") SELECT a.failures, EXISTS (SELECT 1 FROM counted) FROM attempt a"
            ))
            .bind(&window.key)
            .bind(now)
            .bind(window.window_seconds)
            .bind(i64::from(window.limit))
            .bind(challenge_id)
            .bind(i64::from(max_failures))
            .fetch_optional(&mut *c)
            .await?
        }
    };
    let Some((failures, window_had_room)) = claimed else {
        let row = sqlx::query("SELECT expires_at, spent_at FROM challenges WHERE id = $1")
            .bind(challenge_id)
            .fetch_optional(&mut *c)
            .await?;
        let Some(row) = row else {
            return Ok(AttemptClaim::ChallengeGone);
        };
        let expires_at: i64 = row.try_get("expires_at")?;
        let spent_at: Option<i64> = row.try_get("spent_at")?;
        if spent_at.is_some() || expires_at <= now {
            return Ok(AttemptClaim::ChallengeGone);
        }
        return Ok(AttemptClaim::ChallengeDead { expires_at });
    };
    if let (Some(window), false) = (user_window, window_had_room) {
        let retry_after =
            window_retry_after(&mut *c, WindowTable::Throttle, &window.key, now).await?;
        // The caller rolls back: the challenge's attempt is not counted either.
        return Ok(AttemptClaim::UserThrottled { retry_after });
    }
    Ok(AttemptClaim::Claimed {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
    })
}

/// Spends challenge `$1` if it is still open at `$2` and its user is not disabled.
// `OFFSET 0` keeps the user's check a sub-plan run for the one challenge, by the user's key:
// made a join, it could be planned as a merge join walking all of `users_pkey`, which the
// planner prices as cheap as the lookup when `challenges` was analysed empty (see
// `challenge_and_factors`; the query-plan test lists such walks).
macro_rules! spend_challenge {
    () => {
        "UPDATE challenges SET spent_at = $2
         WHERE id = $1 AND spent_at IS NULL AND expires_at > $2
           AND EXISTS (SELECT 1 FROM users u WHERE u.id = challenges.user_id AND NOT u.disabled OFFSET 0)"
    };
}

/// Completes a login on `c`, inside the caller's transaction (`complete_challenge`): the caller
/// commits only a `Completed`; anything else must be rolled back (a reauthentication whose
/// session ended has claimed its factor already).
async fn complete_in(
    c: &mut sqlx::PgConnection,
    challenge_id: &str,
    claim: FactorClaim,
    refresh: &NewRefreshToken,
    release: Option<&WindowLimit>,
    now: i64,
) -> Result<Completion, sqlx::Error> {
    // The challenge is spent (its user, its session if it continues one) and, for a TOTP code,
    // the step claimed in the same statement: one round trip. A step already taken leaves the
    // challenge spent here; the caller rolls both back.
    let spent: Option<(String, Option<String>, bool)> = match &claim {
        FactorClaim::TotpStep { factor_id, step } => {
            sqlx::query_as(concat!(
                "WITH spent AS (",
                spend_challenge!(),
                " RETURNING user_id, session_id), stepped AS (",
                factors::accept_step_sql!("(SELECT user_id FROM spent)", "$3", "$4", "$2"),
                " RETURNING 1)
                 SELECT s.user_id, s.session_id, EXISTS (SELECT 1 FROM stepped) FROM spent s"
            ))
            .bind(challenge_id)
            .bind(now)
            .bind(factor_id)
            .bind(*step)
            .fetch_optional(&mut *c)
            .await?
        }
        _ => {
            sqlx::query_as(concat!(
                spend_challenge!(),
                " RETURNING user_id, session_id, FALSE"
            ))
            .bind(challenge_id)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?
        }
    };
    let Some((user_id, continued, step_taken)) = spent else {
        return Ok(Completion::ChallengeGone);
    };
    let claimed = match claim {
        FactorClaim::TotpStep { .. } => step_taken,
        FactorClaim::RecoveryCode(code_id) => {
            let used = sqlx::query(
                "UPDATE recovery_codes SET used_at = $3
                 WHERE id = $2 AND user_id = $1 AND used_at IS NULL",
            )
            .bind(&user_id)
            .bind(code_id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1;
            if used {
                touch_totp_device(&mut *c, &user_id, now).await?;
            }
            used
        }
        FactorClaim::EmailCode => true,
        FactorClaim::SignCount { factor_id, count } => {
            factors::accept_count(&mut *c, &user_id, &factor_id, count, now, false).await?
        }
    };
    if !claimed {
        return Ok(Completion::FactorRefused);
    }
    let release = release.map(std::slice::from_ref).unwrap_or_default();
    match continued {
        // A reauthentication continues its session, which must still be live; the caller
        // rolls back the factor's claim.
        Some(session) => {
            if session != refresh.family_id
                || !super::tokens::continue_family(&mut *c, refresh, now).await?
            {
                return Ok(Completion::ChallengeGone);
            }
            release_in_windows(&mut *c, release, now).await?;
        }
        // The new session, its token and the hand-back: one statement.
        None => insert_token(&mut *c, refresh, release, now).await?,
    }
    Ok(Completion::Completed)
}

/// `ChallengeStore::answer_challenge` on `c` (a connection of the store's own, which the caller
/// hands back; a refusal drops the transaction, whose rollback the hand-back sends).
async fn answer_on(
    c: &mut sqlx::PgConnection,
    challenge_id: &str,
    max_failures: u32,
    user_window: Option<&WindowLimit>,
    check: AnswerCheck,
    now: i64,
) -> StoreResult<Answered> {
    // One transaction, one commit: the claim (which locks the challenge's row, so
    // concurrent answers wait for it and then see its outcome), the check, the completion.
    let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
    let failures = match claim_attempt(&mut tx, challenge_id, max_failures, user_window, now)
        .await
        .store()?
    {
        AttemptClaim::Claimed { failures } => failures,
        refused => return Ok(Answered::NotClaimed(refused)),
    };
    let Some(proven) = check() else {
        tx.commit().await.store()?;
        return Ok(Answered::Wrong { failures });
    };
    // A completion that does not happen is undone back to here; the claim stays counted.
    // The savepoint is set and rolled back to by hand, not with a nested sqlx transaction:
    // a completed one needs no RELEASE (the COMMIT keeps its work), one round trip fewer.
    sqlx::raw_sql("SAVEPOINT completing")
        .execute(&mut *tx)
        .await
        .store()?;
    let completion = complete_in(
        &mut tx,
        challenge_id,
        proven.claim.clone(),
        &proven.refresh,
        user_window,
        now,
    )
    .await
    .store()?;
    if completion != Completion::Completed {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT completing")
            .execute(&mut *tx)
            .await
            .store()?;
    }
    tx.commit().await.store()?;
    Ok(Answered::Proved {
        failures,
        proven,
        completion,
    })
}

#[async_trait]
impl ChallengeStore for PgStore {
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        hand_back: &[WindowLimit],
        now: i64,
    ) -> StoreResult<ChallengeCreated> {
        // Counting live challenges and inserting must not interleave with another instance doing
        // the same for this user: the user's row lock serialises them.
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
                .bind(&challenge.user_id)
                .execute(&mut *tx)
                .await
                .store()?;
            // The password's claim goes back in this transaction and statement (whether or not the
            // challenge is created, as the password was right): one commit and one round trip fewer
            // per login. The count is taken in this statement, after the lock above: a statement's
            // snapshot is taken when it starts, so a concurrent login's committed challenge is seen.
            let inserted = sqlx::query(concat!(
            "WITH handed_back AS (",
            hand_back_windows!("$10", "$4"),
            ")
                 INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at, webauthn_state, session_id)
                 SELECT $1, $2, $3, $4, $5, $8, $9
                 WHERE (SELECT COUNT(*) FROM challenges
                        WHERE user_id = $2 AND expires_at > $4 AND spent_at IS NULL AND failures < $7) < $6"
        ))
        .bind(&challenge.id)
        .bind(&challenge.user_id)
        .bind(&challenge.token_hash)
        .bind(now)
        .bind(challenge.expires_at)
        .bind(i64::from(max_live))
        .bind(i64::from(max_failures))
        .bind(&challenge.webauthn_state)
        .bind(&challenge.session_id)
        .bind(hand_back_keys(hand_back))
        .execute(&mut *tx)
        .await
        .store()?;
            tx.commit().await.store()?;
            if inserted.rows_affected() == 1 {
                return Ok(ChallengeCreated::Created);
            }
            let earliest: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(expires_at) FROM challenges
                 WHERE user_id = $1 AND expires_at > $2 AND spent_at IS NULL AND failures < $3",
            )
            .bind(&challenge.user_id)
            .bind(now)
            .bind(i64::from(max_failures))
            .fetch_one(&mut *c)
            .await
            .store()?;
            Ok(ChallengeCreated::TooMany {
                earliest_expiry: earliest.unwrap_or(now + 1),
            })
        })
    }

    async fn challenge_by_id(&self, id: &str) -> StoreResult<Option<Challenge>> {
        on_connection!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                challenge_columns!(),
                " FROM challenges c WHERE c.id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .store()?;
            row.as_ref().map(challenge_from_row).transpose()
        })
    }

    async fn challenge_and_factors(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<Factor>)>> {
        // One row per verified factor of the challenge's user, each carrying the challenge; one
        // row with no factor (all NULL) when the user has none.
        //
        // The factors are a lateral sub-query fenced by `OFFSET 0`, so they are read for the one
        // challenge, by its user's key, and nothing in the join asks for `challenges` in user
        // order. As a plain join, after `challenges` was analysed empty (the clean-up had just
        // deleted every spent and expired one), every path to the challenge cost the same, and
        // the planner took the one that also gave the join an order: a walk of all of
        // `challenges_by_user`, filtering on the id, at every `mfa/verify` (#11: 400 index and
        // 2,200 heap blocks a login at a million accounts; auto_explain, twelfth session).
        let query = sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            ", ",
            qualified_factor_columns!(),
            " FROM challenges c
             LEFT JOIN LATERAL (SELECT * FROM factors
                                WHERE factors.user_id = c.user_id AND factors.verified_at IS NOT NULL
                                OFFSET 0) f ON true
             WHERE c.id = $1 ORDER BY f.seq"
        ))
        .bind(id);
        let rows = on_connection!(self, |c| query.fetch_all(c).await.store())?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let challenge = challenge_from_row(first)?;
        let mut factors = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<String>, _>("id").store()?.is_some() {
                factors.push(factor_from_row(row)?);
            }
        }
        Ok(Some((challenge, factors)))
    }

    async fn claim_challenge_attempt(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<AttemptClaim> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            let claimed = claim_attempt(&mut tx, challenge_id, max_failures, user_window, now)
                .await
                .store()?;
            if matches!(claimed, AttemptClaim::Claimed { .. }) {
                tx.commit().await.store()?;
            }
            Ok(claimed)
        })
    }

    async fn complete_challenge(
        &self,
        challenge_id: &str,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        release: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<Completion> {
        on_connection!(self, |c| {
            // Dropping the transaction before commit rolls every step back. The attempt was claimed
            // before the code was checked, so the attempt count is not looked at here.
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            let completion = complete_in(&mut tx, challenge_id, claim, refresh, release, now)
                .await
                .store()?;
            if completion == Completion::Completed {
                tx.commit().await.store()?;
            }
            Ok(completion)
        })
    }

    async fn answer_challenge(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        check: AnswerCheck,
        now: i64,
    ) -> StoreResult<Answered> {
        on_connection!(self, |c| {
            answer_on(c, challenge_id, max_failures, user_window, check, now).await
        })
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query(
                "INSERT INTO setup_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(())
        })
    }

    async fn create_passkey_token(
        &self,
        token_hash: &str,
        state_sealed: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query(
                "INSERT INTO passkey_tokens (token_hash, state_sealed, created_at, expires_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(state_sealed)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(())
        })
    }

    async fn take_passkey_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            // One DELETE: a concurrent one waits on the row and then deletes nothing.
            sqlx::query_scalar(
                "DELETE FROM passkey_tokens WHERE token_hash = $1 AND expires_at > $2
                 RETURNING state_sealed",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()
        })
    }

    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            sqlx::query_scalar(
                "SELECT user_id FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()
        })
    }
}
