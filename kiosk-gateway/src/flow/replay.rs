//! Retries of a recorded issuance: the same documents, fetched from the issuer and checked
//! again, only while the issuance awaits its print report; never after it finished.

use super::*;

/// What a retried Issue brings to [`Flow::replay`].
pub(super) struct Retry<'a> {
    pub(super) terminal: &'a TerminalIdentity,
    pub(super) session_id: &'a str,
    /// The retry's order digest, compared with the recorded one.
    pub(super) digest: &'a [u8],
    /// The retry's items (equal to the recorded order's when the digests match).
    pub(super) items: &'a [pb::RequestItem],
    /// The session named by the retry, if it still exists: a finished session's issuance is
    /// not handed out again, and its menu's subjects are what a page may name.
    pub(super) session: Option<&'a SessionRow>,
    pub(super) deadline: Option<Duration>,
}

/// What the issuer said when asked to confirm a recorded issuance's documents.
pub(super) enum Confirmation {
    /// Every document is issued.
    Issued,
    /// Some document is void (or missing): nothing may be released.
    Voided,
    /// The issuer did not answer.
    Unknown(tonic::Status),
}

/// Why a recorded issuance may no longer be handed out, if it may not.
pub(super) fn finished(
    existing: &IssuanceRow,
    session: Option<&SessionRow>,
    now: i64,
) -> Option<&'static str> {
    match existing.state {
        IssuanceState::Printed => return Some("printed"),
        IssuanceState::Voided => return Some("voided"),
        IssuanceState::Unconfirmed => return Some("unconfirmed"),
        IssuanceState::Released => {}
    }
    if now > existing.print_deadline {
        return Some("print_deadline_passed");
    }
    match session {
        // An expired session's row is deleted some time after it expired.
        None => Some("session_expired"),
        Some(s) if s.state == SessionState::Closed => Some("session_closed"),
        Some(s) if now >= s.expires_at => Some("session_expired"),
        Some(_) => None,
    }
}

/// The ISSUANCE_FINISHED refusal of a retry, with the recorded state and fee for the kiosk.
pub(super) fn issuance_finished(existing: &IssuanceRow, why: &'static str) -> GatewayError {
    let state = match existing.state {
        IssuanceState::Released => pb::IssuanceState::Released,
        IssuanceState::Printed => pb::IssuanceState::Printed,
        IssuanceState::Voided => pb::IssuanceState::Voided,
        IssuanceState::Unconfirmed => pb::IssuanceState::Unconfirmed,
    };
    GatewayError::refused(
        reasons::ISSUANCE_FINISHED,
        format!("the issuance is finished ({why}): its documents are not sent again"),
    )
    .with_metadata("issuance_id", existing.issuance_id.clone())
    .with_metadata("issuance_state", state.as_str_name())
    .with_metadata("total_fee_yen", existing.total_fee_yen.to_string())
    .with_metadata("why", why)
}

/// Logs why a retry's recorded documents were not sent, and refuses the retry.
pub(super) fn replay_refused(issuance_id: &str, why: &'static str) -> GatewayError {
    tracing::error!(issuance = %issuance_id, why, "recorded documents not sent");
    GatewayError::refused(
        reasons::SUBJECT_MISMATCH,
        "recorded documents could not be checked",
    )
}

impl Flow {
    /// Answers a retry of a recorded issuance with the documents it released — only while
    /// the issuance is awaiting its print report, within its print deadline, in an open
    /// session. A retry after that (the issuance printed, voided, unconfirmed, the session
    /// closed) is refused with ISSUANCE_FINISHED and nothing is sent: a finished issuance is
    /// never handed out again.
    ///
    /// The gateway keeps each document's record and SHA-256, not its bytes: the issuer's
    /// registry holds the PDFs, and a repeated Render with the same issuance id, order and
    /// issue time returns them without rendering anything. Each one must match this
    /// issuance's own record (serial and SHA-256, in order), pass the release checks again,
    /// and still be issued at the issuer; otherwise nothing is sent.
    pub(super) async fn replay(
        &self,
        mut conn: sqlx::pool::PoolConnection<sqlx::Any>,
        existing: IssuanceRow,
        retry: Retry<'_>,
    ) -> Result<ReleasedIssuance, GatewayError> {
        if existing.request_digest != retry.digest || existing.session_id != retry.session_id {
            return Err(GatewayError::refused(
                reasons::IDEMPOTENCY_KEY_REUSED,
                "client_request_id was used for another order",
            ));
        }
        let records = store::documents(&mut conn, &existing.issuance_id).await?;
        drop(conn);
        if records.is_empty() {
            // Voided before release: the retry gets the same refusal, never a new render.
            return Err(GatewayError::refused(
                reasons::SUBJECT_MISMATCH,
                "issuance was voided before release",
            ));
        }
        if let Some(why) = finished(&existing, retry.session, self.now_ms()) {
            let pseudonym = self.pseudonym(&existing.resident_ref);
            self.refuse_issuance(
                retry.terminal,
                retry.session_id,
                pseudonym,
                &existing.municipality_code,
                reasons::ISSUANCE_FINISHED,
            )
            .await?;
            return Err(issuance_finished(&existing, why));
        }
        // A replay fetches and checks every PDF again: it costs what an issuance costs, and
        // counts against the same bound.
        let Ok(_permit) = self.rendering.try_acquire() else {
            return Err(GatewayError::refused(
                reasons::OVERLOADED,
                "too many issuances at once",
            ));
        };
        let documents = self.fetch_recorded(&existing, records, &retry).await?;
        match self.confirm_at_issuer(&existing).await {
            Confirmation::Issued => {}
            Confirmation::Voided => {
                let records: Vec<_> = documents.iter().map(|d| d.record().clone()).collect();
                return Err(self
                    .void_recorded(retry.terminal, &existing, &records)
                    .await);
            }
            Confirmation::Unknown(status) => return Err(issuer_status(status)),
        }
        Ok(ReleasedIssuance::new(existing, documents, true))
    }

