//! The audit events the flow writes, and the conversions to the audit log's types.

use super::*;

pub(super) fn ident(value: &str) -> Result<Ident, GatewayError> {
    Ident::parse(value).map_err(|e| GatewayError::Internal(format!("audit identifier: {e}")))
}

pub(super) fn municipality_code(value: &str) -> Result<MunicipalityCode, GatewayError> {
    MunicipalityCode::parse(value)
        .map_err(|e| GatewayError::Internal(format!("audit municipality: {e}")))
}

pub(super) fn reason_code(reason: &str) -> Result<ReasonCode, GatewayError> {
    ReasonCode::parse(reason).map_err(|e| GatewayError::Internal(format!("audit reason: {e}")))
}

pub(super) async fn append(conn: &mut AnyConnection, event: &Event) -> Result<u64, GatewayError> {
    let appended = audit::store::append(conn, event)
        .await
        .map_err(|e| GatewayError::Internal(format!("audit append: {e}")))?;
    Ok(appended.index)
}

/// Appends events in order as one batch: one lock of the log's head and one multi-row insert,
/// where appending them one by one costs three statements each.
pub(super) async fn append_all(
    conn: &mut AnyConnection,
    events: &[Event],
) -> Result<(), GatewayError> {
    audit::store::append_batch(conn, events)
        .await
        .map_err(|e| GatewayError::Internal(format!("audit append: {e}")))?;
    Ok(())
}

pub(super) fn audit_type(cert_type: &str) -> Result<audit::event::CertificateType, GatewayError> {
    audit::event::certificate_type(cert_type)
        .map_err(|e| GatewayError::Internal(format!("audit certificate type: {e}")))
}

impl Flow {
    pub(super) fn facts<'a>(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: impl IntoIterator<Item = &'a store::DocumentRow>,
    ) -> Result<Vec<IssuanceFacts>, GatewayError> {
        let mut by_type: std::collections::BTreeMap<&str, (u32, u64)> = Default::default();
        for d in documents {
            let entry = by_type.entry(d.cert_type.as_str()).or_default();
            entry.0 += 1;
            entry.1 += u64::try_from(d.fee_yen).unwrap_or(0);
        }
        let base = |cert_type: &str, count: u32, fee: u64| -> Result<IssuanceFacts, GatewayError> {
            Ok(IssuanceFacts {
                terminal: ident(&terminal.id())?,
                chain: ident(terminal.chain())?,
                store: ident(terminal.store())?,
                municipality: municipality_code(&issuance.municipality_code)?,
                certificate_type: audit_type(cert_type)?,
                session: ident(&issuance.session_id)?,
                issuance: ident(&issuance.issuance_id)?,
                document_count: count,
                fee_yen: fee,
            })
        };
        by_type
            .into_iter()
            .map(|(cert_type, (count, fee))| base(cert_type, count, fee))
            .collect()
    }

    pub(super) async fn refuse_issuance(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        resident: Pseudonym,
        municipality: &str,
        reason: Reason,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let event = Event::issuance_refused(
            UnixMillis(self.now_ms()),
            ident(&terminal.id())?,
            ident(session_id)?,
            resident,
            reason_code(reason.name)?,
        )
        .with_municipality(municipality_code(municipality)?);
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}
