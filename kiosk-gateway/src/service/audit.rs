//! `kiosk.v1.AuditService`: auditors read the log, its checkpoints and proofs, settlement
//! and anomalies. Every call is itself recorded (AUDITOR_READ) before it is answered.

use kiosk_proto::reasons;
use std::pin::Pin;
use std::sync::Arc;

use audit::checkpoint::CheckpointSigner;
use audit::event::{Actor, Event, Ident};
use audit::store::{self as log, EventFilter, StoreError};
use futures::{Stream, StreamExt};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use super::{auditor, timestamp, validate};
use crate::clock::Clock;
use crate::error::GatewayError;
use crate::identity::RoleAnchors;
use crate::store::Store;

/// The auditors' service over the gateway's database.
pub struct AuditApi {
    store: Store,
    anchors: Arc<RoleAnchors>,
    signer: Arc<CheckpointSigner>,
    /// The deployment clock: auditor reads and resolutions are dated as every other event.
    clock: Arc<dyn Clock>,
}

impl AuditApi {
    /// The service over `store`, signing checkpoints with `signer`, dating events by `clock`.
    pub fn new(
        store: Store,
        anchors: Arc<RoleAnchors>,
        signer: Arc<CheckpointSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        AuditApi {
            store,
            anchors,
            signer,
            clock,
        }
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, GatewayError> {
        Ok(self.store.pool().acquire().await?)
    }

    async fn record_read<T>(&self, request: &Request<T>, read: &str) -> Result<(), GatewayError> {
        let name = auditor(&self.anchors, request)?;
        let who = Ident::parse(&name).map_err(|e| GatewayError::Internal(e.to_string()))?;
        let what = Ident::parse(read).map_err(|e| GatewayError::Internal(e.to_string()))?;
        let mut tx = self.store.begin_write().await?;
        log::append(&mut tx, &Event::auditor_read(self.clock.now(), who, what))
            .await
            .map_err(store_error)?;
        tx.commit().await?;
        Ok(())
    }
}

fn store_error(error: StoreError) -> GatewayError {
    match error {
        StoreError::Range(what) => GatewayError::refused(reasons::PROOF_RANGE_INVALID, what),
        StoreError::AnomalyNotFound => {
            GatewayError::refused(reasons::ANOMALY_NOT_FOUND, "no such anomaly")
        }
        StoreError::AnomalyAlreadyResolved => GatewayError::refused(
            reasons::ANOMALY_ALREADY_RESOLVED,
            "anomaly already resolved",
        ),
        other => GatewayError::Internal(format!("audit log: {other}")),
    }
}

/// The wire form of a stored event.
pub fn event_to_wire(stored: &log::StoredEvent) -> pb::AuditEvent {
    let e = &stored.event;
    pb::AuditEvent {
        index: stored.index,
        time: Some(timestamp(e.time().0)),
        r#type: pb::AuditEventType::from_str_name(e.event_type().as_str())
            .unwrap_or(pb::AuditEventType::Unspecified) as i32,
        actor_kind: pb::ActorKind::from_str_name(&format!("ACTOR_KIND_{}", e.actor().kind()))
            .unwrap_or(pb::ActorKind::Unspecified) as i32,
        actor_id: e.actor().id(),
        terminal_id: e
            .terminal()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        municipality_code: e
            .municipality()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        session_id: e
            .session()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        issuance_id: e
            .issuance()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        resident_pseudonym: e.resident().map(|p| p.to_hex()).unwrap_or_default(),
        reason: e
            .reason()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        attributes: e.facts().map(|f| (f.key().to_owned(), f.value())).collect(),
        canonical: stored.canonical.clone(),
        leaf_hash: stored.leaf_hash.as_bytes().to_vec(),
    }
}

fn anomaly_to_wire(a: &log::Anomaly) -> pb::Anomaly {
    pb::Anomaly {
        anomaly_id: a.id.as_str().to_owned(),
        kind: pb::AnomalyKind::from_str_name(&format!("ANOMALY_KIND_{}", a.kind.as_str()))
            .unwrap_or(pb::AnomalyKind::Unspecified) as i32,
        opened_at: Some(timestamp(a.opened_at.0)),
        terminal_id: a
            .terminal
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        municipality_code: a
            .municipality
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        issuance_id: a
            .issuance
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default(),
        resolution: a
            .resolution
            .as_ref()
            .map(|r| r.note.as_str().to_owned())
            .unwrap_or_default(),
        resolved_at: a.resolution.as_ref().map(|r| timestamp(r.at.0)),
        resolved_by: a
            .resolution
            .as_ref()
            .map(|r| r.by.clone())
            .unwrap_or_default(),
        opened_event_index: a.opened_event_index,
        certificate_type: a
            .certificate_type
            .and_then(|t| pb::CertificateType::from_str_name(t.code()))
            .unwrap_or(pb::CertificateType::Unspecified) as i32,
    }
}

/// The stream type of `ListEvents`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

/// Events read per query while a ListEvents stream is consumed.
const EVENT_PAGE: u64 = 500;

/// The events `filter` selects, read a page at a time as the client consumes the stream: a
/// request for the whole log (`limit = 0`) holds one page in memory, not the log, and a client
/// that stops reading stops the reading (HTTP/2 flow control holds the stream back).
fn event_pages(
    store: Store,
    filter: log::EventFilter,
) -> impl Stream<Item = Result<pb::AuditEvent, Status>> + Send + 'static {
    let remaining = filter.limit;
    futures::stream::unfold(
        (store, filter, remaining, false),
        |(store, mut filter, remaining, done)| async move {
            if done || remaining == Some(0) {
                return None;
            }
            let page = remaining.map_or(EVENT_PAGE, |r| r.min(EVENT_PAGE));
            filter.limit = Some(page);
            let read = async {
                let mut conn = store.pool().acquire().await.map_err(GatewayError::from)?;
                log::list_events(&mut conn, &filter)
                    .await
                    .map_err(store_error)
            };
            let events = match read.await {
                Ok(events) => events,
                Err(error) => {
                    let failed: Vec<Result<pb::AuditEvent, Status>> = vec![Err(error.into())];
                    return Some((failed, (store, filter, Some(0), true)));
                }
            };
            let last = events.last().map(|e| e.index);
            let finished = (events.len() as u64) < page;
            let remaining = remaining.map(|r| r - events.len() as u64);
            if let Some(last) = last {
                filter.start_index = last + 1;
            }
            let out: Vec<_> = events.iter().map(|e| Ok(event_to_wire(e))).collect();
            Some((out, (store, filter, remaining, finished)))
        },
    )
    .flat_map(futures::stream::iter)
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ListEventsStream = EventStream;

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<Self::ListEventsStream>, Status> {
        self.record_read(&request, "ListEvents").await?;
        let filter = validate::list_events(request.get_ref())?;
        Ok(Response::new(Box::pin(event_pages(
            self.store.clone(),
            filter,
        ))))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        self.record_read(&request, "GetCheckpoint").await?;
        let mut tx = self.store.begin_write().await?;
        let stored = log::checkpoint_now(&mut tx, &self.signer)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(GatewayError::from)?;
        let stored = stored.ok_or_else(|| GatewayError::Internal("empty log".into()))?;
        let checkpoint = stored.signed.checkpoint();
        Ok(Response::new(pb::GetCheckpointResponse {
            signed_note: stored.signed.note().to_owned(),
            origin: checkpoint.origin().to_owned(),
            tree_size: checkpoint.size(),
            root_hash: checkpoint.root().as_bytes().to_vec(),
            public_key: self.signer.public_key().to_vec(),
            signed_at: Some(timestamp(stored.signed_at.0)),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        self.record_read(&request, "GetInclusionProof").await?;
        let m = request.into_inner();
        let mut conn = self.connection().await?;
        let (leaf, path) = log::inclusion_proof(&mut conn, m.leaf_index, m.tree_size)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            leaf_index: m.leaf_index,
            tree_size: m.tree_size,
            hashes: path.iter().map(|h| h.as_bytes().to_vec()).collect(),
            leaf_hash: leaf.as_bytes().to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        self.record_read(&request, "GetConsistencyProof").await?;
        let m = request.into_inner();
        let mut conn = self.connection().await?;
        let proof = log::consistency_proof(&mut conn, m.first_tree_size, m.second_tree_size)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            first_tree_size: m.first_tree_size,
            second_tree_size: m.second_tree_size,
            hashes: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
        }))
    }

