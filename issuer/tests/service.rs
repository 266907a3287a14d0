//! `kiosk.v1.IssuerService` over a real socket (tonic server on port 0, tonic client), on
//! SQLite and PostgreSQL: the same behaviour as the in-process handle, errors in the
//! contract's shape.

// Tests may unwrap: a panic here is a failed assertion with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestDb, generated};
use issuer::service::{IssuerGrpc, item_to_wire};
use issuer::{CertificateOptions, RequestItem};
use kiosk_devkit::generator::Case;
use kiosk_document::CertificateType;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::issuer_service_client::IssuerServiceClient;
use tokio_stream::wrappers::TcpListenerStream;

async fn grpc_matches_the_handle(db: &TestDb) {
    let (issuer, report) = generated(db, 40).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IssuerGrpc::new([issuer.clone()]).into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    let mut client = IssuerServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    let family = report.example(Case::Family).unwrap().clone();
    let menu = client
        .get_menu(pb::IssuerMenuRequest {
            as_of: None,
            municipality_code: "131016".into(),
            resident_ref: family.as_str().into(),
        })
        .await
        .unwrap()
        .into_inner()
        .menu
        .unwrap();
    // The wire menu carries the same members the handle computes, self first.
    let direct = issuer.get_menu(&family).await.unwrap();
    assert_eq!(menu.members.len(), direct.members.len());
    assert_eq!(menu.members[0].subject_ref, family.as_str());
    assert_eq!(menu.members[0].relation, pb::MemberRelation::Self_ as i32);
    assert_eq!(menu.municipality_name, "千代田区");
    let rr = menu
        .entries
        .iter()
        .find(|e| e.r#type == pb::CertificateType::ResidentRecord as i32)
        .unwrap();
    assert_eq!(rr.display_name, "住民票の写し");
    assert_eq!(rr.fee_yen, 200);
    assert!(
        rr.accepted_options
            .contains(&"include_individual_number".to_owned())
    );

    // Render now (the service uses the wall clock for windows through issued_at).
    let now = time::OffsetDateTime::now_utc();
    let order = RequestItem {
        ty: CertificateType::ResidentRecordItems,
        options: CertificateOptions::default(),
        subject_refs: vec![],
        copies: 1,
    };
    let request = pb::RenderRequest {
        issuance_id: "iss-grpc-1".into(),
        municipality_code: "131016".into(),
        requester_ref: family.as_str().into(),
        items: vec![item_to_wire(&order)],
        issued_at: Some(prost_types::Timestamp {
            seconds: now.unix_timestamp(),
            nanos: 0,
        }),
    };
    let decided = issuer
        .quote(&family, std::slice::from_ref(&order), now)
        .await;
    let rendered = client.render(request.clone()).await;
    match decided {
        Ok(_) => {
            let docs = rendered.unwrap().into_inner().documents;
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].pages.len() as u32, docs[0].page_count);
            assert_eq!(
                docs[0].pages[0].subject_refs,
                vec![family.as_str().to_owned()]
            );
            assert_eq!(docs[0].pdf_sha256.len(), 32);
            let voided = client
                .void(pb::VoidRequest {
                    serials: vec![docs[0].serial.clone()],
                    reason: "PRINT_FAILED".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(voided.voided_serials, vec![docs[0].serial.clone()]);
        }
        Err(issuer::IssuerError::Refused(reason)) => {
            // Outside service hours when the test runs: the wire carries the same reason.
            let status = rendered.unwrap_err();
            assert_eq!(
                kiosk_proto::reasons::reason_of(&status).unwrap().name,
                reason.name()
            );
        }
        Err(other) => panic!("unexpected {other:?}"),
    }

    // A refusal carries ErrorInfo and both languages.
    let status = client
        .get_menu(pb::IssuerMenuRequest {
            as_of: None,
            municipality_code: "131016".into(),
            resident_ref: "r-nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        kiosk_proto::reasons::reason_of(&status).unwrap().name,
        "RESIDENT_NOT_FOUND"
    );
    let pinned = pb::RenderRequest {
        issuance_id: "iss-grpc-2".into(),
        issued_at: Some(prost_types::Timestamp {
            seconds: common::OPEN.unix_timestamp(),
            nanos: 0,
        }),
        requester_ref: report.example(Case::NoSeal).unwrap().as_str().into(),
        items: vec![item_to_wire(&RequestItem {
            ty: CertificateType::SealRegistration,
            ..order.clone()
        })],
        ..request.clone()
    };
    let status = client.render(pinned).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        kiosk_proto::reasons::reason_of(&status).unwrap().name,
        "NO_SEAL_REGISTRATION"
    );
    // An unspecified type is INVALID_ARGUMENT with a field violation.
    let mut bad = request.clone();
    bad.issuance_id = "iss-grpc-3".into();
    bad.items[0].r#type = 0;
    let status = client.render(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt;
    assert!(status.get_error_details().bad_request().is_some());
    // Another municipality is not served here.
    let mut elsewhere = request.clone();
    elsewhere.municipality_code = "271004".into();
    let status = client.render(elsewhere).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    issuer.register().close().await;
}
on_both_databases!(grpc_matches_the_handle);
