//! The scenarios and the rules: what the kit does to the terminal, and what it then checks.
//! docs/conformance.md describes each for vendors; names here are stable (reports and scripts
//! key on them), so a rule or scenario is never renamed, only added.

/// A rule of the terminal contract the kit judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A closed service (kill switch) is shown before the card is read: no Authenticate.
    ClosedBeforeCard,
    /// After a timeout, a broken stream, OVERLOADED or UNAVAILABLE, Issue is retried with the
    /// same `client_request_id`, never a new one.
    IssueRetrySameId,
    /// A stream that ended without its trailer is not printed.
    NoPrintWithoutTrailer,
    /// A document whose SHA-256 does not match is not printed.
    NoPrintOnDigestMismatch,
    /// Every issuance whose header reached the terminal is reported before its print
    /// deadline, with what the printer did.
    ReportBeforeDeadline,
    /// Every session the terminal opened is closed with CloseSession.
    CloseSession,
    /// The PIN appears in no request.
    PinNeverSent,
    /// A reason's documented action is followed (docs/terminal-integration.md sections 4, 5).
    ReasonAction,
    /// The card is reset or powered off after the session: judged only when the kit presents
    /// the card in its own PC/SC reader (`--pcsc`), NOT CHECKED otherwise.
    CardReset,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: [Rule; 9] = [
        Rule::ClosedBeforeCard,
        Rule::IssueRetrySameId,
        Rule::NoPrintWithoutTrailer,
        Rule::NoPrintOnDigestMismatch,
        Rule::ReportBeforeDeadline,
        Rule::CloseSession,
        Rule::PinNeverSent,
        Rule::ReasonAction,
        Rule::CardReset,
    ];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::ClosedBeforeCard => "closed-before-card",
            Rule::IssueRetrySameId => "issue-retry-same-id",
            Rule::NoPrintWithoutTrailer => "no-print-without-trailer",
            Rule::NoPrintOnDigestMismatch => "no-print-on-digest-mismatch",
            Rule::ReportBeforeDeadline => "report-before-deadline",
            Rule::CloseSession => "close-session",
            Rule::PinNeverSent => "pin-never-sent",
            Rule::ReasonAction => "reason-action",
            Rule::CardReset => "card-reset",
        }
    }
}

/// The fault the kit's front injects in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None: the gateway's answers pass unchanged.
    None,
    /// The gateway's global kill switch is on for the whole scenario.
    KillSwitch,
    /// OpenSession's answer says the service is closed, `OUT_OF_SERVICE_HOURS`, as outside
    /// 6:30–23:00 JST (the gateway's clock stays in office hours, so the kit rewrites it).
    OutOfHours,
    /// Every Issue stream ends cleanly right before its trailer.
    CutEveryStream,
    /// In every Issue stream one byte of the first document is flipped, so its SHA-256 no
    /// longer matches `document_sha256`.
    CorruptEveryStream,
    /// The first Issue is forwarded, the gateway records and releases the issuance, its
    /// stream is read to the end and thrown away, and the terminal gets DEADLINE_EXCEEDED.
    DeadlineAfterCommit,
    /// The first Issue is answered DEADLINE_EXCEEDED without reaching the gateway.
    DeadlineBeforeForward,
    /// The first Issue is answered RESOURCE_EXHAUSTED `OVERLOADED` without reaching it.
    Overloaded,
    /// The first Issue is answered UNAVAILABLE `ISSUER_UNAVAILABLE` without reaching it.
    IssuerUnavailable,
    /// The first Issue is answered INTERNAL `SUBJECT_MISMATCH` without reaching it: the
    /// gateway refused to release a document, which no retry changes.
    SubjectMismatch,
    /// The first Issue is answered FAILED_PRECONDITION `FEE_MISMATCH` without reaching it:
    /// the fee changed since the Quote, nothing was issued.
    FeeMismatch,
    /// The first Issue is answered FAILED_PRECONDITION `ISSUANCE_FINISHED` without reaching
    /// it: that order is over and nothing more will be sent for it.
    IssuanceFinished,
    /// The first Authenticate is answered UNAUTHENTICATED `CHALLENGE_EXPIRED` without
    /// reaching the gateway: the session's challenge is spent.
    ChallengeExpired,
    /// The first Authenticate is answered UNAUTHENTICATED `SIGNATURE_INVALID`: the login
    /// failed, start again from OpenSession.
    SignatureInvalid,
    /// The first Authenticate is answered UNAUTHENTICATED `CARD_EXPIRED`: the card's
    /// certificate is no longer usable, the resident goes to the municipal office.
    CardExpired,
    /// Every menu (Authenticate, GetMenu) shows [`WITHHELD_TYPE`] unavailable with
    /// `PENDING_CHANGE`, as the issuer marks an item the resident cannot obtain now; the
    /// rest of the menu stays usable.
    IneligibleItem,
    /// With `--pcsc`, the kit's card answers every VERIFY `69 83`: the PIN is blocked
    /// (`PIN_BLOCKED`, terminal-side). Without `--pcsc` the card is the terminal's and
    /// nothing is injected.
    PinBlocked,
}

