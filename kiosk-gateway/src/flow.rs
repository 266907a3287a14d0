//! The issuance flow: sessions, card authentication, issuing, print outcomes and deadlines.
//!
//! This is the gateway's domain core, free of protobuf except where it forwards the issuer's
//! `IssuerService` messages. Every state change commits with its audit event in one
//! transaction ([`Store::begin_write`] + `audit::store::append`), and every refusal that
//! matters to an auditor is itself recorded.
//!
//! The 2023 incidents (docs/domain.md section 5) shaped these rules:
//! - documents are bound to their own issuance, session and resident: nothing is looked up
//!   from a shared queue, and an idempotent retry returns exactly what its own request
//!   produced;
//! - a timeout or failure voids the whole issuance and never advances to another;
//! - before release, every page's subject marker is read back from the PDF bytes and compared
//!   with the authenticated resident and the members the menu offered;
//! - eligibility is the issuer's, decided in its transaction on the current register.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use audit::event::{
    Actor, AnomalyKind, Event, EventType, Fact, Ident, IssuanceFacts, MunicipalityCode,
    PrintOutcome, Pseudonym, Pseudonymizer, ReasonCode, UnixMillis,
};
use kiosk_proto::v1 as pb;
use prost::Message;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::AnyConnection;
use tokio::sync::Semaphore;

use crate::cardauth::CardVerifier;
use crate::error::GatewayError;
use crate::identity::TerminalIdentity;
use crate::route::{IssuerDirectory, IssuerLink};
use crate::service::timestamp;
use crate::store::{
    self, CardBinding, IssuanceRow, IssuanceState, SessionRow, SessionState, Store,
};

pub use crate::clock::{Clock, SystemClock};

/// Timings and limits of the flow.
#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// This gateway's id, bound into every login signature.
    pub gateway_id: String,
    /// How long a challenge is accepted.
    pub challenge_ttl: Duration,
    /// How long a session lives.
    pub session_ttl: Duration,
    /// How long a terminal has to report the print outcome.
    pub print_window: Duration,
    /// The longest an issuer may take to render an order.
    pub render_timeout: Duration,
    /// Issuances rendered at once; beyond this Issue answers OVERLOADED.
    pub max_concurrent_issuances: usize,
    /// Most items per order.
    pub max_items: usize,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            gateway_id: "gw-dev-01".into(),
            challenge_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(600),
            print_window: Duration::from_secs(300),
            render_timeout: Duration::from_secs(20),
            max_concurrent_issuances: 64,
            max_items: 10,
        }
    }
}

/// A session just opened.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session id.
    pub session_id: String,
    /// The 32-byte challenge.
    pub challenge: Vec<u8>,
    /// The canonical authentication context the card signs over.
    pub context: Vec<u8>,
    /// This gateway's id.
    pub gateway_id: String,
    /// The terminal id.
    pub terminal_id: String,
    /// When the challenge expires (unix ms).
    pub challenge_expires_at: i64,
    /// When the session expires (unix ms).
    pub session_expires_at: i64,
    /// `None` when open; otherwise the reason it is closed.
    pub closed_reason: Option<&'static str>,
}

/// An issuance ready to stream: its header facts and documents.
#[derive(Debug, Clone)]
pub struct ReleasedIssuance {
    /// The stored issuance.
    pub issuance: IssuanceRow,
    /// Its documents with their PDFs, in order.
    pub documents: Vec<store::IssuedDocument>,
    /// True when a retry returned an issuance recorded earlier.
    pub replayed: bool,
}

/// The answer to a print report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintReport {
    /// The issuance's state after the report.
    pub state: IssuanceState,
    /// Yen to return.
    pub refund_due_yen: i64,
    /// Serials now void.
    pub voided_serials: Vec<String>,
}

/// Reads each page's `(issuance id, subject refs)` marker back from a PDF's bytes. The gateway
/// trusts only what it reads from the document itself, not the issuer's claim about it.
pub type PageMarkerReader = fn(&[u8]) -> Result<Vec<(String, Vec<String>)>, String>;

/// Checks a PDF's embedded signature against a municipality's document-signing certificate
/// (DER), so the markers read back are the ones the municipality signed.
pub type PdfSignatureCheck = fn(pdf: &[u8], signer_cert_der: &[u8]) -> bool;

/// What the flow checks in every document before release.
#[derive(Clone)]
pub struct DocumentChecks {
    /// Reads the page markers.
    pub page_markers: PageMarkerReader,
    /// Verifies the PDF signature.
    pub pdf_signature: PdfSignatureCheck,
    /// Each municipality's document-signing certificate (DER), by code.
    pub signing_certs: std::collections::HashMap<String, Vec<u8>>,
}

/// What a retried Issue brings to [`Flow::replay`].
struct Retry<'a> {
    session_id: &'a str,
    /// The retry's order digest, compared with the recorded one.
    digest: &'a [u8],
    /// The retry's items (equal to the recorded order's when the digests match).
    items: &'a [pb::RequestItem],
    /// The subjects the session's menu offered, for the page-marker check.
    allowed: &'a [String],
    deadline: Option<Duration>,
}

/// The gateway's flow over its store, card verifier and issuers.
pub struct Flow {
    checks: DocumentChecks,
    store: Store,
    cards: Arc<CardVerifier>,
    issuers: IssuerDirectory,
    pseudonyms: Pseudonymizer,
    settings: FlowSettings,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    rendering: Semaphore,
}

fn ident(value: &str) -> Result<Ident, GatewayError> {
    Ident::parse(value).map_err(|e| GatewayError::Internal(format!("audit identifier: {e}")))
}

fn municipality_code(value: &str) -> Result<MunicipalityCode, GatewayError> {
    MunicipalityCode::parse(value)
        .map_err(|e| GatewayError::Internal(format!("audit municipality: {e}")))
}

