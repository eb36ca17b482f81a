//! Login challenges: created under a per-user limit, attempts claimed before checking, completed once.

use super::*;

/// The columns `challenge_from_row` reads, of `challenges c` (its id and user named apart from
/// a joined factor's).
macro_rules! challenge_columns {
    () => {
        "c.id AS challenge_id, c.user_id AS challenge_user_id, c.token_hash, c.expires_at, c.failures, c.spent_at, c.email_code_hash, c.webauthn_state, c.session_id"
    };
}

fn challenge_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Challenge> {
    let failures: i64 = row.get("failures")?;
    let spent_at: Option<i64> = row.get("spent_at")?;
    Ok(Challenge {
        id: row.get("challenge_id")?,
        user_id: row.get("challenge_user_id")?,
        token_hash: row.get("token_hash")?,
        expires_at: row.get("expires_at")?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        spent: spent_at.is_some(),
        email_code_hash: row.get("email_code_hash")?,
        webauthn_state: row.get("webauthn_state")?,
        session_id: row.get("session_id")?,
    })
}

/// Completes a login (see `ChallengeStore::complete_challenge`). Everything here runs in one job
/// on the one writer, so nothing comes between the checks and the changes: the challenge is live
/// and its user active, then the factor is claimed (a TOTP step later than the last, a recovery
/// code unused), and only then are the challenge spent and the refresh token stored.
pub(super) fn complete_login(
    c: &rusqlite::Connection,
    challenge_id: &str,
    claim: FactorClaim,
    refresh: &NewRefreshToken,
    release: Option<&str>,
    now: i64,
) -> rusqlite::Result<Completion> {
    let live: Option<Option<String>> = query_opt(
        c,
        "SELECT session_id FROM challenges
         WHERE id = ?1 AND user_id = ?2 AND spent_at IS NULL AND expires_at > ?3
           AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled = 0)",
        params![challenge_id, refresh.user_id, now],
        |row| row.get(0),
    )?;
    let Some(continued) = live else {
        return Ok(Completion::ChallengeGone);
    };
    // A reauthentication continues its session, which must still be live (checked before any
    // change: a job that returns early must have changed nothing).
    if let Some(session) = &continued {
        let live_session = session == &refresh.family_id
            && query_opt(
                c,
                "SELECT 1 FROM refresh_tokens
                 WHERE family_id = ?1 AND user_id = ?2 AND used_at IS NULL AND revoked_at IS NULL
                   AND expires_at > ?3",
                params![session, refresh.user_id, now],
                |_| Ok(()),
            )?
            .is_some();
        if !live_session {
            return Ok(Completion::ChallengeGone);
        }
    }
    let user = refresh.user_id.as_str();
    let factor_claimed = match claim {
        FactorClaim::TotpStep { factor_id, step } => {
            factors::accept_step(c, user, &factor_id, step, now)?
        }
        FactorClaim::RecoveryCode(code_id) => {
            let used = execute(
                c,
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND used_at IS NULL",
                params![user, code_id, now],
            )?;
            if used == 1 {
                touch_totp_device(c, user, now)?;
            }
            used
        }
        // The code was checked against the challenge's own hash; spending the challenge below
        // is what makes it single-use.
        FactorClaim::EmailCode => 1,
        FactorClaim::SignCount { factor_id, count } => {
            factors::accept_count(c, user, &factor_id, count, now)?
        }
    };
    if factor_claimed != 1 {
        return Ok(Completion::FactorRefused);
    }
    if continued.is_some() {
        // Checked live above, and nothing ran in between on the one writer.
        continue_family(c, refresh, now)?;
    } else {
        insert_token(c, refresh)?;
    }
    execute(
        c,
        "UPDATE challenges SET spent_at = ?2 WHERE id = ?1",
        params![challenge_id, now],
    )?;
    // The login's throttle claim goes back with the login, in the same transaction.
    if let Some(keys) = release {
        release_in_windows(c, keys, now)?;
    }
    Ok(Completion::Completed)
}

/// One attempt at a challenge, on the writer's connection: its room read, its count, or why it
/// has none. Everything an answer does with it runs in one job on the one writer, so nothing
/// runs between the read of the room and the count.
struct Attempt<'a> {
    id: &'a str,
    /// The challenge's most attempts.
    max_failures: u32,
    /// The user's window of failures, if one is kept.
    window: Option<&'a WindowLimit>,
    now: i64,
}

impl<'a> Attempt<'a> {
    fn new(id: &'a str, max_failures: u32, window: Option<&'a WindowLimit>, now: i64) -> Self {
        Attempt {
            id,
            max_failures,
            window,
            now,
        }
    }

