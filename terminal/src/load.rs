//! The load generator: many terminals running the whole issuance at once — open, a fresh card
//! signature, authenticate, issue, check every document's owner, report the print — at a
//! fixed arrival rate (open loop) or as fast as they can (closed loop).
//!
//! Latencies are measured from each issuance's scheduled start, not from when a worker got to
//! it, so a slow server cannot hide its queueing (coordinated omission). Every document is
//! checked against the resident whose card asked for it; a mismatch is counted and reported,
//! never ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use card::pin::Pin;
use hdrhistogram::Histogram;
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_proto::v1 as pb;
use tokio::sync::Mutex;

use crate::client::{Document, Terminal, TerminalError};

/// A resident's card as the load generator uses it.
#[derive(Clone)]
pub struct LoadCard {
    /// The software card (cloned per use so its counters stay fresh).
    pub card: SoftCard,
    /// Its PIN.
    pub pin: Pin,
    /// The resident reference the documents must name.
    pub resident_ref: String,
}

/// Checks that a document belongs to `resident_ref`; `Err` says why not.
pub type OwnerCheck = Arc<dyn Fn(&Document, &str) -> Result<(), String> + Send + Sync>;

/// The owner check from the document itself: every page's marker (an uncompressed entry of
/// each page, covered by the PDF signature; format in `kiosk_document::markers`) must name
/// the resident among its subjects. The load orders documents about the requester alone.
pub fn marker_owner_check(document: &Document, resident_ref: &str) -> Result<(), String> {
    let pages = kiosk_document::markers::read_page_markers(&document.pdf)
        .map_err(|e| format!("markers unreadable: {e}"))?;
    for page in &pages {
        if page.subjects.iter().any(|s| s.as_str() != resident_ref) {
            return Err(format!("page {} names another resident", page.page));
        }
    }
    if pages.iter().all(|p| p.subjects.is_empty()) {
        return Err("no page names the resident".into());
    }
    Ok(())
}

/// How to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Workers running issuances at once.
    pub concurrency: usize,
    /// Issuances in total.
    pub issuances: usize,
    /// Arrivals per second (open loop); `None` runs closed loop.
    pub rate: Option<f64>,
    /// What each issuance orders.
    pub items: Vec<pb::RequestItem>,
    /// Share of issuances reported as failed prints (0.0 to 1.0), to exercise voids.
    pub print_failure_ratio: f64,
    /// Issue deadline.
    pub issue_timeout: Duration,
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// Issuances that completed the whole flow.
    pub completed: u64,
    /// Refusals and failures by reason.
    pub errors: BTreeMap<String, u64>,
    /// Documents whose owner check failed (must be 0).
    pub owner_mismatches: u64,
    /// Documents checked.
    pub documents_checked: u64,
    /// End-to-end latency from scheduled start, microseconds.
    pub latency_us: Histogram<u64>,
    /// Issue call latency, microseconds.
    pub issue_us: Histogram<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Completed issuances per second.
    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        let mut out = format!(
            "completed {} in {:.2} s: {:.1} issuances/s\n\
             end-to-end ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             Issue ms:      p50 {:.2}  p99 {:.2}  p99.9 {:.2}\n\
             documents checked {}, owner mismatches {}\n",
            self.completed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            q(&self.latency_us, 0.5),
            q(&self.latency_us, 0.99),
            q(&self.latency_us, 0.999),
            self.latency_us.max() as f64 / 1000.0,
            q(&self.issue_us, 0.5),
            q(&self.issue_us, 0.99),
            q(&self.issue_us, 0.999),
            self.documents_checked,
            self.owner_mismatches,
        );
        if self.errors.is_empty() {
            out.push_str("errors: none\n");
        } else {
            for (reason, count) in &self.errors {
                out.push_str(&format!("error {reason}: {count}\n"));
            }
        }
        out
    }
}