/// The certificate type the `ineligible-item` scenario shows unavailable.
pub const WITHHELD_TYPE: &str = "RESIDENT_RECORD_ITEMS";

/// Which card the terminal gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardChoice {
    /// A resident who may obtain the everyday certificates.
    Resident,
    /// The development PKI's revoked card: Authenticate answers `CARD_REVOKED`.
    Revoked,
}

/// What the terminal's printer is told to do (`KIOSK_CONFORMANCE_PRINTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    /// Every document prints: report PRINTED.
    Ok,
    /// Nothing prints: report FAILED.
    Fail,
    /// The first document prints, then the printer fails: report PARTLY_PRINTED.
    Partial,
}

impl Printer {
    /// The value of `KIOSK_CONFORMANCE_PRINTER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Printer::Ok => "ok",
            Printer::Fail => "fail",
            Printer::Partial => "partial",
        }
    }
}

/// One scenario: a terminal run with one fault and the rules judged on it.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The stable name.
    pub name: &'static str,
    /// What happens, in one line.
    pub summary: &'static str,
    /// The card.
    pub card: CardChoice,
    /// The printer.
    pub printer: Printer,
    /// The certificate types to ask for (`KIOSK_CONFORMANCE_TYPES`).
    pub types: &'static [&'static str],
    /// The fault.
    pub fault: Fault,
    /// The rules judged, in report order.
    pub rules: &'static [Rule],
}

const EVERYDAY: &[&str] = &["RESIDENT_RECORD"];
const TWO_DOCUMENTS: &[&str] = &["RESIDENT_RECORD", "RESIDENT_RECORD_ITEMS"];

const fn issuing(
    name: &'static str,
    summary: &'static str,
    fault: Fault,
    rules: &'static [Rule],
) -> Scenario {
    Scenario {
        name,
        summary,
        card: CardChoice::Resident,
        printer: Printer::Ok,
        types: EVERYDAY,
        fault,
        rules,
    }
}

use Rule::*;