    /// Claims the attempt in the challenge and in the user's window, all or nothing
    /// (`ChallengeStore::claim_challenge_attempt`): the challenge is counted only if it is live
    /// with room and the user's window has room, and the window only if the challenge was. A
    /// refusal then reads why.
    fn claim(&self, c: &rusqlite::Connection) -> rusqlite::Result<AttemptClaim> {
        let Some(before) = self.room(c)? else {
            return self.refusal(c);
        };
        if let Some(retry_after) = self.count(c)? {
            // Room was seen just before, so this cannot happen; were it ever refused, the
            // attempt fails closed (counted against the challenge, never checked).
            return Ok(AttemptClaim::UserThrottled { retry_after });
        }
        Ok(AttemptClaim::Claimed {
            failures: u32::try_from(before + 1).unwrap_or(u32::MAX),
        })
    }

    /// The failures so far of a live challenge with room for one more attempt, in a user's
    /// window with room too; None when either is full or the challenge is over. Reads only:
    /// the caller counts the attempt (`count`) in the same job.
    fn room(&self, c: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
        query_opt(
            c,
            "SELECT failures FROM challenges
             WHERE id = ?1 AND spent_at IS NULL AND expires_at > ?2 AND failures < ?3
               AND NOT EXISTS (SELECT 1 FROM throttle_windows
                               WHERE key = ?4 AND window_end > ?2 AND count >= ?5)",
            (
                self.id,
                self.now,
                i64::from(self.max_failures),
                self.window.map(|w| w.key.as_str()),
                self.window.map_or(0, |w| i64::from(w.limit)),
            ),
            |row| row.get(0),
        )
    }

    /// Counts the attempt that `room` found room for, earlier in the same job: in the challenge
    /// and in the user's window. `Some(retry_after)` if the window refused it (it cannot: no
    /// other job ran since the room was read).
    fn count(&self, c: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
        execute(
            c,
            "UPDATE challenges SET failures = failures + 1 WHERE id = ?1",
            [self.id],
        )?;
        match self.window {
            Some(window) => {
                claim_in_windows(c, &windows_json(std::slice::from_ref(window)), self.now)
            }
            None => Ok(None),
        }
    }

