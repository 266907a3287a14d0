//! What the hostile cases refer to, prepared once per app through the ordinary clients:
//! sessions in every state, issuances in every state, anomalies open and resolved, a real
//! document, and card certificates that fail each check.

use std::time::Duration;

use kiosk_proto::v1 as pb;
use kiosk_terminal::client::Terminal;
use kiosk_tests::{TERMINAL_1, TERMINAL_2, TestApp, fee, item};

/// Everything the cases need, by role.
pub struct Ctx {
    /// TERMINAL_1's authenticated session (a family resident).
    pub authed: String,
    /// The menu of `authed`.
    pub menu: pb::Menu,
    /// TERMINAL_1's session that was opened and never authenticated.
    pub open: String,
    /// TERMINAL_1's closed session.
    pub closed: String,
    /// TERMINAL_2's authenticated session.
    pub other_terminal: String,
    /// A resident reference that `authed`'s menu does not offer.
    pub stranger: String,
    /// In `authed`: released, no print report yet.
    pub released: String,
    /// The idempotency key and fee of `released` (one RESIDENT_RECORD).
    pub released_key: String,
    /// In `authed`: reported PRINTED.
    pub printed: String,
    /// In `authed`: reported FAILED, hence voided with an anomaly.
    pub voided: String,
    /// The fee of one RESIDENT_RECORD.
    pub fee: u32,
    /// The QR payload and the PDF of `released`'s document.
    pub qr: String,
    /// The PDF of `released`'s document.
    pub pdf: Vec<u8>,
    /// An open anomaly and a resolved one.
    pub anomaly_open: String,
    /// A resolved anomaly.
    pub anomaly_resolved: String,
    /// The log's size when the context was made.
    pub tree_size: u64,
    /// A family resident's card certificate (valid, bound).
    pub card_cert: Vec<u8>,
    /// TERMINAL_1's session closed after an issuance it never reported ([`CLOSED_KEY`]).
    pub closed_after_issue: String,
    /// TERMINAL_3 (suspended after these were made): a session never authenticated.
    pub suspended_open: String,
    /// TERMINAL_3: an authenticated session.
    pub suspended_authed: String,
    /// TERMINAL_3: a released issuance in `suspended_authed`, under [`SUSPENDED_KEY`].
    pub suspended_issuance: String,
    /// The session opened for the current case, when it asked for one.
    pub fresh: Option<pb::OpenSessionResponse>,
}

/// The idempotency key of `Ctx::printed`.
pub const PRINTED_KEY: &str = "hostile-ctx-printed-001";
/// The idempotency key of `Ctx::voided`.
pub const VOIDED_KEY: &str = "hostile-ctx-voided-0001";
/// The idempotency key of the issuance reported PARTLY_PRINTED.
pub const PARTLY_KEY: &str = "hostile-ctx-partly-0001";
/// The idempotency key of the issuance in `Ctx::closed_after_issue`.
pub const CLOSED_KEY: &str = "hostile-ctx-closed-0001";
/// The idempotency key of `Ctx::suspended_issuance`.
pub const SUSPENDED_KEY: &str = "hostile-ctx-suspended01";
/// TERMINAL_3's id, which the context suspends.
const SUSPENDED_TERMINAL: &str = "lawson/271004-0007/k1";

/// Issues one RESIDENT_RECORD in `session` under `key`.
async fn issue_one(
    terminal: &Terminal,
    session: &str,
    menu: &pb::Menu,
    key: &str,
) -> kiosk_terminal::client::Issued {
    let items = vec![item(pb::CertificateType::ResidentRecord)];
    let total = fee(menu, &items);
    terminal
        .issue(session, key, items, total, Duration::from_secs(60))
        .await
        .expect("setup issuance")
}

