//! `kiosk-gateway demo`: the whole system once, in one process, with a report.
//!
//! It prepares a fresh embedded deployment in a temporary directory, serves the issuer as a
//! separate `IssuerService` on loopback with mutual TLS, starts the gateway with real TLS,
//! and drives the reference terminal (`kiosk-terminal`) with software cards through the
//! cases a kiosk meets: every certificate type for one family, a wrong PIN, a resident
//! blocked by a support measure, a print failure that voids its documents, public
//! verification of a printed and of a voided document, and the signed audit checkpoint.
//!
//! Time: store issuance follows service hours (6:30–23:00, 戸籍 on weekdays 9:00–17:00 JST).
//! So that the demo shows every type whenever it is run, its gateway clock reads the next
//! weekday at 10:00 JST (real time when it is already within hours); the report says which.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use card::jpki::JpkiCard;
use card::pin::Pin;
use kiosk_devkit::clock::office_hours_at;
use kiosk_devkit::softcard::{SoftCard, SoftTransport};
use kiosk_proto::v1 as pb;
use kiosk_terminal::client::{Terminal, TerminalError, TerminalTls, connect};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::Config;
use crate::provision::{self, Embedded};
use crate::route::IssuerDirectory;

pub use crate::clock::OffsetClock;

struct Demo {
    embedded: Embedded,
    terminal: Terminal,
    out: std::path::PathBuf,
    report: String,
    printed: Vec<(String, Vec<u8>)>,
    voided: Vec<(String, Vec<u8>)>,
}

fn load_card(embedded: &Embedded, resident_ref: &str) -> anyhow::Result<SoftCard> {
    let card = embedded
        .card_of(resident_ref)
        .context("no card file for the resident")?;
    Ok(SoftCard::load(&card.card_file)?)
}

fn type_name(t: i32) -> &'static str {
    pb::CertificateType::try_from(t)
        .map(|t| t.as_str_name())
        .unwrap_or("?")
}

impl Demo {
    /// Logs in with `card`, trying `wrong_pin` first when given. Returns the session and menu.
    async fn login(
        &mut self,
        card: SoftCard,
        wrong_pin: Option<&str>,
    ) -> anyhow::Result<(String, pb::Menu)> {
        let opened = self.terminal.open_session().await?;
        let pin = Pin::parse("1234")?;
        let wrong = wrong_pin.map(Pin::parse).transpose()?;
        let (challenge, context) = (opened.challenge.clone(), opened.auth_context_bytes.clone());
        let (proof, wrong_result) = tokio::task::spawn_blocking(move || {
            let mut session = JpkiCard::open(SoftTransport::new(card))?;
            let mut wrong_result = None;
            if let Some(wrong) = wrong {
                match session.verify_pin(&wrong) {
                    Ok(_) => anyhow::bail!("the wrong PIN was accepted"),
                    Err(failed) => {
                        wrong_result = Some(failed.error().to_string());
                        session = failed.into_card();
                    }
                }
            }
            let mut verified = session
                .verify_pin(&pin)
                .map_err(|f| anyhow::anyhow!("{}", f.error()))?;
            let proof = card::login::authenticate(&mut verified, &challenge, &context)?;
            Ok((proof, wrong_result))
        })
        .await??;
        if let Some(result) = wrong_result {
            let _ = writeln!(
                self.report,
                "  PIN_WRONG on the card: {result}; then the right PIN"
            );
        }
        let menu = self
            .terminal
            .authenticate(&opened.session_id, proof.certificate, proof.signature)
            .await?;
        Ok((opened.session_id, menu))
    }

