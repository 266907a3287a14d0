//! The values an event's fields hold, each a type whose constructor enforces its rule: the
//! stable-name enums (event type, actor kind, anomaly kind), identifiers, reason codes,
//! resolution notes, service windows and times. None of them can carry a resident's name,
//! address or number; the rules say how.

use std::fmt;

use super::{EventError, invalid};

macro_rules! name_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// The stable name (the kiosk.v1 enum value name).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
            /// Parses the stable name.
            pub fn parse(s: &str) -> Result<Self, EventError> {
                match s {
                    $($s => Ok($name::$v),)*
                    _ => Err(invalid(stringify!($name), "unknown name")),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

name_enum! {
    /// What happened; names match `kiosk.v1.AuditEventType`.
    EventType {
        /// A terminal opened a session.
        SessionOpened = "SESSION_OPENED",
        /// The card signature checked out.
        CardAuthPassed = "CARD_AUTH_PASSED",
        /// Card authentication failed; the reason code says why.
        CardAuthFailed = "CARD_AUTH_FAILED",
        /// The menu was shown.
        MenuShown = "MENU_SHOWN",
        /// An issuer rendered documents.
        IssuanceRendered = "ISSUANCE_RENDERED",
        /// Documents left the gateway for a terminal.
        DocumentsReleased = "DOCUMENTS_RELEASED",
        /// The terminal reported the print outcome.
        PrintReported = "PRINT_REPORTED",
        /// Documents were voided.
        DocumentsVoided = "DOCUMENTS_VOIDED",
        /// No print report arrived before the deadline.
        DeadlinePassed = "DEADLINE_PASSED",
        /// An anomaly was opened.
        AnomalyOpened = "ANOMALY_OPENED",
        /// An anomaly was resolved with a reason.
        AnomalyResolved = "ANOMALY_RESOLVED",
        /// A terminal was registered, changed or retired.
        TerminalChanged = "TERMINAL_CHANGED",
        /// A signing or TLS key was rotated.
        KeyChanged = "KEY_CHANGED",
        /// A fee changed.
        FeeChanged = "FEE_CHANGED",
        /// A service window changed.
        ServiceWindowChanged = "SERVICE_WINDOW_CHANGED",
        /// The kill switch was turned on or off.
        KillSwitchChanged = "KILL_SWITCH_CHANGED",
        /// A binary started, with its build identity.
        Started = "STARTED",
        /// An auditor read the log.
        AuditorRead = "AUDITOR_READ",
        /// A session closed.
        SessionClosed = "SESSION_CLOSED",
        /// An issuance was refused; the reason code says why.
        IssuanceRefused = "ISSUANCE_REFUSED",
        /// Reconciliation voided documents signed for an issuance the gateway never recorded.
        OrphansVoided = "ORPHANS_VOIDED",
        /// An operator imported card bindings or linked a renewed card certificate.
        CardBindingChanged = "CARD_BINDING_CHANGED",
        /// A municipality was added to the gateway's routing, renamed, or routed to another
        /// issuer (the configuration's `[[remote_issuers]]`, read at start).
        MunicipalityRouted = "MUNICIPALITY_ROUTED",
    }
}

name_enum! {
    /// Who caused an event (without the identifier); names match `kiosk.v1.ActorKind` minus
    /// the `ACTOR_KIND_` prefix.
    ActorKind {
        /// A store terminal.
        Terminal = "TERMINAL",
        /// A resident, by pseudonym only.
        Resident = "RESIDENT",
        /// An operator of the service.
        Operator = "OPERATOR",
        /// An auditor.
        Auditor = "AUDITOR",
        /// The system itself (timers, start-up).
        System = "SYSTEM",
    }
}

name_enum! {
    /// Anomaly kinds; names match `kiosk.v1.AnomalyKind` minus the prefix.
    AnomalyKind {
        /// A print failed.
        PrintFailed = "PRINT_FAILED",
        /// The print-report deadline passed.
        DeadlinePassed = "DEADLINE_PASSED",
        /// A page's subject did not match the authenticated resident.
        SubjectMismatch = "SUBJECT_MISMATCH",
        /// An issuer reported an error.
        IssuerError = "ISSUER_ERROR",
    }
}

/// An identifier: 1 to 64 ASCII letters, digits and `._:/-` (the kiosk.v1 identifier set;
/// terminal ids are `<chain>/<store>/<terminal>`).
///
/// Invariant: matches `[A-Za-z0-9._:/-]{1,64}`, so it cannot carry a Japanese name, an
/// address or free prose.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ident(pub(super) String);

impl Ident {
    /// `sha256:<first 16 hex digits>` of `bytes`: names a certificate, a file or a value too
    /// long or too free for an identifier, without carrying it.
    pub fn fingerprint(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        Self(format!("sha256:{}", &hex::encode(digest)[..16]))
    }

    /// Validates an identifier.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        if s.is_empty() || s.len() > 64 {
            return Err(invalid("identifier", "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
        {
            return Err(invalid(
                "identifier",
                "only ASCII letters, digits and ._:/-",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reason code, as `kiosk.v1` ErrorReason names: `UPPER_SNAKE`, 1 to 64 characters.
///
/// Invariant: matches `[A-Z0-9_]{1,64}`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ReasonCode(pub(super) String);

impl ReasonCode {
    /// Validates a reason code.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid("reason", "must be UPPER_SNAKE, 1 to 64 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an anomaly was closed, written by an operator or auditor (never by a resident).
///
/// Invariant: 1 to 500 characters, no control characters, and no run of 6 or more digits (so a
/// phone number, an individual number or a card number cannot be pasted in).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ResolutionNote(pub(super) String);

impl ResolutionNote {
    /// Validates a resolution note.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let count = s.chars().count();
        if count == 0 || count > 500 {
            return Err(invalid("resolution", "must be 1 to 500 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid("resolution", "no control characters"));
        }
        let mut run = 0;
        for c in s.chars() {
            run = if c.is_numeric() { run + 1 } else { 0 };
            if run >= 6 {
                return Err(invalid("resolution", "no runs of 6 or more digits"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A daily service window in Japan time, `HH:MM-HH:MM`.
///
/// Invariant: both times valid, start before end.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ServiceWindow(pub(super) String);

impl ServiceWindow {
    /// Validates `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let bad = || {
            invalid(
                "service window",
                "must be HH:MM-HH:MM with start before end",
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        match (minutes(a), minutes(b)) {
            (Some(x), Some(y)) if x < y => Ok(Self(s.to_owned())),
            _ => Err(bad()),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unix time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current time.
    pub fn now() -> Self {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
    }
}
