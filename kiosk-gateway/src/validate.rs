//! The checks every request passes before it reaches the flow or the store: pure functions
//! of the message (no I/O, no clock), so the handlers (`service`) call them first, the flow
//! calls the order checks again for callers that come without a handler, and the fuzz target
//! `gateway_validators` runs them on arbitrary decoded messages. A leaf under both `service`
//! and `flow`, so neither reaches the other through it.
//!
//! Two rules hold for every one of them, from issue 10:
//! - Work and answer are bounded by the limits, not by the request. A repeated field over its
//!   limit is refused by its count alone, without looking at its elements, and a check stops
//!   at [`MAX_VIOLATIONS`] violations: 100,000 empty items once drew 200,001 violations (a
//!   9.5 MB answer), and 40,000 event types became one SQL statement with 40,000 variables.
//! - Every number is checked before arithmetic: a `Timestamp` is within the range its
//!   definition allows before it becomes milliseconds, and a `uint64` is within `i64` before it
//!   meets SQL.

use audit::event::{EventType, Ident, MunicipalityCode, ResolutionNote, UnixMillis};
use audit::settlement::{Grouping, Period};
use audit::store::EventFilter;
use kiosk_document::PrintOutcome;
use kiosk_proto::reasons::{FieldViolation, MAX_VIOLATIONS};
use kiosk_proto::v1 as pb;

use crate::error::GatewayError;

/// Longest identifier (`*_id`, `subject_ref`), per common.proto.
pub const MAX_ID_LEN: usize = 64;
/// Longest `OpenSessionRequest.locale`: RFC 5646 asks implementations to take tags of at least
/// 35 characters, and every real kiosk language fits.
pub const MAX_LOCALE_LEN: usize = 35;
/// Most `subject_refs` in one item (more people than any household or 戸籍 lists).
pub const MAX_SUBJECT_REFS: usize = 32;
/// Longest `ReportPrintRequest.failure_detail`, in characters.
pub const MAX_FAILURE_DETAIL_CHARS: usize = 200;
/// Most `ListEventsRequest.types`: more than the contract defines, so a filter naming every
/// type fits, while one SQL statement stays small.
pub const MAX_EVENT_TYPES: usize = 32;
/// Earliest `Timestamp.seconds` (0001-01-01T00:00:00Z), per timestamp.proto.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// Latest `Timestamp.seconds` (9999-12-31T23:59:59Z), per timestamp.proto.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Collects violations up to [`MAX_VIOLATIONS`].
#[derive(Debug, Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn push(&mut self, field: String, description: &str) {
        if !self.full() {
            self.0.push(FieldViolation {
                field,
                description: description.to_owned(),
            });
        }
    }

    fn full(&self) -> bool {
        self.0.len() >= MAX_VIOLATIONS
    }

    fn into_result(self) -> Result<(), GatewayError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(GatewayError::InvalidFields(self.0))
        }
    }
}

