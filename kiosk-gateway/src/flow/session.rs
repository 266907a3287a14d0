//! Sessions: opening one (with the per-terminal limit), reading one for a call (with the
//! terminal's status), closing one, and sweeping long-expired ones.

use super::*;

/// A session just opened.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session id.
    pub session_id: String,
    /// The 32-byte challenge.
    pub challenge: Vec<u8>,
    /// The canonical authentication context the card signs over.
    pub context: Vec<u8>,
    /// This gateway's id.
    pub gateway_id: String,
    /// The terminal id.
    pub terminal_id: String,
    /// When the challenge expires (unix ms).
    pub challenge_expires_at: i64,
    /// When the session expires (unix ms).
    pub session_expires_at: i64,
    /// `None` when open; otherwise the reason it is closed.
    pub closed_reason: Option<Reason>,
}

/// Refuses a terminal that is not registered and active.
pub(super) fn check_terminal(status: Option<store::TerminalStatus>) -> Result<(), GatewayError> {
    match status {
        Some(store::TerminalStatus::Active) => Ok(()),
        Some(store::TerminalStatus::Suspended) => Err(GatewayError::refused(
            reasons::TERMINAL_SUSPENDED,
            "terminal is suspended",
        )),
        Some(store::TerminalStatus::Retired) => Err(GatewayError::refused(
            reasons::TERMINAL_RETIRED,
            "terminal is retired",
        )),
        None => Err(GatewayError::refused(
            reasons::TERMINAL_UNKNOWN,
            "terminal is not registered",
        )),
    }
}

impl Flow {
    /// Opens a session for `terminal` with a fresh single-use challenge. `locale` (validated:
    /// empty or a language tag) orders the LocalizedMessage entries of the session's errors.
    ///
    /// The session opens even when the service is closed (the kill switch, or outside the
    /// national service hours): `closed_reason` tells the start screen, before any card is
    /// read.
    pub async fn open_session(
        &self,
        terminal: &TerminalIdentity,
        locale: &str,
    ) -> Result<OpenedSession, GatewayError> {
        let now = self.now_ms();
        let terminal_id = terminal.id();
        let session_id = self.random_id("s-")?;
        let mut challenge = vec![0u8; 32];
        self.rng
            .fill(&mut challenge)
            .map_err(|_| GatewayError::Internal("random source failed".into()))?;
        let context =
            card::login::context_bytes(&self.settings.gateway_id, &terminal_id, &session_id)
                .ok_or_else(|| GatewayError::Internal("authentication context".into()))?;
        let row = SessionRow {
            session_id: session_id.clone(),
            terminal_id: terminal_id.clone(),
            challenge: challenge.clone(),
            challenge_expires_at: now + self.settings.challenge_ttl.as_millis() as i64,
            challenge_used: false,
            state: SessionState::Open,
            municipality_code: None,
            resident_ref: None,
            allowed_subjects: Vec::new(),
            expires_at: now + self.settings.session_ttl.as_millis() as i64,
            created_at: now,
            locale: locale.to_owned(),
        };
        let mut tx = self.store.begin_write().await?;
        let gate = store::terminal_gate(&mut tx, self.store.backend(), &terminal_id, now).await?;
        check_terminal(gate.status)?;
        if gate.open_sessions
            >= i64::try_from(self.settings.max_open_sessions_per_terminal).unwrap_or(i64::MAX)
        {
            // Nothing is written: a flood of refused opens must not grow the log either.
            tracing::warn!(terminal = %terminal_id, open = gate.open_sessions, "open sessions limit");
            return Err(GatewayError::refused(
                reasons::OVERLOADED,
                "too many open sessions for this terminal: close sessions that are done",
            ));
        }
        let closed_reason = if gate.kill_switch {
            Some(reasons::SERVICE_SUSPENDED)
        } else if super::hours::outside_service_hours(now) {
            Some(reasons::OUT_OF_SERVICE_HOURS)
        } else {
            None
        };
        store::insert_session(&mut tx, &row).await?;
        let event =
            Event::session_opened(UnixMillis(now), ident(&terminal_id)?, ident(&session_id)?)
                .with_fact(Fact::Chain(ident(terminal.chain())?))
                .with_fact(Fact::Store(ident(terminal.store())?));
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(OpenedSession {
            session_id,
            challenge,
            context,
            gateway_id: self.settings.gateway_id.clone(),
            terminal_id,
            challenge_expires_at: row.challenge_expires_at,
            session_expires_at: row.expires_at,
            closed_reason,
        })
    }

