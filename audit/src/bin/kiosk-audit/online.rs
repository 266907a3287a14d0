//! Online mode: the same checks against `kiosk.v1.AuditService` over mutual TLS.
//!
//! Nothing the server says is trusted by itself: checkpoints are verified with the auditor's
//! key, proofs are checked against them, and every streamed event is re-hashed from its
//! canonical bytes with its readable fields compared to them, exactly as for an export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use audit::merkle::Hash;
use audit::store::EventFilter;
use audit::verify::ExportRecord;
use base64::Engine as _;
use clap::Args;
use kiosk_proto::v1::audit_service_client::AuditServiceClient;
use kiosk_proto::v1::{
    self as pb, GetCheckpointRequest, GetConsistencyProofRequest, GetInclusionProofRequest,
    ListAnomaliesRequest, ListEventsRequest, ResolveAnomalyRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Where and how to reach `AuditService`.
#[derive(Args, Clone, Default)]
pub struct OnlineArgs {
    /// The gateway's AuditService, e.g. `https://gateway.example:8443` (online mode).
    #[arg(long, conflicts_with_all = ["export", "db"])]
    pub online: Option<String>,
    /// CA certificate (PEM) that issued the gateway's server certificate.
    #[arg(long, requires = "online")]
    pub ca: Option<PathBuf>,
    /// The auditor's client certificate (PEM).
    #[arg(long, requires = "online")]
    pub client_cert: Option<PathBuf>,
    /// The auditor's client private key (PEM).
    #[arg(long, requires = "online")]
    pub client_key: Option<PathBuf>,
    /// Server name to check in its certificate, if not the URL's host.
    #[arg(long, requires = "online")]
    pub server_name: Option<String>,
}

/// A connected client.
pub struct Online {
    client: AuditServiceClient<Channel>,
}

fn read(path: &Option<PathBuf>, what: &str) -> Result<Vec<u8>> {
    let p = path
        .as_ref()
        .ok_or_else(|| anyhow!("--{what} is required with --online"))?;
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

impl Online {
    /// Connects with mutual TLS.
    pub async fn connect(args: &OnlineArgs) -> Result<Self> {
        let url = args
            .online
            .clone()
            .ok_or_else(|| anyhow!("--online URL missing"))?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&args.ca, "ca")?))
            .identity(Identity::from_pem(
                read(&args.client_cert, "client-cert")?,
                read(&args.client_key, "client-key")?,
            ));
        if let Some(name) = &args.server_name {
            tls = tls.domain_name(name.clone());
        }
        let channel = Channel::from_shared(url)?
            .tls_config(tls)?
            .connect()
            .await
            .context("connecting to AuditService")?;
        Ok(Self {
            client: AuditServiceClient::new(channel),
        })
    }

    /// The signed note of the latest checkpoint (unverified; the caller verifies it).
    pub async fn checkpoint_note(&mut self) -> Result<String> {
        Ok(self
            .client
            .get_checkpoint(GetCheckpointRequest {})
            .await?
            .into_inner()
            .signed_note)
    }

    /// A consistency proof between two sizes.
    pub async fn consistency(&mut self, old: u64, new: u64) -> Result<Vec<Hash>> {
        let r = self
            .client
            .get_consistency_proof(GetConsistencyProofRequest {
                first_tree_size: old,
                second_tree_size: new,
            })
            .await?
            .into_inner();
        r.hashes.iter().map(|h| Ok(Hash::from_slice(h)?)).collect()
    }

    /// An inclusion proof and the leaf hash the server claims.
    pub async fn inclusion(&mut self, index: u64, size: u64) -> Result<(Hash, Vec<Hash>)> {
        let r = self
            .client
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf_index: index,
                tree_size: size,
            })
            .await?
            .into_inner();
        let proof = r
            .hashes
            .iter()
            .map(|h| Hash::from_slice(h))
            .collect::<Result<_, _>>()?;
        Ok((Hash::from_slice(&r.leaf_hash)?, proof))
    }

    /// Streams events matching `filter`, as export records, to `sink`.
    pub async fn events(
        &mut self,
        filter: &EventFilter,
        mut sink: impl FnMut(ExportRecord) -> Result<()>,
    ) -> Result<()> {
        let ts = |ms: i64| prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        };
        let req = ListEventsRequest {
            from: filter.from.map(|t| ts(t.0)),
            to: filter.to.map(|t| ts(t.0)),
            types: filter
                .types
                .iter()
                .filter_map(|t| pb::AuditEventType::from_str_name(t.as_str()).map(|v| v as i32))
                .collect(),
            terminal_id: filter
                .terminal
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            municipality_code: filter
                .municipality
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            start_index: filter.start_index,
            limit: filter
                .limit
                .map(|l| u32::try_from(l).unwrap_or(u32::MAX))
                .unwrap_or(0),
        };
        let mut stream = self.client.list_events(req).await?.into_inner();
        while let Some(e) = stream.message().await? {
            sink(record_of(e))?;
        }
        Ok(())
    }

    /// Anomalies as CSV rows in the same layout as the other modes.
    pub async fn anomalies(&mut self, all: bool) -> Result<Vec<String>> {
        let r = self
            .client
            .list_anomalies(ListAnomaliesRequest {
                include_resolved: all,
            })
            .await?
            .into_inner();
        Ok(r.anomalies.iter().map(anomaly_row).collect())
    }

    /// Resolves an anomaly (the server records the resolution as an event).
    pub async fn resolve(&mut self, id: &str, reason: &str) -> Result<String> {
        let r = self
            .client
            .resolve_anomaly(ResolveAnomalyRequest {
                anomaly_id: id.to_owned(),
                resolution: reason.to_owned(),
            })
            .await?
            .into_inner();
        Ok(r.anomaly.map(|a| a.anomaly_id).unwrap_or_default())
    }
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The server's readable fields go into the record as sent, so `Rehashed::push_record`
/// compares them with the canonical bytes.
fn record_of(e: pb::AuditEvent) -> ExportRecord {
    let time_ms = e
        .time
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    let event_type = pb::AuditEventType::try_from(e.r#type)
        .map(|t| t.as_str_name().to_owned())
        .unwrap_or_default();
    let actor_kind = pb::ActorKind::try_from(e.actor_kind)
        .map(|k| k.as_str_name().trim_start_matches("ACTOR_KIND_").to_owned())
        .unwrap_or_default();
    ExportRecord {
        index: e.index,
        time_ms,
        event_type,
        actor_kind,
        actor_id: e.actor_id,
        terminal_id: opt(e.terminal_id),
        municipality_code: opt(e.municipality_code),
        session_id: opt(e.session_id),
        issuance_id: opt(e.issuance_id),
        resident_pseudonym: opt(e.resident_pseudonym),
        reason: opt(e.reason),
        attributes: e.attributes.into_iter().collect::<BTreeMap<_, _>>(),
        canonical: base64::engine::general_purpose::STANDARD.encode(&e.canonical),
        leaf_hash: hex::encode(&e.leaf_hash),
    }
}

fn anomaly_row(a: &pb::Anomaly) -> String {
    let kind = pb::AnomalyKind::try_from(a.kind)
        .map(|k| k.as_str_name().trim_start_matches("ANOMALY_KIND_"))
        .unwrap_or("");
    let opened = a
        .opened_at
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    format!(
        "{},{},{},{},{},{},{},\"{}\",{}",
        a.anomaly_id,
        kind,
        opened,
        a.opened_event_index,
        a.terminal_id,
        a.municipality_code,
        a.issuance_id,
        a.resolution.replace('"', "\"\""),
        a.resolved_by
    )
}
