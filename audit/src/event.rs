//! The audit event model and its canonical, versioned byte encoding.
//!
//! An event holds only typed facts: identifiers are short ASCII tokens, residents are keyed
//! pseudonyms, reasons are `UPPER_SNAKE` codes, and the only human-written text (an anomaly's
//! resolution, written by an operator or auditor) is length-bounded and refuses long digit
//! runs. There is no field a resident's name, address or individual number fits into by design
//! (the ASCII-token rule alone keeps out Japanese names and addresses).
//!
//! # Canonical encoding, version 1
//!
//! ```text
//! event    = version:u8(0x01) field*            ; fields in strictly increasing tag order
//! field    = tag:u8 length:u32be value[length]  ; optional fields are omitted, never empty
//! tag 0x01 time          i64be, unix milliseconds (8 bytes)            required
//! tag 0x02 event type    ASCII name, as in kiosk.v1.AuditEventType     required
//! tag 0x03 actor kind    TERMINAL | RESIDENT | OPERATOR | AUDITOR | SYSTEM   required
//! tag 0x04 actor id      ASCII; a resident's is the pseudonym in hex; "system" for SYSTEM
//! tag 0x05 terminal id   tag 0x06 municipality code   tag 0x07 session id
//! tag 0x08 issuance id   tag 0x09 resident pseudonym (32 raw bytes)   tag 0x0A reason code
//! tag 0x0B attributes    (keylen:u16be key vallen:u32be value)+, keys strictly ascending
//! ```
//!
//! Decoding is strict (no unknown tags, no trailing bytes, every value re-validated), so
//! `encode(decode(b)) == b` for every accepted `b`, and an encoding is at most 65,535 bytes
//! (the tlog-tiles entry limit).

use std::collections::BTreeMap;

pub use kiosk_document::{CertificateType, MunicipalityCode, PrintOutcome};

mod codec;
mod fact;
mod pseudonym;
mod values;

pub use fact::{Actor, Fact};
pub use pseudonym::{Pseudonym, Pseudonymizer};
pub use values::{
    ActorKind, AnomalyKind, EventType, Ident, ReasonCode, ResolutionNote, ServiceWindow, UnixMillis,
};

/// The encoding version this crate writes.
pub const ENCODING_VERSION: u8 = 1;

/// The largest canonical encoding accepted.
pub const MAX_ENCODED_LEN: usize = 65_535;

/// Errors building or decoding an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A field value broke its rule; the value itself is not echoed (it could be personal data).
    #[error("invalid {field}: {rule}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// The rule it broke.
        rule: &'static str,
    },
    /// The bytes are not a version-1 canonical encoding.
    #[error("malformed canonical encoding: {0}")]
    Malformed(&'static str),
    /// The encoding version is unknown.
    #[error("unknown encoding version {0}")]
    Version(u8),
    /// The pseudonym key is too short.
    #[error("pseudonym key must be at least 32 bytes")]
    WeakKey,
}

fn invalid(field: &'static str, rule: &'static str) -> EventError {
    EventError::Invalid { field, rule }
}

/// Parses a municipality code as an event field: the shared type's rule, this crate's error.
pub fn municipality_code(s: &str) -> Result<MunicipalityCode, EventError> {
    MunicipalityCode::parse(s).map_err(|e| match e {
        kiosk_document::ModelError::MunicipalityCode(rule) => invalid("municipality code", rule),
        _ => invalid("municipality code", "not a municipality code"),
    })
}

/// Parses a certificate type by its stable name, as events carry it.
pub fn certificate_type(s: &str) -> Result<CertificateType, EventError> {
    CertificateType::from_code(s).ok_or_else(|| invalid("CertificateType", "unknown name"))
}

/// The facts of an issuance that settlement groups and sums by. Every issuance event carries
/// all of them, so settlement can be recomputed from the events alone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IssuanceFacts {
    /// The terminal.
    pub terminal: Ident,
    /// The store chain.
    pub chain: Ident,
    /// The store.
    pub store: Ident,
    /// The municipality that issued.
    pub municipality: MunicipalityCode,
    /// The certificate type.
    pub certificate_type: CertificateType,
    /// The session.
    pub session: Ident,
    /// The issuance.
    pub issuance: Ident,
    /// Number of documents.
    pub document_count: u32,
    /// Fee for all of them, yen.
    pub fee_yen: u64,
}

