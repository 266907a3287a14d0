//! The 2023 wrong-person issuances as tests (docs/domain.md section 5.2): many residents at
//! many terminals in the same second with print failures, client timeouts and retries; an
//! issuer that hands out the previous applicant's document; a bounded gateway under overload.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_gateway::route::{InProcess, IssuerDirectory, IssuerLink};
use kiosk_proto::v1 as pb;
use kiosk_tests::{
    AppOptions, Db, TERMINAL_1, TERMINAL_2, TERMINAL_3, TestApp, fee, item, page_subjects,
    spawn_app_with,
};

async fn crowd(db: Db) {
    let app = Arc::new(
        spawn_app_with(AppOptions {
            residents: 150,
            ..AppOptions::new(db)
        })
        .await,
    );
    let terminals = Arc::new(vec![
        app.terminal(TERMINAL_1).await,
        app.terminal(TERMINAL_2).await,
        app.terminal(TERMINAL_3).await,
    ]);
    let residents = app.residents();
    let jobs = 200usize;
    // 32 kiosks busy at any moment: hundreds of issuances within a few seconds, on 2 cores.
    let kiosks = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for n in 0..jobs {
        let app = app.clone();
        let terminals = terminals.clone();
        let resident = residents[n % residents.len()].clone();
        let kiosks = kiosks.clone();
        tasks.push(tokio::spawn(async move {
            let _kiosk = kiosks.acquire_owned().await.unwrap();
            let terminal = &terminals[n % terminals.len()];
            // A login that times out is started again from OpenSession, as the guide says.
            let login = match app.login(terminal, &resident).await {
                Err(error) if error.reason() == "UNKNOWN" => app.login(terminal, &resident).await,
                other => other,
            };
            let (session, menu) = match login {
                Ok(ok) => ok,
                Err(error) => {
                    return (
                        n,
                        resident,
                        Err(format!("{}: {error}", error.reason())),
                        Vec::new(),
                    );
                }
            };
            let allowed: BTreeSet<String> =
                menu.members.iter().map(|m| m.subject_ref.clone()).collect();
            let entry = menu.entries.iter().find(|e| e.available).cloned();
            let Some(entry) = entry else {
                return (n, resident, Err("NOTHING_AVAILABLE".into()), Vec::new());
            };
            let mut request = item(pb::CertificateType::try_from(entry.r#type).unwrap());
            if let Some(year) = entry.fiscal_years.first() {
                request.options = Some(pb::CertificateOptions {
                    fiscal_year: *year,
                    ..Default::default()
                });
            }
            let items = vec![request];
            let total = fee(&menu, &items);
            let key = format!("crowd-{n:06}-{}", &session[2..14]);
            // One in five gives up almost at once, as a kiosk whose network hiccups, and
            // retries with the same key.
            if n % 5 == 0 {
                let _ = terminal
                    .issue(
                        &session,
                        &key,
                        items.clone(),
                        total,
                        Duration::from_millis(2),
                    )
                    .await;
            }
            // OVERLOADED means "retry with the same key": back off and retry, as a kiosk does.
            let mut attempt = 0u64;
            let issued = loop {
                let result = terminal
                    .issue(
                        &session,
                        &key,
                        items.clone(),
                        total,
                        Duration::from_secs(60),
                    )
                    .await;
                match result {
                    Err(error) if error.reason() == "OVERLOADED" && attempt < 100 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
                    }
                    other => break other,
                }
            };
            let issued = match issued {
                Ok(issued) => issued,
                Err(error) => {
                    return (
                        n,
                        resident,
                        Err(format!("{}: {error}", error.reason())),
                        Vec::new(),
                    );
                }
            };
            let outcome = if n % 7 == 0 {
                pb::PrintOutcome::Failed
            } else {
                pb::PrintOutcome::Printed
            };
            let report = terminal
                .report_print(&session, &issued.header.issuance_id, outcome, total, "")
                .await;
            let _ = terminal.close_session(&session).await;
            let mut pages = Vec::new();
            for document in &issued.documents {
                for (issuance, subjects) in page_subjects(&document.pdf) {
                    pages.push((issuance, subjects, allowed.clone()));
                }
            }
            let result = report
                .map(|r| (issued.header.issuance_id.clone(), r.state, issued.documents))
                .map_err(|e| e.reason().to_owned());
            (n, resident, result, pages)
        }));
    }
    let mut issued: BTreeMap<String, (i32, Vec<kiosk_terminal::client::Document>)> =
        BTreeMap::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let (n, _resident, result, pages) = task.await.unwrap();
        for (issuance, subjects, allowed) in pages {
            let (id, _, _) = result.as_ref().unwrap();
            assert_eq!(&issuance, id, "job {n}: a page of another issuance");
            for subject in subjects {
                assert!(
                    allowed.contains(&subject),
                    "job {n}: a page names a stranger"
                );
            }
        }
        match result {
            Ok((id, state, documents)) => {
                assert!(
                    issued.insert(id, (state, documents)).is_none(),
                    "an issuance was handed out twice"
                );
            }
            Err(reason) => *refusals.entry(reason).or_default() += 1,
        }
    }
    // Refusals are eligibility outcomes of the synthetic register, never mix-ups or errors.
    for reason in refusals.keys() {
        assert!(
            ![
                "INTERNAL_ERROR",
                "SUBJECT_MISMATCH",
                "INTEGRITY",
                "CONNECTION",
                "UNKNOWN"
            ]
            .contains(&reason.as_str()),
            "unexpected failure {reason}: {refusals:?}"
        );
    }
    let nothing = refusals.get("NOTHING_AVAILABLE").copied().unwrap_or(0);
    assert_eq!(
        issued.len() + nothing,
        jobs,
        "every job either issued or met a resident with nothing to obtain: {refusals:?}"
    );
    assert!(
        issued.len() >= jobs / 2,
        "{} of {jobs} issued",
        issued.len()
    );

    // Every void is visible to verifiers; every printed document verifies.
    let mut verifier = app.verifier().await;
    for (state, documents) in issued.values().take(40) {
        for document in documents {
            let answer = verifier
                .verify_document(pb::VerifyDocumentRequest {
                    document: Some(pb::verify_document_request::Document::Pdf(
                        document.pdf.clone(),
                    )),
                })
                .await
                .unwrap()
                .into_inner();
            let expected = if *state == pb::IssuanceState::Voided as i32 {
                pb::Validity::Voided
            } else {
                pb::Validity::Valid
            };
            assert_eq!(answer.validity, expected as i32);
        }
    }

    // The audit log: exactly one release per issuance (per type), and the whole log verifies.
    let mut auditor = app.auditor().await;
    let checkpoint = auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut stream = auditor
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut released: HashMap<String, usize> = HashMap::new();
    let mut leaves = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        if event.r#type == pb::AuditEventType::DocumentsReleased as i32 {
            *released.entry(event.issuance_id.clone()).or_default() += 1;
        }
        leaves.push(audit::merkle::Hash::from_slice(&event.leaf_hash).unwrap());
    }
    for id in issued.keys() {
        assert_eq!(released.get(id), Some(&1), "issuance {id} released once");
    }

    // Re-hash the exported leaves independently of the server's stored nodes.
    let mut tree = audit::merkle::MemoryTree::new();
    for leaf in &leaves[..checkpoint.tree_size as usize] {
        tree.push(*leaf);
    }
    assert_eq!(
        tree.root().as_bytes().as_slice(),
        checkpoint.root_hash.as_slice()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_never_receives_anothers_document_sqlite() {
    crowd(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_never_receives_anothers_document_postgres() {
    crowd(Db::Postgres).await;
}

/// An issuer with the 2023 defect: it answers each request with the documents it rendered for
/// the request before ("advancing the queue").
struct QueueAdvancingIssuer {
    inner: Arc<dyn IssuerLink>,
    previous: Mutex<Option<pb::RenderResponse>>,
}

#[tonic::async_trait]
impl IssuerLink for QueueAdvancingIssuer {
    async fn get_menu(
        &self,
        request: pb::IssuerMenuRequest,
    ) -> Result<pb::IssuerMenuResponse, tonic::Status> {
        self.inner.get_menu(request).await
    }

    async fn quote(
        &self,
        request: pb::IssuerQuoteRequest,
    ) -> Result<pb::IssuerQuoteResponse, tonic::Status> {
        self.inner.quote(request).await
    }

    async fn render(
        &self,
        request: pb::RenderRequest,
        deadline: Duration,
    ) -> Result<pb::RenderResponse, tonic::Status> {
        let fresh = self.inner.render(request, deadline).await?;
        let previous = self.previous.lock().unwrap().replace(fresh.clone());
        Ok(previous.unwrap_or(fresh))
    }

    async fn confirm(
        &self,
        request: pb::ConfirmRequest,
    ) -> Result<pb::ConfirmResponse, tonic::Status> {
        self.inner.confirm(request).await
    }
    async fn list_pending(
        &self,
        request: pb::ListPendingRequest,
    ) -> Result<pb::ListPendingResponse, tonic::Status> {
        self.inner.list_pending(request).await
    }
    async fn void_pending(
        &self,
        request: pb::VoidPendingRequest,
    ) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void_pending(request).await
    }
    async fn void(&self, request: pb::VoidRequest) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void(request).await
    }
}

async fn faulty_issuer(db: Db) {
    let app: TestApp = spawn_app_with(AppOptions {
        directory: Some(Box::new(|embedded| {
            let mut directory = IssuerDirectory::new();
            directory.insert(
                "131016",
                Arc::new(QueueAdvancingIssuer {
                    inner: Arc::new(InProcess(embedded.issuers.clone())),
                    previous: Mutex::new(None),
                }),
            );
            directory
        })),
        ..AppOptions::new(db)
    })
    .await;
    let terminal = app.terminal(TERMINAL_1).await;
    let (first, second) = (
        app.examples("Family")[0].clone(),
        app.examples("FormerSurname")[0].clone(),
    );
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];

    // The first request gets its own document (the queue was empty).
    let (session, menu) = app.login(&terminal, &first).await.unwrap();
    terminal
        .issue(
            &session,
            "queue-first-000001",
            items.clone(),
            fee(&menu, &items),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    // The second resident would get the first one's: the gateway refuses to release it.
    let (session, menu) = app.login(&terminal, &second).await.unwrap();
    let error = terminal
        .issue(
            &session,
            "queue-second-00001",
            items.clone(),
            fee(&menu, &items),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "SUBJECT_MISMATCH");
    // A retry gets the same refusal: the voided issuance is never re-rendered or re-assigned.
    let error = terminal
        .issue(
            &session,
            "queue-second-00001",
            items.clone(),
            fee(&menu, &items),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "SUBJECT_MISMATCH");
    let mut auditor = app.auditor().await;
    let anomalies = auditor
        .list_anomalies(pb::ListAnomaliesRequest {
            include_resolved: false,
        })
        .await
        .unwrap()
        .into_inner()
        .anomalies;
    assert!(
        anomalies
            .iter()
            .any(|a| a.kind == pb::AnomalyKind::SubjectMismatch as i32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_advances_the_queue_is_caught_sqlite() {
    faulty_issuer(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_advances_the_queue_is_caught_postgres() {
    faulty_issuer(Db::Postgres).await;
}

/// An issuer that holds every render until the test releases it.
struct GatedIssuer {
    inner: Arc<dyn IssuerLink>,
    gate: Arc<tokio::sync::Semaphore>,
    entered: Arc<tokio::sync::Notify>,
}

#[tonic::async_trait]
impl IssuerLink for GatedIssuer {
    async fn get_menu(
        &self,
        request: pb::IssuerMenuRequest,
    ) -> Result<pb::IssuerMenuResponse, tonic::Status> {
        self.inner.get_menu(request).await
    }

    async fn quote(
        &self,
        request: pb::IssuerQuoteRequest,
    ) -> Result<pb::IssuerQuoteResponse, tonic::Status> {
        self.inner.quote(request).await
    }

    async fn render(
        &self,
        request: pb::RenderRequest,
        deadline: Duration,
    ) -> Result<pb::RenderResponse, tonic::Status> {
        self.entered.notify_one();
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| tonic::Status::internal("gate"))?;
        self.inner.render(request, deadline).await
    }

    async fn confirm(
        &self,
        request: pb::ConfirmRequest,
    ) -> Result<pb::ConfirmResponse, tonic::Status> {
        self.inner.confirm(request).await
    }
    async fn list_pending(
        &self,
        request: pb::ListPendingRequest,
    ) -> Result<pb::ListPendingResponse, tonic::Status> {
        self.inner.list_pending(request).await
    }
    async fn void_pending(
        &self,
        request: pb::VoidPendingRequest,
    ) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void_pending(request).await
    }
    async fn void(&self, request: pb::VoidRequest) -> Result<pb::VoidResponse, tonic::Status> {
        self.inner.void(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_bound_issue_answers_overloaded() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let (g, e) = (gate.clone(), entered.clone());
    let app = spawn_app_with(AppOptions {
        max_concurrent_issuances: 1,
        directory: Some(Box::new(move |embedded| {
            let mut directory = IssuerDirectory::new();
            directory.insert(
                "131016",
                Arc::new(GatedIssuer {
                    inner: Arc::new(InProcess(embedded.issuers.clone())),
                    gate: g,
                    entered: e,
                }),
            );
            directory
        })),
        ..AppOptions::new(Db::Sqlite)
    })
    .await;
    let terminal = app.terminal(TERMINAL_1).await;
    let items = vec![item(pb::CertificateType::ResidentRecordItems)];
    let (s1, m1) = app
        .login(&terminal, &app.examples("Family")[0])
        .await
        .unwrap();
    let (s2, m2) = app
        .login(&terminal, &app.examples("FormerSurname")[0])
        .await
        .unwrap();
    let t1 = terminal.clone();
    let (i1, f1) = (items.clone(), fee(&m1, &items));
    let first = tokio::spawn(async move {
        t1.issue(&s1, "bounded-first-0001", i1, f1, Duration::from_secs(30))
            .await
    });
    entered.notified().await; // the first issuance holds the only slot now
    let error = terminal
        .issue(
            &s2,
            "bounded-second-001",
            items.clone(),
            fee(&m2, &items),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "OVERLOADED");
    gate.add_permits(1);
    first.await.unwrap().unwrap();
    // With the slot free again the second resident's retry goes through.
    gate.add_permits(1);
    terminal
        .issue(
            &s2,
            "bounded-second-001",
            items.clone(),
            fee(&m2, &items),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
}
