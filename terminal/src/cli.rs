//! The command line of the reference terminal.
//!
//! `issue` is what a kiosk does, step by step, with a person at it: insert the card (a PC/SC
//! reader, or a software card file), type the PIN (not echoed; it goes to the card only),
//! pick from the menu, pay, print (the PDFs are written to a folder), report the outcome.
//! `load` runs many terminals at once against a gateway and prints what it measured.
//!
//! `issue` is tested as a person uses it: `tests/issue_cli.rs` runs this binary on a
//! pseudo-terminal against a real gateway, types the PIN once echo is off and picks from the
//! printed menu by number. Its prompts (`PIN (4 digits): `, `choose (e.g. 1,3): `), the menu
//! line format and the `report:` line are what that test reads: change them together.
//!
//! For automated runs (`kiosk-conformance`, docs/conformance.md) `issue` also takes the PIN
//! from an environment variable (`--pin-from-env`) and simulates a printer that fails
//! (`--printer fail|partial`). Issue is retried as docs/terminal-integration.md section 4
//! says, with the same request id; the conformance kit checks exactly that.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use card::pin::Pin;
use clap::{Parser, Subcommand};
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_proto::v1 as pb;

use crate::client::{Document, Issued, Terminal, TerminalError, TerminalTls, connect};
use crate::load::{self, LoadCard, LoadOptions};

/// The reference store terminal for kiosk.v1.
#[derive(Debug, Parser)]
#[command(name = "kiosk-terminal", version)]
pub struct Cli {
    /// The gateway, e.g. https://127.0.0.1:7443.
    #[arg(
        long,
        env = "KIOSK_GATEWAY",
        default_value = "https://127.0.0.1:7443",
        global = true
    )]
    pub gateway: String,
    /// The PKI directory holding server-ca.crt.pem and this terminal's certificate and key.
    #[arg(
        long,
        env = "KIOSK_PKI",
        default_value = ".kiosk-data/pki",
        global = true
    )]
    pub pki: PathBuf,
    /// The terminal's certificate stem in the PKI directory.
    #[arg(long, default_value = "terminal-seven-131016-0042-k1", global = true)]
    pub terminal: String,
    /// The name in the gateway's certificate.
    #[arg(long, default_value = "localhost", global = true)]
    pub server_name: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue certificates for the resident whose card is in the reader.
    Issue {
        /// A software card file (TOML).
        #[arg(long, conflicts_with = "reader")]
        card: Option<PathBuf>,
        /// A PC/SC reader name (needs the `pcsc` feature); empty for the first with a card.
        #[arg(long)]
        reader: Option<String>,
        /// Certificate types to issue (e.g. RESIDENT_RECORD, or several separated by commas);
        /// default: ask.
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// Where the PDFs go.
        #[arg(long, default_value = "terminal-out")]
        out: PathBuf,
        /// What the simulated printer does: `ok` prints every document, `fail` prints none
        /// (reported FAILED), `partial` prints the first document only (PARTLY_PRINTED).
        #[arg(long, value_enum, default_value_t = Printer::Ok)]
        printer: Printer,
        /// FOR AUTOMATED RUNS ONLY (tests, the conformance kit): read the PIN from this
        /// environment variable instead of the prompt. The PIN still goes to the card only.
        #[arg(long, value_name = "VAR")]
        pin_from_env: Option<String>,
    },
    /// Run N terminals through the whole flow and report throughput and latency.
    Load {
        /// Directory of software card files (e.g. .kiosk-data/cards).
        #[arg(long)]
        cards: PathBuf,
        /// Bindings file(s) naming each card's resident (JSON Lines from the issuer).
        #[arg(long)]
        bindings: Vec<PathBuf>,
        /// Concurrent terminals.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Issuances in total.
        #[arg(long, default_value_t = 500)]
        issuances: usize,
        /// Arrivals per second (open loop); omit for closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Certificate type to order.
        #[arg(long = "type", default_value = "RESIDENT_RECORD_ITEMS")]
        certificate_type: String,
        /// Share of prints reported as failed.
        #[arg(long, default_value_t = 0.0)]
        print_failures: f64,
    },
}