/// One audit event. Build it with a constructor ([`Event::documents_released`], ...) or with
/// [`Event::new`] and the `with_*` methods; read it back with [`Event::decode`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    time: UnixMillis,
    event_type: EventType,
    actor: Actor,
    terminal: Option<Ident>,
    municipality: Option<MunicipalityCode>,
    session: Option<Ident>,
    issuance: Option<Ident>,
    resident: Option<Pseudonym>,
    reason: Option<ReasonCode>,
    facts: BTreeMap<&'static str, Fact>,
}

impl Event {
    /// A bare event; add context with the `with_*` methods.
    pub fn new(time: UnixMillis, event_type: EventType, actor: Actor) -> Self {
        let resident = match &actor {
            Actor::Resident(p) => Some(*p),
            _ => None,
        };
        Self {
            time,
            event_type,
            actor,
            terminal: None,
            municipality: None,
            session: None,
            issuance: None,
            resident,
            reason: None,
            facts: BTreeMap::new(),
        }
    }

    /// Sets the terminal.
    pub fn with_terminal(mut self, t: Ident) -> Self {
        self.terminal = Some(t);
        self
    }
    /// Sets the municipality.
    pub fn with_municipality(mut self, m: MunicipalityCode) -> Self {
        self.municipality = Some(m);
        self
    }
    /// Sets the session.
    pub fn with_session(mut self, s: Ident) -> Self {
        self.session = Some(s);
        self
    }
    /// Sets the issuance.
    pub fn with_issuance(mut self, i: Ident) -> Self {
        self.issuance = Some(i);
        self
    }
    /// Sets the resident the event concerns.
    pub fn with_resident(mut self, p: Pseudonym) -> Self {
        self.resident = Some(p);
        self
    }
    /// Sets the reason code of a refusal or failure.
    pub fn with_reason(mut self, r: ReasonCode) -> Self {
        self.reason = Some(r);
        self
    }
    /// Adds a fact, replacing one with the same key.
    pub fn with_fact(mut self, f: Fact) -> Self {
        self.facts.insert(f.key(), f);
        self
    }

    /// Adds the facts of an issuance (terminal, chain, store, municipality, type, counts).
    pub fn with_issuance_facts(self, f: &IssuanceFacts) -> Self {
        self.with_terminal(f.terminal.clone())
            .with_municipality(f.municipality.clone())
            .with_session(f.session.clone())
            .with_issuance(f.issuance.clone())
            .with_fact(Fact::Chain(f.chain.clone()))
            .with_fact(Fact::Store(f.store.clone()))
            .with_fact(Fact::CertificateType(f.certificate_type))
            .with_fact(Fact::DocumentCount(f.document_count))
            .with_fact(Fact::FeeYen(f.fee_yen))
    }

    /// A terminal opened a session.
    pub fn session_opened(time: UnixMillis, terminal: Ident, session: Ident) -> Self {
        Self::new(
            time,
            EventType::SessionOpened,
            Actor::Terminal(terminal.clone()),
        )
        .with_terminal(terminal)
        .with_session(session)
    }

    /// Card authentication passed for a resident.
    pub fn card_auth_passed(
        time: UnixMillis,
        terminal: Ident,
        session: Ident,
        resident: Pseudonym,
    ) -> Self {
        Self::new(time, EventType::CardAuthPassed, Actor::Resident(resident))
            .with_terminal(terminal)
            .with_session(session)
    }

    /// Card authentication failed (no resident is known yet).
    pub fn card_auth_failed(
        time: UnixMillis,
        terminal: Ident,
        session: Ident,
        reason: ReasonCode,
    ) -> Self {
        Self::new(
            time,
            EventType::CardAuthFailed,
            Actor::Terminal(terminal.clone()),
        )
        .with_terminal(terminal)
        .with_session(session)
        .with_reason(reason)
    }

