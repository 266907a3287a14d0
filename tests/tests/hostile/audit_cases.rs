//! Hostile cases of AuditService: filters of every kind, time values at and past the range a
//! Timestamp allows, proof sizes, settlement ranges, anomaly ids and resolution notes.

use bytes::Bytes;
use kiosk_proto::v1 as pb;
use prost::Message;
use prost_types::Timestamp;
use tonic::Code;

use super::context::Ctx;
use super::raw::wire;
use super::table::{Caller, Case, bytes, msg, one};

pub const LIST_EVENTS: &str = "/kiosk.v1.AuditService/ListEvents";
pub const GET_CHECKPOINT: &str = "/kiosk.v1.AuditService/GetCheckpoint";
pub const INCLUSION: &str = "/kiosk.v1.AuditService/GetInclusionProof";
pub const CONSISTENCY: &str = "/kiosk.v1.AuditService/GetConsistencyProof";
pub const SETTLEMENT: &str = "/kiosk.v1.AuditService/GetSettlement";
pub const LIST_ANOMALIES: &str = "/kiosk.v1.AuditService/ListAnomalies";
pub const RESOLVE: &str = "/kiosk.v1.AuditService/ResolveAnomaly";

/// The earliest and latest instants timestamp.proto allows.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// Every AuditEventType the contract defines, UNSPECIFIED left out.
fn known_types() -> Vec<i32> {
    (1..1000)
        .filter(|n| pb::AuditEventType::try_from(*n).is_ok())
        .collect()
}

/// The smallest number past UNSPECIFIED that names no AuditEventType.
fn first_unknown_type() -> i32 {
    (1..)
        .find(|n| pb::AuditEventType::try_from(*n).is_err())
        .unwrap_or(i32::MAX)
}

fn types(types: Vec<i32>) -> pb::ListEventsRequest {
    pb::ListEventsRequest {
        types,
        ..Default::default()
    }
}

fn times(from: Option<Timestamp>, to: Option<Timestamp>) -> pb::ListEventsRequest {
    pb::ListEventsRequest {
        from,
        to,
        ..Default::default()
    }
}

/// A settlement request that succeeds: every month since 1970 by terminal.
fn good() -> pb::GetSettlementRequest {
    pb::GetSettlementRequest {
        from: at(0, 0),
        to: at(4_000_000_000, 0),
        period: pb::SettlementPeriod::Month as i32,
        grouping: pb::SettlementGrouping::Terminal as i32,
    }
}