    /// The session `session_id` if `terminal` is active, the session belongs to it and has
    /// not expired. Another terminal's session is reported as not found, so session ids
    /// cannot be probed. A suspended or retired terminal is refused on every call that moves
    /// a session on, not only at OpenSession: a suspension stops work in progress too.
    pub(super) async fn owned_session(
        &self,
        conn: &mut AnyConnection,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<SessionRow, GatewayError> {
        let (session, status) = store::session_gate(conn, session_id, &terminal.id()).await?;
        check_terminal(status)?;
        self.check_owned(terminal, session)
    }

    /// `session` if it exists, belongs to `terminal` and has not expired (see
    /// [`Flow::owned_session`]).
    pub(super) fn check_owned(
        &self,
        terminal: &TerminalIdentity,
        session: Option<SessionRow>,
    ) -> Result<SessionRow, GatewayError> {
        let not_found = || GatewayError::refused(reasons::SESSION_NOT_FOUND, "no such session");
        let session = session.ok_or_else(not_found)?;
        if session.terminal_id != terminal.id() {
            return Err(not_found());
        }
        if session.state == SessionState::Closed {
            return Err(GatewayError::refused(
                reasons::SESSION_STATE,
                "session is closed",
            ));
        }
        if self.now_ms() >= session.expires_at {
            return Err(GatewayError::refused(
                reasons::SESSION_EXPIRED,
                "session expired",
            ));
        }
        Ok(session)
    }

    /// The `locale` a session of `terminal` was opened with; empty (ja-JP) when there is no
    /// such session or it cannot be read: an error's texts are never withheld for it.
    pub async fn session_locale(&self, terminal: &TerminalIdentity, session_id: &str) -> String {
        let Ok(mut conn) = self.store.pool().acquire().await else {
            return String::new();
        };
        match store::session(&mut conn, session_id).await {
            Ok(Some(session)) if session.terminal_id == terminal.id() => session.locale,
            _ => String::new(),
        }
    }

    /// Deletes the rows of sessions expired longer than the retention, in batches; returns
    /// how many. Run it on a timer: expired sessions already answer nothing, this keeps the
    /// table to the sessions that can still be asked about.
    pub async fn sweep_sessions(&self) -> Result<u64, GatewayError> {
        const BATCH: i64 = 500;
        let retention =
            i64::try_from(self.settings.session_retention.as_millis()).unwrap_or(i64::MAX);
        let before = self.now_ms().saturating_sub(retention);
        let mut deleted = 0;
        loop {
            let mut tx = self.store.begin_write().await?;
            let batch = store::delete_expired_sessions(&mut tx, before, BATCH).await?;
            tx.commit().await?;
            deleted += batch;
            if batch < BATCH as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Closes a session. Idempotent.
    pub async fn close_session(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let terminal_id = terminal.id();
        let closed_now = store::close_owned_session(&mut tx, session_id, &terminal_id).await?;
        if !closed_now {
            // Already closed (idempotent) or not this terminal's: only the latter is refused.
            store::session(&mut tx, session_id)
                .await?
                .filter(|s| s.terminal_id == terminal_id)
                .ok_or_else(|| {
                    GatewayError::refused(reasons::SESSION_NOT_FOUND, "no such session")
                })?;
        }
        if closed_now {
            let event = Event::session_closed(
                UnixMillis(self.now_ms()),
                ident(&terminal.id())?,
                ident(session_id)?,
            );
            append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