    /// Documents were released to a terminal for a resident.
    pub fn documents_released(
        time: UnixMillis,
        resident: Pseudonym,
        facts: &IssuanceFacts,
    ) -> Self {
        Self::new(
            time,
            EventType::DocumentsReleased,
            Actor::Resident(resident),
        )
        .with_issuance_facts(facts)
    }

    /// The terminal reported the print outcome.
    pub fn print_reported(
        time: UnixMillis,
        resident: Pseudonym,
        facts: &IssuanceFacts,
        outcome: PrintOutcome,
    ) -> Self {
        Self::new(
            time,
            EventType::PrintReported,
            Actor::Terminal(facts.terminal.clone()),
        )
        .with_resident(resident)
        .with_issuance_facts(facts)
        .with_fact(Fact::Outcome(outcome))
    }

    /// Documents were voided, with the reason.
    pub fn documents_voided(
        time: UnixMillis,
        actor: Actor,
        resident: Pseudonym,
        facts: &IssuanceFacts,
        reason: ReasonCode,
    ) -> Self {
        Self::new(time, EventType::DocumentsVoided, actor)
            .with_resident(resident)
            .with_issuance_facts(facts)
            .with_reason(reason)
    }

    /// Reconciliation voided `count` documents of `certificate_type` that an issuer of
    /// `municipality` signed for `issuance`, which the gateway never recorded.
    pub fn orphans_voided(
        time: UnixMillis,
        municipality: MunicipalityCode,
        issuance: Ident,
        certificate_type: CertificateType,
        count: u32,
        reason: ReasonCode,
    ) -> Self {
        Self::new(time, EventType::OrphansVoided, Actor::System)
            .with_municipality(municipality)
            .with_issuance(issuance)
            .with_reason(reason)
            .with_fact(Fact::CertificateType(certificate_type))
            .with_fact(Fact::DocumentCount(count))
    }

    /// No print report arrived before the deadline.
    pub fn deadline_passed(time: UnixMillis, resident: Pseudonym, facts: &IssuanceFacts) -> Self {
        Self::new(time, EventType::DeadlinePassed, Actor::System)
            .with_resident(resident)
            .with_issuance_facts(facts)
    }

    /// A binary started; records its build identity.
    pub fn started(time: UnixMillis, component: Ident, version: Ident, commit: Ident) -> Self {
        Self::new(time, EventType::Started, Actor::System)
            .with_fact(Fact::Component(component))
            .with_fact(Fact::BuildVersion(version))
            .with_fact(Fact::BuildCommit(commit))
    }

    /// An auditor read the log (`read` names the RPC or export).
    pub fn auditor_read(time: UnixMillis, auditor: Ident, read: Ident) -> Self {
        Self::new(time, EventType::AuditorRead, Actor::Auditor(auditor)).with_fact(Fact::Read(read))
    }

    /// A municipality was added to the routing, renamed, or routed to another issuer; the
    /// system did it at start, from the configuration.
    pub fn municipality_routed(
        time: UnixMillis,
        municipality: MunicipalityCode,
        endpoint: Ident,
    ) -> Self {
        Self::new(time, EventType::MunicipalityRouted, Actor::System)
            .with_municipality(municipality)
            .with_fact(Fact::IssuerEndpoint(endpoint))
    }

    /// An operator added a municipality to the routing, renamed it or routed it to another
    /// issuer (`kiosk-gateway admin municipality route`).
    pub fn municipality_routed_by(
        time: UnixMillis,
        operator: Ident,
        municipality: MunicipalityCode,
        endpoint: Ident,
    ) -> Self {
        Self::new(
            time,
            EventType::MunicipalityRouted,
            Actor::Operator(operator),
        )
        .with_municipality(municipality)
        .with_fact(Fact::IssuerEndpoint(endpoint))
    }

    /// The kill switch changed.
    pub fn kill_switch_changed(time: UnixMillis, operator: Ident, on: bool) -> Self {
        Self::new(
            time,
            EventType::KillSwitchChanged,
            Actor::Operator(operator),
        )
        .with_fact(Fact::KillSwitch(on))
    }

    /// The menu was shown to an authenticated resident.
    pub fn menu_shown(
        time: UnixMillis,
        terminal: Ident,
        session: Ident,
        resident: Pseudonym,
    ) -> Self {
        Self::new(
            time,
            EventType::MenuShown,
            Actor::Terminal(terminal.clone()),
        )
        .with_terminal(terminal)
        .with_session(session)
        .with_resident(resident)
    }