/// What the simulated printer does with the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Printer {
    /// Every document prints.
    Ok,
    /// Nothing prints.
    Fail,
    /// The first document prints, then the printer fails.
    Partial,
}

/// How `issue` gets the PIN and what the printer does: the parts of a kiosk the command
/// line simulates.
struct Kiosk {
    pin_from_env: Option<String>,
    printer: Printer,
}

/// Tries of one order's Issue (the first and two retries with the same request id) before
/// the terminal gives up on it.
const ISSUE_ATTEMPTS: u32 = 3;

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = TerminalTls::from_pki_dir(&cli.pki, &cli.terminal, &cli.server_name)?;
    let terminal = Terminal::new(connect(&cli.gateway, &tls).await?);
    match cli.command {
        Command::Issue {
            card,
            reader,
            types,
            out,
            printer,
            pin_from_env,
        } => {
            let kiosk = Kiosk {
                pin_from_env,
                printer,
            };
            issue(&terminal, card, reader, types, &out, &kiosk).await
        }
        Command::Load {
            cards,
            bindings,
            concurrency,
            issuances,
            rate,
            certificate_type,
            print_failures,
        } => {
            let t = pb::CertificateType::from_str_name(&certificate_type)
                .context("unknown certificate type")?;
            let mut terminals = Vec::new();
            for _ in 0..concurrency.clamp(1, 8) {
                // Several connections, as several kiosks would have.
                terminals.push(Terminal::new(connect(&cli.gateway, &tls).await?));
            }
            let cards = load_cards(&cards, &bindings)?;
            anyhow::ensure!(!cards.is_empty(), "no card files with bindings found");
            // Keep the residents who may obtain the type now, so the run measures issuances
            // rather than refusals (refusals still show up if eligibility changes mid-run).
            let mut eligible = Vec::new();
            for card in cards {
                let opened = terminal.open_session().await?;
                let proof = crate::login::sign_login(
                    kiosk_devkit::softcard::SoftTransport::new(card.card.clone()),
                    &card.pin,
                    &opened.challenge,
                    &opened.auth_context_bytes,
                )?;
                let menu = terminal
                    .authenticate(&opened.session_id, proof.certificate, proof.signature)
                    .await?;
                terminal.close_session(&opened.session_id).await?;
                if menu
                    .entries
                    .iter()
                    .any(|e| e.r#type == t as i32 && e.available)
                {
                    eligible.push(card);
                }
            }
            anyhow::ensure!(
                !eligible.is_empty(),
                "no resident may obtain {certificate_type} now"
            );
            println!("{} residents may obtain {certificate_type}", eligible.len());
            let cards = eligible;
            let options = LoadOptions {
                concurrency,
                issuances,
                rate,
                items: vec![pb::RequestItem {
                    r#type: t as i32,
                    options: None,
                    subject_refs: Vec::new(),
                    copies: 1,
                }],
                print_failure_ratio: print_failures,
                issue_timeout: Duration::from_secs(30),
            };
            let report = load::run(
                terminals,
                cards,
                options,
                Arc::new(load::marker_owner_check),
            )
            .await;
            print!("{}", report.summary());
            anyhow::ensure!(
                report.owner_mismatches == 0,
                "documents of another resident were received"
            );
            Ok(())
        }
    }
}

fn load_cards(dir: &std::path::Path, bindings: &[PathBuf]) -> anyhow::Result<Vec<LoadCard>> {
    let mut out = Vec::new();
    for file in bindings {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (Some(card_file), Some(resident_ref)) = (
                json_field(line, "card_file"),
                json_field(line, "resident_ref"),
            ) else {
                continue;
            };
            let card = SoftCard::load(&dir.join(card_file))
                .with_context(|| format!("card {card_file}"))?;
            out.push(LoadCard {
                card,
                pin: Pin::parse("1234")?,
                resident_ref: resident_ref.to_owned(),
            });
        }
    }
    Ok(out)
}

/// A string field of a flat JSON object line (the bindings format).
fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":\"");
    let start = line.find(&needle)? + needle.len();
    let end = start + line[start..].find('"')?;
    Some(&line[start..end])
}

