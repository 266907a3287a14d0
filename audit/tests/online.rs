//! `kiosk-audit --online` against a real `AuditService` over mutual TLS, on SQLite and
//! PostgreSQL. The server here maps AuditService onto the audit crate the way the gateway is
//! meant to (it is also a reference for that mapping), with a throwaway PKI from rcgen.
#![cfg(feature = "online")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed assertion with its location"
)]

mod common;

use std::collections::HashMap;
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::Arc;

use audit::checkpoint::CheckpointSigner;
use audit::event::{Actor, AnomalyKind, EventType, Ident, MunicipalityCode, ResolutionNote};
use audit::settlement::{self, Grouping, Period};
use audit::store::{self, EventFilter, StoreError};
use audit::{Event, UnixMillis};
use common::{BOTH, TestDb, begin, event, facts};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use sqlx::AnyPool;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

struct Svc {
    pool: AnyPool,
    signer: Arc<CheckpointSigner>,
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn ms(t: &prost_types::Timestamp) -> UnixMillis {
    UnixMillis(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn status(e: StoreError) -> Status {
    match e {
        StoreError::Range(_) => Status::invalid_argument("PROOF_RANGE_INVALID"),
        StoreError::AnomalyNotFound => Status::not_found("ANOMALY_NOT_FOUND"),
        StoreError::AnomalyAlreadyResolved => {
            Status::failed_precondition("ANOMALY_ALREADY_RESOLVED")
        }
        _ => Status::internal("internal"),
    }
}

fn to_pb(s: &store::StoredEvent) -> pb::AuditEvent {
    let e = &s.event;
    let kind = match e.actor().kind() {
        audit::ActorKind::Terminal => pb::ActorKind::Terminal,
        audit::ActorKind::Resident => pb::ActorKind::Resident,
        audit::ActorKind::Operator => pb::ActorKind::Operator,
        audit::ActorKind::Auditor => pb::ActorKind::Auditor,
        audit::ActorKind::System => pb::ActorKind::System,
    };
    pb::AuditEvent {
        index: s.index,
        time: Some(ts(e.time().0)),
        r#type: pb::AuditEventType::from_str_name(e.event_type().as_str()).map_or(0, |t| t as i32),
        actor_kind: kind as i32,
        actor_id: e.actor().id(),
        terminal_id: e
            .terminal()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        municipality_code: e
            .municipality()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        session_id: e
            .session()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        issuance_id: e
            .issuance()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        resident_pseudonym: e.resident().map(|v| v.to_hex()).unwrap_or_default(),
        reason: e
            .reason()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        attributes: e
            .facts()
            .map(|f| (f.key().to_owned(), f.value()))
            .collect::<HashMap<_, _>>(),
        canonical: s.canonical.clone(),
        leaf_hash: s.leaf_hash.as_bytes().to_vec(),
    }
}

fn anomaly_pb(a: &store::Anomaly) -> pb::Anomaly {
    pb::Anomaly {
        anomaly_id: a.id.as_str().to_owned(),
        kind: pb::AnomalyKind::from_str_name(&format!("ANOMALY_KIND_{}", a.kind.as_str()))
            .map_or(0, |k| k as i32),
        opened_at: Some(ts(a.opened_at.0)),
        terminal_id: a
            .terminal
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        municipality_code: a
            .municipality
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        issuance_id: a
            .issuance
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        resolution: a
            .resolution
            .as_ref()
            .map(|r| r.note.as_str().to_owned())
            .unwrap_or_default(),
        resolved_at: a.resolution.as_ref().map(|r| ts(r.at.0)),
        resolved_by: a
            .resolution
            .as_ref()
            .map(|r| r.by.clone())
            .unwrap_or_default(),
        opened_event_index: a.opened_event_index,
        certificate_type: 0,
    }
}

impl Svc {
    /// Every call is itself an audit event (actor AUDITOR), committed before answering.
    async fn record_read(&self, read: &str) -> Result<(), Status> {
        let mut tx = self.begin().await?;
        let e = Event::auditor_read(
            UnixMillis::now(),
            Ident::parse("auditor-online").unwrap(),
            Ident::parse(read).unwrap(),
        );
        store::append(&mut tx, &e).await.map_err(status)?;
        tx.commit().await.map_err(|_| Status::internal("internal"))
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Status> {
        let sqlite = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?
            .backend_name()
            == "SQLite";
        let tx = if sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        };
        tx.map_err(|_| Status::internal("db"))
    }
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for Svc {
    type ListEventsStream = EventStream;

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let r = req.into_inner();
        let filter = EventFilter {
            from: r.from.as_ref().map(ms),
            to: r.to.as_ref().map(ms),
            types: r
                .types
                .iter()
                .filter_map(|t| pb::AuditEventType::try_from(*t).ok())
                .filter_map(|t| EventType::parse(t.as_str_name()).ok())
                .collect(),
            terminal: (!r.terminal_id.is_empty())
                .then(|| Ident::parse(&r.terminal_id))
                .transpose()
                .map_err(|_| Status::invalid_argument("INVALID_FIELD"))?,
            municipality: (!r.municipality_code.is_empty())
                .then(|| MunicipalityCode::parse(&r.municipality_code))
                .transpose()
                .map_err(|_| Status::invalid_argument("INVALID_FIELD"))?,
            start_index: r.start_index,
            limit: (r.limit > 0).then_some(u64::from(r.limit)),
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let events = store::list_events(&mut conn, &filter)
            .await
            .map_err(status)?;
        drop(conn);
        let items: Vec<Result<pb::AuditEvent, Status>> =
            events.iter().map(|s| Ok(to_pb(s))).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn get_checkpoint(
        &self,
        _: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        self.record_read("GetCheckpoint").await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let cp = store::checkpoint_now(&mut conn, &self.signer)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found("empty log"))?;
        let c = cp.signed.checkpoint();
        Ok(Response::new(pb::GetCheckpointResponse {
            signed_note: cp.signed.note().to_owned(),
            origin: c.origin().to_owned(),
            tree_size: c.size(),
            root_hash: c.root().as_bytes().to_vec(),
            public_key: self.signer.public_key().to_vec(),
            signed_at: Some(ts(cp.signed_at.0)),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let r = req.into_inner();
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let (leaf, proof) = store::inclusion_proof(&mut conn, r.leaf_index, r.tree_size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            leaf_index: r.leaf_index,
            tree_size: r.tree_size,
            hashes: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
            leaf_hash: leaf.as_bytes().to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let r = req.into_inner();
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let proof = store::consistency_proof(&mut conn, r.first_tree_size, r.second_tree_size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            first_tree_size: r.first_tree_size,
            second_tree_size: r.second_tree_size,
            hashes: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
        }))
    }

    async fn get_settlement(
        &self,
        req: Request<pb::GetSettlementRequest>,
    ) -> Result<Response<pb::GetSettlementResponse>, Status> {
        let r = req.into_inner();
        let (Some(from), Some(to)) = (r.from.as_ref(), r.to.as_ref()) else {
            return Err(Status::invalid_argument("INVALID_FIELD"));
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let rows = settlement::settlement_from_store(
            &mut conn,
            ms(from),
            ms(to),
            Period::Day,
            Grouping::Store,
        )
        .await
        .map_err(status)?;
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
        req: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|_| Status::internal("db"))?;
        let list = store::list_anomalies(&mut conn, req.into_inner().include_resolved)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListAnomaliesResponse {
            anomalies: list.iter().map(anomaly_pb).collect(),
        }))
    }

    async fn resolve_anomaly(
        &self,
        req: Request<pb::ResolveAnomalyRequest>,
    ) -> Result<Response<pb::ResolveAnomalyResponse>, Status> {
        let r = req.into_inner();
        let id =
            Ident::parse(&r.anomaly_id).map_err(|_| Status::invalid_argument("INVALID_FIELD"))?;
        let note = ResolutionNote::parse(&r.resolution)
            .map_err(|_| Status::invalid_argument("INVALID_FIELD"))?;
        let mut tx = self.begin().await?;
        let a = store::resolve_anomaly(
            &mut tx,
            UnixMillis::now(),
            &id,
            Actor::Auditor(Ident::parse("auditor-online").unwrap()),
            note,
        )
        .await
        .map_err(status)?;
        tx.commit().await.map_err(|_| Status::internal("db"))?;
        Ok(Response::new(pb::ResolveAnomalyResponse {
            anomaly: Some(anomaly_pb(&a)),
        }))
    }
}

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca_cert.pem(),
        server: leaf(
            vec!["localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            vec!["auditor.example".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    }
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiosk-audit"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = bin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_tool_online_over_mutual_tls() {
    for kind in BOTH {
        let db = TestDb::new(kind).await;
        let signer = Arc::new(
            CheckpointSigner::from_seed("kiosk.example.lg.jp/audit/v1", &[31u8; 32]).unwrap(),
        );
        let vkey = signer.verifier().vkey();
        let events: Vec<_> = (0..40).map(event).collect();
        let mut tx = begin(&db.pool).await;
        store::append_batch(&mut tx, &events).await.unwrap();
        store::open_anomaly(
            &mut tx,
            &store::anomaly_opened_event(
                UnixMillis(1_795_400_000_000),
                Ident::parse("an-1").unwrap(),
                AnomalyKind::PrintFailed,
                &facts(1),
            ),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        std::fs::write(p("ca.pem"), &pki.ca).unwrap();
        std::fs::write(p("client.pem"), &pki.client.0).unwrap();
        std::fs::write(p("client.key"), &pki.client.1).unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&pki.server.0, &pki.server.1))
            .client_ca_root(Certificate::from_pem(&pki.ca));
        let svc = Svc {
            pool: db.pool.clone(),
            signer: signer.clone(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(AuditServiceServer::new(svc))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                ),
        );
        let url = format!("https://localhost:{port}");
        let conn: Vec<String> = [
            "--online",
            &url,
            "--ca",
            &p("ca.pem"),
            "--client-cert",
            &p("client.pem"),
            "--client-key",
            &p("client.key"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
            head.iter()
                .map(|s| s.to_string())
                .chain(conn.iter().cloned())
                .chain(tail.iter().map(|s| s.to_string()))
                .collect()
        };
        let state = p("state");
        let first = cli(with(&["--state", &state, "check", "--key", &vkey], &[])).await;
        assert!(
            first.contains("size 42 verified (first run"),
            "{kind:?}: {first}"
        );

        // More events; the next run proves consistency with the remembered checkpoint online.
        let more: Vec<_> = (40..60).map(event).collect();
        let mut tx = begin(&db.pool).await;
        store::append_batch(&mut tx, &more).await.unwrap();
        tx.commit().await.unwrap();
        let second = cli(with(&["--state", &state, "check", "--key", &vkey], &[])).await;
        // 42 (40 events, the anomaly, the first run's AUDITOR_READ) + 20 + this run's read = 63.
        assert!(
            second.contains("size 63 consistent with verified size 42"),
            "{kind:?}: {second}"
        );

        let incl = cli(with(&["inclusion", "--key", &vkey], &["--index", "17"])).await;
        assert!(incl.contains("OK: event 17"), "{incl}");

        let out = p("online.jsonl");
        cli(with(
            &["export"],
            &["--type", "PRINT_REPORTED", "--out", &out],
        ))
        .await;
        let exported = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            exported.lines().count(),
            (0..60).filter(|n| n % 4 == 1).count()
        );

        let anomalies = cli(with(&["anomalies"], &[])).await;
        assert!(anomalies.contains("an-1,PRINT_FAILED"), "{anomalies}");
        cli(with(
            &["resolve"],
            &["--id", "an-1", "--reason", "reprinted at the store"],
        ))
        .await;
        let mut c = db.pool.acquire().await.unwrap();
        let all = store::list_anomalies(&mut c, true).await.unwrap();
        assert_eq!(all[0].resolution.as_ref().unwrap().by, "auditor-online");
        drop(c);

        // Settlement recomputed by the tool from the streamed events equals the server's.
        let tool = cli(with(
            &["settlement"],
            &[
                "--from",
                "2026-01-01",
                "--to",
                "2027-01-01",
                "--group",
                "store",
                "--format",
                "csv",
            ],
        ))
        .await;
        let mut c = db.pool.acquire().await.unwrap();
        let server_rows = settlement::settlement_from_store(
            &mut c,
            UnixMillis(1_767_193_200_000),
            UnixMillis(1_798_729_200_000),
            Period::Day,
            Grouping::Store,
        )
        .await
        .unwrap();
        drop(c);
        assert_eq!(tool.lines().count(), server_rows.len() + 1, "{tool}");
        for r in &server_rows {
            assert!(
                tool.contains(&format!(
                    "{},{},{},{},{},{}",
                    r.period, r.group, r.issued, r.voided, r.unconfirmed, r.fees_yen
                )),
                "{tool}"
            );
        }

        // A wrong client identity (the CA certificate with the client key) cannot connect: exit 2.
        let no_cert = tokio::task::spawn_blocking({
            let (state, vkey, url, ca, key) = (
                state.clone(),
                vkey.clone(),
                url.clone(),
                p("ca.pem"),
                p("client.key"),
            );
            move || {
                bin(&[
                    "--state",
                    &state,
                    "check",
                    "--key",
                    &vkey,
                    "--online",
                    &url,
                    "--ca",
                    &ca,
                    "--client-cert",
                    &ca,
                    "--client-key",
                    &key,
                ])
            }
        })
        .await
        .unwrap();

        assert_eq!(no_cert.status.code(), Some(2));

        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        db.cleanup().await;
    }
}

/// Runs the tool off the runtime's worker threads (the server shares the runtime).
async fn cli(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || ok(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}
