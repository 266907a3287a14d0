//! Golden encodings of the events that carry the shared vocabulary: every certificate type, every
//! print outcome and municipality codes. Stored audit events must keep decoding and verifying
//! whatever crate defines these types, so their canonical bytes are pinned here, written once
//! from the encoder before the types moved to `kiosk-document` (issue 11), and never
//! regenerated.
#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed assertion"
)]

use audit::event::{Ident, IssuanceFacts, MunicipalityCode, PrintOutcome, Pseudonymizer};
use audit::{CertificateType, Event, UnixMillis};

/// The golden file: one line per event, `<label> <hex of the canonical encoding>`.
const GOLDEN: &str = include_str!("golden/vocabulary.txt");

fn facts(municipality: &str, certificate_type: CertificateType) -> IssuanceFacts {
    IssuanceFacts {
        terminal: Ident::parse("lawson/store-17/T-0001").unwrap(),
        chain: Ident::parse("lawson").unwrap(),
        store: Ident::parse("store-17").unwrap(),
        municipality: MunicipalityCode::parse(municipality).unwrap(),
        certificate_type,
        session: Ident::parse("s-1").unwrap(),
        issuance: Ident::parse("iss-1").unwrap(),
        document_count: 2,
        fee_yen: 600,
    }
}

/// The events whose encodings are pinned, with their labels.
fn events() -> Vec<(String, Event)> {
    let resident = Pseudonymizer::new(&[7u8; 32])
        .unwrap()
        .pseudonymize(b"res:000042");
    let t = UnixMillis(1_795_000_000_000);
    let mut out = Vec::new();
    for (i, ty) in CertificateType::ALL.iter().copied().enumerate() {
        let code = ["131016", "011002", "271004"][i % 3];
        out.push((
            format!("rendered-{i}"),
            Event::issuance_rendered(t, resident, &facts(code, ty)),
        ));
        out.push((
            format!("fee-{i}"),
            Event::fee_changed(
                t,
                Ident::parse("op").unwrap(),
                MunicipalityCode::parse(code).unwrap(),
                ty,
                300,
            ),
        ));
    }
    let outcomes = [
        PrintOutcome::Printed,
        PrintOutcome::Failed,
        PrintOutcome::PartlyPrinted,
    ];
    for (i, outcome) in outcomes.into_iter().enumerate() {
        out.push((
            format!("printed-{i}"),
            Event::print_reported(
                t,
                resident,
                &facts("131016", CertificateType::SealRegistration),
                outcome,
            ),
        ));
    }
    out
}

#[test]
fn vocabulary_events_encode_to_the_golden_bytes_and_decode_back() {
    let actual: Vec<String> = events()
        .iter()
        .map(|(label, event)| format!("{label} {}", hex::encode(event.encode().unwrap())))
        .collect();
    let golden: Vec<&str> = GOLDEN.lines().collect();
    assert_eq!(
        golden,
        actual,
        "the canonical encoding changed; stored events would no longer verify. Now:\n{}",
        actual.join("\n")
    );
    for ((_, event), line) in events().iter().zip(&golden) {
        let (_, bytes) = line.split_once(' ').unwrap();
        assert_eq!(&Event::decode(&hex::decode(bytes).unwrap()).unwrap(), event);
    }
}