fn reason_code(reason: &str) -> Result<ReasonCode, GatewayError> {
    ReasonCode::parse(reason).map_err(|e| GatewayError::Internal(format!("audit reason: {e}")))
}

async fn append(conn: &mut AnyConnection, event: &Event) -> Result<u64, GatewayError> {
    let appended = audit::store::append(conn, event)
        .await
        .map_err(|e| GatewayError::Internal(format!("audit append: {e}")))?;
    Ok(appended.index)
}

/// Appends events in order as one batch: one lock of the log's head and one multi-row insert,
/// where appending them one by one costs three statements each.
async fn append_all(conn: &mut AnyConnection, events: &[Event]) -> Result<(), GatewayError> {
    audit::store::append_batch(conn, events)
        .await
        .map_err(|e| GatewayError::Internal(format!("audit append: {e}")))?;
    Ok(())
}

impl Flow {
    /// A flow over these parts.
    pub fn new(
        checks: DocumentChecks,
        store: Store,
        cards: Arc<CardVerifier>,
        issuers: IssuerDirectory,
        pseudonyms: Pseudonymizer,
        settings: FlowSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rendering = Semaphore::new(settings.max_concurrent_issuances);
        Flow {
            checks,
            store,
            cards,
            issuers,
            pseudonyms,
            settings,
            clock,
            rng: SystemRandom::new(),
            rendering,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The card verifier (its CRL can be replaced while running).
    pub fn cards(&self) -> &CardVerifier {
        &self.cards
    }

    /// The settings.
    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    /// The deployment clock the flow judges by.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The current time in unix ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn random_id(&self, prefix: &str) -> Result<String, GatewayError> {
        let mut bytes = [0u8; 16];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| GatewayError::Internal("random source failed".into()))?;
        Ok(format!("{prefix}{}", hex::encode(bytes)))
    }

    fn pseudonym(&self, resident_ref: &str) -> Pseudonym {
        self.pseudonyms.pseudonymize(resident_ref.as_bytes())
    }

    /// Opens a session for `terminal` with a fresh single-use challenge.
    pub async fn open_session(
        &self,
        terminal: &TerminalIdentity,
    ) -> Result<OpenedSession, GatewayError> {
        let now = self.now_ms();
        let terminal_id = terminal.id();
        let session_id = self.random_id("s-")?;
        let mut challenge = vec![0u8; 32];
        self.rng
            .fill(&mut challenge)
            .map_err(|_| GatewayError::Internal("random source failed".into()))?;
        let context =
            card::login::context_bytes(&self.settings.gateway_id, &terminal_id, &session_id)
                .ok_or_else(|| GatewayError::Internal("authentication context".into()))?;
        let row = SessionRow {
            session_id: session_id.clone(),
            terminal_id: terminal_id.clone(),
            challenge: challenge.clone(),
            challenge_expires_at: now + self.settings.challenge_ttl.as_millis() as i64,
            challenge_used: false,
            state: SessionState::Open,
            municipality_code: None,
            resident_ref: None,
            allowed_subjects: Vec::new(),
            expires_at: now + self.settings.session_ttl.as_millis() as i64,
            created_at: now,
        };
        let mut tx = self.store.begin_write().await?;
        let (status, kill_switch) = store::terminal_gate(&mut tx, &terminal_id).await?;
        check_terminal(status)?;
        let closed_reason = kill_switch.then_some("SERVICE_SUSPENDED");
        store::insert_session(&mut tx, &row).await?;
        let event =
            Event::session_opened(UnixMillis(now), ident(&terminal_id)?, ident(&session_id)?)
                .with_fact(Fact::Chain(ident(terminal.chain())?))
                .with_fact(Fact::Store(ident(terminal.store())?));
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(OpenedSession {
            session_id,
            challenge,
            context,
            gateway_id: self.settings.gateway_id.clone(),
            terminal_id,
            challenge_expires_at: row.challenge_expires_at,
            session_expires_at: row.expires_at,
            closed_reason,
        })
    }

