//! Hostile cases of TerminalService: identifiers in every RPC, locales, card certificates and
//! signatures, order shapes, idempotency keys, print reports and session states.

use std::sync::Arc;

use kiosk_proto::v1 as pb;
use prost::Message;
use tonic::Code;

use super::context::{Ctx, cards};
use super::raw::wire;
use super::table::{Caller, Case, bytes, msg, one};

pub const OPEN_SESSION: &str = "/kiosk.v1.TerminalService/OpenSession";
pub const AUTHENTICATE: &str = "/kiosk.v1.TerminalService/Authenticate";
pub const GET_MENU: &str = "/kiosk.v1.TerminalService/GetMenu";
pub const QUOTE: &str = "/kiosk.v1.TerminalService/Quote";
pub const ISSUE: &str = "/kiosk.v1.TerminalService/Issue";
pub const REPORT_PRINT: &str = "/kiosk.v1.TerminalService/ReportPrint";
pub const CLOSE_SESSION: &str = "/kiosk.v1.TerminalService/CloseSession";

/// Identifiers that cannot be identifiers: each must be refused as an invalid field.
pub fn malformed_ids() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("65 characters", "s".repeat(65)),
        ("NUL", "s-1\0".into()),
        ("BEL control", "s-1\u{7}".into()),
        ("newline", "s-1\n".into()),
        ("tab", "s-\t1".into()),
        ("leading space", " s-1".into()),
        ("RTL override", "s-\u{202E}1".into()),
        ("zero-width space", "s-\u{200B}1".into()),
        ("full-width digits", "s-１２３".into()),
        ("non-ASCII letter", "s-é".into()),
        ("SQL quote", "s-1' OR '1'='1".into()),
        ("SQL statement", "s-1;DROP TABLE sessions".into()),
        ("percent-encoded", "s-%00".into()),
        ("emoji", "s-🙂".into()),
        ("backslash", "s-1\\".into()),
    ]
}

/// Well-formed identifiers that name nothing.
pub fn unknown_ids() -> Vec<(&'static str, String)> {
    vec![
        ("random", format!("s-{}", "0".repeat(32))),
        ("path traversal", "../../etc/passwd".into()),
        ("SQL comment", "s-1--".into()),
        ("one character", "x".into()),
        ("64 characters", "s".repeat(64)),
    ]
}

/// Picks the card certificate an Authenticate case sends.
type CertOf = Arc<dyn Fn(&Ctx) -> Vec<u8> + Send + Sync>;

/// Builds a request with a given identifier; the number makes keys unique per case.
type WithId = Arc<dyn Fn(&Ctx, &str, usize) -> Vec<u8> + Send + Sync>;