/// ListEvents: types, times, terminal and municipality filters, indexes and limits.
pub fn list_events_cases() -> Vec<Case> {
    let list = |name: &str, build: fn() -> pb::ListEventsRequest| {
        Case::new(
            format!("ListEvents: {name}"),
            LIST_EVENTS,
            Caller::Auditor,
            msg(move |_| build()),
        )
    };
    let some =
        |m: &[Bytes]| !m.is_empty() && m.iter().all(|e| pb::AuditEvent::decode(e.as_ref()).is_ok());
    vec![
        list("33 types", || types(vec![1; 33])).invalid("types"),
        list("40,000 types", || types(vec![1; 40_000])).invalid("types"),
        list("type UNSPECIFIED", || types(vec![0])).invalid("types[0]"),
        list("type 999", || types(vec![999])).invalid("types[0]"),
        list("type -1", || types(vec![-1])).invalid("types[0]"),
        list("second type the first unknown number", || {
            types(vec![1, first_unknown_type()])
        })
        .invalid("types[1]"),
        list("one type 32 times (the limit)", || types(vec![1; 32])).answers(some),
        list("every type once", || types(known_types())).answers(some),
        list("from i64::MAX seconds", || times(at(i64::MAX, 0), None)).invalid("from"),
        list("from i64::MIN seconds", || times(at(i64::MIN, 0), None)).invalid("from"),
        list("to i64::MAX seconds", || times(None, at(i64::MAX, 0))).invalid("to"),
        list("from one second after 9999-12-31", || {
            times(at(MAX_SECONDS + 1, 0), None)
        })
        .invalid("from"),
        list("from one second before 0001-01-01", || {
            times(at(MIN_SECONDS - 1, 0), None)
        })
        .invalid("from"),
        list("from nanos -1", || times(at(0, -1), None)).invalid("from"),
        list("from nanos 10^9", || times(at(0, 1_000_000_000), None)).invalid("from"),
        list("to nanos i32::MIN", || times(None, at(0, i32::MIN))).invalid("to"),
        list("to before from", || {
            times(at(2_000_000_000, 0), at(1_000_000_000, 0))
        })
        .invalid("to"),
        list("from 0001-01-01 to 9999-12-31 (the range)", || {
            times(at(MIN_SECONDS, 0), at(MAX_SECONDS, 999_999_999))
        })
        .answers(some),
        list("from equal to to (empty)", || {
            times(at(1_000_000_000, 0), at(1_000_000_000, 0))
        }),
        list("terminal_id NUL", || pb::ListEventsRequest {
            terminal_id: "seven\0".into(),
            ..Default::default()
        })
        .invalid("terminal_id"),
        list("terminal_id of 65 characters", || pb::ListEventsRequest {
            terminal_id: "t".repeat(65),
            ..Default::default()
        })
        .invalid("terminal_id"),
        list("terminal_id SQL", || pb::ListEventsRequest {
            terminal_id: "x' OR '1'='1".into(),
            ..Default::default()
        })
        .invalid("terminal_id"),
        list("terminal_id unknown", || pb::ListEventsRequest {
            terminal_id: "nobody/0000/k9".into(),
            ..Default::default()
        }),
        list("municipality_code of 5 digits", || pb::ListEventsRequest {
            municipality_code: "13101".into(),
            ..Default::default()
        })
        .invalid("municipality_code"),
        list("municipality_code with a wrong check digit", || {
            pb::ListEventsRequest {
                municipality_code: "131017".into(),
                ..Default::default()
            }
        })
        .invalid("municipality_code"),
        list("municipality_code in full-width digits", || {
            pb::ListEventsRequest {
                municipality_code: "１３１０１６".into(),
                ..Default::default()
            }
        })
        .invalid("municipality_code"),
        list("municipality_code with a letter", || {
            pb::ListEventsRequest {
                municipality_code: "13101a".into(),
                ..Default::default()
            }
        })
        .invalid("municipality_code"),
        list("start_index u64::MAX", || pb::ListEventsRequest {
            start_index: u64::MAX,
            ..Default::default()
        })
        .invalid("start_index"),
        list("start_index 2^63", || pb::ListEventsRequest {
            start_index: 1 << 63,
            ..Default::default()
        })
        .invalid("start_index"),
        list("start_index i64::MAX (past the log)", || {
            pb::ListEventsRequest {
                start_index: i64::MAX as u64,
                ..Default::default()
            }
        }),
        list("limit u32::MAX", || pb::ListEventsRequest {
            limit: u32::MAX,
            ..Default::default()
        })
        .answers(some),
        list("limit 1", || pb::ListEventsRequest {
            limit: 1,
            ..Default::default()
        })
        .answers(|m| m.len() == 1),
        Case::new(
            "ListEvents: types packed with a truncated varint",
            LIST_EVENTS,
            Caller::Auditor,
            bytes(|_| wire::len(3, &[0x01, 0x81])),
        )
        .invalid("types"),
        Case::new(
            "ListEvents: from.seconds as length-delimited",
            LIST_EVENTS,
            Caller::Auditor,
            bytes(|_| wire::len(1, &wire::len(1, b"x"))),
        )
        .invalid("from.seconds"),
        Case::new(
            "ListEvents: unknown fields",
            LIST_EVENTS,
            Caller::Auditor,
            bytes(|_| [wire::int(50, 1), wire::len(51, b"?")].concat()),
        )
        .answers(some),
        Case::new(
            "ListEvents: terminal certificate",
            LIST_EVENTS,
            Caller::T1,
            msg(|_| pb::ListEventsRequest::default()),
        )
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        Case::new(
            "ListEvents: no client certificate",
            LIST_EVENTS,
            Caller::Nobody,
            msg(|_| pb::ListEventsRequest::default()),
        )
        .refused(Code::Unauthenticated, "TERMINAL_UNKNOWN"),
    ]
}