/// Prepares the context on `app`.
pub async fn prepare(app: &TestApp) -> Ctx {
    let t1 = app.terminal(TERMINAL_1).await;
    let t2 = app.terminal(TERMINAL_2).await;
    let families = app.examples("Family");
    let (authed, menu) = app.login(&t1, &families[0]).await.expect("login");
    let neighbour = app
        .residents()
        .into_iter()
        .find(|r| r != &families[0])
        .expect("a second resident");
    let (other_terminal, _) = app.login(&t2, &neighbour).await.expect("login");
    let open = t1.open_session().await.expect("open").session_id;
    let (closed, _) = app.login(&t1, &families[0]).await.expect("login");
    t1.close_session(&closed).await.expect("close");
    let stranger = app
        .residents()
        .into_iter()
        .find(|r| !menu.members.iter().any(|m| &m.subject_ref == r))
        .expect("a resident outside the family");

    let released_key = "hostile-ctx-released-01".to_owned();
    let released = issue_one(&t1, &authed, &menu, &released_key).await;
    let printed = issue_one(&t1, &authed, &menu, PRINTED_KEY).await;
    let voided = issue_one(&t1, &authed, &menu, VOIDED_KEY).await;
    let partly = issue_one(&t1, &authed, &menu, PARTLY_KEY).await;
    let fee = released.header.total_fee_yen;
    for (issued, outcome) in [
        (&printed, pb::PrintOutcome::Printed),
        (&voided, pb::PrintOutcome::Failed),
        (&partly, pb::PrintOutcome::PartlyPrinted),
    ] {
        t1.report_print(&authed, &issued.header.issuance_id, outcome, fee, "")
            .await
            .expect("setup print report");
    }

    let mut auditor = app.auditor().await;
    let anomalies = auditor
        .list_anomalies(pb::ListAnomaliesRequest {
            include_resolved: false,
        })
        .await
        .expect("anomalies")
        .into_inner()
        .anomalies;
    assert!(anomalies.len() >= 2, "two print failures, two anomalies");
    let anomaly_resolved = anomalies[0].anomaly_id.clone();
    auditor
        .resolve_anomaly(pb::ResolveAnomalyRequest {
            anomaly_id: anomaly_resolved.clone(),
            resolution: "refunded at the counter".into(),
        })
        .await
        .expect("resolve");
    let tree_size = auditor
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("checkpoint")
        .into_inner()
        .tree_size;

    let pdf = released.documents[0].pdf.clone();
    let qr = kiosk_document::markers::read_page_markers(&pdf).expect("markers")[0]
        .qr_payload
        .clone();
    let card = app.card(&families[0]);
    let opened = t1.open_session().await.expect("open");
    let card_cert = kiosk_tests::sign(card, &opened).expect("sign").certificate;
    t1.close_session(&opened.session_id).await.expect("close");
    let (closed_after_issue, _) = app.login(&t1, &families[0]).await.expect("login");
    issue_one(&t1, &closed_after_issue, &menu, CLOSED_KEY).await;
    t1.close_session(&closed_after_issue).await.expect("close");
    let suspended = suspended_terminal(app, &neighbour).await;
    fill_open_sessions(app).await;
    Ctx {
        authed,
        menu,
        open,
        closed,
        other_terminal,
        stranger,
        released: released.header.issuance_id.clone(),
        released_key,
        printed: printed.header.issuance_id.clone(),
        voided: voided.header.issuance_id.clone(),
        fee,
        qr,
        pdf,
        anomaly_open: anomalies[1].anomaly_id.clone(),
        anomaly_resolved,
        tree_size,
        card_cert,
        closed_after_issue,
        suspended_open: suspended.0,
        suspended_authed: suspended.1,
        suspended_issuance: suspended.2,
        fresh: None,
    }
}

