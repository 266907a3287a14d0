//! Settlement and statistics (交付実績), computed from the events alone so that an auditor
//! can recompute them offline from an export.
//!
//! Rules (per event, counting its `document_count` fact):
//! - `PRINT_REPORTED` with outcome `PRINTED`: issued, and its `fee_yen` is collected;
//! - `DOCUMENTS_VOIDED`: voided (a failed or partial print is followed by a void event, so
//!   failures are counted once, there);
//! - `DEADLINE_PASSED`: unconfirmed (released, no print report before the deadline).
//!
//! Days and months are Japan time (UTC+9, no daylight saving).

use std::collections::BTreeMap;

use crate::event::{Event, EventType, Fact, PrintOutcome, UnixMillis};

/// Period length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Period {
    /// A JST calendar day, `2026-11-24`.
    Day,
    /// A JST calendar month, `2026-11`.
    Month,
}

/// What rows are grouped by beside the period.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Grouping {
    /// Store chain.
    Chain,
    /// Store.
    Store,
    /// Terminal id.
    Terminal,
    /// Municipality code.
    Municipality,
    /// Certificate type name.
    CertificateType,
}

/// One row of the settlement.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct SettlementRow {
    /// `YYYY-MM-DD` or `YYYY-MM` (JST).
    pub period: String,
    /// The group key.
    pub group: String,
    /// Documents printed and confirmed.
    pub issued: u64,
    /// Documents voided.
    pub voided: u64,
    /// Documents released without a print report before the deadline.
    pub unconfirmed: u64,
    /// Fees for confirmed documents, yen.
    pub fees_yen: u64,
}

/// The JST period label of a time.
pub fn period_label(t: UnixMillis, period: Period) -> String {
    let jst = time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(jst);
    match period {
        Period::Day => format!(
            "{:04}-{:02}-{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day()
        ),
        Period::Month => format!("{:04}-{:02}", dt.year(), u8::from(dt.month())),
    }
}

fn group_key(e: &Event, grouping: Grouping) -> String {
    let ident = |k: &str| match e.fact(k) {
        Some(Fact::Chain(i)) | Some(Fact::Store(i)) => i.as_str().to_owned(),
        _ => String::new(),
    };
    match grouping {
        Grouping::Chain => ident("chain"),
        Grouping::Store => ident("store"),
        Grouping::Terminal => e
            .terminal()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        Grouping::Municipality => e
            .municipality()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        Grouping::CertificateType => match e.fact("certificate_type") {
            Some(Fact::CertificateType(c)) => c.code().to_owned(),
            _ => String::new(),
        },
    }
}

/// Settlement rows over events with `from <= time < to`, sorted by period then group.
pub fn settlement<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    from: UnixMillis,
    to: UnixMillis,
    period: Period,
    grouping: Grouping,
) -> Vec<SettlementRow> {
    let mut rows: BTreeMap<(String, String), SettlementRow> = BTreeMap::new();
    for e in events {
        if e.time() < from || e.time() >= to {
            continue;
        }
        let count = match e.fact("document_count") {
            Some(Fact::DocumentCount(n)) => u64::from(*n),
            _ => continue,
        };
        let fee = match e.fact("fee_yen") {
            Some(Fact::FeeYen(n)) => *n,
            _ => 0,
        };
        let kind = match (e.event_type(), e.fact("outcome")) {
            (EventType::PrintReported, Some(Fact::Outcome(PrintOutcome::Printed))) => 0,
            (EventType::DocumentsVoided, _) => 1,
            (EventType::DeadlinePassed, _) => 2,
            _ => continue,
        };
        let key = (period_label(e.time(), period), group_key(e, grouping));
        let row = rows.entry(key.clone()).or_insert_with(|| SettlementRow {
            period: key.0.clone(),
            group: key.1.clone(),
            ..SettlementRow::default()
        });
        match kind {
            0 => {
                row.issued += count;
                row.fees_yen += fee;
            }
            1 => row.voided += count,
            _ => row.unconfirmed += count,
        }
    }
    rows.into_values().collect()
}

/// Settlement straight from the store: reads the settlement-relevant events in the range
/// (each re-checked against its leaf hash) and applies [`settlement`].
pub async fn settlement_from_store(
    conn: &mut sqlx::AnyConnection,
    from: UnixMillis,
    to: UnixMillis,
    period: Period,
    grouping: Grouping,
) -> Result<Vec<SettlementRow>, crate::store::StoreError> {
    let filter = crate::store::EventFilter {
        from: Some(from),
        to: Some(to),
        types: vec![
            EventType::PrintReported,
            EventType::DocumentsVoided,
            EventType::DeadlinePassed,
        ],
        ..Default::default()
    };
    let events = crate::store::list_events(conn, &filter).await?;
    Ok(settlement(
        events.iter().map(|s| &s.event),
        from,
        to,
        period,
        grouping,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jst_day_boundary() {
        // 2026-11-23T15:00:00Z is 2026-11-24 00:00 JST.
        let t = UnixMillis(1_795_446_000_000);
        assert_eq!(period_label(t, Period::Day), "2026-11-24");
        assert_eq!(period_label(UnixMillis(t.0 - 1), Period::Day), "2026-11-23");
        assert_eq!(period_label(t, Period::Month), "2026-11");
    }
}