fn prompt(question: &str) -> anyhow::Result<String> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn show(error: &TerminalError) -> String {
    match error {
        TerminalError::Refused { ja, en, reason, .. } => format!("{ja}\n{en}\n({reason})"),
        // Card reasons are in the contract's table too, with the texts a kiosk shows; the
        // detail adds what the card said (tries left), never the PIN.
        TerminalError::Card { reason, detail } => match kiosk_proto::reasons::find(reason) {
            Some(entry) => format!("{}\n{}\n({reason}: {detail})", entry.ja, entry.en),
            None => error.to_string(),
        },
        other => other.to_string(),
    }
}

async fn issue(
    terminal: &Terminal,
    card: Option<PathBuf>,
    reader: Option<String>,
    types: Vec<String>,
    out: &std::path::Path,
    kiosk: &Kiosk,
) -> anyhow::Result<()> {
    let opened = terminal
        .open_session()
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    let result = issue_in_session(terminal, &opened, card, reader, types, out, kiosk).await;
    if result.is_err() {
        // Whatever went wrong, the session ends now rather than at its idle timeout, so the
        // next resident starts clean. Best effort: the original error is what the user sees.
        let _ = terminal.close_session(&opened.session_id).await;
    }
    result
}

/// Everything after `OpenSession`; the caller closes the session if this fails.
async fn issue_in_session(
    terminal: &Terminal,
    opened: &pb::OpenSessionResponse,
    card: Option<PathBuf>,
    reader: Option<String>,
    types: Vec<String>,
    out: &std::path::Path,
    kiosk: &Kiosk,
) -> anyhow::Result<()> {
    refuse_if_closed(opened)?;
    let proof = card_login(opened, card, reader, kiosk.pin_from_env.as_deref())?;
    let menu = terminal
        .authenticate(&opened.session_id, proof.certificate, proof.signature)
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    show_menu(&menu);
    let items = choose(&menu, &types)?;
    let quote = terminal
        .quote(&opened.session_id, items.clone())
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    println!("合計 / total: {} 円", quote.total_fee_yen);
    let request_id = format!(
        "cli-{}",
        &opened.session_id[2..opened.session_id.len().min(34)]
    );
    let issued = issue_with_retries(terminal, opened, &request_id, items, quote.total_fee_yen)
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    let printed = match kiosk.printer {
        Printer::Ok => &issued.documents[..],
        Printer::Fail => &[],
        Printer::Partial => &issued.documents[..issued.documents.len().min(1)],
    };
    print_documents(printed, out)?;
    report_print(terminal, opened, &issued, kiosk.printer).await?;
    terminal
        .close_session(&opened.session_id)
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    Ok(())
}

