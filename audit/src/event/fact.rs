//! Who caused an event ([`Actor`]) and the typed attributes it carries ([`Fact`]), each with
//! the text form the canonical encoding stores and its strict parser.

use kiosk_document::{CertificateType, PrintOutcome};

use super::pseudonym::Pseudonym;
use super::values::{ActorKind, AnomalyKind, Ident, ResolutionNote, ServiceWindow};
use super::{EventError, certificate_type, invalid};

/// Who caused an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Actor {
    /// A terminal, by id.
    Terminal(Ident),
    /// A resident, by pseudonym.
    Resident(Pseudonym),
    /// An operator, by account id.
    Operator(Ident),
    /// An auditor, by account id (e.g. the certificate's subject key id).
    Auditor(Ident),
    /// The system.
    System,
}

impl Actor {
    /// The kind.
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::Terminal(_) => ActorKind::Terminal,
            Actor::Resident(_) => ActorKind::Resident,
            Actor::Operator(_) => ActorKind::Operator,
            Actor::Auditor(_) => ActorKind::Auditor,
            Actor::System => ActorKind::System,
        }
    }

    /// The actor id as stored: terminal/operator/auditor id, pseudonym hex, or `system`.
    pub fn id(&self) -> String {
        match self {
            Actor::Terminal(i) | Actor::Operator(i) | Actor::Auditor(i) => i.0.clone(),
            Actor::Resident(p) => p.to_hex(),
            Actor::System => "system".to_owned(),
        }
    }

    pub(super) fn parse(kind: ActorKind, id: &str) -> Result<Self, EventError> {
        Ok(match kind {
            ActorKind::Terminal => Actor::Terminal(Ident::parse(id)?),
            ActorKind::Resident => Actor::Resident(Pseudonym::from_hex(id)?),
            ActorKind::Operator => Actor::Operator(Ident::parse(id)?),
            ActorKind::Auditor => Actor::Auditor(Ident::parse(id)?),
            ActorKind::System if id == "system" => Actor::System,
            ActorKind::System => return Err(invalid("actor", "system actor id must be `system`")),
        })
    }
}

/// A typed attribute. Each has a fixed key; an event holds at most one of each key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Fact {
    /// The store chain (コンビニ事業者).
    Chain(Ident),
    /// The store.
    Store(Ident),
    /// The certificate type.
    CertificateType(CertificateType),
    /// The fee for the documents, yen.
    FeeYen(u64),
    /// How many documents.
    DocumentCount(u32),
    /// What the printer did.
    Outcome(PrintOutcome),
    /// A document serial number.
    DocumentSerial(Ident),
    /// The anomaly concerned.
    AnomalyId(Ident),
    /// The anomaly's kind.
    AnomalyKind(AnomalyKind),
    /// Why the anomaly was closed.
    Resolution(ResolutionNote),
    /// Build version of a started binary.
    BuildVersion(Ident),
    /// Build commit of a started binary.
    BuildCommit(Ident),
    /// Which component (binary or key purpose).
    Component(Ident),
    /// A key's id (e.g. its SHA-256 fingerprint prefix).
    KeyId(Ident),
    /// Kill switch state after the change.
    KillSwitch(bool),
    /// The new service window.
    ServiceWindow(ServiceWindow),
    /// What an auditor read (the RPC or export name).
    Read(Ident),
    /// Log index an auditor's read started from, or another event referred to.
    EventIndex(u64),
    /// The person an operator command was run for, as the operator named them (the actor is
    /// the operating-system account, which may be a shared one).
    OnBehalfOf(Ident),
    /// Where a municipality's issuer is reached: its endpoint URL, `in-process`, or
    /// `sha256:<16 hex>` of an endpoint too long for an identifier.
    IssuerEndpoint(Ident),
}