    /// The session `session_id` if it belongs to `terminal` and has not expired. Another
    /// terminal's session is reported as not found, so session ids cannot be probed.
    async fn owned_session(
        &self,
        conn: &mut AnyConnection,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<SessionRow, GatewayError> {
        let session = store::session(conn, session_id).await?;
        self.check_owned(terminal, session)
    }

    /// `session` if it exists, belongs to `terminal` and has not expired (see
    /// [`Flow::owned_session`]).
    fn check_owned(
        &self,
        terminal: &TerminalIdentity,
        session: Option<SessionRow>,
    ) -> Result<SessionRow, GatewayError> {
        let not_found = || GatewayError::refused("SESSION_NOT_FOUND", "no such session");
        let session = session.ok_or_else(not_found)?;
        if session.terminal_id != terminal.id() {
            return Err(not_found());
        }
        if session.state == SessionState::Closed {
            return Err(GatewayError::refused("SESSION_STATE", "session is closed"));
        }
        if self.now_ms() >= session.expires_at {
            return Err(GatewayError::refused("SESSION_EXPIRED", "session expired"));
        }
        Ok(session)
    }

    async fn record_auth_failure(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        reason: &'static str,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        // A failed attempt burns the challenge: one signature check per challenge.
        store::consume_challenge(&mut tx, session_id).await?;
        let event = Event::card_auth_failed(
            UnixMillis(self.now_ms()),
            ident(&terminal.id())?,
            ident(session_id)?,
            reason_code(reason)?,
        );
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Verifies the card and returns the resident's menu.
    pub async fn authenticate(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        certificate: &[u8],
        signature: &[u8],
    ) -> Result<pb::Menu, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let session = self.owned_session(&mut conn, terminal, session_id).await?;
        drop(conn);
        if session.state != SessionState::Open {
            return Err(GatewayError::refused(
                "SESSION_STATE",
                "session already authenticated",
            ));
        }
        if session.challenge_used {
            return Err(GatewayError::refused(
                "CHALLENGE_USED",
                "challenge already used",
            ));
        }
        let now = self.now_ms();
        if now >= session.challenge_expires_at {
            self.record_auth_failure(terminal, session_id, "CHALLENGE_EXPIRED")
                .await?;
            return Err(GatewayError::refused(
                "CHALLENGE_EXPIRED",
                "challenge expired",
            ));
        }
        let context =
            card::login::context_bytes(&self.settings.gateway_id, &session.terminal_id, session_id)
                .ok_or_else(|| GatewayError::Internal("authentication context".into()))?;
        let verified = match self.cards.verify(
            certificate,
            signature,
            &context,
            &session.challenge,
            u64::try_from(now / 1000).unwrap_or(0),
        ) {
            Ok(verified) => verified,
            Err(error) => {
                self.record_auth_failure(terminal, session_id, error.reason())
                    .await?;
                return Err(error);
            }
        };
        let mut conn = self.store.pool().acquire().await?;
        let binding =
            store::card_binding_served(&mut conn, verified.issuer(), verified.serial()).await?;
        drop(conn);
        let Some((binding, served)) = binding else {
            self.record_auth_failure(terminal, session_id, "CARD_UNKNOWN")
                .await?;
            return Err(GatewayError::refused("CARD_UNKNOWN", "card is not bound"));
        };
        let Some(issuer) = self
            .issuers
            .get(&binding.municipality_code)
            .filter(|_| served)
        else {
            self.record_auth_failure(terminal, session_id, "MUNICIPALITY_NOT_SERVED")
                .await?;
            return Err(GatewayError::refused(
                "MUNICIPALITY_NOT_SERVED",
                "municipality not served",
            ));
        };
        let menu = issuer
            .get_menu(pb::IssuerMenuRequest {
                municipality_code: binding.municipality_code.clone(),
                resident_ref: binding.resident_ref.clone(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?
            .menu
            .ok_or_else(|| GatewayError::Internal("issuer returned no menu".into()))?;
        let mut allowed: Vec<String> = menu.members.iter().map(|m| m.subject_ref.clone()).collect();
        if !allowed.contains(&binding.resident_ref) {
            allowed.push(binding.resident_ref.clone());
        }

        let pseudonym = self.pseudonym(&binding.resident_ref);
        let mut tx = self.store.begin_write().await?;
        // One compare-and-set: the challenge is single-use under concurrent calls, and a
        // session closed meanwhile is not authenticated behind the terminal's back.
        if !store::consume_challenge_and_authenticate(&mut tx, session_id, &binding, &allowed)
            .await?
        {
            return Err(GatewayError::refused(
                "CHALLENGE_USED",
                "challenge already used",
            ));
        }
        let now = UnixMillis(self.now_ms());
        let terminal_ident = ident(&terminal.id())?;
        let passed =
            Event::card_auth_passed(now, terminal_ident.clone(), ident(session_id)?, pseudonym)
                .with_municipality(municipality_code(&binding.municipality_code)?);
        let shown = Event::new(
            now,
            EventType::MenuShown,
            Actor::Terminal(terminal_ident.clone()),
        )
        .with_terminal(terminal_ident)
        .with_session(ident(session_id)?)
        .with_resident(pseudonym)
        .with_municipality(municipality_code(&binding.municipality_code)?);
        append_all(&mut tx, &[passed, shown]).await?;
        tx.commit().await?;
        Ok(menu)
    }

    /// The card binding of an authenticated session of `terminal`, and its municipality's
    /// issuer.
    async fn session_issuer(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<(CardBinding, Arc<dyn IssuerLink>), GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let session = self.owned_session(&mut conn, terminal, session_id).await?;
        drop(conn);
        let (binding, _) = authenticated(&session)?;
        let issuer = self
            .issuers
            .get(&binding.municipality_code)
            .ok_or_else(|| GatewayError::refused("MUNICIPALITY_NOT_SERVED", "not served"))?;
        Ok((binding, issuer))
    }

    /// The menu of an authenticated session, decided now.
    pub async fn menu(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<pb::Menu, GatewayError> {
        let (binding, issuer) = self.session_issuer(terminal, session_id).await?;
        issuer
            .get_menu(pb::IssuerMenuRequest {
                municipality_code: binding.municipality_code.clone(),
                resident_ref: binding.resident_ref.clone(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?
            .menu
            .ok_or_else(|| GatewayError::Internal("issuer returned no menu".into()))
    }

    /// Prices an order from the current menu.
    pub async fn quote(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        items: &[pb::RequestItem],
    ) -> Result<Vec<(pb::RequestItem, u32)>, GatewayError> {
        self.validate_items(items)?;
        let (binding, issuer) = self.session_issuer(terminal, session_id).await?;
        // The issuer decides the order itself (eligibility, subjects, copies, options) on the
        // current register, as Render will; pricing from a menu decided all seven types for
        // the one or two that were asked for.
        let quoted = issuer
            .quote(pb::IssuerQuoteRequest {
                municipality_code: binding.municipality_code.clone(),
                requester_ref: binding.resident_ref.clone(),
                items: items.to_vec(),
                as_of: Some(timestamp(self.now_ms())),
            })
            .await
            .map_err(issuer_status)?;
        if quoted.fee_yen.len() != items.len() {
            return Err(GatewayError::Internal(
                "issuer priced another number of items".into(),
            ));
        }
        Ok(items.iter().cloned().zip(quoted.fee_yen).collect())
    }

    /// The order's shape (see `service::validate::order_items`): bounded work and a bounded
    /// answer however many items came.
    fn validate_items(&self, items: &[pb::RequestItem]) -> Result<(), GatewayError> {
        crate::service::validate::order_items(items, self.settings.max_items)
    }
}

/// Refuses a terminal that is not registered and active.
fn check_terminal(status: Option<store::TerminalStatus>) -> Result<(), GatewayError> {
    match status {
        Some(store::TerminalStatus::Active) => Ok(()),
        Some(store::TerminalStatus::Suspended) => Err(GatewayError::refused(
            "TERMINAL_SUSPENDED",
            "terminal is suspended",
        )),
        Some(store::TerminalStatus::Retired) => Err(GatewayError::refused(
            "TERMINAL_RETIRED",
            "terminal is retired",
        )),
        None => Err(GatewayError::refused(
            "TERMINAL_UNKNOWN",
            "terminal is not registered",
        )),
    }
}

fn authenticated(session: &SessionRow) -> Result<(CardBinding, &[String]), GatewayError> {
    match (
        &session.state,
        &session.municipality_code,
        &session.resident_ref,
    ) {
        (SessionState::Authenticated, Some(code), Some(resident)) => Ok((
            CardBinding {
                municipality_code: code.clone(),
                resident_ref: resident.clone(),
            },
            &session.allowed_subjects,
        )),
        _ => Err(GatewayError::refused(
            "SESSION_STATE",
            "session is not authenticated",
        )),
    }
}

/// Maps an issuer's status to the gateway's error, keeping the issuer's contract reason
/// (eligibility reasons reach the kiosk as the issuer decided them).
/// Logs why a retry's recorded documents were not sent, and refuses the retry.
fn replay_refused(issuance_id: &str, why: &'static str) -> GatewayError {
    tracing::error!(issuance = %issuance_id, why, "recorded documents not sent");
    GatewayError::refused(
        "SUBJECT_MISMATCH",
        "recorded documents could not be checked",
    )
}

fn issuer_status(status: tonic::Status) -> GatewayError {
    if status.code() == tonic::Code::DeadlineExceeded {
        return GatewayError::refused("TIMED_OUT", "issuer did not answer in time");
    }
    match kiosk_proto::reasons::reason_of(&status) {
        Some(reason) if reason.name != "INTERNAL_ERROR" => {
            GatewayError::refused(reason.name, status.message().to_owned())
        }
        _ => {
            tracing::warn!(code = ?status.code(), "issuer failed");
            GatewayError::refused("ISSUER_UNAVAILABLE", "issuer failed")
        }
    }
}

/// SHA-256 of the canonical order, so a retry is told from a reuse of the key.
pub fn request_digest(items: &[pb::RequestItem], expected_total_fee_yen: u32) -> Vec<u8> {
    let canonical = pb::IssueRequest {
        session_id: String::new(),
        client_request_id: String::new(),
        items: items.to_vec(),
        expected_total_fee_yen,
    }
    .encode_to_vec();
    digest(&SHA256, &canonical).as_ref().to_vec()
}

/// Checks every page's markers against the issuance and the allowed subjects. Returns the
/// first problem found.
pub fn check_page_subjects(
    issuance_id: &str,
    pages: &[(String, Vec<String>)],
    allowed: &BTreeSet<&str>,
) -> Result<(), String> {
    if pages.is_empty() {
        return Err("document has no marked pages".into());
    }
    for (index, (marked_issuance, subjects)) in pages.iter().enumerate() {
        if marked_issuance != issuance_id {
            return Err(format!("page {index} belongs to another issuance"));
        }
        if subjects.is_empty() {
            return Err(format!("page {index} names no subject"));
        }
        // The stranger's reference is not put in the message: it names a resident.
        if subjects.iter().any(|s| !allowed.contains(s.as_str())) {
            return Err(format!("page {index} names a subject outside the request"));
        }
    }
    Ok(())
}

/// What the printer did, as the flow sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintResult {
    /// Printed and paid.
    Printed,
    /// Nothing usable printed.
    Failed,
    /// Some documents printed, then a failure.
    PartlyPrinted,
}

impl PrintResult {
    fn audit(self) -> PrintOutcome {
        match self {
            PrintResult::Printed => PrintOutcome::Printed,
            PrintResult::Failed => PrintOutcome::Failed,
            PrintResult::PartlyPrinted => PrintOutcome::PartlyPrinted,
        }
    }
}

/// Validates an idempotency key: 16 to 64 characters of `[A-Za-z0-9._:-]`.
fn validate_request_id(id: &str) -> Result<(), GatewayError> {
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

fn audit_type(cert_type: &str) -> Result<audit::event::CertificateType, GatewayError> {
    audit::event::CertificateType::parse(cert_type)
        .map_err(|e| GatewayError::Internal(format!("audit certificate type: {e}")))
}

impl Flow {
    /// The audit facts of an issuance, one per certificate type it holds (settlement groups
    /// by type, so each type's count and fees travel in their own event).
    /// The PRINT_REPORTED events of an issuance, one per certificate type.
    fn print_reported(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
        when: UnixMillis,
        result: PrintResult,
    ) -> Result<Vec<Event>, GatewayError> {
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        Ok(self
            .facts(terminal, issuance, documents)?
            .iter()
            .map(|f| Event::print_reported(when, pseudonym, f, result.audit()))
            .collect())
    }

    fn facts<'a>(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: impl IntoIterator<Item = &'a store::DocumentRow>,
    ) -> Result<Vec<IssuanceFacts>, GatewayError> {
        let mut by_type: std::collections::BTreeMap<&str, (u32, u64)> = Default::default();
        for d in documents {
            let entry = by_type.entry(d.cert_type.as_str()).or_default();
            entry.0 += 1;
            entry.1 += u64::try_from(d.fee_yen).unwrap_or(0);
        }
        let base = |cert_type: &str, count: u32, fee: u64| -> Result<IssuanceFacts, GatewayError> {
            Ok(IssuanceFacts {
                terminal: ident(&terminal.id())?,
                chain: ident(terminal.chain())?,
                store: ident(terminal.store())?,
                municipality: municipality_code(&issuance.municipality_code)?,
                certificate_type: audit_type(cert_type)?,
                session: ident(&issuance.session_id)?,
                issuance: ident(&issuance.issuance_id)?,
                document_count: count,
                fee_yen: fee,
            })
        };
        by_type
            .into_iter()
            .map(|(cert_type, (count, fee))| base(cert_type, count, fee))
            .collect()
    }

    async fn refuse_issuance(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        resident: Pseudonym,
        municipality: &str,
        reason: &'static str,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let terminal_ident = ident(&terminal.id())?;
        let event = Event::new(
            UnixMillis(self.now_ms()),
            EventType::IssuanceRefused,
            Actor::Terminal(terminal_ident.clone()),
        )
        .with_terminal(terminal_ident)
        .with_session(ident(session_id)?)
        .with_resident(resident)
        .with_municipality(municipality_code(municipality)?)
        .with_reason(reason_code(reason)?);
        append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Issues an order: the issuer decides and renders, the gateway checks every page's subject,
    /// records the issuance with its audit events, and only then returns the documents.
    /// Idempotent by `client_request_id`.
    pub async fn issue(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        client_request_id: &str,
        items: &[pb::RequestItem],
        expected_total_fee_yen: u32,
        deadline: Option<Duration>,
    ) -> Result<ReleasedIssuance, GatewayError> {
        validate_request_id(client_request_id)?;
        self.validate_items(items)?;
        let order_digest = request_digest(items, expected_total_fee_yen);
        let terminal_id = terminal.id();

        let mut conn = self.store.pool().acquire().await?;
        // The idempotency key, the session and the kill switches in one statement.
        let (session, suspended_now) =
            match store::issue_lookup(&mut conn, session_id, &terminal_id, client_request_id)
                .await?
            {
                Some(store::IssueLookup {
                    existing: Some(existing),
                    session,
                    ..
                }) => {
                    let retry = Retry {
                        session_id,
                        digest: &order_digest,
                        items,
                        allowed: &session.allowed_subjects,
                        deadline,
                    };
                    return self.replay(conn, existing, retry).await;
                }
                Some(lookup) => (Some(lookup.session), lookup.suspended),
                None => {
                    // No such session: a key recorded under it cannot be this request's, but
                    // the answer stays what it was (a reused key is named as such).
                    if let Some(existing) =
                        store::issuance_by_request(&mut conn, &terminal_id, client_request_id)
                            .await?
                    {
                        let retry = Retry {
                            session_id,
                            digest: &order_digest,
                            items,
                            allowed: &[],
                            deadline,
                        };
                        return self.replay(conn, existing, retry).await;
                    }
                    (None, false)
                }
            };
        drop(conn);
        let session = self.check_owned(terminal, session)?;
        let (binding, allowed_subjects) = authenticated(&session)?;
        let pseudonym = self.pseudonym(&binding.resident_ref);
        let allowed: BTreeSet<&str> = allowed_subjects.iter().map(String::as_str).collect();
        for (index, item) in items.iter().enumerate() {
            if item
                .subject_refs
                .iter()
                .any(|s| !allowed.contains(s.as_str()))
            {
                self.refuse_issuance(
                    terminal,
                    session_id,
                    pseudonym,
                    &binding.municipality_code,
                    "NOT_PERMITTED_SUBJECT",
                )
                .await?;
                return Err(GatewayError::refused(
                    "NOT_PERMITTED_SUBJECT",
                    format!("items[{index}] names a subject outside the menu"),
                ));
            }
        }
        if suspended_now {
            self.refuse_issuance(
                terminal,
                session_id,
                pseudonym,
                &binding.municipality_code,
                "SERVICE_SUSPENDED",
            )
            .await?;
            return Err(GatewayError::refused(
                "SERVICE_SUSPENDED",
                "issuing is suspended",
            ));
        }
        let Ok(_permit) = self.rendering.try_acquire() else {
            return Err(GatewayError::refused(
                "OVERLOADED",
                "too many issuances at once",
            ));
        };
        let issuer = self
            .issuers
            .get(&binding.municipality_code)
            .ok_or_else(|| GatewayError::refused("MUNICIPALITY_NOT_SERVED", "not served"))?;

        let issuance_id = self.random_id("i-")?;
        let now = self.now_ms();
        let budget = deadline
            .map(|d| d.min(self.settings.render_timeout))
            .unwrap_or(self.settings.render_timeout);
        let rendered = issuer
            .render(
                pb::RenderRequest {
                    issuance_id: issuance_id.clone(),
                    municipality_code: binding.municipality_code.clone(),
                    requester_ref: binding.resident_ref.clone(),
                    items: items.to_vec(),
                    issued_at: Some(timestamp(now)),
                },
                budget,
            )
            .await;
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(status) => {
                let error = issuer_status(status);
                self.refuse_issuance(
                    terminal,
                    session_id,
                    pseudonym,
                    &binding.municipality_code,
                    error.reason(),
                )
                .await?;
                return Err(error);
            }
        };
        let serials: Vec<String> = rendered
            .documents
            .iter()
            .map(|d| d.serial.clone())
            .collect();

        let mut documents = Vec::new();
        let mut problem: Option<&'static str> = None;
        let mut total: i64 = 0;
        for (index, doc) in rendered.documents.into_iter().enumerate() {
            let pdf_sha256 = digest(&SHA256, &doc.pdf).as_ref().to_vec();
            let cert_type = pb::CertificateType::try_from(doc.r#type)
                .map(|t| t.as_str_name())
                .unwrap_or("CERTIFICATE_TYPE_UNSPECIFIED");
            let checked = self.document_passes(
                &binding.municipality_code,
                &issuance_id,
                &doc.pdf,
                doc.page_count,
                &allowed,
            );
            if !checked || pdf_sha256 != doc.pdf_sha256 {
                problem = Some("SUBJECT_MISMATCH");
            }
            total += i64::from(doc.fee_yen);
            documents.push(store::IssuedDocument {
                record: store::DocumentRow {
                    serial: doc.serial.clone(),
                    issuance_id: issuance_id.clone(),
                    doc_index: index as i64,
                    cert_type: cert_type.to_owned(),
                    page_count: i64::from(doc.page_count),
                    fee_yen: i64::from(doc.fee_yen),
                    pdf_sha256,
                    content_digest: doc.content_digest.clone(),
                    status: "issued".into(),
                    issued_at: now,
                },
                pdf: doc.pdf,
            });
        }
        if documents.is_empty() {
            problem = Some("SUBJECT_MISMATCH");
        }
        if problem.is_none() && total != i64::from(expected_total_fee_yen) {
            problem = Some("FEE_MISMATCH");
        }

        let mut issuance = IssuanceRow {
            issuance_id: issuance_id.clone(),
            session_id: session_id.to_owned(),
            terminal_id: terminal_id.clone(),
            client_request_id: client_request_id.to_owned(),
            request_digest: order_digest,
            municipality_code: binding.municipality_code.clone(),
            resident_ref: binding.resident_ref.clone(),
            state: IssuanceState::Released,
            total_fee_yen: total,
            collected_yen: None,
            refund_due_yen: None,
            print_deadline: now + self.settings.print_window.as_millis() as i64,
            created_at: now,
        };

        let mut tx = self.store.begin_write().await?;
        let when = UnixMillis(self.now_ms());
        if let Some(reason) = problem {
            // Nothing is released. The issuance is recorded voided (so a retry with the same
            // key gets the same answer) with no documents, and a mismatch opens an anomaly.
            issuance.state = IssuanceState::Voided;
            store::insert_issuance(&mut tx, &issuance, &[]).await?;
            let facts = self.facts(terminal, &issuance, documents.iter().map(|d| &d.record))?;
            for f in &facts {
                let event = Event::documents_voided(
                    when,
                    Actor::System,
                    pseudonym,
                    f,
                    reason_code(reason)?,
                );
                append(&mut tx, &event).await?;
            }
            if reason == "SUBJECT_MISMATCH" {
                if let Some(f) = facts.first() {
                    let anomaly_id = ident(&self.random_id("a-")?)?;
                    let event = audit::store::anomaly_opened_event(
                        when,
                        anomaly_id,
                        AnomalyKind::SubjectMismatch,
                        f,
                    );
                    audit::store::open_anomaly(&mut tx, &event)
                        .await
                        .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
                }
                tracing::error!(issuance = %issuance_id, "subject check failed: nothing released");
            }
            tx.commit().await?;
            self.void_at_issuer(&binding.municipality_code, serials, reason)
                .await;
            return Err(GatewayError::refused(
                reason,
                "issuance voided before release",
            ));
        }

        store::insert_issuance(&mut tx, &issuance, &documents).await?;
        let mut events = Vec::new();
        for f in self.facts(terminal, &issuance, documents.iter().map(|d| &d.record))? {
            let rendered = Event::new(when, EventType::IssuanceRendered, Actor::System)
                .with_issuance_facts(&f)
                .with_resident(pseudonym);
            events.push(rendered);
            events.push(Event::documents_released(when, pseudonym, &f));
        }
        append_all(&mut tx, &events).await?;
        if let Err(error) = tx.commit().await {
            // A concurrent retry with the same key may have won the unique constraint: void
            // what this attempt rendered and answer with the winner's issuance.
            self.void_at_issuer(
                &binding.municipality_code,
                serials,
                "IDEMPOTENCY_KEY_REUSED",
            )
            .await;
            let mut conn = self.store.pool().acquire().await?;
            if let Some(existing) =
                store::issuance_by_request(&mut conn, &terminal_id, client_request_id).await?
            {
                let retry = Retry {
                    session_id,
                    digest: &issuance.request_digest,
                    items,
                    allowed: allowed_subjects,
                    deadline,
                };
                return self.replay(conn, existing, retry).await;
            }
            return Err(error.into());
        }
        Ok(ReleasedIssuance {
            issuance,
            documents,
            replayed: false,
        })
    }

    /// Whether a released document passes the gateway's own checks: the municipality's PDF
    /// signature first (so the markers read next are the municipality's own), then every
    /// page's marker against the issuance and the allowed subjects.
    fn document_passes(
        &self,
        municipality: &str,
        issuance_id: &str,
        pdf: &[u8],
        page_count: u32,
        allowed: &BTreeSet<&str>,
    ) -> bool {
        let signed = self
            .checks
            .signing_certs
            .get(municipality)
            .is_some_and(|cert| (self.checks.pdf_signature)(pdf, cert));
        signed
            && match (self.checks.page_markers)(pdf) {
                Ok(pages) => {
                    pages.len() == page_count as usize
                        && check_page_subjects(issuance_id, &pages, allowed).is_ok()
                }
                Err(_) => false,
            }
    }

    /// Answers a retry of a recorded issuance with the documents it released.
    ///
    /// The gateway keeps each document's record and SHA-256, not its bytes: the issuer's
    /// registry holds the PDFs (written in the transaction that decided them), and a repeated
    /// Render with the same issuance id, order and issue time returns them without rendering
    /// anything. Each one must match this issuance's own record (serial and SHA-256, in
    /// order) and pass the release checks again; otherwise nothing is sent.
    async fn replay(
        &self,
        mut conn: sqlx::pool::PoolConnection<sqlx::Any>,
        existing: IssuanceRow,
        retry: Retry<'_>,
    ) -> Result<ReleasedIssuance, GatewayError> {
        if existing.request_digest != retry.digest || existing.session_id != retry.session_id {
            return Err(GatewayError::refused(
                "IDEMPOTENCY_KEY_REUSED",
                "client_request_id was used for another order",
            ));
        }
        let records = store::documents(&mut conn, &existing.issuance_id).await?;
        drop(conn);
        if records.is_empty() {
            // Voided before release: the retry gets the same refusal, never a new render.
            return Err(GatewayError::refused(
                "SUBJECT_MISMATCH",
                "issuance was voided before release",
            ));
        }
        let issuer = self
            .issuers
            .get(&existing.municipality_code)
            .ok_or_else(|| GatewayError::refused("MUNICIPALITY_NOT_SERVED", "not served"))?;
        let budget = retry
            .deadline
            .map(|d| d.min(self.settings.render_timeout))
            .unwrap_or(self.settings.render_timeout);
        let recorded = issuer
            .render(
                pb::RenderRequest {
                    issuance_id: existing.issuance_id.clone(),
                    municipality_code: existing.municipality_code.clone(),
                    requester_ref: existing.resident_ref.clone(),
                    items: retry.items.to_vec(),
                    issued_at: Some(timestamp(existing.created_at)),
                },
                budget,
            )
            .await
            .map_err(issuer_status)?;
        // Serials this issuance never released: an issuer that no longer held the order (a
        // registry restored from an older backup, say) rendered it again. Those documents
        // are never sent, so they are voided rather than left valid at the issuer.
        let strangers: Vec<String> = recorded
            .documents
            .iter()
            .filter(|d| !records.iter().any(|r| r.serial == d.serial))
            .map(|d| d.serial.clone())
            .collect();
        if !strangers.is_empty() {
            self.void_at_issuer(&existing.municipality_code, strangers, "REPLAY_MISMATCH")
                .await;
            return Err(replay_refused(
                &existing.issuance_id,
                "the issuer rendered a recorded issuance again",
            ));
        }
        let allowed: BTreeSet<&str> = retry.allowed.iter().map(String::as_str).collect();
        let mut documents = Vec::with_capacity(records.len());
        let same_count = recorded.documents.len() == records.len();
        for (record, doc) in records.into_iter().zip(recorded.documents) {
            let same = record.serial == doc.serial
                && digest(&SHA256, &doc.pdf).as_ref() == record.pdf_sha256.as_slice()
                && self.document_passes(
                    &existing.municipality_code,
                    &existing.issuance_id,
                    &doc.pdf,
                    doc.page_count,
                    &allowed,
                );
            if !same {
                return Err(replay_refused(
                    &existing.issuance_id,
                    "the issuer's copy differs from the released documents",
                ));
            }
            documents.push(store::IssuedDocument {
                record,
                pdf: doc.pdf,
            });
        }
        if !same_count {
            return Err(replay_refused(
                &existing.issuance_id,
                "the issuer returned another number of documents",
            ));
        }
        Ok(ReleasedIssuance {
            issuance: existing,
            documents,
            replayed: true,
        })
    }

    async fn void_at_issuer(&self, municipality: &str, serials: Vec<String>, reason: &str) {
        if serials.is_empty() {
            return;
        }
        let Some(issuer) = self.issuers.get(municipality) else {
            return;
        };
        let request = pb::VoidRequest {
            serials,
            reason: reason.to_owned(),
        };
        // The gateway's record is authoritative for verifiers; the issuer's registry is
        // brought in line on a best-effort basis and the failure is logged.
        if let Err(status) = issuer.void(request).await {
            tracing::warn!(code = ?status.code(), "issuer void failed");
        }
    }

    /// Records the print outcome of an issuance.
    pub async fn report_print(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        issuance_id: &str,
        result: PrintResult,
        collected_yen: u32,
    ) -> Result<PrintReport, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let now = self.now_ms();
        let when = UnixMillis(now);
        let collected = i64::from(collected_yen);
        if result == PrintResult::Printed
            && let Some(issuance) = store::mark_printed(
                &mut tx,
                issuance_id,
                &terminal.id(),
                session_id,
                collected,
                now,
            )
            .await?
        {
            // The common report: released, in time, printed. The state moved in the same
            // statement that read the issuance; its events commit with it.
            let documents = store::documents(&mut tx, issuance_id).await?;
            let events = self.print_reported(terminal, &issuance, &documents, when, result)?;
            append_all(&mut tx, &events).await?;
            tx.commit().await?;
            return Ok(PrintReport {
                state: IssuanceState::Printed,
                refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                voided_serials: Vec::new(),
            });
        }
        let issuance = store::issuance(&mut tx, issuance_id)
            .await?
            .filter(|i| i.terminal_id == terminal.id() && i.session_id == session_id)
            .ok_or_else(|| GatewayError::refused("ISSUANCE_NOT_FOUND", "no such issuance"))?;
        let documents = store::documents(&mut tx, issuance_id).await?;
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        let serials = || {
            documents
                .iter()
                .map(|d| d.serial.clone())
                .collect::<Vec<_>>()
        };
        match (issuance.state, result) {
            (IssuanceState::Released, _) if now > issuance.print_deadline => {
                self.mark_unconfirmed(&mut tx, terminal, &issuance, &documents)
                    .await?;
                tx.commit().await?;
                Err(GatewayError::refused(
                    "PRINT_DEADLINE_PASSED",
                    "print deadline passed",
                ))
            }
            (IssuanceState::Released, PrintResult::Printed) => {
                let refund = (collected - issuance.total_fee_yen).max(0);
                store::transition_issuance(
                    &mut tx,
                    issuance_id,
                    IssuanceState::Released,
                    IssuanceState::Printed,
                    Some(collected),
                    Some(refund),
                )
                .await?;
                let events = self.print_reported(terminal, &issuance, &documents, when, result)?;
                append_all(&mut tx, &events).await?;
                tx.commit().await?;
                Ok(PrintReport {
                    state: IssuanceState::Printed,
                    refund_due_yen: refund,
                    voided_serials: Vec::new(),
                })
            }
            (IssuanceState::Released, _) => {
                store::transition_issuance(
                    &mut tx,
                    issuance_id,
                    IssuanceState::Released,
                    IssuanceState::Voided,
                    Some(collected),
                    Some(collected),
                )
                .await?;
                let voided = store::void_documents(&mut tx, issuance_id).await?;
                let facts = self.facts(terminal, &issuance, &documents)?;
                let mut events = Vec::new();
                for f in &facts {
                    events.push(Event::print_reported(when, pseudonym, f, result.audit()));
                    events.push(Event::documents_voided(
                        when,
                        Actor::Terminal(ident(&terminal.id())?),
                        pseudonym,
                        f,
                        reason_code("PRINT_FAILED")?,
                    ));
                }
                append_all(&mut tx, &events).await?;
                if let Some(f) = facts.first() {
                    let event = audit::store::anomaly_opened_event(
                        when,
                        ident(&self.random_id("a-")?)?,
                        AnomalyKind::PrintFailed,
                        f,
                    );
                    audit::store::open_anomaly(&mut tx, &event)
                        .await
                        .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
                }
                tx.commit().await?;
                self.void_at_issuer(&issuance.municipality_code, voided.clone(), "PRINT_FAILED")
                    .await;
                Ok(PrintReport {
                    state: IssuanceState::Voided,
                    refund_due_yen: collected,
                    voided_serials: voided,
                })
            }
            (IssuanceState::Printed, PrintResult::Printed) => Ok(PrintReport {
                state: IssuanceState::Printed,
                refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                voided_serials: Vec::new(),
            }),
            (IssuanceState::Voided, PrintResult::Failed | PrintResult::PartlyPrinted)
                if !documents.is_empty() =>
            {
                Ok(PrintReport {
                    state: IssuanceState::Voided,
                    refund_due_yen: issuance.refund_due_yen.unwrap_or(0),
                    voided_serials: serials(),
                })
            }
            (IssuanceState::Unconfirmed, _) => Err(GatewayError::refused(
                "PRINT_DEADLINE_PASSED",
                "print deadline passed",
            )),
            _ => Err(GatewayError::refused(
                "ISSUANCE_ALREADY_REPORTED",
                "issuance already reported with another outcome",
            )),
        }
    }

    async fn mark_unconfirmed(
        &self,
        conn: &mut AnyConnection,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
    ) -> Result<bool, GatewayError> {
        let moved = store::transition_issuance(
            conn,
            &issuance.issuance_id,
            IssuanceState::Released,
            IssuanceState::Unconfirmed,
            None,
            None,
        )
        .await?;
        if !moved {
            return Ok(false);
        }
        let when = UnixMillis(self.now_ms());
        let pseudonym = self.pseudonym(&issuance.resident_ref);
        let facts = self.facts(terminal, issuance, documents)?;
        for f in &facts {
            append(conn, &Event::deadline_passed(when, pseudonym, f)).await?;
        }
        if let Some(f) = facts.first() {
            let event = audit::store::anomaly_opened_event(
                when,
                ident(&self.random_id("a-")?)?,
                AnomalyKind::DeadlinePassed,
                f,
            );
            audit::store::open_anomaly(conn, &event)
                .await
                .map_err(|e| GatewayError::Internal(format!("anomaly: {e}")))?;
        }
        Ok(true)
    }

    /// Marks every released issuance past its print deadline unconfirmed, with its audit
    /// event and an anomaly. Returns how many moved. Run it on a timer.
    pub async fn sweep_deadlines(&self) -> Result<usize, GatewayError> {
        let mut moved = 0;
        loop {
            let mut conn = self.store.pool().acquire().await?;
            let overdue = store::overdue_issuances(&mut conn, self.now_ms(), 100).await?;
            drop(conn);
            if overdue.is_empty() {
                return Ok(moved);
            }
            for issuance in overdue {
                let terminal = TerminalIdentity::parse(&issuance.terminal_id).ok_or_else(|| {
                    GatewayError::Internal("stored terminal id unreadable".into())
                })?;
                let mut tx = self.store.begin_write().await?;
                let documents = store::documents(&mut tx, &issuance.issuance_id).await?;
                if self
                    .mark_unconfirmed(&mut tx, &terminal, &issuance, &documents)
                    .await?
                {
                    moved += 1;
                }
                tx.commit().await?;
            }
        }
    }

    /// Closes a session. Idempotent.
    pub async fn close_session(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<(), GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let terminal_id = terminal.id();
        let closed_now = store::close_owned_session(&mut tx, session_id, &terminal_id).await?;
        if !closed_now {
            // Already closed (idempotent) or not this terminal's: only the latter is refused.
            store::session(&mut tx, session_id)
                .await?
                .filter(|s| s.terminal_id == terminal_id)
                .ok_or_else(|| GatewayError::refused("SESSION_NOT_FOUND", "no such session"))?;
        }
        if closed_now {
            let terminal_ident = ident(&terminal.id())?;
            let event = Event::new(
                UnixMillis(self.now_ms()),
                EventType::SessionClosed,
                Actor::Terminal(terminal_ident.clone()),
            )
            .with_terminal(terminal_ident)
            .with_session(ident(session_id)?);
            append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
