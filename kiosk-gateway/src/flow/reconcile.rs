//! Reconciliation with the issuers' registries: no signed document stays valid unless the
//! gateway recorded its issuance.
//!
//! An issuer keeps every document it renders `pending` until the gateway has recorded the
//! issuance and asked it to confirm (`Flow::issue`). When the gateway stops between the two —
//! a crash after the issuer's commit and before its own — the documents would otherwise stay
//! signed and unaccounted for: no terminal ever received them, but an offline check of their
//! signatures would pass. Reconciliation, at start (before health reports SERVING) and on an
//! interval, asks each issuer for documents pending longer than the Issue deadline plus a
//! margin and settles each issuance by the gateway's record:
//! - recorded and released (its confirmation was lost): confirmed now;
//! - recorded voided: voided at the issuer too;
//! - never recorded: voided at the issuer with a conditional update (only documents still
//!   pending and older than the cutoff, so an issuance in flight on this or another replica
//!   is never touched), and an ORPHANS_VOIDED audit event names the issuance.
//!
//! An issuance is recorded only within the Issue deadline (`Flow::record_released`), so a
//! document older than the deadline plus the margin with no record can no longer gain one.

use kiosk_proto::reasons;
use std::time::Duration;

use audit::event::{Event, UnixMillis};
use kiosk_proto::v1 as pb;

use super::{Flow, append_all, audit_type, ident, municipality_code, reason_code};
use crate::clock::timestamp;
use crate::error::GatewayError;
use crate::route::IssuerLink;
use crate::store::{self, IssuanceState};

/// Issuances asked for per ListPending call.
const PAGE: u32 = 200;
/// Pages per municipality per run: the interval run takes what is left.
const MAX_PAGES: usize = 50;
/// The longest one call to an issuer may take before the municipality is skipped this run.
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The reason recorded on documents reconciliation voids.
pub const RECONCILED: &str = "RECONCILED";

/// What one reconciliation run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Recorded issuances whose lost confirmation was repeated.
    pub confirmed: usize,
    /// Recorded voided issuances whose documents the issuer still held pending.
    pub voided_recorded: usize,
    /// Issuances the gateway never recorded, their pending documents voided.
    pub orphans: usize,
    /// Documents voided as orphans.
    pub orphan_documents: usize,
    /// Municipalities whose issuer did not answer (tried again next run).
    pub unreachable: Vec<String>,
}

/// How one pending issuance was settled.
enum Settled {
    Confirmed,
    VoidedRecorded,
    Orphan {
        documents: usize,
    },
    /// Nothing changed (confirmed or voided meanwhile, or too young after all).
    Unchanged,
}

impl Flow {
    /// Settles every document pending at any issuer longer than the Issue deadline plus the
    /// reconciliation margin. An issuer that does not answer is skipped and named in the
    /// result; the others are settled.
    pub async fn reconcile(&self) -> Result<Reconciled, GatewayError> {
        let horizon = self.settings.issue_timeout + self.settings.reconcile_margin;
        let cutoff = self.now_ms() - i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
        let mut done = Reconciled::default();
        for (code, issuer) in self.issuers.all() {
            match self
                .reconcile_municipality(&code, issuer.as_ref(), cutoff, &mut done)
                .await
            {
                Ok(()) => {}
                Err(Unreachable(status)) => {
                    tracing::warn!(municipality = %code, code = ?status.code(), "reconciliation: issuer did not answer");
                    done.unreachable.push(code);
                }
            }
        }
        if done.confirmed + done.voided_recorded + done.orphans > 0 {
            tracing::warn!(
                confirmed = done.confirmed,
                voided_recorded = done.voided_recorded,
                orphans = done.orphans,
                orphan_documents = done.orphan_documents,
                "reconciliation settled pending documents"
            );
        }
        Ok(done)
    }

    async fn reconcile_municipality(
        &self,
        code: &str,
        issuer: &dyn IssuerLink,
        cutoff: i64,
        done: &mut Reconciled,
    ) -> Result<(), Unreachable> {
        for _ in 0..MAX_PAGES {
            let request = pb::ListPendingRequest {
                municipality_code: code.to_owned(),
                issued_before: Some(timestamp(cutoff)),
                limit: PAGE,
            };
            let page = call(issuer.list_pending(request)).await?;
            let mut progressed = false;
            let listed = page.issuances.len();
            for pending in page.issuances {
                let settled = self
                    .settle(code, issuer, cutoff, pending)
                    .await
                    .map_err(|e| Unreachable(tonic::Status::internal(e.to_string())))?;
                progressed |= !matches!(settled, Settled::Unchanged);
                match settled {
                    Settled::Confirmed => done.confirmed += 1,
                    Settled::VoidedRecorded => done.voided_recorded += 1,
                    Settled::Orphan { documents } => {
                        done.orphans += 1;
                        done.orphan_documents += documents;
                    }
                    Settled::Unchanged => {}
                }
            }
            if listed < PAGE as usize || !progressed {
                break;
            }
        }
        Ok(())
    }