struct Shared {
    report: Mutex<LoadReport>,
    next: AtomicUsize,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Runs the load over `terminals` (one channel each; workers share them round-robin) with
/// `cards` (used round-robin) and checks each document with `owner_check`.
pub async fn run(
    terminals: Vec<Terminal>,
    cards: Vec<LoadCard>,
    options: LoadOptions,
    owner_check: OwnerCheck,
) -> LoadReport {
    let shared = Arc::new(Shared {
        report: Mutex::new(LoadReport {
            completed: 0,
            errors: BTreeMap::new(),
            owner_mismatches: 0,
            documents_checked: 0,
            latency_us: histogram(),
            issue_us: histogram(),
            elapsed: Duration::ZERO,
        }),
        next: AtomicUsize::new(0),
    });
    let terminals = Arc::new(terminals);
    let cards = Arc::new(cards);
    let start = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let shared = shared.clone();
        let terminals = terminals.clone();
        let cards = cards.clone();
        let options = options.clone();
        let owner_check = owner_check.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let n = shared.next.fetch_add(1, Ordering::Relaxed);
                if n >= options.issuances || terminals.is_empty() || cards.is_empty() {
                    break;
                }
                let scheduled = match options.rate {
                    Some(rate) if rate > 0.0 => {
                        let at = start + Duration::from_secs_f64(n as f64 / rate);
                        // The arrival schedule of an open-loop load, not synchronisation.
                        tokio::time::sleep_until(at).await;
                        at
                    }
                    _ => tokio::time::Instant::now(),
                };
                let terminal = &terminals[n % terminals.len()];
                let card = &cards[n % cards.len()];
                let fail_print = options.print_failure_ratio > 0.0
                    && (n as f64 * options.print_failure_ratio).fract()
                        + options.print_failure_ratio
                        >= 1.0;
                let outcome = one_issuance(terminal, card, &options, fail_print, n).await;
                let elapsed_us = scheduled.elapsed().as_micros() as u64;
                let mut report = shared.report.lock().await;
                match outcome {
                    Ok((issue_us, documents)) => {
                        report.completed += 1;
                        let _ = report.latency_us.record(elapsed_us.max(1));
                        let _ = report.issue_us.record(issue_us.max(1));
                        for document in &documents {
                            report.documents_checked += 1;
                            if owner_check(document, &card.resident_ref).is_err() {
                                report.owner_mismatches += 1;
                            }
                        }
                    }
                    Err(error) => {
                        *report.errors.entry(error.reason().to_owned()).or_default() += 1;
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = start.elapsed();
    let mut report = shared.report.lock().await;
    LoadReport {
        completed: report.completed,
        errors: std::mem::take(&mut report.errors),
        owner_mismatches: report.owner_mismatches,
        documents_checked: report.documents_checked,
        latency_us: report.latency_us.clone(),
        issue_us: report.issue_us.clone(),
        elapsed,
    }
}

async fn one_issuance(
    terminal: &Terminal,
    card: &LoadCard,
    options: &LoadOptions,
    fail_print: bool,
    n: usize,
) -> Result<(u64, Vec<Document>), TerminalError> {
    let opened = terminal.open_session().await?;
    let soft = card.card.clone();
    let pin = card.pin.clone();
    let challenge = opened.challenge.clone();
    let context = opened.auth_context_bytes.clone();
    // RSA signing on the software card is CPU work: keep it off the async workers.
    let proof = tokio::task::spawn_blocking(move || {
        crate::login::sign_login(SoftTransport::new(soft), &pin, &challenge, &context)
    })
    .await
    .map_err(|e| TerminalError::Connection(format!("signing task: {e}")))??;
    let menu = terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await?;
    let mut total = 0u32;
    for item in &options.items {
        let fee = menu
            .entries
            .iter()
            .find(|e| e.r#type == item.r#type)
            .map(|e| e.fee_yen)
            .unwrap_or(0);
        total += fee * item.copies;
    }
    let request_id = format!("load-{}-{n:012}", std::process::id());
    let issue_start = Instant::now();
    let issued = terminal
        .issue(
            &opened.session_id,
            &request_id,
            options.items.clone(),
            total,
            options.issue_timeout,
        )
        .await?;
    let issue_us = issue_start.elapsed().as_micros() as u64;
    let outcome = if fail_print {
        pb::PrintOutcome::Failed
    } else {
        pb::PrintOutcome::Printed
    };
    terminal
        .report_print(
            &opened.session_id,
            &issued.header.issuance_id,
            outcome,
            issued.header.total_fee_yen,
            if fail_print { "E-LOAD-TEST" } else { "" },
        )
        .await?;
    terminal.close_session(&opened.session_id).await?;
    Ok((issue_us, issued.documents))
}
