//! Conventions of the kiosk.v1 contract, checked on the compiled descriptor set so that a
//! vendor's generator sees exactly what these tests see.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use std::collections::BTreeSet;

use kiosk_proto::v1::ErrorReason;
use kiosk_proto::{FILE_DESCRIPTOR_SET, reasons};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn kiosk_files() -> Vec<prost_types::FileDescriptorProto> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .filter(|file| file.package() == "kiosk.v1")
        .collect()
}

#[test]
fn services_and_rpcs_have_the_contract_names() {
    let mut found = BTreeSet::new();
    for file in kiosk_files() {
        for service in &file.service {
            for method in &service.method {
                found.insert(format!("{}.{}", service.name(), method.name()));
            }
        }
    }
    let expected = [
        "TerminalService.OpenSession",
        "TerminalService.Authenticate",
        "TerminalService.GetMenu",
        "TerminalService.Quote",
        "TerminalService.Issue",
        "TerminalService.ReportPrint",
        "TerminalService.CloseSession",
        "AuditService.ListEvents",
        "AuditService.GetCheckpoint",
        "AuditService.GetInclusionProof",
        "AuditService.GetConsistencyProof",
        "AuditService.GetSettlement",
        "AuditService.ListAnomalies",
        "AuditService.ResolveAnomaly",
        "VerifyService.VerifyDocument",
        "IssuerService.GetMenu",
        // Internal; added so a quote decides only the items asked for.
        "IssuerService.Quote",
        "IssuerService.Render",
        "IssuerService.Void",
        // Internal; documents stay pending until the gateway records them (issue 10).
        "IssuerService.Confirm",
        "IssuerService.ListPending",
        "IssuerService.VoidPending",
    ];
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, expected);
}

/// Paths in `SourceCodeInfo` (descriptor.proto field numbers) of every element that must
/// carry a doc comment, with a readable name for the failure message.
fn documented_elements(file: &prost_types::FileDescriptorProto) -> Vec<(Vec<i32>, String)> {
    fn message(out: &mut Vec<(Vec<i32>, String)>, path: Vec<i32>, msg: &DescriptorProto) {
        out.push((path.clone(), msg.name().to_owned()));
        for (i, field) in msg.field.iter().enumerate() {
            let mut p = path.clone();
            p.extend([2, i as i32]);
            out.push((p, format!("{}.{}", msg.name(), field.name())));
        }
        for (i, nested) in msg.nested_type.iter().enumerate() {
            if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                continue;
            }
            let mut p = path.clone();
            p.extend([3, i as i32]);
            message(out, p, nested);
        }
    }
    let mut out = Vec::new();
    for (i, msg) in file.message_type.iter().enumerate() {
        message(&mut out, vec![4, i as i32], msg);
    }
    for (i, en) in file.enum_type.iter().enumerate() {
        out.push((vec![5, i as i32], en.name().to_owned()));
        for (j, value) in en.value.iter().enumerate() {
            out.push((vec![5, i as i32, 2, j as i32], value.name().to_owned()));
        }
    }
    for (i, service) in file.service.iter().enumerate() {
        out.push((vec![6, i as i32], service.name().to_owned()));
        for (j, method) in service.method.iter().enumerate() {
            let name = format!("{}.{}", service.name(), method.name());
            out.push((vec![6, i as i32, 2, j as i32], name));
        }
    }
    out
}

#[test]
fn every_message_field_enum_value_and_rpc_is_documented() {
    let mut undocumented = Vec::new();
    for file in kiosk_files() {
        let info = file
            .source_code_info
            .clone()
            .expect("source info compiled in");
        for (path, name) in documented_elements(&file) {
            let documented = info.location.iter().any(|loc| {
                loc.path == path
                    && (!loc.leading_comments().trim().is_empty()
                        || !loc.trailing_comments().trim().is_empty())
            });
            if !documented {
                undocumented.push(format!("{}: {name}", file.name()));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "undocumented elements:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn enums_start_with_unspecified() {
    for file in kiosk_files() {
        let mut enums: Vec<_> = file.enum_type.clone();
        for msg in &file.message_type {
            enums.extend(msg.enum_type.clone());
        }
        for en in enums {
            let zero = en.value.iter().find(|v| v.number() == 0).unwrap();
            assert!(
                zero.name().ends_with("_UNSPECIFIED"),
                "{}: zero value is {}",
                en.name(),
                zero.name()
            );
        }
    }
}

#[test]
fn reason_table_matches_the_error_reason_enum() {
    let mut from_enum = Vec::new();
    for file in kiosk_files() {
        for en in file.enum_type.iter().filter(|e| e.name() == "ErrorReason") {
            for value in en.value.iter().filter(|v| v.number() != 0) {
                from_enum.push(value.name().to_owned());
            }
        }
    }
    let from_table: Vec<String> = reasons::ALL.iter().map(|r| r.name.to_owned()).collect();
    assert_eq!(from_table, from_enum);
    for reason in reasons::ALL {
        assert!(ErrorReason::from_str_name(reason.name).is_some());
        assert!(
            !reason.ja.is_empty() && !reason.en.is_empty(),
            "{}",
            reason.name
        );
        assert!(reasons::find(reason.name).is_some());
    }
}

#[test]
fn errors_doc_is_generated_from_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
    let expected = kiosk_proto::errors_doc::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/errors.md is stale: run UPDATE_DOCS=1 cargo test -p kiosk-proto"
    );
}

#[test]
fn messages_round_trip() {
    use kiosk_proto::v1::{CertificateType, IssueRequest, RequestItem};
    let request = IssueRequest {
        session_id: "s-1".into(),
        client_request_id: "req-0123456789abcdef".into(),
        items: vec![RequestItem {
            r#type: CertificateType::ResidentRecord as i32,
            options: None,
            subject_refs: vec!["r-1".into()],
            copies: 2,
        }],
        expected_total_fee_yen: 400,
    };
    let bytes = request.encode_to_vec();
    assert_eq!(IssueRequest::decode(bytes.as_slice()).unwrap(), request);
}

#[test]
fn status_carries_reason_both_languages_and_bad_request() {
    use tonic_types::{ErrorDetail, StatusExt};
    let reason = reasons::find("TOO_MANY_COPIES").unwrap();
    let status = reasons::status(
        reason,
        "copies must be 1 to 3",
        &[reasons::FieldViolation {
            field: "items[0].copies".into(),
            description: "4 > 3".into(),
        }],
    );
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reasons::reason_of(&status).unwrap().name, "TOO_MANY_COPIES");
    let details = status.get_error_details_vec();
    let locales: Vec<String> = details
        .iter()
        .filter_map(|d| match d {
            ErrorDetail::LocalizedMessage(m) => Some(m.locale.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(locales, ["ja-JP", "en-US"]);
    let bad = status.get_error_details().bad_request().unwrap().clone();
    assert_eq!(bad.field_violations[0].field, "items[0].copies");
}

#[test]
fn reasons_are_constants_and_unknown_names_are_not_found() {
    assert!(reasons::find("NO_SUCH_REASON").is_none());
    assert_eq!(reasons::PIN_BLOCKED.name, "PIN_BLOCKED");
}