    /// Settles one issuance by the gateway's record of it.
    async fn settle(
        &self,
        code: &str,
        issuer: &dyn IssuerLink,
        cutoff: i64,
        pending: pb::PendingIssuance,
    ) -> Result<Settled, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let recorded = store::issuance(&mut conn, &pending.issuance_id).await?;
        drop(conn);
        let unreachable = |status: tonic::Status| {
            GatewayError::refused(
                reasons::ISSUER_UNAVAILABLE,
                format!("reconciliation: {status}"),
            )
        };
        match recorded {
            Some(issuance) if issuance.municipality_code != code => Err(GatewayError::Internal(
                "an issuer listed an issuance of another municipality".into(),
            )),
            Some(issuance) if issuance.state == IssuanceState::Voided => {
                let request = pb::VoidRequest {
                    serials: pending.serials,
                    reason: RECONCILED.to_owned(),
                };
                call(issuer.void(request))
                    .await
                    .map_err(|u| unreachable(u.0))?;
                Ok(Settled::VoidedRecorded)
            }
            Some(issuance) => {
                let request = pb::ConfirmRequest {
                    municipality_code: code.to_owned(),
                    issuance_id: issuance.issuance_id,
                };
                call(issuer.confirm(request))
                    .await
                    .map_err(|u| unreachable(u.0))?;
                Ok(Settled::Confirmed)
            }
            None => self.void_orphan(code, issuer, cutoff, pending).await,
        }
    }

    /// Voids the pending documents of an issuance the gateway never recorded, then records
    /// which were voided. The issuer's update is conditional (still pending, older than the
    /// cutoff); only what it voided is recorded.
    async fn void_orphan(
        &self,
        code: &str,
        issuer: &dyn IssuerLink,
        cutoff: i64,
        pending: pb::PendingIssuance,
    ) -> Result<Settled, GatewayError> {
        let request = pb::VoidPendingRequest {
            municipality_code: code.to_owned(),
            issuance_id: pending.issuance_id.clone(),
            issued_before: Some(timestamp(cutoff)),
            reason: RECONCILED.to_owned(),
        };
        let voided = call(issuer.void_pending(request)).await.map_err(|u| {
            GatewayError::refused(
                reasons::ISSUER_UNAVAILABLE,
                format!("reconciliation: {}", u.0),
            )
        })?;
        if voided.voided_serials.is_empty() {
            return Ok(Settled::Unchanged);
        }
        // Per certificate type, as settlement and auditors read documents.
        let mut by_type: std::collections::BTreeMap<&str, u32> = Default::default();
        for (serial, ty) in pending.serials.iter().zip(&pending.types) {
            if voided.voided_serials.contains(serial) {
                let name = pb::CertificateType::try_from(*ty)
                    .map(|t| t.as_str_name())
                    .unwrap_or("CERTIFICATE_TYPE_UNSPECIFIED");
                *by_type.entry(name).or_default() += 1;
            }
        }
        let when = UnixMillis(self.now_ms());
        let mut events = Vec::with_capacity(by_type.len());
        for (name, count) in by_type {
            events.push(Event::orphans_voided(
                when,
                municipality_code(code)?,
                ident(&pending.issuance_id)?,
                audit_type(name)?,
                count,
                reason_code(RECONCILED)?,
            ));
        }
        // The issuer's void and this record are two databases: a crash between them leaves
        // the documents void without this event (never the other way round).
        let mut tx = self.store.begin_write().await?;
        append_all(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(Settled::Orphan {
            documents: voided.voided_serials.len(),
        })
    }
}

/// An issuer that did not answer in time.
struct Unreachable(tonic::Status);

/// One call to an issuer, bounded by [`CALL_LIMIT`].
async fn call<T>(
    answer: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, Unreachable> {
    match tokio::time::timeout(CALL_LIMIT, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(status)) => Err(Unreachable(status)),
        Err(_) => Err(Unreachable(tonic::Status::deadline_exceeded(
            "issuer did not answer",
        ))),
    }
}