    async fn issue(
        &mut self,
        session: &str,
        items: Vec<pb::RequestItem>,
        label: &str,
        outcome: pb::PrintOutcome,
    ) -> Result<(), TerminalError> {
        let quote = self.terminal.quote(session, items.clone()).await?;
        let request_id = format!("demo-{session}-{label}")
            .chars()
            .take(64)
            .collect::<String>();
        let issued = self
            .terminal
            .issue(
                session,
                &request_id,
                items,
                quote.total_fee_yen,
                Duration::from_secs(30),
            )
            .await?;
        let report = self
            .terminal
            .report_print(
                session,
                &issued.header.issuance_id,
                outcome,
                issued.header.total_fee_yen,
                if outcome == pb::PrintOutcome::Printed {
                    ""
                } else {
                    "E-PAPER-JAM"
                },
            )
            .await?;
        for document in &issued.documents {
            let name = format!(
                "{}-{}.pdf",
                type_name(document.certificate_type as i32),
                document.serial
            );
            let _ = std::fs::write(self.out.join(&name), &document.pdf);
            let _ = writeln!(
                self.report,
                "  {:<22} {} page(s)  serial {}  {} yen  -> {}  [{}]",
                type_name(document.certificate_type as i32),
                document.page_count,
                document.serial,
                issued.header.total_fee_yen,
                name,
                pb::IssuanceState::try_from(report.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?"),
            );
            if report.state == pb::IssuanceState::Voided as i32 {
                self.voided
                    .push((document.serial.clone(), document.pdf.clone()));
            } else {
                self.printed
                    .push((document.serial.clone(), document.pdf.clone()));
            }
        }
        if report.refund_due_yen > 0 {
            let _ = writeln!(self.report, "  refund due: {} yen", report.refund_due_yen);
        }
        Ok(())
    }
}

/// Runs the demo; returns the report.
pub async fn run(out: &Path, residents: u32) -> anyhow::Result<String> {
    crate::logging::init();
    std::fs::create_dir_all(out)?;
    let data = tempfile::tempdir()?;
    let (mut demo, servers) = start(data.path(), out, residents).await?;
    demo.family().await?;
    demo.wrong_pin_and_jam().await?;
    demo.support_measure().await?;
    demo.verification(&servers.url).await?;
    demo.audit_checkpoint(&servers.url).await?;
    let _ = writeln!(demo.report, "\nPDFs in {}", out.display());
    servers
        .gateway
        .shutdown(Duration::from_millis(0), Duration::from_secs(5))
        .await;
    servers.issuer.shutdown(Duration::from_secs(5)).await?;
    Ok(demo.report)
}

/// The demo's two servers on loopback.
struct Servers {
    gateway: crate::server::RunningServer,
    issuer: issuer::serve::RunningIssuer,
    url: String,
}

/// Prepares a fresh embedded deployment under `data`, serves its issuer as its own
/// `IssuerService` and the gateway routing to it, and connects the first development
/// terminal; the report starts with what was set up.
async fn start(data: &Path, out: &Path, residents: u32) -> anyhow::Result<(Demo, Servers)> {
    let config = Config {
        data_dir: data.to_owned(),
        listen: "127.0.0.1:0".parse()?,
        synthetic_residents: residents,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let clock = Arc::new(OffsetClock::starting_with(office_hours_at));
    let embedded = provision::prepare(&config, clock.as_ref()).await?;
    let prepared_in = started.elapsed();

    let issuer_server = provision::start_issuer_server(&embedded).await?;
    let issuer_addr = issuer_server.local_addr();
    let link = Arc::new(provision::remote_issuer_link(&embedded.pki, issuer_addr).await?);
    let mut directory = IssuerDirectory::new();
    for code in &config.municipalities {
        directory.insert(code, link.clone());
    }
    let shifted = clock.shifted();
    let parts = embedded.server_parts(&config, clock.clone(), directory)?;
    provision::record_start(&embedded.store, clock.as_ref()).await?;
    let server = crate::server::start(parts, config.listen).await?;
    let url = format!("https://{}", server.local_addr());
    let tls = TerminalTls::from_pki_dir(
        embedded.pki.dir(),
        "terminal-seven-131016-0042-k1",
        "localhost",
    )?;
    let terminal = Terminal::new(connect(&url, &tls).await?);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "kiosk-gateway demo\n  profile: dev: the embedded development deployment, TEST ONLY\n  register: {residents} synthetic residents of 千代田区 (131016), prepared in {:.1} s\n  gateway {url} (mutual TLS), issuer {issuer_addr} (mutual TLS)\n  clock: {}\n",
        prepared_in.as_secs_f64(),
        if shifted {
            "shifted to the next weekday 10:00 JST so every type is within its service hours"
        } else {
            "real time"
        }
    );
    let demo = Demo {
        embedded,
        terminal,
        out: out.to_owned(),
        report,
        printed: Vec::new(),
        voided: Vec::new(),
    };
    let servers = Servers {
        gateway: server,
        issuer: issuer_server,
        url,
    };
    Ok((demo, servers))
}

/// A 住民票の写し of the applicant alone.
fn resident_record() -> pb::RequestItem {
    pb::RequestItem {
        r#type: pb::CertificateType::ResidentRecord as i32,
        options: None,
        subject_refs: Vec::new(),
        copies: 1,
    }
}

/// The item that orders what a menu entry offers, with the options it needs.
fn item_for(entry: &pb::MenuEntry) -> pb::RequestItem {
    let mut item = pb::RequestItem {
        r#type: entry.r#type,
        options: None,
        subject_refs: Vec::new(),
        copies: 1,
    };
    if entry.r#type == pb::CertificateType::ResidentRecord as i32 {
        item.subject_refs = entry.selectable_subject_refs.clone();
        item.options = Some(pb::CertificateOptions {
            include_household_head: true,
            ..Default::default()
        });
    }
    if let Some(year) = entry.fiscal_years.first() {
        item.options = Some(pb::CertificateOptions {
            fiscal_year: *year,
            ..Default::default()
        });
    }
    item
}