/// Issue, retried as docs/terminal-integration.md section 4 says: after a timeout, a broken or
/// corrupt stream, `OVERLOADED` or `UNAVAILABLE`, again with the same request id (never a new
/// one, which would be a second order), up to [`ISSUE_ATTEMPTS`] tries. When the terminal
/// gives up on an issuance whose header it saw, it reports FAILED with nothing collected
/// (payment is taken only after the documents arrived), so it is voided rather than left
/// unconfirmed.
async fn issue_with_retries(
    terminal: &Terminal,
    opened: &pb::OpenSessionResponse,
    request_id: &str,
    items: Vec<pb::RequestItem>,
    total_fee_yen: u32,
) -> Result<Issued, TerminalError> {
    let mut header_seen = None;
    let mut attempt = 1;
    loop {
        let result = terminal
            .issue_observed(
                &opened.session_id,
                request_id,
                items.clone(),
                total_fee_yen,
                Duration::from_secs(30),
                &mut header_seen,
            )
            .await;
        let error = match result {
            Ok(issued) => return Ok(issued),
            Err(error) => error,
        };
        match retry_delay(&error) {
            Some(delay) if attempt < ISSUE_ATTEMPTS => {
                eprintln!(
                    "issue failed ({}); retrying with the same request id",
                    error.reason()
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            _ => {
                if let Some(header) = &header_seen {
                    let _ = terminal
                        .report_print(
                            &opened.session_id,
                            &header.issuance_id,
                            pb::PrintOutcome::Failed,
                            0,
                            "E-ISSUE-INCOMPLETE",
                        )
                        .await;
                }
                return Err(error);
            }
        }
    }
}

/// How long to wait before retrying a failed Issue, or `None` when the table of
/// docs/terminal-integration.md says not to retry: a refusal with another reason is final.
fn retry_delay(error: &TerminalError) -> Option<Duration> {
    use kiosk_proto::reasons::{ISSUER_UNAVAILABLE, OVERLOADED};
    match error {
        // A stream without its trailer, or a document whose size or SHA-256 is wrong.
        TerminalError::Integrity(_) => Some(Duration::from_millis(200)),
        TerminalError::Refused { code, reason, .. } => match code {
            tonic::Code::DeadlineExceeded => Some(Duration::from_millis(200)),
            // "wait one to two seconds and retry with the same id"
            tonic::Code::ResourceExhausted if reason == OVERLOADED.name => {
                Some(Duration::from_millis(1500))
            }
            // ISSUER_UNAVAILABLE, or a transport failure that carries no reason at all;
            // OUT_OF_SERVICE_HOURS and SERVICE_SUSPENDED are UNAVAILABLE too, and final.
            tonic::Code::Unavailable
                if reason == ISSUER_UNAVAILABLE.name || reason == "UNKNOWN" =>
            {
                Some(Duration::from_millis(1000))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Stops before asking for the PIN when the gateway says the service is closed, with its
/// message in both languages.
fn refuse_if_closed(opened: &pb::OpenSessionResponse) -> anyhow::Result<()> {
    if let Some(status) = &opened.service_status
        && status.state == pb::ServiceState::Closed as i32
    {
        let message = status.message.clone().unwrap_or_default();
        anyhow::bail!("{}\n{}", message.ja, message.en);
    }
    Ok(())
}

/// Asks for the PIN and has the card (a software card file, else a PC/SC reader) sign the
/// session's login message.
fn card_login(
    opened: &pb::OpenSessionResponse,
    card: Option<PathBuf>,
    reader: Option<String>,
    pin_from_env: Option<&str>,
) -> anyhow::Result<card::login::LoginProof> {
    // The PIN is read without echo (or, in an automated run, from the variable named) and
    // handed to the card; it is never sent anywhere else.
    let pin_text = match pin_from_env {
        Some(var) => std::env::var(var).with_context(|| format!("{var} holds no PIN"))?,
        None => rpassword::prompt_password("暗証番号（4桁） / PIN (4 digits): ")?,
    };
    let pin = Pin::parse(pin_text.trim()).map_err(|_| anyhow::anyhow!("the PIN is 4 digits"))?;
    drop(pin_text);
    match (card, reader) {
        (Some(path), _) => {
            let mut transport = SoftTransport::new(SoftCard::load(&path)?);
            let result = crate::login::sign_login(
                &mut transport,
                &pin,
                &opened.challenge,
                &opened.auth_context_bytes,
            );
            // The software card keeps its PIN counter in its file, as a real card would.
            if transport.card_mut().take_counters_changed() {
                transport.card().card_file().save(&path)?;
            }
            result
        }
        (None, reader) => pcsc_login(reader, &pin, opened),
    }
    .map_err(|e| anyhow::anyhow!(show(&e)))
}

/// The menu, numbered from 1, with each entry's fee or why it is unavailable.
fn show_menu(menu: &pb::Menu) {
    println!("\n{}（{}）", menu.municipality_name, menu.municipality_code);
    for (i, entry) in menu.entries.iter().enumerate() {
        let state = if entry.available {
            format!("{} 円", entry.fee_yen)
        } else {
            let m = entry.unavailable_message.clone().unwrap_or_default();
            format!("× {}", m.ja)
        };
        println!("  [{}] {:<20} {state}", i + 1, entry.display_name);
    }
}

/// The order: the types given with `--type`, else the menu numbers typed at the prompt; one
/// copy each, about the resident, and for a tax certificate the newest year offered. An entry
/// the menu shows unavailable is left out, saying why (the rest of the menu stays usable).
fn choose(menu: &pb::Menu, types: &[String]) -> anyhow::Result<Vec<pb::RequestItem>> {
    let chosen: Vec<pb::CertificateType> = if types.is_empty() {
        let answer = prompt("番号を選んでください / choose (e.g. 1,3): ")?;
        answer
            .split(',')
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .filter_map(|n| menu.entries.get(n.wrapping_sub(1)))
            .filter_map(|e| pb::CertificateType::try_from(e.r#type).ok())
            .collect()
    } else {
        types
            .iter()
            .filter_map(|t| pb::CertificateType::from_str_name(t))
            .collect()
    };
    let chosen: Vec<pb::CertificateType> = chosen
        .into_iter()
        .filter(
            |t| match menu.entries.iter().find(|e| e.r#type == *t as i32) {
                Some(entry) if !entry.available => {
                    let why = entry.unavailable_message.clone().unwrap_or_default();
                    println!("{}: {} / {}", t.as_str_name(), why.ja, why.en);
                    false
                }
                _ => true,
            },
        )
        .collect();
    anyhow::ensure!(
        !chosen.is_empty(),
        "nothing chosen that the menu offers now"
    );
    Ok(chosen
        .iter()
        .map(|t| {
            let entry = menu.entries.iter().find(|e| e.r#type == *t as i32);
            pb::RequestItem {
                r#type: *t as i32,
                options: entry.and_then(|e| e.fiscal_years.first()).map(|year| {
                    pb::CertificateOptions {
                        fiscal_year: *year,
                        ..Default::default()
                    }
                }),
                subject_refs: Vec::new(),
                copies: 1,
            }
        })
        .collect())
}

/// "Prints": writes each document to `out` as `<serial>.pdf`.
fn print_documents(documents: &[Document], out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for document in documents {
        let path = out.join(format!("{}.pdf", document.serial));
        std::fs::write(&path, &document.pdf)?;
        println!(
            "  印刷 / printed: {} ({} page(s))",
            path.display(),
            document.page_count
        );
    }
    Ok(())
}

/// Reports what the printer did with the amount paid, and shows the issuance's state and any
/// refund due.
async fn report_print(
    terminal: &Terminal,
    opened: &pb::OpenSessionResponse,
    issued: &Issued,
    printer: Printer,
) -> anyhow::Result<()> {
    let (outcome, detail) = match printer {
        Printer::Ok => (pb::PrintOutcome::Printed, ""),
        Printer::Fail => (pb::PrintOutcome::Failed, "E-OPERATOR-TEST"),
        Printer::Partial => (pb::PrintOutcome::PartlyPrinted, "E-OPERATOR-TEST"),
    };
    let report = terminal
        .report_print(
            &opened.session_id,
            &issued.header.issuance_id,
            outcome,
            issued.header.total_fee_yen,
            detail,
        )
        .await
        .map_err(|e| anyhow::anyhow!(show(&e)))?;
    println!(
        "report: {} (refund {} 円)",
        pb::IssuanceState::try_from(report.state)
            .map(|s| s.as_str_name())
            .unwrap_or("?"),
        report.refund_due_yen
    );
    Ok(())
}

#[cfg(feature = "pcsc")]
fn pcsc_login(
    reader: Option<String>,
    pin: &Pin,
    opened: &pb::OpenSessionResponse,
) -> Result<card::login::LoginProof, TerminalError> {
    let card_error = |e: card::TransportError| crate::login::card_error(e.into());
    let context = card::pcsc::PcscContext::establish().map_err(card_error)?;
    let name = context
        .wait_for_card(
            reader.as_deref().filter(|r| !r.is_empty()),
            Duration::from_secs(60),
        )
        .map_err(card_error)?;
    let transport = context.connect(&name).map_err(card_error)?;
    crate::login::sign_login(
        transport,
        pin,
        &opened.challenge,
        &opened.auth_context_bytes,
    )
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_login(
    _reader: Option<String>,
    _pin: &Pin,
    _opened: &pb::OpenSessionResponse,
) -> Result<card::login::LoginProof, TerminalError> {
    Err(TerminalError::Connection(
        "built without the pcsc feature: pass --card FILE, or build with --features pcsc".into(),
    ))
}
