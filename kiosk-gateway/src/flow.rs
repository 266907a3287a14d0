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
use std::time::{Duration, Instant};

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
pub use reconcile::Reconciled;

mod reconcile;

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
    /// Most sessions one terminal may have open (neither closed nor expired); beyond this
    /// OpenSession answers OVERLOADED. Counted in the database, so it holds across replicas.
    pub max_open_sessions_per_terminal: usize,
    /// The longest an Issue may take from asking the issuer to render until its record
    /// commits; past it the issuance is voided (TIMED_OUT) instead of recorded.
    pub issue_timeout: Duration,
    /// How much longer than `issue_timeout` a document may stay pending at its issuer before
    /// reconciliation judges its issuance lost (a commit that stalled is covered by this).
    pub reconcile_margin: Duration,
    /// How long an expired session's row is kept (a late CloseSession still finds it).
    pub session_retention: Duration,
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
            max_open_sessions_per_terminal: 100,
            issue_timeout: Duration::from_secs(30),
            reconcile_margin: Duration::from_secs(60),
            session_retention: Duration::from_secs(3600),
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
    terminal: &'a TerminalIdentity,
    session_id: &'a str,
    /// The retry's order digest, compared with the recorded one.
    digest: &'a [u8],
    /// The retry's items (equal to the recorded order's when the digests match).
    items: &'a [pb::RequestItem],
    /// The session named by the retry, if it still exists: a finished session's issuance is
    /// not handed out again, and its menu's subjects are what a page may name.
    session: Option<&'a SessionRow>,
    deadline: Option<Duration>,
}

/// A new order of an authenticated session, as Issue checked it.
struct Order<'a> {
    terminal: &'a TerminalIdentity,
    session: &'a SessionRow,
    session_id: &'a str,
    client_request_id: &'a str,
    items: &'a [pb::RequestItem],
    expected_total_fee_yen: u32,
    /// The order's digest, recorded to tell a retry from a reuse of the key.
    digest: Vec<u8>,
    /// The authenticated resident and municipality.
    binding: CardBinding,
    pseudonym: Pseudonym,
    /// The subjects the session's menu offered.
    allowed: BTreeSet<&'a str>,
    deadline: Option<Duration>,
}

impl Order<'_> {
    /// The issuance record of this order, released.
    fn issuance_row(
        &self,
        issuance_id: &str,
        checked: &Checked,
        now: i64,
        settings: &FlowSettings,
    ) -> IssuanceRow {
        IssuanceRow {
            issuance_id: issuance_id.to_owned(),
            session_id: self.session_id.to_owned(),
            terminal_id: self.terminal.id(),
            client_request_id: self.client_request_id.to_owned(),
            request_digest: self.digest.clone(),
            municipality_code: self.binding.municipality_code.clone(),
            resident_ref: self.binding.resident_ref.clone(),
            state: IssuanceState::Released,
            total_fee_yen: checked.total,
            collected_yen: None,
            refund_due_yen: None,
            print_deadline: now + settings.print_window.as_millis() as i64,
            created_at: now,
        }
    }
}

/// What the gateway found in an issuer's rendering.
#[derive(Default)]
struct Checked {
    /// The documents with their records.
    documents: Vec<store::IssuedDocument>,
    /// Every serial rendered, to void them at the issuer if nothing is released.
    serials: Vec<String>,
    /// The total fee, yen.
    total: i64,
    /// Why nothing may be released, if anything is wrong.
    problem: Option<&'static str>,
}

/// Whether a released issuance's record committed.
enum Recording {
    /// Recorded.
    Committed,
    /// The commit failed, perhaps because a concurrent retry recorded the same key first.
    LostRace(sqlx::Error),
}

/// What the issuer said when asked to confirm a recorded issuance's documents.
enum Confirmation {
    /// Every document is issued.
    Issued,
    /// Some document is void (or missing): nothing may be released.
    Voided,
    /// The issuer did not answer.
    Unknown(tonic::Status),
}

/// Why a recorded issuance may no longer be handed out, if it may not.
fn finished(
    existing: &IssuanceRow,
    session: Option<&SessionRow>,
    now: i64,
) -> Option<&'static str> {
    match existing.state {
        IssuanceState::Printed => return Some("printed"),
        IssuanceState::Voided => return Some("voided"),
        IssuanceState::Unconfirmed => return Some("unconfirmed"),
        IssuanceState::Released => {}
    }
    if now > existing.print_deadline {
        return Some("print_deadline_passed");
    }
    match session {
        // An expired session's row is deleted some time after it expired.
        None => Some("session_expired"),
        Some(s) if s.state == SessionState::Closed => Some("session_closed"),
        Some(s) if now >= s.expires_at => Some("session_expired"),
        Some(_) => None,
    }
}