impl Fact {
    /// The attribute key.
    pub fn key(&self) -> &'static str {
        match self {
            Fact::Chain(_) => "chain",
            Fact::Store(_) => "store",
            Fact::CertificateType(_) => "certificate_type",
            Fact::FeeYen(_) => "fee_yen",
            Fact::DocumentCount(_) => "document_count",
            Fact::Outcome(_) => "outcome",
            Fact::DocumentSerial(_) => "document_serial",
            Fact::AnomalyId(_) => "anomaly_id",
            Fact::AnomalyKind(_) => "anomaly_kind",
            Fact::Resolution(_) => "resolution",
            Fact::BuildVersion(_) => "build_version",
            Fact::BuildCommit(_) => "build_commit",
            Fact::Component(_) => "component",
            Fact::KeyId(_) => "key_id",
            Fact::KillSwitch(_) => "kill_switch",
            Fact::ServiceWindow(_) => "service_window",
            Fact::Read(_) => "read",
            Fact::EventIndex(_) => "event_index",
            Fact::OnBehalfOf(_) => "on_behalf_of",
            Fact::IssuerEndpoint(_) => "issuer_endpoint",
        }
    }

    /// The attribute value as text.
    pub fn value(&self) -> String {
        match self {
            Fact::Chain(i)
            | Fact::Store(i)
            | Fact::DocumentSerial(i)
            | Fact::AnomalyId(i)
            | Fact::BuildVersion(i)
            | Fact::BuildCommit(i)
            | Fact::Component(i)
            | Fact::KeyId(i)
            | Fact::Read(i)
            | Fact::OnBehalfOf(i)
            | Fact::IssuerEndpoint(i) => i.0.clone(),
            Fact::CertificateType(c) => c.code().to_owned(),
            Fact::FeeYen(n) | Fact::EventIndex(n) => n.to_string(),
            Fact::DocumentCount(n) => n.to_string(),
            Fact::Outcome(o) => o.code().to_owned(),
            Fact::AnomalyKind(k) => k.as_str().to_owned(),
            Fact::Resolution(r) => r.0.clone(),
            Fact::KillSwitch(b) => if *b { "on" } else { "off" }.to_owned(),
            Fact::ServiceWindow(w) => w.0.clone(),
        }
    }

    /// Parses a key and value back into a fact.
    pub fn parse(key: &str, value: &str) -> Result<Self, EventError> {
        let num = |v: &str| -> Result<u64, EventError> {
            // Canonical decimal only: no sign, no leading zeros, so one value has one spelling.
            if v.is_empty()
                || (v.len() > 1 && v.starts_with('0'))
                || !v.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid("attribute", "number must be canonical decimal"));
            }
            v.parse()
                .map_err(|_| invalid("attribute", "number out of range"))
        };
        Ok(match key {
            "chain" => Fact::Chain(Ident::parse(value)?),
            "store" => Fact::Store(Ident::parse(value)?),
            "certificate_type" => Fact::CertificateType(certificate_type(value)?),
            "fee_yen" => Fact::FeeYen(num(value)?),
            "document_count" => Fact::DocumentCount(
                u32::try_from(num(value)?).map_err(|_| invalid("document_count", "too large"))?,
            ),
            "outcome" => Fact::Outcome(
                PrintOutcome::from_code(value)
                    .ok_or_else(|| invalid("PrintOutcome", "unknown name"))?,
            ),
            "document_serial" => Fact::DocumentSerial(Ident::parse(value)?),
            "anomaly_id" => Fact::AnomalyId(Ident::parse(value)?),
            "anomaly_kind" => Fact::AnomalyKind(AnomalyKind::parse(value)?),
            "resolution" => Fact::Resolution(ResolutionNote::parse(value)?),
            "build_version" => Fact::BuildVersion(Ident::parse(value)?),
            "build_commit" => Fact::BuildCommit(Ident::parse(value)?),
            "component" => Fact::Component(Ident::parse(value)?),
            "key_id" => Fact::KeyId(Ident::parse(value)?),
            "kill_switch" => match value {
                "on" => Fact::KillSwitch(true),
                "off" => Fact::KillSwitch(false),
                _ => return Err(invalid("kill_switch", "must be on or off")),
            },
            "service_window" => Fact::ServiceWindow(ServiceWindow::parse(value)?),
            "read" => Fact::Read(Ident::parse(value)?),
            "event_index" => Fact::EventIndex(num(value)?),
            "on_behalf_of" => Fact::OnBehalfOf(Ident::parse(value)?),
            "issuer_endpoint" => Fact::IssuerEndpoint(Ident::parse(value)?),
            _ => return Err(invalid("attribute", "unknown key")),
        })
    }
}