    /// The documents of a recorded issuance from the issuer's registry, each checked against
    /// its record and the release checks.
    pub(super) async fn fetch_recorded(
        &self,
        existing: &IssuanceRow,
        records: Vec<store::DocumentRow>,
        retry: &Retry<'_>,
    ) -> Result<Vec<CheckedDocument>, GatewayError> {
        let issuer = self
            .issuers
            .get(&existing.municipality_code)
            .ok_or_else(|| GatewayError::refused(reasons::MUNICIPALITY_NOT_SERVED, "not served"))?;
        let request = pb::RenderRequest {
            issuance_id: existing.issuance_id.clone(),
            municipality_code: existing.municipality_code.clone(),
            requester_ref: existing.resident_ref.clone(),
            items: retry.items.to_vec(),
            issued_at: Some(timestamp(existing.created_at)),
        };
        let recorded = issuer
            .render(request, self.render_budget(retry.deadline))
            .await
            .map_err(issuer_status)?;
        // Serials this issuance never released: an issuer that no longer held the order (a
        // registry restored from an older backup, say) rendered it again. Those documents
        // are never sent, so they are voided rather than left valid at the issuer.
        let strangers: Vec<String> = recorded
            .documents
            .iter()
            .filter(|d| !records.iter().any(|r| r.serial == d.serial))
            .map(|d| d.serial.clone())
            .collect();
        if !strangers.is_empty() {
            self.void_at_issuer(&existing.municipality_code, strangers, "REPLAY_MISMATCH")
                .await;
            return Err(replay_refused(
                &existing.issuance_id,
                "the issuer rendered a recorded issuance again",
            ));
        }
        if recorded.documents.len() != records.len() {
            return Err(replay_refused(
                &existing.issuance_id,
                "the issuer returned another number of documents",
            ));
        }
        let allowed: BTreeSet<&str> = retry
            .session
            .map(|s| s.allowed_subjects.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut documents = Vec::with_capacity(records.len());
        for (record, doc) in records.into_iter().zip(recorded.documents) {
            let checked = if record.serial == doc.serial {
                self.check_document(&existing.municipality_code, &allowed, record, doc.pdf)
                    .ok()
            } else {
                None
            };
            let Some(checked) = checked else {
                return Err(replay_refused(
                    &existing.issuance_id,
                    "the issuer's copy differs from the released documents",
                ));
            };
            documents.push(checked);
        }
        Ok(documents)
    }

    /// Has the issuer mark a recorded issuance's documents issued (they stay pending until
    /// then, see `Flow::reconcile`).
    pub(super) async fn confirm_at_issuer(&self, issuance: &IssuanceRow) -> Confirmation {
        let Some(issuer) = self.issuers.get(&issuance.municipality_code) else {
            return Confirmation::Unknown(tonic::Status::unavailable("municipality not routed"));
        };
        let request = pb::ConfirmRequest {
            municipality_code: issuance.municipality_code.clone(),
            issuance_id: issuance.issuance_id.clone(),
        };
        match issuer.confirm(request).await {
            Ok(answer) if answer.voided_serials.is_empty() && !answer.issued_serials.is_empty() => {
                Confirmation::Issued
            }
            Ok(_) => Confirmation::Voided,
            Err(status) => Confirmation::Unknown(status),
        }
    }

    /// Voids a recorded, released issuance whose documents the issuer no longer holds as
    /// issued (reconciliation voided them as lost), with its events; returns the refusal the
    /// terminal gets. Nothing of it is sent.
    pub(super) async fn void_recorded(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
    ) -> GatewayError {
        tracing::error!(issuance = %issuance.issuance_id, "the issuer holds the documents void: nothing released");
        let voided = async {
            let mut tx = self.store.begin_write().await?;
            let moved = store::transition_issuance(
                &mut tx,
                &issuance.issuance_id,
                IssuanceState::Released,
                IssuanceState::Voided,
                None,
                None,
            )
            .await?;
            if moved {
                store::void_documents(&mut tx, &issuance.issuance_id).await?;
                let when = UnixMillis(self.now_ms());
                let pseudonym = self.pseudonym(&issuance.resident_ref);
                let mut events = Vec::new();
                for f in self.facts(terminal, issuance, documents)? {
                    let reason = reason_code("TIMED_OUT")?;
                    events.push(Event::documents_voided(
                        when,
                        Actor::System,
                        pseudonym,
                        &f,
                        reason,
                    ));
                }
                append_all(&mut tx, &events).await?;
            }
            tx.commit().await?;
            Ok::<(), GatewayError>(())
        };
        match voided.await {
            Ok(()) => GatewayError::refused(
                reasons::TIMED_OUT,
                "the issuance was voided as lost before its documents were released",
            ),
            Err(error) => error,
        }
    }

    pub(super) async fn void_at_issuer(
        &self,
        municipality: &str,
        serials: Vec<String>,
        reason: &str,
    ) {
        if serials.is_empty() {
            return;
        }
        let Some(issuer) = self.issuers.get(municipality) else {
            return;
        };
        let request = pb::VoidRequest {
            serials,
            reason: reason.to_owned(),
        };
        // The gateway's record is authoritative for verifiers; the issuer's registry is
        // brought in line on a best-effort basis and the failure is logged.
        if let Err(status) = issuer.void(request).await {
            tracing::warn!(code = ?status.code(), "issuer void failed");
        }
    }
}
