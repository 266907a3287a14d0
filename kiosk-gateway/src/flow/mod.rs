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

use kiosk_proto::reasons::{self, Reason};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::event::{
    Actor, AnomalyKind, Event, Fact, Ident, IssuanceFacts, MunicipalityCode, PrintOutcome,
    Pseudonym, Pseudonymizer, ReasonCode, UnixMillis,
};
use kiosk_proto::v1 as pb;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::AnyConnection;
use tokio::sync::Semaphore;

use crate::cardauth::CardVerifier;
use crate::clock::timestamp;
use crate::error::GatewayError;
use crate::identity::TerminalIdentity;
use crate::route::{IssuerDirectory, IssuerLink};
use crate::store::{
    self, CardBinding, IssuanceRow, IssuanceState, SessionRow, SessionState, Store,
};

pub use crate::clock::{Clock, SystemClock};
pub use issue::request_digest;
pub use print::PrintReport;
pub use reconcile::Reconciled;
pub use release::{
    CheckedDocument, DocumentChecks, PageMarkerReader, PdfSignatureCheck, ReleasedIssuance,
    check_page_subjects,
};
pub use session::OpenedSession;

mod auth;
mod events;
pub mod hours;
mod issue;
mod print;
mod reconcile;
mod release;
mod replay;
mod session;

use auth::authenticated;
use events::*;
use replay::{Confirmation, Retry};
use session::check_terminal;

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
}

/// Maps an issuer's status to the gateway's error, keeping the issuer's contract reason
/// (eligibility reasons reach the kiosk as the issuer decided them).
fn issuer_status(status: tonic::Status) -> GatewayError {
    if status.code() == tonic::Code::DeadlineExceeded {
        return GatewayError::refused(reasons::TIMED_OUT, "issuer did not answer in time");
    }
    match kiosk_proto::reasons::reason_of(&status) {
        // The issuer's BadRequest names the field; the terminal gets it as it is.
        Some(reason) if *reason == reasons::INVALID_FIELD => {
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
                GatewayError::refused(*reason, status.message().to_owned())
            } else {
                GatewayError::InvalidFields(violations)
            }
        }
        Some(reason) if *reason != reasons::INTERNAL_ERROR => {
            GatewayError::refused(*reason, status.message().to_owned())
        }
        _ => {
            tracing::warn!(code = ?status.code(), "issuer failed");
            GatewayError::refused(reasons::ISSUER_UNAVAILABLE, "issuer failed")
        }
    }
}