/// GetCheckpoint, inclusion and consistency proofs.
pub fn proof_cases() -> Vec<Case> {
    let inclusion = |name: &str, build: fn(&Ctx) -> (u64, u64)| {
        Case::new(
            format!("GetInclusionProof: {name}"),
            INCLUSION,
            Caller::Auditor,
            msg(move |c| {
                let (leaf_index, tree_size) = build(c);
                pb::GetInclusionProofRequest {
                    leaf_index,
                    tree_size,
                }
            }),
        )
    };
    let consistency = |name: &str, build: fn(&Ctx) -> (u64, u64)| {
        Case::new(
            format!("GetConsistencyProof: {name}"),
            CONSISTENCY,
            Caller::Auditor,
            msg(move |c| {
                let (first_tree_size, second_tree_size) = build(c);
                pb::GetConsistencyProofRequest {
                    first_tree_size,
                    second_tree_size,
                }
            }),
        )
    };
    let range = (Code::InvalidArgument, "PROOF_RANGE_INVALID");
    vec![
        Case::new(
            "GetCheckpoint: empty request (control)",
            GET_CHECKPOINT,
            Caller::Auditor,
            msg(|_| pb::GetCheckpointRequest {}),
        )
        .answers(|m| {
            one(m, |r: pb::GetCheckpointResponse| {
                r.tree_size > 0 && r.root_hash.len() == 32
            })
        }),
        Case::new(
            "GetCheckpoint: unknown fields",
            GET_CHECKPOINT,
            Caller::Auditor,
            bytes(|_| [wire::int(1, 5), wire::len(2, b"x")].concat()),
        )
        .answers(|m| one(m, |r: pb::GetCheckpointResponse| r.tree_size > 0)),
        Case::new(
            "GetCheckpoint: a lone 0xff byte",
            GET_CHECKPOINT,
            Caller::Auditor,
            bytes(|_| vec![0xff]),
        )
        .invalid(""),
        Case::new(
            "GetCheckpoint: terminal certificate",
            GET_CHECKPOINT,
            Caller::T1,
            msg(|_| pb::GetCheckpointRequest {}),
        )
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        inclusion("leaf 0 of size 1 (control)", |_| (0, 1)).answers(|m| {
            one(m, |r: pb::GetInclusionProofResponse| {
                r.leaf_hash.len() == 32
            })
        }),
        inclusion("leaf equal to size", |_| (1, 1)).refused(range.0, range.1),
        inclusion("size 0", |_| (0, 0)).refused(range.0, range.1),
        inclusion("size past the log", |_| (0, 1 << 40)).refused(range.0, range.1),
        inclusion("leaf and size u64::MAX", |_| (u64::MAX - 1, u64::MAX)).refused(range.0, range.1),
        inclusion("size 2^63", |_| (0, 1 << 63)).refused(range.0, range.1),
        consistency("1 and 1 (control)", |_| (1, 1))
            .answers(|m| one(m, |r: pb::GetConsistencyProofResponse| r.hashes.is_empty())),
        consistency("first 0", |c| (0, c.tree_size)).refused(range.0, range.1),
        consistency("first after second", |_| (3, 2)).refused(range.0, range.1),
        consistency("second past the log", |_| (1, 1 << 40)).refused(range.0, range.1),
        consistency("both u64::MAX", |_| (u64::MAX, u64::MAX)).refused(range.0, range.1),
    ]
}

/// GetSettlement: required and ordered times, periods and groupings.
pub fn settlement_cases() -> Vec<Case> {
    let settle = |name: &str, build: fn() -> pb::GetSettlementRequest| {
        Case::new(
            format!("GetSettlement: {name}"),
            SETTLEMENT,
            Caller::Auditor,
            msg(move |_| build()),
        )
    };
    let rows = |m: &[Bytes]| one(m, |r: pb::GetSettlementResponse| !r.rows.is_empty());
    vec![
        settle("a wide range (control)", good).answers(rows),
        settle("from missing", || pb::GetSettlementRequest {
            from: None,
            ..good()
        })
        .invalid("from"),
        settle("to missing", || pb::GetSettlementRequest {
            to: None,
            ..good()
        })
        .invalid("to"),
        settle("to before from", || pb::GetSettlementRequest {
            from: at(4_000_000_000, 0),
            to: at(0, 0),
            ..good()
        })
        .invalid("to"),
        settle("from i64::MIN seconds", || pb::GetSettlementRequest {
            from: at(i64::MIN, 0),
            ..good()
        })
        .invalid("from"),
        settle("to that overflows milliseconds", || {
            pb::GetSettlementRequest {
                to: at(i64::MAX / 999, 0),
                ..good()
            }
        })
        .invalid("to"),
        settle("to nanos -1", || pb::GetSettlementRequest {
            to: at(4_000_000_000, -1),
            ..good()
        })
        .invalid("to"),
        settle("the whole Timestamp range by day", || {
            pb::GetSettlementRequest {
                from: at(MIN_SECONDS, 0),
                to: at(MAX_SECONDS, 0),
                period: pb::SettlementPeriod::Day as i32,
                ..good()
            }
        })
        .answers(rows),
        settle("period UNSPECIFIED", || pb::GetSettlementRequest {
            period: 0,
            ..good()
        })
        .invalid("period"),
        settle("period 99", || pb::GetSettlementRequest {
            period: 99,
            ..good()
        })
        .invalid("period"),
        settle("grouping UNSPECIFIED", || pb::GetSettlementRequest {
            grouping: 0,
            ..good()
        })
        .invalid("grouping"),
        settle("grouping -5", || pb::GetSettlementRequest {
            grouping: -5,
            ..good()
        })
        .invalid("grouping"),
    ]
}