/// The ISSUANCE_FINISHED refusal of a retry, with the recorded state and fee for the kiosk.
fn issuance_finished(existing: &IssuanceRow, why: &'static str) -> GatewayError {
    let state = match existing.state {
        IssuanceState::Released => pb::IssuanceState::Released,
        IssuanceState::Printed => pb::IssuanceState::Printed,
        IssuanceState::Voided => pb::IssuanceState::Voided,
        IssuanceState::Unconfirmed => pb::IssuanceState::Unconfirmed,
    };
    GatewayError::refused(
        "ISSUANCE_FINISHED",
        format!("the issuance is finished ({why}): its documents are not sent again"),
    )
    .with_metadata("issuance_id", existing.issuance_id.clone())
    .with_metadata("issuance_state", state.as_str_name())
    .with_metadata("total_fee_yen", existing.total_fee_yen.to_string())
    .with_metadata("why", why)
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
        let gate = store::terminal_gate(&mut tx, self.store.backend(), &terminal_id, now).await?;
        check_terminal(gate.status)?;
        if gate.open_sessions
            >= i64::try_from(self.settings.max_open_sessions_per_terminal).unwrap_or(i64::MAX)
        {
            // Nothing is written: a flood of refused opens must not grow the log either.
            tracing::warn!(terminal = %terminal_id, open = gate.open_sessions, "open sessions limit");
            return Err(GatewayError::refused(
                "OVERLOADED",
                "too many open sessions for this terminal: close sessions that are done",
            ));
        }
        let closed_reason = gate.kill_switch.then_some("SERVICE_SUSPENDED");
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

    /// The session `session_id` if `terminal` is active, the session belongs to it and has
    /// not expired. Another terminal's session is reported as not found, so session ids
    /// cannot be probed. A suspended or retired terminal is refused on every call that moves
    /// a session on, not only at OpenSession: a suspension stops work in progress too.
    async fn owned_session(
        &self,
        conn: &mut AnyConnection,
        terminal: &TerminalIdentity,
        session_id: &str,
    ) -> Result<SessionRow, GatewayError> {
        let (session, status) = store::session_gate(conn, session_id, &terminal.id()).await?;
        check_terminal(status)?;
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

/// Logs why a retry's recorded documents were not sent, and refuses the retry.
fn replay_refused(issuance_id: &str, why: &'static str) -> GatewayError {
    tracing::error!(issuance = %issuance_id, why, "recorded documents not sent");
    GatewayError::refused(
        "SUBJECT_MISMATCH",
        "recorded documents could not be checked",
    )
}

/// Maps an issuer's status to the gateway's error, keeping the issuer's contract reason
/// (eligibility reasons reach the kiosk as the issuer decided them).
fn issuer_status(status: tonic::Status) -> GatewayError {
    if status.code() == tonic::Code::DeadlineExceeded {
        return GatewayError::refused("TIMED_OUT", "issuer did not answer in time");
    }
    match kiosk_proto::reasons::reason_of(&status) {
        // The issuer's BadRequest names the field; the terminal gets it as it is.
        Some(reason) if reason.name == "INVALID_FIELD" => {
            use tonic_types::StatusExt;
            let violations: Vec<kiosk_proto::reasons::FieldViolation> = status
                .get_error_details()
                .bad_request()
                .map(|bad| {
                    bad.field_violations
                        .iter()
                        .take(kiosk_proto::reasons::MAX_VIOLATIONS)
                        .map(|v| kiosk_proto::reasons::FieldViolation {
                            field: v.field.clone(),
                            description: v.description.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if violations.is_empty() {
                GatewayError::refused(reason.name, status.message().to_owned())
            } else {
                GatewayError::InvalidFields(violations)
            }
        }
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
    /// records the issuance with its audit events, has the issuer confirm the documents, and
    /// only then returns them. Idempotent by `client_request_id` (see [`Flow::replay`]).
    pub async fn issue(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        client_request_id: &str,
        items: &[pb::RequestItem],
        expected_total_fee_yen: u32,
        deadline: Option<Duration>,
    ) -> Result<ReleasedIssuance, GatewayError> {
        crate::service::validate::request_id(client_request_id)?;
        self.validate_items(items)?;
        let digest = request_digest(items, expected_total_fee_yen);
        let mut conn = self.store.pool().acquire().await?;
        // The terminal, the session, the kill switches and the idempotency key in one
        // statement.
        let lookup =
            store::issue_lookup(&mut conn, session_id, &terminal.id(), client_request_id).await?;
        check_terminal(lookup.terminal_status)?;
        if let Some(existing) = lookup.existing {
            let retry = Retry {
                terminal,
                session_id,
                digest: &digest,
                items,
                session: lookup.session.as_ref(),
                deadline,
            };
            return self.replay(conn, existing, retry).await;
        }
        drop(conn);
        let session = self.check_owned(terminal, lookup.session)?;
        let (binding, allowed) = authenticated(&session)?;
        let order = Order {
            terminal,
            session: &session,
            session_id,
            client_request_id,
            items,
            expected_total_fee_yen,
            digest,
            pseudonym: self.pseudonym(&binding.resident_ref),
            binding,
            allowed: allowed.iter().map(String::as_str).collect(),
            deadline,
        };
        self.issue_new(&order, lookup.suspended).await
    }

    /// Issues an order no issuance was recorded for yet.
    async fn issue_new(
        &self,
        order: &Order<'_>,
        suspended: bool,
    ) -> Result<ReleasedIssuance, GatewayError> {
        self.check_order_gates(order, suspended).await?;
        let Ok(_permit) = self.rendering.try_acquire() else {
            return Err(GatewayError::refused(
                "OVERLOADED",
                "too many issuances at once",
            ));
        };
        let issuer = self
            .issuers
            .get(&order.binding.municipality_code)
            .ok_or_else(|| GatewayError::refused("MUNICIPALITY_NOT_SERVED", "not served"))?;
        let issuance_id = self.random_id("i-")?;
        let now = self.now_ms();
        // Monotonic: the deployment clock may be moved (rehearsals, tests); the time an Issue
        // took may not.
        let started = Instant::now();
        let request = pb::RenderRequest {
            issuance_id: issuance_id.clone(),
            municipality_code: order.binding.municipality_code.clone(),
            requester_ref: order.binding.resident_ref.clone(),
            items: order.items.to_vec(),
            issued_at: Some(timestamp(now)),
        };
        let rendered = match issuer
            .render(request, self.render_budget(order.deadline))
            .await
        {
            Ok(rendered) => rendered,
            Err(status) => {
                let error = issuer_status(status);
                self.refuse(order, error.reason()).await?;
                return Err(error);
            }
        };
        let checked = self.check_rendered(order, &issuance_id, now, rendered);
        let issuance = order.issuance_row(&issuance_id, &checked, now, &self.settings);
        if let Some(reason) = checked.problem {
            return self
                .record_voided_before_release(order, issuance, &checked, reason)
                .await;
        }
        if let Recording::LostRace(error) = self
            .record_released(order, &issuance, &checked, started)
            .await?
        {
            return self.lost_to_concurrent_retry(order, error).await;
        }
        let records: Vec<store::DocumentRow> =
            checked.documents.iter().map(|d| d.record.clone()).collect();
        match self.confirm_at_issuer(&issuance).await {
            Confirmation::Issued => {}
            Confirmation::Unknown(status) => {
                // Recorded within the Issue deadline, so no reconciliation can have judged
                // these documents lost; the next one confirms them.
                tracing::warn!(issuance = %issuance_id, code = ?status.code(), "confirm failed: left to reconciliation");
            }
            Confirmation::Voided => {
                return Err(self
                    .void_recorded(order.terminal, &issuance, &records)
                    .await);
            }
        }
        Ok(ReleasedIssuance {
            issuance,
            documents: checked.documents,
            replayed: false,
        })
    }

    /// The refusals decided before anything is rendered: a subject outside the menu, and
    /// the kill switches. Each is recorded.
    async fn check_order_gates(
        &self,
        order: &Order<'_>,
        suspended: bool,
    ) -> Result<(), GatewayError> {
        for (index, item) in order.items.iter().enumerate() {
            if item
                .subject_refs
                .iter()
                .any(|s| !order.allowed.contains(s.as_str()))
            {
                self.refuse(order, "NOT_PERMITTED_SUBJECT").await?;
                return Err(GatewayError::refused(
                    "NOT_PERMITTED_SUBJECT",
                    format!("items[{index}] names a subject outside the menu"),
                ));
            }
        }
        if suspended {
            self.refuse(order, "SERVICE_SUSPENDED").await?;
            return Err(GatewayError::refused(
                "SERVICE_SUSPENDED",
                "issuing is suspended",
            ));
        }
        Ok(())
    }

    /// Records an ISSUANCE_REFUSED event for `order`.
    async fn refuse(&self, order: &Order<'_>, reason: &'static str) -> Result<(), GatewayError> {
        self.refuse_issuance(
            order.terminal,
            order.session_id,
            order.pseudonym,
            &order.binding.municipality_code,
            reason,
        )
        .await
    }

    /// The time an issuer may take to render: the configured limit, or less when the
    /// client's own deadline is nearer.
    fn render_budget(&self, deadline: Option<Duration>) -> Duration {
        deadline
            .map(|d| d.min(self.settings.render_timeout))
            .unwrap_or(self.settings.render_timeout)
    }

    /// Checks what the issuer rendered: every document's signature, page markers and digest,
    /// and the total against the fee the kiosk showed.
    fn check_rendered(
        &self,
        order: &Order<'_>,
        issuance_id: &str,
        now: i64,
        rendered: pb::RenderResponse,
    ) -> Checked {
        let mut checked = Checked::default();
        for (index, doc) in rendered.documents.into_iter().enumerate() {
            checked.serials.push(doc.serial.clone());
            let pdf_sha256 = digest(&SHA256, &doc.pdf).as_ref().to_vec();
            let cert_type = pb::CertificateType::try_from(doc.r#type)
                .map(|t| t.as_str_name())
                .unwrap_or("CERTIFICATE_TYPE_UNSPECIFIED");
            let passes = self.document_passes(
                &order.binding.municipality_code,
                issuance_id,
                &doc.pdf,
                doc.page_count,
                &order.allowed,
            );
            if !passes || pdf_sha256 != doc.pdf_sha256 {
                checked.problem = Some("SUBJECT_MISMATCH");
            }
            checked.total += i64::from(doc.fee_yen);
            checked.documents.push(store::IssuedDocument {
                record: store::DocumentRow {
                    serial: doc.serial,
                    issuance_id: issuance_id.to_owned(),
                    doc_index: index as i64,
                    cert_type: cert_type.to_owned(),
                    page_count: i64::from(doc.page_count),
                    fee_yen: i64::from(doc.fee_yen),
                    pdf_sha256,
                    content_digest: doc.content_digest,
                    status: "issued".into(),
                    issued_at: now,
                },
                pdf: doc.pdf,
            });
        }
        if checked.documents.is_empty() {
            checked.problem = Some("SUBJECT_MISMATCH");
        }
        if checked.problem.is_none() && checked.total != i64::from(order.expected_total_fee_yen) {
            checked.problem = Some("FEE_MISMATCH");
        }
        checked
    }

    /// Nothing is released. The issuance is recorded voided (so a retry with the same key
    /// gets the same answer) with no documents, a mismatch opens an anomaly, and the issuer
    /// voids what it rendered.
    async fn record_voided_before_release(
        &self,
        order: &Order<'_>,
        mut issuance: IssuanceRow,
        checked: &Checked,
        reason: &'static str,
    ) -> Result<ReleasedIssuance, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let when = UnixMillis(self.now_ms());
        issuance.state = IssuanceState::Voided;
        store::insert_issuance(&mut tx, &issuance, &[]).await?;
        let records = checked.documents.iter().map(|d| &d.record);
        let facts = self.facts(order.terminal, &issuance, records)?;
        let mut events = Vec::with_capacity(facts.len());
        for f in &facts {
            events.push(Event::documents_voided(
                when,
                Actor::System,
                order.pseudonym,
                f,
                reason_code(reason)?,
            ));
        }
        append_all(&mut tx, &events).await?;
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
            tracing::error!(issuance = %issuance.issuance_id, "subject check failed: nothing released");
        }
        tx.commit().await?;
        self.void_at_issuer(
            &order.binding.municipality_code,
            checked.serials.clone(),
            reason,
        )
        .await;
        Err(GatewayError::refused(
            reason,
            "issuance voided before release",
        ))
    }

    /// Records a released issuance with its documents and events, in one transaction, if it
    /// is still within the Issue deadline when it is ready to commit; otherwise voids it at
    /// the issuer and refuses with TIMED_OUT. When the commit fails (a concurrent retry with
    /// the same key may have recorded first), this attempt's documents are voided.
    async fn record_released(
        &self,
        order: &Order<'_>,
        issuance: &IssuanceRow,
        checked: &Checked,
        started: Instant,
    ) -> Result<Recording, GatewayError> {
        let mut tx = self.store.begin_write().await?;
        let when = UnixMillis(self.now_ms());
        store::insert_issuance(&mut tx, issuance, &checked.documents).await?;
        let records = checked.documents.iter().map(|d| &d.record);
        let mut events = Vec::new();
        for f in self.facts(order.terminal, issuance, records)? {
            let rendered = Event::new(when, EventType::IssuanceRendered, Actor::System)
                .with_issuance_facts(&f)
                .with_resident(order.pseudonym);
            events.push(rendered);
            events.push(Event::documents_released(when, order.pseudonym, &f));
        }
        append_all(&mut tx, &events).await?;
        // Past the deadline, reconciliation may already be voiding these documents as lost:
        // an issuance is recorded only within it (a timeout voids the whole issuance).
        if started.elapsed() > self.settings.issue_timeout {
            drop(tx);
            self.void_at_issuer(
                &order.binding.municipality_code,
                checked.serials.clone(),
                "TIMED_OUT",
            )
            .await;
            self.refuse(order, "TIMED_OUT").await?;
            return Err(GatewayError::refused(
                "TIMED_OUT",
                "the issuance took longer than the Issue deadline: nothing was issued",
            ));
        }
        if let Err(error) = tx.commit().await {
            self.void_at_issuer(
                &order.binding.municipality_code,
                checked.serials.clone(),
                "IDEMPOTENCY_KEY_REUSED",
            )
            .await;
            return Ok(Recording::LostRace(error));
        }
        Ok(Recording::Committed)
    }

    /// The answer when this attempt's record did not commit: if a concurrent retry with the
    /// same key recorded the issuance, that issuance answers for both, as a retry would get
    /// it; otherwise the database error stands.
    async fn lost_to_concurrent_retry(
        &self,
        order: &Order<'_>,
        error: sqlx::Error,
    ) -> Result<ReleasedIssuance, GatewayError> {
        let mut conn = self.store.pool().acquire().await?;
        let winner =
            store::issuance_by_request(&mut conn, &order.terminal.id(), order.client_request_id)
                .await?;
        let Some(existing) = winner else {
            return Err(error.into());
        };
        let retry = Retry {
            terminal: order.terminal,
            session_id: order.session_id,
            digest: &order.digest,
            items: order.items,
            session: Some(order.session),
            deadline: order.deadline,
        };
        self.replay(conn, existing, retry).await
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

    /// Answers a retry of a recorded issuance with the documents it released — only while
    /// the issuance is awaiting its print report, within its print deadline, in an open
    /// session. A retry after that (the issuance printed, voided, unconfirmed, the session
    /// closed) is refused with ISSUANCE_FINISHED and nothing is sent: a finished issuance is
    /// never handed out again.
    ///
    /// The gateway keeps each document's record and SHA-256, not its bytes: the issuer's
    /// registry holds the PDFs, and a repeated Render with the same issuance id, order and
    /// issue time returns them without rendering anything. Each one must match this
    /// issuance's own record (serial and SHA-256, in order), pass the release checks again,
    /// and still be issued at the issuer; otherwise nothing is sent.
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
        if let Some(why) = finished(&existing, retry.session, self.now_ms()) {
            let pseudonym = self.pseudonym(&existing.resident_ref);
            self.refuse_issuance(
                retry.terminal,
                retry.session_id,
                pseudonym,
                &existing.municipality_code,
                "ISSUANCE_FINISHED",
            )
            .await?;
            return Err(issuance_finished(&existing, why));
        }
        // A replay fetches and checks every PDF again: it costs what an issuance costs, and
        // counts against the same bound.
        let Ok(_permit) = self.rendering.try_acquire() else {
            return Err(GatewayError::refused(
                "OVERLOADED",
                "too many issuances at once",
            ));
        };
        let documents = self.fetch_recorded(&existing, records, &retry).await?;
        match self.confirm_at_issuer(&existing).await {
            Confirmation::Issued => {}
            Confirmation::Voided => {
                let records: Vec<_> = documents.iter().map(|d| d.record.clone()).collect();
                return Err(self
                    .void_recorded(retry.terminal, &existing, &records)
                    .await);
            }
            Confirmation::Unknown(status) => return Err(issuer_status(status)),
        }
        Ok(ReleasedIssuance {
            issuance: existing,
            documents,
            replayed: true,
        })
    }

    /// The documents of a recorded issuance from the issuer's registry, each checked against
    /// its record and the release checks.
    async fn fetch_recorded(
        &self,
        existing: &IssuanceRow,
        records: Vec<store::DocumentRow>,
        retry: &Retry<'_>,
    ) -> Result<Vec<store::IssuedDocument>, GatewayError> {
        let issuer = self
            .issuers
            .get(&existing.municipality_code)
            .ok_or_else(|| GatewayError::refused("MUNICIPALITY_NOT_SERVED", "not served"))?;
        let request = pb::RenderRequest {
            issuance_id: existing.issuance_id.clone(),
            municipality_code: existing.municipality_code.clone(),
            requester_ref: existing.resident_ref.clone(),
            items: retry.items.to_vec(),
            issued_at: Some(timestamp(existing.created_at)),
        };
        let recorded = issuer
            .render(request, self.render_budget(retry.deadline))
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
        if recorded.documents.len() != records.len() {
            return Err(replay_refused(
                &existing.issuance_id,
                "the issuer returned another number of documents",
            ));
        }
        let allowed: BTreeSet<&str> = retry
            .session
            .map(|s| s.allowed_subjects.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut documents = Vec::with_capacity(records.len());
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
        Ok(documents)
    }

    /// Has the issuer mark a recorded issuance's documents issued (they stay pending until
    /// then, see `Flow::reconcile`).
    async fn confirm_at_issuer(&self, issuance: &IssuanceRow) -> Confirmation {
        let Some(issuer) = self.issuers.get(&issuance.municipality_code) else {
            return Confirmation::Unknown(tonic::Status::unavailable("municipality not routed"));
        };
        let request = pb::ConfirmRequest {
            municipality_code: issuance.municipality_code.clone(),
            issuance_id: issuance.issuance_id.clone(),
        };
        match issuer.confirm(request).await {
            Ok(answer) if answer.voided_serials.is_empty() && !answer.issued_serials.is_empty() => {
                Confirmation::Issued
            }
            Ok(_) => Confirmation::Voided,
            Err(status) => Confirmation::Unknown(status),
        }
    }

    /// Voids a recorded, released issuance whose documents the issuer no longer holds as
    /// issued (reconciliation voided them as lost), with its events; returns the refusal the
    /// terminal gets. Nothing of it is sent.
    async fn void_recorded(
        &self,
        terminal: &TerminalIdentity,
        issuance: &IssuanceRow,
        documents: &[store::DocumentRow],
    ) -> GatewayError {
        tracing::error!(issuance = %issuance.issuance_id, "the issuer holds the documents void: nothing released");
        let voided = async {
            let mut tx = self.store.begin_write().await?;
            let moved = store::transition_issuance(
                &mut tx,
                &issuance.issuance_id,
                IssuanceState::Released,
                IssuanceState::Voided,
                None,
                None,
            )
            .await?;
            if moved {
                store::void_documents(&mut tx, &issuance.issuance_id).await?;
                let when = UnixMillis(self.now_ms());
                let pseudonym = self.pseudonym(&issuance.resident_ref);
                let mut events = Vec::new();
                for f in self.facts(terminal, issuance, documents)? {
                    let reason = reason_code("TIMED_OUT")?;
                    events.push(Event::documents_voided(
                        when,
                        Actor::System,
                        pseudonym,
                        &f,
                        reason,
                    ));
                }
                append_all(&mut tx, &events).await?;
            }
            tx.commit().await?;
            Ok::<(), GatewayError>(())
        };
        match voided.await {
            Ok(()) => GatewayError::refused(
                "TIMED_OUT",
                "the issuance was voided as lost before its documents were released",
            ),
            Err(error) => error,
        }
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

    /// Deletes the rows of sessions expired longer than the retention, in batches; returns
    /// how many. Run it on a timer: expired sessions already answer nothing, this keeps the
    /// table to the sessions that can still be asked about.
    pub async fn sweep_sessions(&self) -> Result<u64, GatewayError> {
        const BATCH: i64 = 500;
        let retention =
            i64::try_from(self.settings.session_retention.as_millis()).unwrap_or(i64::MAX);
        let before = self.now_ms().saturating_sub(retention);
        let mut deleted = 0;
        loop {
            let mut tx = self.store.begin_write().await?;
            let batch = store::delete_expired_sessions(&mut tx, before, BATCH).await?;
            tx.commit().await?;
            deleted += batch;
            if batch < BATCH as u64 {
                return Ok(deleted);
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