/// Whether `value` is an identifier of common.proto: 1 to 64 characters of
/// `[A-Za-z0-9._:/-]`. Anything else (NUL, control and format characters, full-width digits,
/// SQL or shell metacharacters) cannot be one, so it never reaches the store or the log.
pub fn is_identifier(value: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// `value` as the identifier field `field`.
pub fn identifier(field: &str, value: &str) -> Result<(), GatewayError> {
    if is_identifier(value) {
        Ok(())
    } else {
        Err(GatewayError::invalid_field(
            field,
            "1 to 64 characters of [A-Za-z0-9._:/-]",
        ))
    }
}

/// Whether `tag` is a well-formed BCP 47 language tag of at most [`MAX_LOCALE_LEN`]
/// characters: a 2 to 8 letter language then subtags of 1 to 8 letters or digits, or a
/// private-use tag `x-...`. Whether the language is one the kiosk texts exist in does not
/// matter: every error carries both ja-JP and en-US.
pub fn is_language_tag(tag: &str) -> bool {
    let alnum =
        |s: &str| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if tag.len() > MAX_LOCALE_LEN {
        return false;
    }
    let mut subtags = tag.split('-');
    let Some(first) = subtags.next() else {
        return false;
    };
    let mut rest = subtags.peekable();
    if first.eq_ignore_ascii_case("x") {
        return rest.peek().is_some() && rest.all(alnum);
    }
    (2..=8).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && rest.all(alnum)
}

/// OpenSession: the locale is empty (ja-JP) or a language tag.
pub fn open_session(m: &pb::OpenSessionRequest) -> Result<(), GatewayError> {
    if m.locale.is_empty() || is_language_tag(&m.locale) {
        Ok(())
    } else {
        Err(GatewayError::invalid_field(
            "locale",
            "a BCP 47 language tag of at most 35 characters, such as ja-JP",
        ))
    }
}

/// Authenticate: the session and the signature's size. The certificate is the card
/// verifier's to judge (CARD_CERTIFICATE_MALFORMED).
pub fn authenticate(m: &pb::AuthenticateRequest) -> Result<(), GatewayError> {
    identifier("session_id", &m.session_id)?;
    if !(256..=512).contains(&m.signature.len()) {
        return Err(GatewayError::invalid_field(
            "signature",
            "an RSA signature of 256 to 512 bytes",
        ));
    }
    Ok(())
}

/// GetMenu.
pub fn get_menu(m: &pb::GetMenuRequest) -> Result<(), GatewayError> {
    identifier("session_id", &m.session_id)
}

/// Quote: the session and the order.
pub fn quote(m: &pb::QuoteRequest, max_items: usize) -> Result<(), GatewayError> {
    identifier("session_id", &m.session_id)?;
    order_items(&m.items, max_items)
}

/// Issue: the session, the idempotency key and the order.
pub fn issue(m: &pb::IssueRequest, max_items: usize) -> Result<(), GatewayError> {
    identifier("session_id", &m.session_id)?;
    request_id(&m.client_request_id)?;
    order_items(&m.items, max_items)
}

/// An idempotency key: 16 to 64 characters of `[A-Za-z0-9._:-]`.
pub fn request_id(id: &str) -> Result<(), GatewayError> {
    let ok = (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid_field(
            "client_request_id",
            "16 to 64 characters of [A-Za-z0-9._:-]",
        ))
    }
}