/// A resolution of the open anomaly.
fn note(c: &Ctx, text: &str) -> pb::ResolveAnomalyRequest {
    pb::ResolveAnomalyRequest {
        anomaly_id: c.anomaly_open.clone(),
        resolution: text.into(),
    }
}

/// ListAnomalies and ResolveAnomaly.
pub fn anomaly_cases() -> Vec<Case> {
    let resolve = |name: &str, build: fn(&Ctx) -> pb::ResolveAnomalyRequest| {
        Case::new(
            format!("ResolveAnomaly: {name}"),
            RESOLVE,
            Caller::Auditor,
            msg(build),
        )
    };
    let listed = |m: &[Bytes]| one(m, |r: pb::ListAnomaliesResponse| !r.anomalies.is_empty());
    vec![
        Case::new(
            "ListAnomalies: include_resolved as varint 2",
            LIST_ANOMALIES,
            Caller::Auditor,
            bytes(|_| wire::int(1, 2)),
        )
        .answers(listed),
        Case::new(
            "ListAnomalies: include_resolved as length-delimited",
            LIST_ANOMALIES,
            Caller::Auditor,
            bytes(|_| wire::len(1, b"\x01")),
        )
        .invalid("include_resolved"),
        Case::new(
            "ListAnomalies: terminal certificate",
            LIST_ANOMALIES,
            Caller::T2,
            msg(|_| pb::ListAnomaliesRequest::default()),
        )
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
        resolve("anomaly_id empty", |_| pb::ResolveAnomalyRequest {
            anomaly_id: String::new(),
            resolution: "ok".into(),
        })
        .invalid("anomaly_id"),
        resolve("anomaly_id NUL", |_| pb::ResolveAnomalyRequest {
            anomaly_id: "a-\0".into(),
            resolution: "ok".into(),
        })
        .invalid("anomaly_id"),
        resolve("anomaly_id SQL", |_| pb::ResolveAnomalyRequest {
            anomaly_id: "a' OR 1=1".into(),
            resolution: "ok".into(),
        })
        .invalid("anomaly_id"),
        resolve("anomaly_id unknown", |_| pb::ResolveAnomalyRequest {
            anomaly_id: "a-00000000000000000000".into(),
            resolution: "ok".into(),
        })
        .refused(Code::NotFound, "ANOMALY_NOT_FOUND"),
        resolve("anomaly already resolved", |c| pb::ResolveAnomalyRequest {
            anomaly_id: c.anomaly_resolved.clone(),
            resolution: "again".into(),
        })
        .refused(Code::FailedPrecondition, "ANOMALY_ALREADY_RESOLVED"),
        resolve("resolution empty", |c| note(c, "")).invalid("resolution"),
        resolve("resolution of 501 characters", |c| {
            note(c, &"済".repeat(501))
        })
        .invalid("resolution"),
        resolve("resolution with NUL", |c| note(c, "refunded\0")).invalid("resolution"),
        resolve("resolution with a newline", |c| {
            note(c, "refunded\nat counter")
        })
        .invalid("resolution"),
        resolve("resolution with an RTL override", |c| {
            note(c, "refunded \u{202E}yb")
        })
        .invalid("resolution"),
        resolve("resolution with a zero-width joiner", |c| {
            note(c, "refun\u{200D}ded")
        })
        .invalid("resolution"),
        resolve("resolution with a byte-order mark", |c| {
            note(c, "\u{FEFF}refunded")
        })
        .invalid("resolution"),
        resolve("resolution with 6 digits (a phone number)", |c| {
            note(c, "call 090123456")
        })
        .invalid("resolution"),
        resolve("resolution with 6 full-width digits", |c| {
            note(c, "番号１２３４５６")
        })
        .invalid("resolution"),
        Case::new(
            "ResolveAnomaly: terminal certificate",
            RESOLVE,
            Caller::T1,
            msg(move |c| note(c, "ok")),
        )
        .refused(Code::PermissionDenied, "WRONG_CLIENT_ROLE"),
    ]
}