    /// An issuer rendered the documents of an issuance.
    pub fn issuance_rendered(time: UnixMillis, resident: Pseudonym, facts: &IssuanceFacts) -> Self {
        Self::new(time, EventType::IssuanceRendered, Actor::System)
            .with_resident(resident)
            .with_issuance_facts(facts)
    }

    /// An issuance was refused, with the reason code (e.g. not eligible, service closed). The
    /// terminal asked (it is the actor, as for every step of a session); the resident is the
    /// one concerned.
    pub fn issuance_refused(
        time: UnixMillis,
        terminal: Ident,
        session: Ident,
        resident: Pseudonym,
        reason: ReasonCode,
    ) -> Self {
        Self::new(
            time,
            EventType::IssuanceRefused,
            Actor::Terminal(terminal.clone()),
        )
        .with_terminal(terminal)
        .with_session(session)
        .with_resident(resident)
        .with_reason(reason)
    }

    /// A session closed.
    pub fn session_closed(time: UnixMillis, terminal: Ident, session: Ident) -> Self {
        Self::new(
            time,
            EventType::SessionClosed,
            Actor::Terminal(terminal.clone()),
        )
        .with_terminal(terminal)
        .with_session(session)
    }

    /// An operator registered, changed or retired a terminal.
    pub fn terminal_changed(
        time: UnixMillis,
        operator: Ident,
        terminal: Ident,
        store: Ident,
        chain: Ident,
    ) -> Self {
        Self::terminal_registry_changed(time, Actor::Operator(operator), terminal, store, chain)
    }

    /// The terminal registry changed by `actor`: an operator, or the system when a deployment
    /// registers its terminals itself.
    pub fn terminal_registry_changed(
        time: UnixMillis,
        actor: Actor,
        terminal: Ident,
        store: Ident,
        chain: Ident,
    ) -> Self {
        Self::new(time, EventType::TerminalChanged, actor)
            .with_terminal(terminal)
            .with_fact(Fact::Store(store))
            .with_fact(Fact::Chain(chain))
    }

    /// A key was rotated (`component` names its purpose, `key_id` the new key).
    pub fn key_changed(time: UnixMillis, actor: Actor, component: Ident, key_id: Ident) -> Self {
        Self::new(time, EventType::KeyChanged, actor)
            .with_fact(Fact::Component(component))
            .with_fact(Fact::KeyId(key_id))
    }

    /// An operator changed card bindings: `component` names the command
    /// (`card-binding-import`, `card-binding-renew`), `digest` what changed (a digest, never
    /// the cards or residents themselves).
    pub fn card_binding_changed(
        time: UnixMillis,
        operator: Ident,
        component: Ident,
        digest: Ident,
    ) -> Self {
        Self::new(
            time,
            EventType::CardBindingChanged,
            Actor::Operator(operator),
        )
        .with_fact(Fact::Component(component))
        .with_fact(Fact::KeyId(digest))
    }

    /// A fee changed for a municipality and certificate type.
    pub fn fee_changed(
        time: UnixMillis,
        operator: Ident,
        municipality: MunicipalityCode,
        certificate_type: CertificateType,
        fee_yen: u64,
    ) -> Self {
        Self::new(time, EventType::FeeChanged, Actor::Operator(operator))
            .with_municipality(municipality)
            .with_fact(Fact::CertificateType(certificate_type))
            .with_fact(Fact::FeeYen(fee_yen))
    }

    /// A municipality's service window changed.
    pub fn service_window_changed(
        time: UnixMillis,
        operator: Ident,
        municipality: MunicipalityCode,
        window: ServiceWindow,
    ) -> Self {
        Self::new(
            time,
            EventType::ServiceWindowChanged,
            Actor::Operator(operator),
        )
        .with_municipality(municipality)
        .with_fact(Fact::ServiceWindow(window))
    }

