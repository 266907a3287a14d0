//! What the kit saw the terminal do, in the kit's own types: the front converts each kiosk.v1
//! message here as it passes, so the judging never touches protobuf.

use std::collections::HashSet;
use std::time::Instant;

/// What a print report said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// PRINT_OUTCOME_PRINTED.
    Printed,
    /// PRINT_OUTCOME_FAILED.
    Failed,
    /// PRINT_OUTCOME_PARTLY_PRINTED.
    PartlyPrinted,
    /// Anything else (unspecified or unknown).
    Other,
}

impl Outcome {
    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Printed => "PRINTED",
            Outcome::Failed => "FAILED",
            Outcome::PartlyPrinted => "PARTLY_PRINTED",
            Outcome::Other => "UNSPECIFIED",
        }
    }
}

/// What the terminal received for one Issue call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The issuance named in the header the terminal received.
    pub issuance_id: String,
    /// Its print deadline, in the gateway's clock (unix ms).
    pub print_deadline_ms: i64,
    /// The trailer reached the terminal.
    pub trailer: bool,
    /// A byte of a document was flipped by the kit.
    pub corrupted: bool,
}

/// One call of the terminal, as the kit received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// OpenSession; `closed` when the answer said SERVICE_STATE_CLOSED.
    OpenSession {
        /// The session the gateway opened (empty when refused).
        session_id: String,
        /// The service was closed.
        closed: bool,
    },
    /// Authenticate.
    Authenticate {
        /// The session.
        session_id: String,
    },
    /// GetMenu.
    GetMenu {
        /// The session.
        session_id: String,
    },
    /// Quote.
    Quote {
        /// The session.
        session_id: String,
        /// The certificate types ordered (`CertificateType` names).
        types: Vec<String>,
    },
    /// Issue.
    Issue {
        /// The session.
        session_id: String,
        /// The idempotency key the terminal chose.
        request_id: String,
        /// What reached the terminal when a stream was sent.
        delivery: Option<Delivery>,
        /// The certificate types ordered (`CertificateType` names).
        types: Vec<String>,
    },
    /// ReportPrint.
    ReportPrint {
        /// The session.
        session_id: String,
        /// The issuance reported.
        issuance_id: String,
        /// What the terminal said the printer did.
        outcome: Outcome,
        /// When the report arrived, in the gateway's clock (unix ms).
        at_gateway_ms: i64,
    },
    /// CloseSession.
    CloseSession {
        /// The session.
        session_id: String,
    },
}

impl Call {
    /// The RPC's name.
    pub fn rpc(&self) -> &'static str {
        match self {
            Call::OpenSession { .. } => "OpenSession",
            Call::Authenticate { .. } => "Authenticate",
            Call::GetMenu { .. } => "GetMenu",
            Call::Quote { .. } => "Quote",
            Call::Issue { .. } => "Issue",
            Call::ReportPrint { .. } => "ReportPrint",
            Call::CloseSession { .. } => "CloseSession",
        }
    }

    /// The session the call concerns.
    pub fn session_id(&self) -> &str {
        match self {
            Call::OpenSession { session_id, .. }
            | Call::Authenticate { session_id }
            | Call::GetMenu { session_id }
            | Call::Quote { session_id, .. }
            | Call::Issue { session_id, .. }
            | Call::ReportPrint { session_id, .. }
            | Call::CloseSession { session_id } => session_id,
        }
    }
}

/// How the call was answered (by the gateway, or by the kit's injected fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet (the terminal went away first).
    Pending,
    /// Answered.
    Ok,
    /// Refused with a gRPC code and, when it carried one, the contract's reason.
    Refused {
        /// The gRPC code's name, e.g. `DeadlineExceeded`.
        code: String,
        /// The `ErrorInfo.reason`, or empty.
        reason: String,
    },
}

/// One observed call.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Milliseconds since the scenario started, when the request arrived.
    pub at_ms: u64,
    /// The call.
    pub call: Call,
    /// Its answer.
    pub answer: Answer,
    /// Where the PIN was found in the request (field or metadata names); empty when nowhere.
    pub pin_found: Vec<String>,
}

/// Everything observed during one scenario.
#[derive(Debug)]
pub struct Recording {
    started: Instant,
    /// The calls in arrival order.
    pub calls: Vec<Observation>,
    /// Values the gateway handed out (session ids, issuance ids, subject references): a
    /// terminal echoing them sends no PIN, even when four of their digits spell it.
    pub handed_out: HashSet<String>,
}

impl Recording {
    /// An empty recording starting now.
    pub fn new() -> Self {
        Recording {
            started: Instant::now(),
            calls: Vec::new(),
            handed_out: HashSet::new(),
        }
    }

    /// When the recording started: the calls' `at_ms` count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Adds a call arriving now; returns its index for the answer.
    pub fn push(&mut self, call: Call, pin_found: Vec<String>) -> usize {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.calls.push(Observation {
            at_ms,
            call,
            answer: Answer::Pending,
            pin_found,
        });
        self.calls.len() - 1
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}