/// The items of an order: 1 to `max_items`, each with a type, at least one copy and at most
/// [`MAX_SUBJECT_REFS`] subject references that are identifiers. The issuer judges the rest
/// (copies against the menu, options, who may be named) on the current register.
pub fn order_items(items: &[pb::RequestItem], max_items: usize) -> Result<(), GatewayError> {
    if items.is_empty() || items.len() > max_items {
        // The count alone refuses the order: no item is looked at, so the work and the answer
        // are the same for 11 items and for 100,000.
        return Err(GatewayError::invalid_field(
            "items",
            format!("1 to {max_items} items"),
        ));
    }
    let mut violations = Violations::default();
    for (index, item) in items.iter().enumerate() {
        let known = pb::CertificateType::try_from(item.r#type)
            .is_ok_and(|t| t != pb::CertificateType::Unspecified);
        if !known {
            violations.push(
                format!("items[{index}].type"),
                "a certificate type is required",
            );
        }
        if item.copies == 0 {
            violations.push(format!("items[{index}].copies"), "at least one copy");
        }
        if known {
            options(index, item, &mut violations);
        }
        subject_refs(index, &item.subject_refs, &mut violations);
        if violations.full() {
            break;
        }
    }
    violations.into_result()
}

/// Each option set on an item must be one its certificate type accepts (the menu lists them
/// as `accepted_options`): named here, so the BadRequest says which option, before the issuer
/// is asked anything.
fn options(index: usize, item: &pb::RequestItem, violations: &mut Violations) {
    let Ok(wire) = issuer::service::item_from_wire(&pb::RequestItem {
        subject_refs: Vec::new(),
        ..item.clone()
    }) else {
        return;
    };
    if wire.ty == kiosk_document::CertificateType::IncomeTax && wire.options.fiscal_year.is_none() {
        violations.push(
            format!("items[{index}].options.fiscal_year"),
            "required for INCOME_TAX: a year from the menu's fiscal_years",
        );
    }
    let accepted = wire.ty.accepted_options();
    for name in wire.options.set_option_names() {
        if !accepted.contains(&name) {
            violations.push(
                format!("items[{index}].options.{name}"),
                "not accepted for this certificate type (see the menu's accepted_options)",
            );
        }
    }
}

fn subject_refs(index: usize, refs: &[String], violations: &mut Violations) {
    if refs.len() > MAX_SUBJECT_REFS {
        violations.push(
            format!("items[{index}].subject_refs"),
            "at most 32 subjects",
        );
        return;
    }
    for (n, subject) in refs.iter().enumerate() {
        // Issuers hand out references without '/', the one identifier character they omit.
        if !is_identifier(subject) || subject.contains('/') {
            violations.push(
                format!("items[{index}].subject_refs[{n}]"),
                "a subject_ref from the menu",
            );
        }
        if violations.full() {
            return;
        }
    }
}

/// ReportPrint: the ids, the outcome and a short failure text without control or
/// direction-override characters (it may reach a log or a screen).
pub fn report_print(m: &pb::ReportPrintRequest) -> Result<PrintOutcome, GatewayError> {
    identifier("session_id", &m.session_id)?;
    identifier("issuance_id", &m.issuance_id)?;
    if m.failure_detail.chars().count() > MAX_FAILURE_DETAIL_CHARS
        || m.failure_detail.chars().any(is_hidden)
    {
        return Err(GatewayError::invalid_field(
            "failure_detail",
            "at most 200 characters, no control or formatting characters",
        ));
    }
    match pb::PrintOutcome::try_from(m.outcome) {
        Ok(pb::PrintOutcome::Printed) => Ok(PrintOutcome::Printed),
        Ok(pb::PrintOutcome::Failed) => Ok(PrintOutcome::Failed),
        Ok(pb::PrintOutcome::PartlyPrinted) => Ok(PrintOutcome::PartlyPrinted),
        _ => Err(GatewayError::invalid_field(
            "outcome",
            "an outcome is required",
        )),
    }
}

/// Whether a character is invisible or reorders text: control characters and the Unicode
/// formatting characters (bidirectional overrides and isolates, zero-width ones), which can
/// make a stored text read differently from what it is.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// CloseSession.
pub fn close_session(m: &pb::CloseSessionRequest) -> Result<(), GatewayError> {
    identifier("session_id", &m.session_id)
}

/// A `Timestamp` as milliseconds, refused (naming `field`) outside the range timestamp.proto
/// defines, where the conversion could overflow.
pub fn instant(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<UnixMillis>, GatewayError> {
    let Some(t) = t else { return Ok(None) };
    let in_range = (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds)
        && (0..1_000_000_000).contains(&t.nanos);
    if !in_range {
        return Err(GatewayError::invalid_field(
            field,
            "a Timestamp from 0001-01-01 to 9999-12-31 with nanos 0 to 999,999,999",
        ));
    }
    // In range, seconds * 1000 is within ±2^58: no overflow.
    Ok(Some(UnixMillis(
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000),
    )))
}

/// ListEvents: the filter, with every repeated and numeric field bounded.
pub fn list_events(m: &pb::ListEventsRequest) -> Result<EventFilter, GatewayError> {
    if m.types.len() > MAX_EVENT_TYPES {
        return Err(GatewayError::invalid_field(
            "types",
            format!("at most {MAX_EVENT_TYPES} types"),
        ));
    }
    let mut types = Vec::with_capacity(m.types.len());
    for (i, t) in m.types.iter().enumerate() {
        let parsed = pb::AuditEventType::try_from(*t)
            .ok()
            .filter(|t| *t != pb::AuditEventType::Unspecified)
            .and_then(|t| EventType::parse(t.as_str_name()).ok())
            .ok_or_else(|| GatewayError::invalid_field(format!("types[{i}]"), "unknown type"))?;
        types.push(parsed);
    }
    let from = instant("from", m.from.as_ref())?;
    let to = instant("to", m.to.as_ref())?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(GatewayError::invalid_field("to", "before from"));
    }
    let terminal = (!m.terminal_id.is_empty())
        .then(|| Ident::parse(&m.terminal_id))
        .transpose()
        .map_err(|_| GatewayError::invalid_field("terminal_id", "not an identifier"))?;
    let municipality = (!m.municipality_code.is_empty())
        .then(|| MunicipalityCode::parse(&m.municipality_code))
        .transpose()
        .map_err(|_| GatewayError::invalid_field("municipality_code", "6-digit code"))?;
    if i64::try_from(m.start_index).is_err() {
        return Err(GatewayError::invalid_field(
            "start_index",
            "at most 2^63 - 1",
        ));
    }
    Ok(EventFilter {
        from,
        to,
        types,
        terminal,
        municipality,
        start_index: m.start_index,
        limit: (m.limit > 0).then_some(u64::from(m.limit)),
    })
}

