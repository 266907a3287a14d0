//! What the auditor reads out of the log: exports of events (CSV or JSON Lines), settlement
//! (交付実績), and anomalies, listed or resolved.
//!
//! From an export file, the file is re-hashed first and nothing is reported from a file
//! that fails verification: its findings are returned instead.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use audit::event::{Actor, Ident, MunicipalityCode, ResolutionNote, UnixMillis};
use audit::settlement::{self, Grouping, Period, SettlementRow};
use audit::store::{self, Anomaly, EventFilter};
#[cfg(feature = "online")]
use audit::verify::Rehashed;
use audit::verify::{ExportRecord, Tamper};
use clap::ValueEnum;
#[cfg(feature = "online")]
use indicatif::ProgressBar;

#[cfg(feature = "online")]
use crate::online::Online;
use crate::source::{
    Filters, Source, begin_write, event_filter, open_db, parse_time, progress, rehash_file,
};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Csv,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PeriodArg {
    Day,
    Month,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum GroupArg {
    Chain,
    Store,
    Terminal,
    Municipality,
    CertificateType,
}

/// Export records written in one format, counted.
struct RecordSink {
    out: BufWriter<Box<dyn Write>>,
    format: Format,
    written: u64,
}

impl RecordSink {
    /// Writes to `out` (standard output if none), starting with the CSV header if CSV.
    fn open(out: Option<&Path>, format: Format) -> Result<RecordSink> {
        let sink: Box<dyn Write> = match out {
            Some(p) => {
                Box::new(fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
            }
            None => Box::new(std::io::stdout().lock()),
        };
        let mut out = BufWriter::new(sink);
        if matches!(format, Format::Csv) {
            writeln!(out, "{}", ExportRecord::CSV_HEADER)?;
        }
        Ok(RecordSink {
            out,
            format,
            written: 0,
        })
    }

    fn write(&mut self, rec: &ExportRecord) -> Result<()> {
        match self.format {
            Format::Csv => writeln!(self.out, "{}", rec.csv_row())?,
            Format::Jsonl => writeln!(self.out, "{}", serde_json::to_string(rec)?)?,
        }
        self.written += 1;
        Ok(())
    }

    /// Flushes, and says how many records were written.
    fn finish(mut self) -> Result<u64> {
        self.out.flush()?;
        Ok(self.written)
    }
}

/// `export`: the events that pass the filters, in index order.
pub(crate) async fn export(
    source: &Source,
    filters: &Filters,
    format: Format,
    out: Option<&Path>,
) -> Result<Vec<Tamper>> {
    let filter = event_filter(filters)?;
    let mut sink = RecordSink::open(out, format)?;
    match (&source.export, &source.db) {
        (Some(path), _) => refilter_export(path, &filter, &mut sink)?,
        (None, Some(url)) => export_from_database(url, &filter, &mut sink).await?,
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                export_online(&mut client, &filter, &mut sink).await?;
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    }
    let written = sink.finish()?;
    eprintln!("exported {written} events");
    Ok(Vec::new())
}

/// Re-filters an earlier export, line by line.
fn refilter_export(path: &Path, filter: &EventFilter, sink: &mut RecordSink) -> Result<()> {
    let file = fs::File::open(path)?;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: ExportRecord = serde_json::from_str(&line)?;
        let bytes = rec
            .canonical_bytes()
            .ok_or_else(|| anyhow!("event {}: bad canonical", rec.index))?;
        let e = audit::Event::decode(&bytes)?;
        if rec.index >= filter.start_index
            && filter.matches(&e)
            && filter.limit.is_none_or(|l| sink.written < l)
        {
            sink.write(&rec)?;
        }
    }
    Ok(())
}

/// Exports from the log's database in pages by index, which keep memory flat on a
/// million-event log.
async fn export_from_database(
    url: &str,
    filter: &EventFilter,
    sink: &mut RecordSink,
) -> Result<()> {
    let pool = open_db(url).await?;
    let mut conn = pool.acquire().await?;
    let total = store::tree_size(&mut conn).await?;
    let bar = progress(total.saturating_sub(filter.start_index), "exporting");
    let mut next = filter.start_index;
    loop {
        let remaining = filter.limit.map(|l| l.saturating_sub(sink.written));
        if remaining == Some(0) || next >= total {
            break;
        }
        let page = EventFilter {
            start_index: next,
            limit: Some(remaining.unwrap_or(10_000).min(10_000)),
            ..filter.clone()
        };
        let events = store::list_events(&mut conn, &page).await?;
        let Some(last) = events.last() else { break };
        let last_index = last.index;
        for s in &events {
            sink.write(&ExportRecord::new(
                s.index,
                &s.event,
                &s.canonical,
                &s.leaf_hash,
            ))?;
        }
        bar.set_position(last_index + 1 - filter.start_index);
        next = last_index + 1;
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(feature = "online")]
async fn export_online(
    client: &mut Online,
    filter: &EventFilter,
    sink: &mut RecordSink,
) -> Result<()> {
    let bar = ProgressBar::new_spinner();
    bar.set_message("exporting");
    client
        .events(filter, |rec| {
            sink.write(&rec)?;
            bar.inc(1);
            Ok(())
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}

/// `settlement`: issued, voided and unconfirmed documents and fees per period and group.
pub(crate) async fn settlement(
    source: &Source,
    from: &str,
    to: &str,
    period: PeriodArg,
    group: GroupArg,
    format: Format,
) -> Result<Vec<Tamper>> {
    let (from, to) = (parse_time(from)?, parse_time(to)?);
    let period = match period {
        PeriodArg::Day => Period::Day,
        PeriodArg::Month => Period::Month,
    };
    let grouping = match group {
        GroupArg::Chain => Grouping::Chain,
        GroupArg::Store => Grouping::Store,
        GroupArg::Terminal => Grouping::Terminal,
        GroupArg::Municipality => Grouping::Municipality,
        GroupArg::CertificateType => Grouping::CertificateType,
    };
    let rows = match (&source.export, &source.db) {
        (Some(path), _) => {
            let re = rehash_file(path)?;
            if !re.findings.is_empty() {
                return Ok(re.findings);
            }
            settlement::settlement(re.events.iter().map(|(_, e)| e), from, to, period, grouping)
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            settlement::settlement_from_store(&mut conn, from, to, period, grouping).await?
        }
        _ => {
            #[allow(unused_mut, unreachable_code, clippy::diverging_sub_expression)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                match settlement_online(&mut client, from, to, period, grouping).await? {
                    Ok(rows) => rows,
                    Err(findings) => return Ok(findings),
                }
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    print_settlement(rows, format)?;
    Ok(Vec::new())
}

/// Settlement over the events the server streams for the period, each re-hashed; `Err` with
/// the findings if any event fails its checks.
#[cfg(feature = "online")]
async fn settlement_online(
    client: &mut Online,
    from: UnixMillis,
    to: UnixMillis,
    period: Period,
    grouping: Grouping,
) -> Result<Result<Vec<SettlementRow>, Vec<Tamper>>> {
    let mut re = Rehashed::default();
    let filter = EventFilter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    client
        .events(&filter, |rec| {
            re.push_record(&rec);
            Ok(())
        })
        .await?;
    // A filtered stream has index gaps by design; only field and hash checks count.
    let bad: Vec<Tamper> = re
        .findings
        .iter()
        .filter(|f| !matches!(f, Tamper::IndexGap { .. }))
        .cloned()
        .collect();
    if !bad.is_empty() {
        return Ok(Err(bad));
    }
    Ok(Ok(settlement::settlement(
        re.events.iter().map(|(_, e)| e),
        from,
        to,
        period,
        grouping,
    )))
}

fn print_settlement(rows: Vec<SettlementRow>, format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Csv => {
            writeln!(out, "period,group,issued,voided,unconfirmed,fees_yen")?;
            for r in rows {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    r.period, r.group, r.issued, r.voided, r.unconfirmed, r.fees_yen
                )?;
            }
        }
        Format::Jsonl => {
            for r in rows {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            }
        }
    }
    Ok(())
}

const ANOMALY_CSV_HEADER: &str = "anomaly_id,kind,opened_at_ms,opened_event_index,terminal,municipality,issuance,resolution,resolved_by";

/// `anomalies`: open ones, or all with `--all`, as CSV.
pub(crate) async fn anomalies(source: &Source, all: bool) -> Result<Vec<Tamper>> {
    let list = match (&source.export, &source.db) {
        (Some(path), _) => {
            let re = rehash_file(path)?;
            if !re.findings.is_empty() {
                return Ok(re.findings);
            }
            store::anomalies_from_events(re.events.iter().map(|(i, e)| (*i, e)))
        }
        (None, Some(url)) => {
            let pool = open_db(url).await?;
            let mut conn = pool.acquire().await?;
            store::list_anomalies(&mut conn, true).await?
        }
        _ => {
            #[allow(unused_mut)]
            let mut client = source.online().await?;
            #[cfg(feature = "online")]
            {
                // The server leaves resolved ones out unless `all`; rows in the same layout.
                println!("{ANOMALY_CSV_HEADER}");
                for row in client.anomalies(all).await? {
                    println!("{row}");
                }
                return Ok(Vec::new());
            }
            #[cfg(not(feature = "online"))]
            match client {}
        }
    };
    print_anomalies(&list, all)?;
    Ok(Vec::new())
}

fn print_anomalies(list: &[Anomaly], all: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ANOMALY_CSV_HEADER}")?;
    for a in list.iter().filter(|a| all || a.resolution.is_none()) {
        let (res, by) = a
            .resolution
            .as_ref()
            .map_or((String::new(), String::new()), |r| {
                (r.note.as_str().to_owned(), r.by.clone())
            });
        writeln!(
            out,
            "{},{},{},{},{},{},{},\"{}\",{}",
            a.id,
            a.kind,
            a.opened_at.0,
            a.opened_event_index,
            a.terminal.as_ref().map(Ident::as_str).unwrap_or(""),
            a.municipality
                .as_ref()
                .map(MunicipalityCode::as_str)
                .unwrap_or(""),
            a.issuance.as_ref().map(Ident::as_str).unwrap_or(""),
            res.replace('"', "\"\""),
            by
        )?;
    }
    Ok(())
}

/// `resolve`: closes an anomaly with a reason; the resolution is itself an event, committed
/// with it.
pub(crate) async fn resolve(
    source: &Source,
    id: &str,
    reason: &str,
    auditor: &str,
) -> Result<Vec<Tamper>> {
    let id = Ident::parse(id)?;
    let note = ResolutionNote::parse(reason)?;
    let Some(db) = &source.db else {
        #[allow(unused_mut)]
        let mut client = source.online().await?;
        #[cfg(feature = "online")]
        {
            let resolved = client.resolve(id.as_str(), note.as_str()).await?;
            println!("resolved {resolved}");
            return Ok(Vec::new());
        }
        #[cfg(not(feature = "online"))]
        match client {}
    };
    let pool = open_db(db).await?;
    let auditor = Actor::Auditor(Ident::parse(auditor)?);
    let mut tx = begin_write(&pool).await?;
    let a = store::resolve_anomaly(&mut tx, UnixMillis::now(), &id, auditor, note).await?;
    tx.commit().await?;
    let idx = a.resolution.map(|r| r.event_index).unwrap_or_default();
    println!("resolved {} (event {idx})", a.id);
    Ok(Vec::new())
}