/// Every scenario, in run order.
pub const SCENARIOS: &[Scenario] = &[
    issuing(
        "baseline",
        "one issuance, no fault, the printer prints",
        Fault::None,
        &[ReportBeforeDeadline, CloseSession, PinNeverSent, CardReset],
    ),
    Scenario {
        printer: Printer::Fail,
        ..issuing(
            "print-failed",
            "the printer prints nothing",
            Fault::None,
            &[ReportBeforeDeadline, CloseSession, PinNeverSent],
        )
    },
    Scenario {
        printer: Printer::Partial,
        types: TWO_DOCUMENTS,
        ..issuing(
            "print-partial",
            "two documents; the printer fails after the first",
            Fault::None,
            &[ReportBeforeDeadline, CloseSession, PinNeverSent],
        )
    },
    issuing(
        "kill-switch",
        "the gateway's global kill switch is on: OpenSession answers SERVICE_STATE_CLOSED",
        Fault::KillSwitch,
        &[ClosedBeforeCard, CloseSession, PinNeverSent],
    ),
    issuing(
        "out-of-hours",
        "OpenSession answers SERVICE_STATE_CLOSED with OUT_OF_SERVICE_HOURS",
        Fault::OutOfHours,
        &[ClosedBeforeCard, CloseSession, PinNeverSent],
    ),
    Scenario {
        card: CardChoice::Revoked,
        ..issuing(
            "revoked-card",
            "the card's certificate is revoked: Authenticate answers CARD_REVOKED",
            Fault::None,
            &[ReasonAction, CloseSession, PinNeverSent],
        )
    },
    issuing(
        "stream-cut",
        "every Issue stream ends before its trailer",
        Fault::CutEveryStream,
        &[
            IssueRetrySameId,
            NoPrintWithoutTrailer,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "digest-mismatch",
        "in every Issue stream a byte of the first document is flipped",
        Fault::CorruptEveryStream,
        // Not IssueRetrySameId: the contract says what to do after a broken stream or a
        // timeout, not after a corrupt document (retrying, or reporting FAILED, both conform).
        &[
            NoPrintOnDigestMismatch,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "deadline-after-commit",
        "the first Issue is recorded by the gateway, then answered DEADLINE_EXCEEDED",
        Fault::DeadlineAfterCommit,
        &[
            IssueRetrySameId,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "deadline-before-forward",
        "the first Issue is answered DEADLINE_EXCEEDED before reaching the gateway",
        Fault::DeadlineBeforeForward,
        &[
            IssueRetrySameId,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "overloaded",
        "the first Issue is answered RESOURCE_EXHAUSTED OVERLOADED",
        Fault::Overloaded,
        &[
            IssueRetrySameId,
            ReasonAction,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "issuer-unavailable",
        "the first Issue is answered UNAVAILABLE ISSUER_UNAVAILABLE",
        Fault::IssuerUnavailable,
        &[
            IssueRetrySameId,
            ReportBeforeDeadline,
            CloseSession,
            PinNeverSent,
        ],
    ),
    issuing(
        "subject-mismatch",
        "the first Issue is answered INTERNAL SUBJECT_MISMATCH",
        Fault::SubjectMismatch,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "fee-mismatch",
        "the first Issue is answered FAILED_PRECONDITION FEE_MISMATCH",
        Fault::FeeMismatch,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "issuance-finished",
        "the first Issue is answered FAILED_PRECONDITION ISSUANCE_FINISHED",
        Fault::IssuanceFinished,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "challenge-expired",
        "the first Authenticate is answered UNAUTHENTICATED CHALLENGE_EXPIRED",
        Fault::ChallengeExpired,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "signature-invalid",
        "the first Authenticate is answered UNAUTHENTICATED SIGNATURE_INVALID",
        Fault::SignatureInvalid,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "card-expired",
        "the first Authenticate is answered UNAUTHENTICATED CARD_EXPIRED",
        Fault::CardExpired,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    issuing(
        "pin-blocked",
        "with --pcsc, the card answers VERIFY 69 83 (PIN_BLOCKED)",
        Fault::PinBlocked,
        &[ReasonAction, CloseSession, PinNeverSent],
    ),
    Scenario {
        types: TWO_DOCUMENTS,
        ..issuing(
            "ineligible-item",
            "two types asked for; the menu shows the second unavailable (PENDING_CHANGE)",
            Fault::IneligibleItem,
            &[
                ReasonAction,
                ReportBeforeDeadline,
                CloseSession,
                PinNeverSent,
            ],
        )
    },
];

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}