/// GetSettlement: a required, ordered time range, a period and a grouping.
pub fn settlement(
    m: &pb::GetSettlementRequest,
) -> Result<(UnixMillis, UnixMillis, Period, Grouping), GatewayError> {
    let from = instant("from", m.from.as_ref())?
        .ok_or_else(|| GatewayError::invalid_field("from", "required"))?;
    let to = instant("to", m.to.as_ref())?
        .ok_or_else(|| GatewayError::invalid_field("to", "required"))?;
    if from > to {
        return Err(GatewayError::invalid_field("to", "before from"));
    }
    let period = match pb::SettlementPeriod::try_from(m.period) {
        Ok(pb::SettlementPeriod::Day) => Period::Day,
        Ok(pb::SettlementPeriod::Month) => Period::Month,
        _ => return Err(GatewayError::invalid_field("period", "DAY or MONTH")),
    };
    let grouping = match pb::SettlementGrouping::try_from(m.grouping) {
        Ok(pb::SettlementGrouping::Chain) => Grouping::Chain,
        Ok(pb::SettlementGrouping::Store) => Grouping::Store,
        Ok(pb::SettlementGrouping::Terminal) => Grouping::Terminal,
        Ok(pb::SettlementGrouping::Municipality) => Grouping::Municipality,
        Ok(pb::SettlementGrouping::CertificateType) => Grouping::CertificateType,
        _ => return Err(GatewayError::invalid_field("grouping", "required")),
    };
    Ok((from, to, period, grouping))
}

/// ResolveAnomaly: the anomaly's id and a resolution note, which enters the audit log for
/// good, so invisible and reordering characters are refused besides the note's own rules.
pub fn resolve_anomaly(
    m: &pb::ResolveAnomalyRequest,
) -> Result<(Ident, ResolutionNote), GatewayError> {
    let id = Ident::parse(&m.anomaly_id)
        .map_err(|_| GatewayError::invalid_field("anomaly_id", "not an identifier"))?;
    let invalid_note =
        || GatewayError::invalid_field("resolution", "1 to 500 characters, no personal data");
    if m.resolution.chars().any(is_hidden) {
        return Err(invalid_note());
    }
    let note = ResolutionNote::parse(&m.resolution).map_err(|_| invalid_note())?;
    Ok((id, note))
}

/// VerifyDocument: a document is given, and a PDF is within its size.
pub fn verify_document(m: &pb::VerifyDocumentRequest, max_pdf: usize) -> Result<(), GatewayError> {
    match &m.document {
        None => Err(GatewayError::invalid_field(
            "document",
            "a QR payload or a PDF",
        )),
        Some(pb::verify_document_request::Document::Pdf(pdf)) if pdf.len() > max_pdf => {
            Err(GatewayError::invalid_field("pdf", "at most 8 MiB"))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for good in [
            "ja-JP",
            "en-US",
            "fr",
            "zh-Hant-TW",
            "sr-Latn-RS",
            "x-kiosk",
            "de-CH-1996",
        ] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "x",
            "j",
            "ja_JP",
            "ja-",
            "-ja",
            "ja--JP",
            "ja-JP\0",
            "ｊａ",
            "123",
            "ja-toolongsubtag",
            &"ab-".repeat(12),
        ] {
            assert!(!is_language_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn too_many_items_are_refused_by_their_count() {
        let items = vec![pb::RequestItem::default(); 100_000];
        match order_items(&items, 10) {
            Err(GatewayError::InvalidFields(v)) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].field, "items");
            }
            other => panic!("{other:?}"),
        }
        // Ten empty items: violations stop at the cap.
        match order_items(&items[..10], 10) {
            Err(GatewayError::InvalidFields(v)) => assert_eq!(v.len(), MAX_VIOLATIONS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_out_of_their_range_are_refused() {
        let at = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert!(instant("from", Some(&at(i64::MAX, 0))).is_err());
        assert!(instant("from", Some(&at(i64::MIN, 0))).is_err());
        assert!(instant("from", Some(&at(0, -1))).is_err());
        assert!(instant("from", Some(&at(0, 1_000_000_000))).is_err());
        assert_eq!(
            instant("from", Some(&at(MAX_TIMESTAMP_SECONDS, 999_999_999))).unwrap(),
            Some(UnixMillis(MAX_TIMESTAMP_SECONDS * 1000 + 999))
        );
        assert_eq!(
            instant("from", Some(&at(MIN_TIMESTAMP_SECONDS, 0))).unwrap(),
            Some(UnixMillis(MIN_TIMESTAMP_SECONDS * 1000))
        );
    }

    #[test]
    fn hidden_characters_are_refused_in_free_text() {
        for text in ["a\u{202E}b", "a\u{200B}b", "a\0b", "a\u{FEFF}"] {
            let m = pb::ResolveAnomalyRequest {
                anomaly_id: "a-1".into(),
                resolution: text.into(),
            };
            assert!(resolve_anomaly(&m).is_err(), "{text:?}");
        }
    }
}
