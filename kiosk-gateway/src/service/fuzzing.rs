//! Entry point of the cargo-fuzz target `gateway_validators` in the top-level `fuzz/` folder:
//! arbitrary bytes, decoded as the request type the first byte picks, go through that
//! request's validator, or, when they do not decode, through the refusal a decode error
//! becomes on the wire. Nothing may panic, and every refusal must be a small contract status;
//! what a validator accepts must respect the bounds it promises. It lives here so the target
//! stays one line and the unit tests below run the same code.

use kiosk_proto::reasons::{self, MAX_DETAIL};
use kiosk_proto::refusals::contract_answer;
use kiosk_proto::v1 as pb;
use prost::Message;

use super::validate;
use crate::error::GatewayError;

/// The item limit the fuzz target validates orders against (the default `max_items`).
const MAX_ITEMS: usize = 10;

/// Decodes `data[1..]` as the request `data[0]` selects and checks it (see the module doc).
pub fn validators(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => check(body, |m: &pb::OpenSessionRequest| validate::open_session(m)),
        1 => check(body, |m: &pb::AuthenticateRequest| {
            validate::authenticate(m)
        }),
        2 => check(body, |m: &pb::GetMenuRequest| validate::get_menu(m)),
        3 => check(body, |m: &pb::QuoteRequest| {
            validate::quote(m, MAX_ITEMS)?;
            assert!(
                (1..=MAX_ITEMS).contains(&m.items.len()),
                "an order passed with {} items",
                m.items.len()
            );
            Ok(())
        }),
        4 => check(body, |m: &pb::IssueRequest| validate::issue(m, MAX_ITEMS)),
        5 => check(body, |m: &pb::ReportPrintRequest| {
            validate::report_print(m).map(drop)
        }),
        6 => check(body, |m: &pb::CloseSessionRequest| {
            validate::close_session(m)
        }),
        7 => check(body, list_events),
        8 => check(body, |m: &pb::GetSettlementRequest| {
            let (from, to, _, _) = validate::settlement(m)?;
            assert!(from <= to, "a reversed settlement range passed");
            Ok(())
        }),
        9 => check(body, |m: &pb::ResolveAnomalyRequest| {
            validate::resolve_anomaly(m).map(drop)
        }),
        _ => check(body, |m: &pb::VerifyDocumentRequest| {
            validate::verify_document(m, super::verify::MAX_PDF_BYTES)
        }),
    }
}

/// ListEvents: an accepted filter is within the bounds the store relies on.
fn list_events(m: &pb::ListEventsRequest) -> Result<(), GatewayError> {
    let filter = validate::list_events(m)?;
    assert!(
        filter.types.len() <= validate::MAX_EVENT_TYPES,
        "too many types passed"
    );
    assert!(
        i64::try_from(filter.start_index).is_ok(),
        "start_index past i64 passed"
    );
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        assert!(from <= to, "a reversed time range passed");
    }
    Ok(())
}

/// Decodes `body` as `M` and validates it; any refusal, of the validator or of the decoder,
/// must be a small contract status.
fn check<M: Message + Default>(body: &[u8], validate: impl Fn(&M) -> Result<(), GatewayError>) {
    let status = match M::decode(body) {
        Ok(message) => match validate(&message) {
            Ok(()) => return,
            Err(error) => tonic::Status::from(error),
        },
        // What tonic answers for an undecodable request, then what the wire carries.
        Err(error) => contract_answer(&tonic::Status::internal(error.to_string()))
            .unwrap_or_else(|| panic!("a decode error was not mapped: {error}")),
    };
    let reason = reasons::reason_of(&status).map(|r| r.name);
    assert!(reason.is_some(), "a refusal without a reason: {status:?}");
    assert_ne!(
        reason,
        Some("INTERNAL_ERROR"),
        "a validator failed internally"
    );
    assert!(
        status.details().len() < 4096,
        "{} bytes of details",
        status.details().len()
    );
    assert!(
        status.message().len() <= MAX_DETAIL,
        "a message of {} bytes",
        status.message().len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_runs_on_empty_and_valid_messages() {
        for which in 0..11u8 {
            validators(&[which]);
            validators(&[which, 0xff]);
        }
        let quote = pb::QuoteRequest {
            session_id: "s-1".into(),
            items: vec![pb::RequestItem::default(); 100_000],
        };
        validators(&[&[3u8][..], &quote.encode_to_vec()].concat());
        let list = pb::ListEventsRequest {
            types: vec![0; 40_000],
            from: Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: -1,
            }),
            ..Default::default()
        };
        validators(&[&[7u8][..], &list.encode_to_vec()].concat());
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        // A fixed LCG: the same 20,000 inputs on every run, shaped like protobuf often
        // enough (small field keys, lengths) to reach the validators.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as u8
        };
        for _ in 0..20_000 {
            let len = usize::from(next() % 64);
            let data: Vec<u8> = (0..len).map(|_| next() % 48).collect();
            validators(&data);
        }
    }
}