impl Demo {
    /// The `n`th example of a blocking case in the register.
    fn example(&self, case: &str, n: usize) -> anyhow::Result<String> {
        self.embedded
            .examples
            .get(case)
            .and_then(|v| v.get(n))
            .cloned()
            .with_context(|| format!("the register has no {case} example"))
    }

    /// 1. A family: every certificate type the menu offers.
    async fn family(&mut self) -> anyhow::Result<()> {
        let family = self.example("Family", 0)?;
        let _ = writeln!(
            self.report,
            "1. a resident of a family household: every type on the menu"
        );
        let (session, menu) = self
            .login(load_card(&self.embedded, &family)?, None)
            .await?;
        for entry in &menu.entries {
            if !entry.available {
                let _ = writeln!(
                    self.report,
                    "  {:<22} refused: {}",
                    type_name(entry.r#type),
                    entry.unavailable_reason
                );
                continue;
            }
            let label = type_name(entry.r#type).to_lowercase();
            if let Err(error) = self
                .issue(
                    &session,
                    vec![item_for(entry)],
                    &label,
                    pb::PrintOutcome::Printed,
                )
                .await
            {
                let _ = writeln!(
                    self.report,
                    "  {:<22} refused: {}",
                    type_name(entry.r#type),
                    error.reason()
                );
            }
        }
        self.terminal.close_session(&session).await?;
        Ok(())
    }

    /// 2. A wrong PIN, then a print failure that voids the documents.
    async fn wrong_pin_and_jam(&mut self) -> anyhow::Result<()> {
        let second = self
            .example("Family", 1)
            .or_else(|_| self.example("FormerSurname", 0))?;
        let _ = writeln!(
            self.report,
            "\n2. another resident: a wrong PIN first, then the printer jams"
        );
        let (session, _) = self
            .login(load_card(&self.embedded, &second)?, Some("9999"))
            .await?;
        if let Err(error) = self
            .issue(
                &session,
                vec![resident_record()],
                "jam",
                pb::PrintOutcome::Failed,
            )
            .await
        {
            let _ = writeln!(self.report, "  refused: {}", error.reason());
        }
        self.terminal.close_session(&session).await?;
        Ok(())
    }

    /// 3. A resident under a support measure: greyed out on the menu, refused at Issue.
    async fn support_measure(&mut self) -> anyhow::Result<()> {
        let blocked = self.example("SupportMeasure", 0)?;
        let _ = writeln!(
            self.report,
            "\n3. a resident under a support measure (DV等支援措置)"
        );
        let (session, menu) = self
            .login(load_card(&self.embedded, &blocked)?, None)
            .await?;
        let refused: Vec<String> = menu
            .entries
            .iter()
            .filter(|e| !e.available)
            .map(|e| format!("{} ({})", type_name(e.r#type), e.unavailable_reason))
            .collect();
        let _ = writeln!(self.report, "  menu greys out: {}", refused.join(", "));
        match self
            .issue(
                &session,
                vec![resident_record()],
                "blocked",
                pb::PrintOutcome::Printed,
            )
            .await
        {
            Ok(()) => anyhow::bail!("a resident under a support measure was issued a 住民票"),
            Err(error) => {
                let _ = writeln!(self.report, "  Issue refused: {}", error.reason());
            }
        }
        self.terminal.close_session(&session).await?;
        Ok(())
    }

    /// 4. Anyone can verify a printed document; a voided one says so.
    async fn verification(&mut self, url: &str) -> anyhow::Result<()> {
        let _ = writeln!(
            self.report,
            "\n4. public verification (VerifyService, no client certificate)"
        );
        let verify_channel = Endpoint::from_shared(url.to_owned())?
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(std::fs::read(
                        self.embedded.pki.cert_path("server-ca"),
                    )?))
                    .domain_name("localhost"),
            )?
            .connect()
            .await?;
        let mut verifier = pb::verify_service_client::VerifyServiceClient::new(verify_channel)
            .max_decoding_message_size(16 << 20);
        for (label, docs) in [
            ("printed", self.printed.first().cloned()),
            ("voided", self.voided.first().cloned()),
        ] {
            let Some((serial, pdf)) = docs else { continue };
            let answer = verifier
                .verify_document(pb::VerifyDocumentRequest {
                    document: Some(pb::verify_document_request::Document::Pdf(pdf)),
                })
                .await?
                .into_inner();
            let _ = writeln!(
                self.report,
                "  {label} {serial}: {} (PDF signature {})",
                pb::Validity::try_from(answer.validity)
                    .map(|v| v.as_str_name())
                    .unwrap_or("?"),
                if answer.pdf_signature_valid {
                    "valid"
                } else {
                    "not valid"
                }
            );
        }
        Ok(())
    }

    /// 5. The audit log's signed checkpoint, as an auditor sees it.
    async fn audit_checkpoint(&mut self, url: &str) -> anyhow::Result<()> {
        let pki = self.embedded.pki.dir().to_owned();
        let auditor_channel = Endpoint::from_shared(url.to_owned())?
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(std::fs::read(
                        pki.join("server-ca.crt.pem"),
                    )?))
                    .identity(Identity::from_pem(
                        std::fs::read(pki.join("auditor.crt.pem"))?,
                        std::fs::read(pki.join("auditor.key.pem"))?,
                    ))
                    .domain_name("localhost"),
            )?
            .connect()
            .await?;
        let mut auditor = pb::audit_service_client::AuditServiceClient::new(auditor_channel);
        let anomalies = auditor
            .list_anomalies(pb::ListAnomaliesRequest {
                include_resolved: false,
            })
            .await?
            .into_inner()
            .anomalies;
        let checkpoint = auditor
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await?
            .into_inner();
        let _ = writeln!(
            self.report,
            "\n5. audit log: {} events; open anomalies: {}\n  signed checkpoint:\n{}",
            checkpoint.tree_size,
            anomalies.len(),
            checkpoint
                .signed_note
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }
}
