//! Print reports and print deadlines.

use super::*;
use crate::store::WriteTx;

/// The answer to a print report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintReport {
    /// The issuance's state after the report.
    pub state: IssuanceState,
    /// Yen to return.
    pub refund_due_yen: i64,
    /// Serials now void.
    pub voided_serials: Vec<String>,
}

/// A print report being recorded, with what was read for it.
struct Report<'a> {
    terminal: &'a TerminalIdentity,
    issuance: &'a IssuanceRow,
    documents: &'a [store::DocumentRow],
    result: PrintOutcome,
    collected: i64,
    when: UnixMillis,
}

impl Flow {
    /// The audit facts of an issuance, one per certificate type it holds (settlement groups
    /// by type, so each type's count and fees travel in their own event).
    /// The PRINT_REPORTED events of an issuance, one per certificate type.
    pub(super) fn print_reported(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
        when: UnixMillis,
        result: PrintOutcome,
    ) -> Result<Vec<Event>, GatewayError> {
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        Ok(self
            .facts(terminal, issuance, documents)?
            .iter()
            .map(|f| Event::print_reported(when, pseudonym, f, result))
            .collect())
    }

    /// Records the print outcome of an issuance.
    pub async fn report_print(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        issuance_id: &str,
        result: PrintOutcome,
        collected_yen: u32,
    ) -> Result<PrintReport, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let now = self.now_ms();
        let when = UnixMillis(now);
        let collected = i64::from(collected_yen);
        if result == PrintOutcome::Printed
            && let Some(issuance) = store::mark_printed(
                &mut tx,
                issuance_id,
                &terminal.id(),
                session_id,
                collected,
                now,
            )
            .await?
        {
            // The common report: released, in time, printed. The state moved in the same
            // statement that read the issuance; its events commit with it.
            let documents = store::documents(&mut tx, issuance_id).await?;
            let events = self.print_reported(terminal, &issuance, &documents, when, result)?;
            append_all(&mut tx, &events).await?;
            tx.commit().await?;
            return Ok(PrintReport {
                state: IssuanceState::Printed,
                refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                voided_serials: Vec::new(),
            });
        }
        let issuance = store::issuance(&mut tx, issuance_id)
            .await?
            .filter(|i| i.terminal_id == terminal.id() && i.session_id == session_id)
            .ok_or_else(|| {
                GatewayError::refused(reasons::ISSUANCE_NOT_FOUND, "no such issuance")
            })?;
        let documents = store::documents(&mut tx, issuance_id).await?;
        let report = Report {
            terminal,
            issuance: &issuance,
            documents: &documents,
            result,
            collected,
            when,
        };
        match (issuance.state, result) {
            (IssuanceState::Released, _) if now > issuance.print_deadline => {
                self.mark_unconfirmed(&mut tx, terminal, &issuance, &documents)
                    .await?;
                tx.commit().await?;
                Err(GatewayError::refused(
                    reasons::PRINT_DEADLINE_PASSED,
                    "print deadline passed",
                ))
            }
            (IssuanceState::Released, PrintOutcome::Printed) => {
                self.record_printed(tx, &report).await
            }
            (IssuanceState::Released, _) => self.record_print_failed(tx, &report).await,
            // Repeating an outcome already recorded answers as the first report did.
            (IssuanceState::Printed, PrintOutcome::Printed) => Ok(PrintReport {
                state: IssuanceState::Printed,
                refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                voided_serials: Vec::new(),
            }),
            (IssuanceState::Voided, PrintOutcome::Failed | PrintOutcome::PartlyPrinted)
                if !documents.is_empty() =>
            {
                Ok(PrintReport {
                    state: IssuanceState::Voided,
                    refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                    voided_serials: documents.iter().map(|d| d.serial.clone()).collect(),
                })
            }
            (IssuanceState::Unconfirmed, _) => Err(GatewayError::refused(
                reasons::PRINT_DEADLINE_PASSED,
                "print deadline passed",
            )),
            _ => Err(GatewayError::refused(
                reasons::ISSUANCE_ALREADY_REPORTED,
                "issuance already reported with another outcome",
            )),
        }
    }

    /// A released issuance reported printed (the path `store::mark_printed` did not take:
    /// it reads the issuance first).
    async fn record_printed(
        &self,
        mut tx: WriteTx,
        report: &Report<'_>,
    ) -> Result<PrintReport, GatewayError> {
        let issuance = report.issuance;
        let refund = (report.collected - issuance.total_fee_yen).max(0);
        store::transition_issuance(
            &mut tx,
            &issuance.issuance_id,
            IssuanceState::Released,
            IssuanceState::Printed,
            Some(report.collected),
            Some(refund),
        )
        .await?;
        let events = self.print_reported(
            report.terminal,
            issuance,
            report.documents,
            report.when,
            report.result,
        )?;
        append_all(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(PrintReport {
            state: IssuanceState::Printed,
            refund_due_yen: refund,
            voided_serials: Vec::new(),
        })
    }

    /// A released issuance reported failed or partly printed: every document is voided (at
    /// the gateway now, at the issuer after the commit), the whole amount collected is due
    /// back, and an anomaly is opened.
    async fn record_print_failed(
        &self,
        mut tx: WriteTx,
        report: &Report<'_>,
    ) -> Result<PrintReport, GatewayError> {
        let issuance = report.issuance;
        let collected = report.collected;
        store::transition_issuance(
            &mut tx,
            &issuance.issuance_id,
            IssuanceState::Released,
            IssuanceState::Voided,
            Some(collected),
            Some(collected),
        )
        .await?;
        let voided = store::void_documents(&mut tx, &issuance.issuance_id).await?;
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        let facts = self.facts(report.terminal, issuance, report.documents)?;
        let mut events = Vec::new();
        for f in &facts {
            events.push(Event::print_reported(
                report.when,
                pseudonym,
                f,
                report.result,
            ));
            events.push(Event::documents_voided(
                report.when,
                Actor::Terminal(ident(&report.terminal.id())?),
                pseudonym,
                f,
                reason_code("PRINT_FAILED")?,
            ));
        }
        append_all(&mut tx, &events).await?;
        if let Some(f) = facts.first() {
            let event = audit::store::anomaly_opened_event(
                report.when,
                ident(&self.random_id("a-")?)?,
                AnomalyKind::PrintFailed,
                f,
            );
            audit::store::open_anomaly(&mut tx, &event)
                .await
                .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
        }
        tx.commit().await?;
        self.void_at_issuer(&issuance.municipality_code, voided.clone(), "PRINT_FAILED")
            .await;
        Ok(PrintReport {
            state: IssuanceState::Voided,
            refund_due_yen: collected,
            voided_serials: voided,
        })
    }

    pub(super) async fn mark_unconfirmed(
        &self,
        conn: &mut AnyConnection,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
    ) -> Result<bool, GatewayError> {
        let moved = store::transition_issuance(
            conn,
            &issuance.issuance_id,
            IssuanceState::Released,
            IssuanceState::Unconfirmed,
            None,
            None,
        )
        .await?;
        if !moved {
            return Ok(false);
        }
        let when = UnixMillis(self.now_ms());
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        let facts = self.facts(terminal, issuance, documents)?;
        for f in &facts {
            append(conn, &Event::deadline_passed(when, pseudonym, f)).await?;
        }
        if let Some(f) = facts.first() {
            let event = audit::store::anomaly_opened_event(
                when,
                ident(&self.random_id("a-")?)?,
                AnomalyKind::DeadlinePassed,
                f,
            );
            audit::store::open_anomaly(conn, &event)
                .await
                .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
        }
        Ok(true)
    }

    /// Marks every released issuance past its print deadline unconfirmed, with its audit
    /// event and an anomaly. Returns how many moved. Run it on a timer.
    pub async fn sweep_deadlines(&self) -> Result<usize, GatewayError> {
        let mut moved = 0;
        loop {
            let mut conn = self.store.pool().acquire().await?;
            let overdue = store::overdue_issuances(&mut conn, self.now_ms(), 100).await?;
            drop(conn);
            if overdue.is_empty() {
                return Ok(moved);
            }
            for issuance in overdue {
                let terminal = TerminalIdentity::parse(&issuance.terminal_id).ok_or_else(|| {
                    GatewayError::Internal("stored terminal id unreadable".into())
                })?;
                let mut tx = self.store.begin_write().await?;
                let documents = store::documents(&mut tx, &issuance.issuance_id).await?;
                if self
                    .mark_unconfirmed(&mut tx, &terminal, &issuance, &documents)
                    .await?
                {
                    moved += 1;
                }
                tx.commit().await?;
            }
        }
    }
}