    /// Why the challenge has no room for the attempt (nothing is counted): over, out of
    /// attempts, or the user's window full.
    fn refusal(&self, c: &rusqlite::Connection) -> rusqlite::Result<AttemptClaim> {
        let (id, max_failures, window, now) = (self.id, self.max_failures, self.window, self.now);
        let row = query_opt(
            c,
            "SELECT expires_at, failures, spent_at FROM challenges WHERE id = ?1",
            [&id],
            |row| <(i64, i64, Option<i64>)>::try_from(row),
        )?;
        let Some((expires_at, failures, spent_at)) = row else {
            return Ok(AttemptClaim::ChallengeGone);
        };
        if spent_at.is_some() || expires_at <= now {
            return Ok(AttemptClaim::ChallengeGone);
        }
        if failures >= i64::from(max_failures) {
            return Ok(AttemptClaim::ChallengeDead { expires_at });
        }
        // Live with room, so the user's window was full; nothing ran between.
        let retry_after = match window {
            Some(window) => {
                full_windows_retry_after(c, &windows_json(std::slice::from_ref(window)), now)?
            }
            None => 1,
        };
        Ok(AttemptClaim::UserThrottled { retry_after })
    }
}

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        hand_back: &[WindowLimit],
        now: i64,
    ) -> StoreResult<ChallengeCreated> {
        let new = challenge.clone();
        let hand_back =
            (!hand_back.is_empty()).then(|| keys_json(hand_back.iter().map(|w| w.key.as_str())));
        let inserted = self
            .write(move |c| {
                // The password's claim goes back in this job: a login writes once fewer, and
                // on SQLite every write of a login is a commit it waits for.
                if let Some(keys) = &hand_back {
                    release_in_windows(c, keys, now)?;
                }
                execute(c, "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at, webauthn_state, session_id)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?8, ?9
                 WHERE (SELECT COUNT(*) FROM challenges
                        WHERE user_id = ?2 AND expires_at > ?4 AND spent_at IS NULL AND failures < ?7) < ?6", params![new.id, new.user_id, new.token_hash, now, new.expires_at, i64::from(max_live), i64::from(max_failures), new.webauthn_state, new.session_id])
            })
            .await?;
        if inserted == 1 {
            return Ok(ChallengeCreated::Created);
        }
        let earliest: Option<i64> = self
            .readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT MIN(expires_at) FROM challenges
                     WHERE user_id = ?1 AND expires_at > ?2 AND spent_at IS NULL AND failures < ?3",
                    params![challenge.user_id, now, i64::from(max_failures)],
                    |row| row.get(0),
                )
            })
            .await?
            .flatten();
        Ok(ChallengeCreated::TooMany {
            earliest_expiry: earliest.unwrap_or(now + 1),
        })
    }

    async fn challenge_by_id(&self, id: &str) -> StoreResult<Option<Challenge>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!(
                        "SELECT ",
                        challenge_columns!(),
                        " FROM challenges c WHERE c.id = ?1"
                    ),
                    [id],
                    challenge_from_row,
                )
            })
            .await
    }

    async fn challenge_and_factors(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<Factor>)>> {
        self.readers
            .read(|c| {
                // One row per verified factor of the challenge's user, each carrying the
                // challenge; one row with no factor (all NULL) when the user has none.
                let rows = query_all(
                    c,
                    concat!(
                        "SELECT ",
                        challenge_columns!(),
                        ", ",
                        qualified_factor_columns!(),
                        " FROM challenges c
                         LEFT JOIN factors f ON f.user_id = c.user_id AND f.verified_at IS NOT NULL
                         WHERE c.id = ?1 ORDER BY f.seq"
                    ),
                    [id],
                    |row| {
                        let factor = match row.get::<_, Option<String>>("id")? {
                            Some(_) => Some(factor_from_row(row)?),
                            None => None,
                        };
                        Ok((challenge_from_row(row)?, factor))
                    },
                )?;
                let mut rows = rows.into_iter();
                Ok(rows.next().map(|(challenge, first)| {
                    let factors = first
                        .into_iter()
                        .chain(rows.filter_map(|(_, factor)| factor))
                        .collect();
                    (challenge, factors)
                }))
            })
            .await
    }

    async fn claim_challenge_attempt(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<AttemptClaim> {
        let (id, window) = (challenge_id.to_owned(), user_window.cloned());
        self.write(move |c| {
            let attempt = Attempt::new(&id, max_failures, window.as_ref(), now);
            attempt.claim(c)
        })
        .await
    }

    async fn answer_challenge(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        check: AnswerCheck,
        now: i64,
    ) -> StoreResult<Answered> {
        let (id, window) = (challenge_id.to_owned(), user_window.cloned());
        // One job: the room for an attempt is read, the answer checked (a comparison of what
        // the caller read before, microseconds on this thread), then either the attempt
        // counted (wrong) or the login completed (right). The job runs alone on the one
        // writer, so between the read and the count nothing else runs: of a burst at most
        // `max_failures` answers are checked, as with a claim written first, and a wrong
        // answer's count commits with the job, before its caller hears of it. A right answer
        // that completes the login writes no count: the challenge is spent with it, and the
        // user's window counts failures only (a written claim would be handed straight back,
        // two statements and a random page of `throttle_windows` more on every login). Any
        // other end of a checked answer is counted, as a failure. An error undoes the whole
        // job and its caller hears the error, as every caller of that batch would.
        self.write(move |c| {
            let attempt = Attempt::new(&id, max_failures, window.as_ref(), now);
            let Some(before) = attempt.room(c)? else {
                return Ok(Answered::NotClaimed(attempt.refusal(c)?));
            };
            let failures = u32::try_from(before + 1).unwrap_or(u32::MAX);
            // The window cannot refuse these counts (its room was read in this job), and the
            // answer is already checked: a count is all that is left to do.
            let Some(proven) = check() else {
                attempt.count(c)?;
                return Ok(Answered::Wrong { failures });
            };
            let completion =
                complete_login(c, &id, proven.claim.clone(), &proven.refresh, None, now)?;
            if completion != Completion::Completed {
                attempt.count(c)?;
            }
            Ok(Answered::Proved {
                failures,
                proven,
                completion,
            })
        })
        .await
    }

    async fn complete_challenge(
        &self,
        challenge_id: &str,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        release: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<Completion> {
        let (challenge_id, refresh) = (challenge_id.to_owned(), refresh.clone());
        let release = release.map(|w| keys_json(std::iter::once(w.key.as_str())));
        self.write(move |c| {
            complete_login(c, &challenge_id, claim, &refresh, release.as_deref(), now)
        })
        .await
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO setup_tokens (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![token_hash, user_id, expires_at],
            )
        })
        .await?;
        Ok(())
    }

    async fn create_passkey_token(
        &self,
        token_hash: &str,
        state_sealed: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        let (token_hash, state) = (token_hash.to_owned(), state_sealed.to_owned());
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO passkey_tokens (token_hash, state_sealed, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, state, now, expires_at],
            )
        })
        .await?;
        Ok(())
    }

    async fn take_passkey_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        let token_hash = token_hash.to_owned();
        self.write(move |c| {
            query_opt(
                c,
                "DELETE FROM passkey_tokens WHERE token_hash = ?1 AND expires_at > ?2
                 RETURNING state_sealed",
                params![token_hash, now],
                |row| row.get(0),
            )
        })
        .await
    }

    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT user_id FROM setup_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash, now],
                    |row| row.get(0),
                )
            })
            .await
    }
}