    async fn get_settlement(
        &self,
        request: Request<pb::GetSettlementRequest>,
    ) -> Result<Response<pb::GetSettlementResponse>, Status> {
        self.record_read(&request, "GetSettlement").await?;
        let (from, to, period, grouping) = validate::settlement(request.get_ref())?;
        let filter = EventFilter {
            from: Some(from),
            to: Some(to),
            ..EventFilter::default()
        };
        let mut conn = self.connection().await?;
        let events = log::list_events(&mut conn, &filter)
            .await
            .map_err(store_error)?;
        let rows = audit::settlement::settlement(
            events.iter().map(|e| &e.event),
            from,
            to,
            period,
            grouping,
        );
        Ok(Response::new(pb::GetSettlementResponse {
            rows: rows
                .into_iter()
                .map(|r| pb::SettlementRow {
                    period: r.period,
                    group: r.group,
                    issued: r.issued,
                    voided: r.voided,
                    unconfirmed: r.unconfirmed,
                    fees_yen: r.fees_yen,
                })
                .collect(),
        }))
    }

    async fn list_anomalies(
        &self,
        request: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        self.record_read(&request, "ListAnomalies").await?;
        let include_resolved = request.into_inner().include_resolved;
        let mut conn = self.connection().await?;
        let anomalies = log::list_anomalies(&mut conn, include_resolved)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::ListAnomaliesResponse {
            anomalies: anomalies.iter().map(anomaly_to_wire).collect(),
        }))
    }

    async fn resolve_anomaly(
        &self,
        request: Request<pb::ResolveAnomalyRequest>,
    ) -> Result<Response<pb::ResolveAnomalyResponse>, Status> {
        let name = auditor(&self.anchors, &request)?;
        let (id, note) = validate::resolve_anomaly(request.get_ref())?;
        let who = Ident::parse(&name).map_err(|e| GatewayError::Internal(e.to_string()))?;
        let mut tx = self.store.begin_write().await?;
        let anomaly =
            log::resolve_anomaly(&mut tx, self.clock.now(), &id, Actor::Auditor(who), note)
                .await
                .map_err(store_error)?;
        tx.commit().await.map_err(GatewayError::from)?;
        Ok(Response::new(pb::ResolveAnomalyResponse {
            anomaly: Some(anomaly_to_wire(&anomaly)),
        }))
    }
}