    /// When it happened.
    pub fn time(&self) -> UnixMillis {
        self.time
    }
    /// What happened.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }
    /// Who did it.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// The terminal, if any.
    pub fn terminal(&self) -> Option<&Ident> {
        self.terminal.as_ref()
    }
    /// The municipality, if any.
    pub fn municipality(&self) -> Option<&MunicipalityCode> {
        self.municipality.as_ref()
    }
    /// The session, if any.
    pub fn session(&self) -> Option<&Ident> {
        self.session.as_ref()
    }
    /// The issuance, if any.
    pub fn issuance(&self) -> Option<&Ident> {
        self.issuance.as_ref()
    }
    /// The resident concerned, if any.
    pub fn resident(&self) -> Option<&Pseudonym> {
        self.resident.as_ref()
    }
    /// The reason code, if any.
    pub fn reason(&self) -> Option<&ReasonCode> {
        self.reason.as_ref()
    }
    /// The facts, sorted by key.
    pub fn facts(&self) -> impl Iterator<Item = &Fact> {
        self.facts.values()
    }
    /// The fact with this key, if present.
    pub fn fact(&self, key: &str) -> Option<&Fact> {
        self.facts.get(key)
    }
}

/// Entry point for the fuzz target: decoding arbitrary bytes must not panic, and whatever
/// decodes must re-encode to the same bytes.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) {
    if let Ok(event) = Event::decode(bytes) {
        let again = event.encode();
        assert_eq!(
            again.as_deref().ok(),
            Some(bytes),
            "canonical round trip broke"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn facts() -> IssuanceFacts {
        IssuanceFacts {
            terminal: Ident::parse("T-0001").unwrap(),
            chain: Ident::parse("chain-a").unwrap(),
            store: Ident::parse("store-17").unwrap(),
            municipality: MunicipalityCode::parse("131211").unwrap(),
            certificate_type: CertificateType::ResidentRecord,
            session: Ident::parse("s-1").unwrap(),
            issuance: Ident::parse("i-1").unwrap(),
            document_count: 2,
            fee_yen: 400,
        }
    }

    #[test]
    fn canonical_round_trip_and_golden_prefix() {
        let p = Pseudonymizer::new(&[7u8; 32])
            .unwrap()
            .pseudonymize(b"resident-42");
        let e = Event::print_reported(
            UnixMillis(1_700_000_000_000),
            p,
            &facts(),
            PrintOutcome::Printed,
        );
        let bytes = e.encode().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..6], &[0x01, 0, 0, 0, 8]);
        assert_eq!(Event::decode(&bytes).unwrap(), e);
        fuzz_decode(&bytes);
    }

    #[test]
    fn names_and_free_text_are_refused() {
        assert!(Ident::parse("山田太郎").is_err());
        assert!(Ident::parse("Taro Yamada").is_err());
        assert!(ResolutionNote::parse("called 09012345678").is_err());
        assert!(ResolutionNote::parse("printer replaced; refund done").is_ok());
        assert!(MunicipalityCode::parse("131210").is_err());
        assert!(Pseudonymizer::new(&[1u8; 16]).is_err());
        assert!(Fact::parse("fee_yen", "0400").is_err());
        assert!(Fact::parse("name", "x").is_err());
    }

    proptest::proptest! {
        /// Any event built from valid parts round-trips, and any single-byte corruption of its
        /// encoding is either refused or decodes to something that re-encodes to those bytes.
        #[test]
        fn random_events_round_trip(
            t in proptest::prelude::any::<i64>(),
            ty in 0usize..20,
            fee in proptest::prelude::any::<u64>(),
            count in proptest::prelude::any::<u32>(),
            id in "[A-Za-z0-9._:-]{1,64}",
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let ident = Ident::parse(&id).unwrap();
            let e = Event::new(UnixMillis(t), EventType::ALL[ty], Actor::Operator(ident.clone()))
                .with_session(ident.clone())
                .with_fact(Fact::FeeYen(fee))
                .with_fact(Fact::DocumentCount(count))
                .with_fact(Fact::Store(ident));
            let bytes = e.encode().unwrap();
            proptest::prop_assert_eq!(Event::decode(&bytes).unwrap(), e);
            let mut bad = bytes.clone();
            let at = flip.0 % bad.len();
            bad[at] ^= flip.1.max(1);
            fuzz_decode(&bad);
        }
    }

    #[test]
    fn every_constructor_round_trips_and_covers_every_event_type() {
        let p = Pseudonymizer::new(&[7u8; 32]).unwrap().pseudonymize(b"r");
        let (t, f) = (UnixMillis(1), facts());
        let id = |s: &str| Ident::parse(s).unwrap();
        let m = MunicipalityCode::parse("131211").unwrap();
        let reason = ReasonCode::parse("NOT_ELIGIBLE").unwrap();
        let all = vec![
            Event::session_opened(t, id("T-1"), id("s-1")),
            Event::card_auth_passed(t, id("T-1"), id("s-1"), p),
            Event::card_auth_failed(t, id("T-1"), id("s-1"), reason.clone()),
            Event::menu_shown(t, id("T-1"), id("s-1"), p),
            Event::issuance_rendered(t, p, &f),
            Event::documents_released(t, p, &f),
            Event::print_reported(t, p, &f, PrintOutcome::PartlyPrinted),
            Event::documents_voided(t, Actor::System, p, &f, reason.clone()),
            Event::deadline_passed(t, p, &f),
            Event::new(t, EventType::AnomalyOpened, Actor::System)
                .with_fact(Fact::AnomalyId(id("a-1"))),
            Event::new(t, EventType::AnomalyResolved, Actor::Auditor(id("aud")))
                .with_fact(Fact::Resolution(ResolutionNote::parse("ok").unwrap())),
            Event::terminal_changed(t, id("op"), id("T-1"), id("store-1"), id("chain-a")),
            Event::key_changed(
                t,
                Actor::Operator(id("op")),
                id("checkpoint"),
                id("ab12cd34"),
            ),
            Event::fee_changed(
                t,
                id("op"),
                m.clone(),
                CertificateType::SealRegistration,
                300,
            ),
            Event::service_window_changed(
                t,
                id("op"),
                m,
                ServiceWindow::parse("06:30-23:00").unwrap(),
            ),
            Event::kill_switch_changed(t, id("op"), true),
            Event::card_binding_changed(
                t,
                id("op"),
                id("card-binding-import"),
                id("sha256:0123456789abcdef"),
            ),
            Event::municipality_routed(
                t,
                MunicipalityCode::parse("131016").unwrap(),
                id("https://issuer-131016.example.jp:7444"),
            ),
            Event::started(t, id("kiosk-gateway"), id("0.1.0"), id("39cbc0f")),
            Event::auditor_read(t, id("aud"), id("ListEvents")),
            Event::session_closed(t, id("T-1"), id("s-1")),
            Event::issuance_refused(t, id("T-1"), id("s-1"), p, reason.clone()),
            Event::orphans_voided(
                t,
                MunicipalityCode::parse("131016").unwrap(),
                id("i-1"),
                CertificateType::ResidentRecord,
                2,
                reason,
            ),
        ];
        let mut types: Vec<EventType> = all.iter().map(Event::event_type).collect();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), EventType::ALL.len());
        for e in all {
            assert_eq!(Event::decode(&e.encode().unwrap()).unwrap(), e);
        }
    }

    #[test]
    fn an_operator_event_names_its_account_and_whom_it_was_for() {
        let account = Ident::parse("unix:ops-svc").unwrap();
        let e = Event::kill_switch_changed(UnixMillis(5), account.clone(), true)
            .with_fact(Fact::OnBehalfOf(Ident::parse("ops-chiyoda-01").unwrap()));
        let back = Event::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.actor(), &Actor::Operator(account));
        assert_eq!(
            back.fact("on_behalf_of").map(Fact::value).as_deref(),
            Some("ops-chiyoda-01")
        );
        assert!(Fact::parse("on_behalf_of", "Taro Yamada").is_err());
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = Pseudonymizer::new(&[1u8; 32]).unwrap();
        let b = Pseudonymizer::new(&[2u8; 32]).unwrap();
        assert_eq!(a.pseudonymize(b"r1"), a.pseudonymize(b"r1"));
        assert_ne!(a.pseudonymize(b"r1"), b.pseudonymize(b"r1"));
        assert_eq!(format!("{a:?}"), "Pseudonymizer(<key redacted>)");
    }
}