/// Every malformed and unknown identifier in one field of one RPC, and the field as bytes that
/// are not UTF-8.
fn id_cases(
    rpc: &'static str,
    field: &'static str,
    field_no: u32,
    not_found: (Code, &'static str),
    build: WithId,
) -> Vec<Case> {
    let label = rpc.rsplit('/').next().unwrap_or(rpc);
    let mut cases = Vec::new();
    for (n, (kind, id)) in malformed_ids().into_iter().enumerate() {
        let b = build.clone();
        cases.push(
            Case::new(
                format!("{label} {field}: {kind}"),
                rpc,
                Caller::T1,
                bytes(move |c| b(c, &id, n)),
            )
            .invalid(field),
        );
    }
    for (n, (kind, id)) in unknown_ids().into_iter().enumerate() {
        let b = build.clone();
        cases.push(
            Case::new(
                format!("{label} {field}: {kind}"),
                rpc,
                Caller::T1,
                bytes(move |c| b(c, &id, 100 + n)),
            )
            .refused(not_found.0, not_found.1),
        );
    }
    let b = build.clone();
    cases.push(
        Case::new(
            format!("{label} {field}: not UTF-8"),
            rpc,
            Caller::T1,
            bytes(move |c| {
                // A later occurrence of a singular field replaces the earlier one; prost decodes
                // both, so the invalid bytes are refused wherever they appear.
                [
                    b(c, "s-1", 200),
                    wire::len(field_no, &[0x73, 0x2d, 0xff, 0xfe]),
                ]
                .concat()
            }),
        )
        .invalid(field),
    );
    cases
}

fn rr() -> pb::RequestItem {
    kiosk_tests::item(pb::CertificateType::ResidentRecord)
}

/// The identifier cases of every RPC that takes one.
pub fn identifier_cases() -> Vec<Case> {
    let session_not_found = (Code::NotFound, "SESSION_NOT_FOUND");
    let issuance_not_found = (Code::NotFound, "ISSUANCE_NOT_FOUND");
    let mut cases = Vec::new();
    cases.extend(id_cases(
        AUTHENTICATE,
        "session_id",
        1,
        session_not_found,
        Arc::new(|c, id, _| {
            pb::AuthenticateRequest {
                session_id: id.into(),
                card_certificate: c.card_cert.clone(),
                signature: vec![0; 256],
            }
            .encode_to_vec()
        }),
    ));
    cases.extend(id_cases(
        GET_MENU,
        "session_id",
        1,
        session_not_found,
        Arc::new(|_, id, _| {
            pb::GetMenuRequest {
                session_id: id.into(),
            }
            .encode_to_vec()
        }),
    ));
    cases.extend(id_cases(
        QUOTE,
        "session_id",
        1,
        session_not_found,
        Arc::new(|_, id, _| {
            pb::QuoteRequest {
                session_id: id.into(),
                items: vec![rr()],
            }
            .encode_to_vec()
        }),
    ));
    cases.extend(id_cases(
        ISSUE,
        "session_id",
        1,
        session_not_found,
        Arc::new(|c, id, n| {
            pb::IssueRequest {
                session_id: id.into(),
                client_request_id: format!("hostile-session-id-{n:04}"),
                items: vec![rr()],
                expected_total_fee_yen: c.fee,
            }
            .encode_to_vec()
        }),
    ));
    cases.extend(id_cases(
        REPORT_PRINT,
        "session_id",
        1,
        issuance_not_found,
        Arc::new(|c, id, _| report(id, &c.printed, pb::PrintOutcome::Printed, "")),
    ));
    cases.extend(id_cases(
        REPORT_PRINT,
        "issuance_id",
        2,
        issuance_not_found,
        Arc::new(|c, id, _| report(&c.authed, id, pb::PrintOutcome::Printed, "")),
    ));
    cases.extend(id_cases(
        CLOSE_SESSION,
        "session_id",
        1,
        session_not_found,
        Arc::new(|_, id, _| {
            pb::CloseSessionRequest {
                session_id: id.into(),
            }
            .encode_to_vec()
        }),
    ));
    cases
}

fn report(session: &str, issuance: &str, outcome: pb::PrintOutcome, detail: &str) -> Vec<u8> {
    pb::ReportPrintRequest {
        session_id: session.into(),
        issuance_id: issuance.into(),
        outcome: outcome as i32,
        failure_detail: detail.into(),
        collected_yen: 0,
    }
    .encode_to_vec()
}

/// OpenSession: locales, roles and unknown fields.
pub fn open_session_cases() -> Vec<Case> {
    let locale = |name: &str, value: String| {
        Case::new(
            format!("OpenSession locale: {name}"),
            OPEN_SESSION,
            Caller::T1,
            msg(move |_| pb::OpenSessionRequest {
                locale: value.clone(),
            }),
        )
    };
    let opened = |m: &[bytes::Bytes]| one(m, |r: pb::OpenSessionResponse| r.challenge.len() == 32);
    vec![
        locale("empty means ja-JP", String::new()).answers(opened),
        locale("en-US", "en-US".into()).answers(opened),
        locale("unknown but well-formed fr-CA", "fr-CA".into()).answers(opened),
        locale("script subtag zh-Hant-TW", "zh-Hant-TW".into()).answers(opened),
        locale("private use x-kiosk", "x-kiosk".into()).answers(opened),
        locale(
            "35 characters",
            "ja-abcdefgh-abcdefgh-abcdefgh-abcde".into(),
        )
        .answers(opened),
        locale(
            "36 characters",
            "ja-abcdefgh-abcdefgh-abcdefgh-abcdef".into(),
        )
        .invalid("locale"),
        locale("1 MB", "a".repeat(1_000_000)).invalid("locale"),
        locale("underscore ja_JP", "ja_JP".into()).invalid("locale"),
        locale("empty subtag", "ja--JP".into()).invalid("locale"),
        locale("trailing hyphen", "ja-".into()).invalid("locale"),
        locale("one letter", "j".into()).invalid("locale"),
        locale("digits first", "123".into()).invalid("locale"),
        locale("NUL", "ja-JP\0".into()).invalid("locale"),
        locale("full-width", "ｊａ-ＪＰ".into()).invalid("locale"),
        locale("RTL override", "ja-\u{202E}JP".into()).invalid("locale"),
        locale("subtag of 9", "ja-abcdefghi".into()).invalid("locale"),
        locale("space", "ja JP".into()).invalid("locale"),
        Case::new(
            "OpenSession locale: not UTF-8",
            OPEN_SESSION,
            Caller::T1,
            bytes(|_| wire::len(1, &[0xc3, 0x28])),
        )
        .invalid("locale"),
        Case::new(
            "OpenSession locale: varint wire type",
            OPEN_SESSION,
            Caller::T1,
            bytes(|_| wire::int(1, 7)),
        )
        .invalid("locale"),
        Case::new(
            "OpenSession: unknown fields of every wire type",
            OPEN_SESSION,
            Caller::T1,
            bytes(|_| {
                [
                    wire::int(99, 1),
                    wire::len(100, b"x"),
                    [wire::key(101, 5), vec![0; 4]].concat(),
                    [wire::key(102, 1), vec![0; 8]].concat(),
                    [wire::key(103, 3), wire::key(103, 4)].concat(),
                ]
                .concat()
            }),
        )
        .answers(opened),
        Case::new(
            "OpenSession: auditor certificate",
            OPEN_SESSION,
            Caller::Auditor,
            msg(|_| pb::OpenSessionRequest::default()),
        )
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        Case::new(
            "OpenSession: no client certificate",
            OPEN_SESSION,
            Caller::Nobody,
            msg(|_| pb::OpenSessionRequest::default()),
        )
        .refused(Code::Unauthenticated, "TERMINAL_UNKNOWN"),
    ]
}

/// Authenticate: signatures, certificates and session states. Each gets its own session: a
/// refused card burns the challenge.
pub fn authenticate_cases(app: &kiosk_tests::TestApp) -> Vec<Case> {
    let auth = |name: &str, cert: CertOf, signature: Vec<u8>| {
        Case::new(
            format!("Authenticate: {name}"),
            AUTHENTICATE,
            Caller::T1,
            msg(move |c| pb::AuthenticateRequest {
                session_id: c.fresh().session_id.clone(),
                card_certificate: cert(c),
                signature: signature.clone(),
            }),
        )
        .fresh()
    };
    let good: CertOf = Arc::new(|c| c.card_cert.clone());
    let fixed = |der: Vec<u8>| -> CertOf { Arc::new(move |_| der.clone()) };
    let truncated: CertOf = Arc::new(|c| c.card_cert[..c.card_cert.len() / 2].to_vec());
    let trailing: CertOf = Arc::new(|c| [c.card_cert.clone(), vec![0]].concat());
    let terminal_cert = pem_der(
        &app.pki_dir()
            .join(format!("{}.crt.pem", kiosk_tests::TERMINAL_1)),
    );
    let sig = vec![0x5a; 256];
    let mut cases = vec![
        auth("signature empty", good.clone(), vec![]).invalid("signature"),
        auth("signature of 255 bytes", good.clone(), vec![1; 255]).invalid("signature"),
        auth("signature of 513 bytes", good.clone(), vec![1; 513]).invalid("signature"),
        auth("certificate empty", fixed(vec![]), sig.clone())
            .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth(
            "certificate of garbage DER",
            fixed(vec![0x30, 0x03, 1, 2, 3]),
            sig.clone(),
        )
        .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth("certificate truncated", truncated, sig.clone())
            .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth("certificate with a trailing byte", trailing, sig.clone())
            .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth(
            "certificate of 5000 bytes",
            fixed(vec![0x30; 5000]),
            sig.clone(),
        )
        .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth(
            "certificate as PEM text",
            fixed(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec()),
            sig.clone(),
        )
        .refused(Code::InvalidArgument, "CARD_CERTIFICATE_MALFORMED"),
        auth(
            "certificate of another CA (a terminal's)",
            fixed(terminal_cert),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "CARD_CERTIFICATE_UNTRUSTED"),
        auth(
            "certificate self-signed",
            fixed(cards::mint(app, cards::Flaw::SelfSigned)),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "CARD_CERTIFICATE_UNTRUSTED"),
        auth(
            "certificate expired",
            fixed(cards::mint(app, cards::Flaw::Expired)),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "CARD_EXPIRED"),
        auth(
            "certificate not yet valid",
            fixed(cards::mint(app, cards::Flaw::NotYetValid)),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "CARD_NOT_YET_VALID"),
        auth(
            "certificate without digitalSignature",
            fixed(cards::mint(app, cards::Flaw::KeyUsage)),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "CARD_KEY_USAGE"),
        auth(
            "certificate with an EC key",
            fixed(cards::mint(app, cards::Flaw::EcKey)),
            sig.clone(),
        )
        .refused(Code::Unauthenticated, "SIGNATURE_INVALID"),
        auth("signature of garbage", good.clone(), sig.clone())
            .refused(Code::Unauthenticated, "SIGNATURE_INVALID"),
        auth("signature of 512 bytes", good.clone(), vec![0x5a; 512])
            .refused(Code::Unauthenticated, "SIGNATURE_INVALID"),
    ];
    cases.extend(login_cases(app));
    cases
}

/// Authenticate with real card signatures: another session's, revoked and unbound cards, and
/// sessions in the wrong state.
fn login_cases(app: &kiosk_tests::TestApp) -> Vec<Case> {
    let pki = app.pki_dir();
    let card = |file: &str| pki.join("cards").join(file);
    let resident = app.examples("Family")[0].clone();
    let family_card = app
        .embedded
        .card_of(&resident)
        .expect("card")
        .card_file
        .clone();
    let signed = |name: &str, file: std::path::PathBuf| {
        Case::new(
            format!("Authenticate: {name}"),
            AUTHENTICATE,
            Caller::T1,
            msg(move |c| {
                let card = kiosk_devkit::softcard::SoftCard::load(&file).expect("card file");
                let proof = kiosk_tests::sign(card, c.fresh()).expect("signed");
                pb::AuthenticateRequest {
                    session_id: c.fresh().session_id.clone(),
                    card_certificate: proof.certificate,
                    signature: proof.signature,
                }
            }),
        )
        .fresh()
    };
    let other_session = family_card.clone();
    let state = |name: &str, session: fn(&Ctx) -> String| {
        Case::new(
            format!("Authenticate: {name}"),
            AUTHENTICATE,
            Caller::T1,
            msg(move |c| pb::AuthenticateRequest {
                session_id: session(c),
                card_certificate: c.card_cert.clone(),
                signature: vec![0; 256],
            }),
        )
    };
    vec![
        signed("revoked card", card("revoked-0003.toml"))
            .refused(Code::PermissionDenied, "CARD_REVOKED"),
        signed("card bound to no resident", card("resident-0001.toml"))
            .refused(Code::PermissionDenied, "CARD_UNKNOWN"),
        Case::new(
            "Authenticate: signature made for another session",
            AUTHENTICATE,
            Caller::T1,
            msg(move |c| {
                let mut elsewhere = c.fresh().clone();
                elsewhere.auth_context_bytes =
                    b"kiosk.v1/auth-context\ngw-dev-01\nseven/131016-0042/k1\ns-other".to_vec();
                let card =
                    kiosk_devkit::softcard::SoftCard::load(&other_session).expect("card file");
                let proof = kiosk_tests::sign(card, &elsewhere).expect("signed");
                pb::AuthenticateRequest {
                    session_id: c.fresh().session_id.clone(),
                    card_certificate: proof.certificate,
                    signature: proof.signature,
                }
            }),
        )
        .fresh()
        .refused(Code::Unauthenticated, "SIGNATURE_INVALID"),
        signed("a good card (control)", family_card)
            .answers(|m| one(m, |r: pb::AuthenticateResponse| r.menu.is_some())),
        state("already authenticated session", |c| c.authed.clone())
            .refused(Code::FailedPrecondition, "SESSION_STATE"),
        state("closed session", |c| c.closed.clone())
            .refused(Code::FailedPrecondition, "SESSION_STATE"),
        state("another terminal's session", |c| c.other_terminal.clone())
            .refused(Code::NotFound, "SESSION_NOT_FOUND"),
    ]
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .expect("PEM certificate")
        .to_vec()
}

/// GetMenu and CloseSession: session states and roles.
pub fn session_state_cases() -> Vec<Case> {
    let menu = |name: &str, caller, session: fn(&Ctx) -> String| {
        Case::new(
            format!("GetMenu: {name}"),
            GET_MENU,
            caller,
            msg(move |c| pb::GetMenuRequest {
                session_id: session(c),
            }),
        )
    };
    let close = |name: &str, caller, session: fn(&Ctx) -> String| {
        Case::new(
            format!("CloseSession: {name}"),
            CLOSE_SESSION,
            caller,
            msg(move |c| pb::CloseSessionRequest {
                session_id: session(c),
            }),
        )
    };
    vec![
        menu("authenticated session (control)", Caller::T1, |c| {
            c.authed.clone()
        })
        .answers(|m| one(m, |r: pb::GetMenuResponse| r.menu.is_some())),
        menu("session never authenticated", Caller::T1, |c| {
            c.open.clone()
        })
        .refused(Code::FailedPrecondition, "SESSION_STATE"),
        menu("closed session", Caller::T1, |c| c.closed.clone())
            .refused(Code::FailedPrecondition, "SESSION_STATE"),
        menu("another terminal's session", Caller::T1, |c| {
            c.other_terminal.clone()
        })
        .refused(Code::NotFound, "SESSION_NOT_FOUND"),
        menu("a session of another chain's terminal", Caller::T1, |c| {
            c.suspended_authed.clone()
        })
        .refused(Code::NotFound, "SESSION_NOT_FOUND"),
        menu("auditor certificate", Caller::Auditor, |c| c.authed.clone())
            .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        menu("no client certificate", Caller::Nobody, |c| {
            c.authed.clone()
        })
        .refused(Code::Unauthenticated, "TERMINAL_UNKNOWN"),
        Case::new(
            "GetMenu: unknown field",
            GET_MENU,
            Caller::T1,
            bytes(|c| {
                [
                    pb::GetMenuRequest {
                        session_id: c.authed.clone(),
                    }
                    .encode_to_vec(),
                    wire::len(15, b"extra"),
                ]
                .concat()
            }),
        )
        .answers(|m| one(m, |r: pb::GetMenuResponse| r.menu.is_some())),
        close("closed session again (idempotent)", Caller::T1, |c| {
            c.closed.clone()
        }),
        close("another terminal's session", Caller::T2, |c| {
            c.authed.clone()
        })
        .refused(Code::NotFound, "SESSION_NOT_FOUND"),
        close("auditor certificate", Caller::Auditor, |c| c.open.clone())
            .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
    ]
}

/// The terminal the context suspended (TERMINAL_3), with sessions and an issuance from before
/// the suspension; and a terminal at its open-session limit (TERMINAL_2).
pub fn suspension_cases() -> Vec<Case> {
    let suspended = (Code::PermissionDenied, "TERMINAL_SUSPENDED");
    let t3 = |name: &str, rpc, build| {
        Case::new(
            format!("suspended terminal: {name}"),
            rpc,
            Caller::T3,
            build,
        )
    };
    vec![
        t3(
            "OpenSession",
            OPEN_SESSION,
            msg(|_| pb::OpenSessionRequest::default()),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "Authenticate a session opened before",
            AUTHENTICATE,
            msg(|c| pb::AuthenticateRequest {
                session_id: c.suspended_open.clone(),
                card_certificate: c.card_cert.clone(),
                signature: vec![0; 256],
            }),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "GetMenu of a session authenticated before",
            GET_MENU,
            msg(|c| pb::GetMenuRequest {
                session_id: c.suspended_authed.clone(),
            }),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "Quote",
            QUOTE,
            msg(|c| pb::QuoteRequest {
                session_id: c.suspended_authed.clone(),
                items: vec![rr()],
            }),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "Issue",
            ISSUE,
            msg(|c| pb::IssueRequest {
                session_id: c.suspended_authed.clone(),
                client_request_id: "hostile-suspended-new1".into(),
                items: vec![rr()],
                expected_total_fee_yen: c.fee,
            }),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "Issue retry of an order released before",
            ISSUE,
            msg(|c| pb::IssueRequest {
                session_id: c.suspended_authed.clone(),
                client_request_id: super::context::SUSPENDED_KEY.into(),
                items: vec![rr()],
                expected_total_fee_yen: c.fee,
            }),
        )
        .refused(suspended.0, suspended.1),
        t3(
            "ReportPrint is still answered",
            REPORT_PRINT,
            bytes(|c| {
                report(
                    &c.suspended_authed,
                    &c.suspended_issuance,
                    pb::PrintOutcome::Failed,
                    "",
                )
            }),
        )
        .answers(|m| {
            one(m, |r: pb::ReportPrintResponse| {
                r.state == pb::IssuanceState::Voided as i32
            })
        }),
        t3(
            "CloseSession is still answered",
            CLOSE_SESSION,
            msg(|c| pb::CloseSessionRequest {
                session_id: c.suspended_open.clone(),
            }),
        ),
        Case::new(
            "OpenSession: a terminal at its open-session limit",
            OPEN_SESSION,
            Caller::T2,
            msg(|_| pb::OpenSessionRequest::default()),
        )
        .refused(Code::ResourceExhausted, "OVERLOADED"),
    ]
}