/// TERMINAL_3's sessions (open, authenticated) and a released issuance, made before the
/// operator suspends the terminal.
async fn suspended_terminal(app: &TestApp, resident: &str) -> (String, String, String) {
    let t3 = app.terminal(kiosk_tests::TERMINAL_3).await;
    let open = t3.open_session().await.expect("open").session_id;
    let (authed, menu) = app.login(&t3, resident).await.expect("login");
    let issued = issue_one(&t3, &authed, &menu, SUSPENDED_KEY).await;
    let by = kiosk_gateway::admin::Attribution::parse("ops-hostile", "hostile-input suite")
        .expect("attribution");
    kiosk_gateway::admin::change_terminal(
        app.flow.store(),
        SUSPENDED_TERMINAL,
        kiosk_gateway::admin::TerminalAction::Suspend,
        &by,
        audit::event::UnixMillis(app.flow.now_ms()),
    )
    .await
    .expect("suspend");
    (open, authed, issued.header.issuance_id.clone())
}

/// Opens TERMINAL_2's sessions until the gateway refuses one for the per-terminal limit.
async fn fill_open_sessions(app: &TestApp) {
    let t2 = app.terminal(TERMINAL_2).await;
    for _ in 0..10_000 {
        if let Err(error) = t2.open_session().await {
            assert_eq!(error.reason(), "OVERLOADED", "{error}");
            return;
        }
    }
    panic!("10,000 sessions open at one terminal: no limit");
}

impl Ctx {
    /// The session opened for this case.
    pub fn fresh(&self) -> &pb::OpenSessionResponse {
        self.fresh.as_ref().expect("the case was marked fresh()")
    }

    /// The `max_copies` of RESIDENT_RECORD on the menu.
    pub fn max_copies(&self) -> u32 {
        self.menu
            .entries
            .iter()
            .find(|e| e.r#type == pb::CertificateType::ResidentRecord as i32)
            .map(|e| e.max_copies)
            .expect("RESIDENT_RECORD on the menu")
    }
}

/// Card certificates that fail one check each, signed by the development card CA (or not).
pub mod cards {
    use kiosk_tests::TestApp;
    use rcgen::{CertificateParams, DnType, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
    use time::{Duration, OffsetDateTime};

    /// How a minted card certificate differs from a good one.
    #[derive(Debug, Clone, Copy)]
    pub enum Flaw {
        /// Expired a month ago.
        Expired,
        /// Valid from next year.
        NotYetValid,
        /// Key usage without digitalSignature.
        KeyUsage,
        /// A P-256 key where cards hold RSA: only the signature check can tell.
        EcKey,
        /// Self-signed: chains to no trusted CA.
        SelfSigned,
    }

    /// A DER card certificate with `flaw`.
    pub fn mint(app: &TestApp, flaw: Flaw) -> Vec<u8> {
        let pki = app.pki_dir();
        let ca_pem = std::fs::read_to_string(pki.join("jpki-auth-ca.crt.pem")).expect("CA");
        let ca_key =
            KeyPair::from_pem(&std::fs::read_to_string(pki.join("jpki-auth-ca.key.pem")).unwrap())
                .unwrap();
        let ca = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "TEST CARD HOSTILE");
        params.serial_number = Some(SerialNumber::from(0x7a5e_0001_u64));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // The development PKI's test-card policy, which this gateway accepts: each flaw is
        // then the only thing wrong with the card (an EC key, say, reaches the signature check).
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 32],
                kiosk_devkit::testpki::JLIS_TEST_POLICY_DER.to_vec(),
            ));
        // Cards name their CA's key: the binding key is its identifier and the serial.
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(365);
        params.not_after = now + Duration::days(3650);
        match flaw {
            Flaw::Expired => params.not_after = now - Duration::days(30),
            Flaw::NotYetValid => params.not_before = now + Duration::days(365),
            Flaw::KeyUsage => params.key_usages = vec![KeyUsagePurpose::KeyEncipherment],
            Flaw::EcKey | Flaw::SelfSigned => {}
        }
        let cert = match flaw {
            Flaw::SelfSigned => params.self_signed(&key),
            _ => params.signed_by(&key, &ca),
        };
        cert.unwrap().der().to_vec()
    }
}
