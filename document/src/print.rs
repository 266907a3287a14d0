//! What the printer did with an issuance's documents, as a terminal reports it.

use std::fmt;

/// What the printer did: kiosk.v1 `PrintOutcome` without its wire derives (the gateway converts
/// at the edge). The gateway's flow acts on it and the audit log records it by
/// [`PrintOutcome::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrintOutcome {
    /// Every document printed and paid.
    Printed,
    /// Nothing usable printed.
    Failed,
    /// Some documents printed, then a failure; the issuance is voided.
    PartlyPrinted,
}

impl PrintOutcome {
    /// Every outcome.
    pub const ALL: [PrintOutcome; 3] = [
        PrintOutcome::Printed,
        PrintOutcome::Failed,
        PrintOutcome::PartlyPrinted,
    ];

    /// The stable code: the kiosk.v1 enum value name without its prefix, as audit events
    /// carry it.
    pub fn code(self) -> &'static str {
        match self {
            PrintOutcome::Printed => "PRINTED",
            PrintOutcome::Failed => "FAILED",
            PrintOutcome::PartlyPrinted => "PARTLY_PRINTED",
        }
    }

    /// The outcome with stable code `code`.
    pub fn from_code(code: &str) -> Option<PrintOutcome> {
        PrintOutcome::ALL.into_iter().find(|o| o.code() == code)
    }
}

impl fmt::Display for PrintOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_the_contract_names() {
        for o in PrintOutcome::ALL {
            assert_eq!(PrintOutcome::from_code(o.code()), Some(o));
        }
        let codes: Vec<&str> = PrintOutcome::ALL
            .into_iter()
            .map(PrintOutcome::code)
            .collect();
        assert_eq!(codes, ["PRINTED", "FAILED", "PARTLY_PRINTED"]);
        assert_eq!(PrintOutcome::from_code("printed"), None);
    }
}
