//! The gateway's one error type and its one mapping to `tonic::Status`.
//!
//! Every refusal names a stable reason from the contract (`kiosk_proto::reasons`); the status
//! carries the reason, both kiosk messages and, for invalid fields, a `BadRequest`. Internal
//! causes (database, issuer transport) go to the log, never to the client.

use kiosk_proto::reasons::{self, FieldViolation};

/// Why the gateway refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A refusal with a contract reason and a developer-facing detail (no personal data).
    #[error("{reason}: {detail}")]
    Refused {
        /// The contract reason name (an `ErrorReason` value name).
        reason: &'static str,
        /// Developer-facing detail for the status message.
        detail: String,
        /// `ErrorInfo.metadata`: facts the terminal acts on, never personal data.
        metadata: Vec<(&'static str, String)>,
    },
    /// Invalid request fields.
    #[error("invalid request: {}", .0.iter().map(|v| v.field.as_str()).collect::<Vec<_>>().join(", "))]
    InvalidFields(Vec<FieldViolation>),
    /// A failure of ours; the cause is logged, the client sees INTERNAL_ERROR.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// A refusal with `reason` (a contract reason name).
    pub fn refused(reason: &'static str, detail: impl Into<String>) -> Self {
        GatewayError::Refused {
            reason,
            detail: detail.into(),
            metadata: Vec::new(),
        }
    }

    /// Adds an `ErrorInfo.metadata` entry to a refusal (other errors are left as they are).
    pub fn with_metadata(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if let GatewayError::Refused { metadata, .. } = &mut self {
            metadata.push((key, value.into()));
        }
        self
    }

    /// One invalid field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        GatewayError::InvalidFields(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// The contract reason name this error travels with.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::Refused { reason, .. } => reason,
            GatewayError::InvalidFields(_) => "INVALID_FIELD",
            GatewayError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl From<sqlx::Error> for GatewayError {
    fn from(error: sqlx::Error) -> Self {
        GatewayError::Internal(format!("database: {error}"))
    }
}

impl From<GatewayError> for tonic::Status {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Refused {
                reason,
                detail,
                metadata,
            } => reasons::status_with_metadata(reasons::named(reason), &detail, &[], &metadata),
            GatewayError::InvalidFields(violations) => reasons::status(
                reasons::named("INVALID_FIELD"),
                "invalid request fields",
                &violations,
            ),
            GatewayError::Internal(cause) => {
                // The cause may name a table or a peer; it stays in the log, clipped: a driver
                // error can quote a whole statement (40,000 filter variables made a 700 KB
                // log line, issue 10).
                tracing::error!(cause = reasons::clip(&cause, 2048), "internal error");
                reasons::status(reasons::named("INTERNAL_ERROR"), "internal error", &[])
            }
        }
    }
}

/// Every reason name this crate uses, so a test can prove each exists in the contract.
pub const REASONS_USED: &[&str] = &[
    "INVALID_FIELD",
    "INTERNAL_ERROR",
    "TERMINAL_UNKNOWN",
    "TERMINAL_SUSPENDED",
    "TERMINAL_RETIRED",
    "WRONG_CLIENT_ROLE",
    "SESSION_NOT_FOUND",
    "SESSION_EXPIRED",
    "SESSION_STATE",
    "CHALLENGE_EXPIRED",
    "CHALLENGE_USED",
    "CARD_CERTIFICATE_MALFORMED",
    "CARD_CERTIFICATE_UNTRUSTED",
    "CARD_EXPIRED",
    "CARD_NOT_YET_VALID",
    "CARD_KEY_USAGE",
    "CARD_REVOKED",
    "CARD_UNKNOWN",
    "SIGNATURE_INVALID",
    "REVOCATION_UNAVAILABLE",
    "MUNICIPALITY_NOT_SERVED",
    "ISSUANCE_FINISHED",
    "OVERLOADED",
    "SERVICE_SUSPENDED",
    "IDEMPOTENCY_KEY_REUSED",
    "SUBJECT_MISMATCH",
    "FEE_MISMATCH",
    "NOT_PERMITTED_SUBJECT",
    "ISSUER_UNAVAILABLE",
    "TIMED_OUT",
    "ISSUANCE_NOT_FOUND",
    "ISSUANCE_ALREADY_REPORTED",
    "PRINT_DEADLINE_PASSED",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_used_exists_in_the_contract() {
        for name in REASONS_USED {
            assert!(
                reasons::find(name).is_some(),
                "{name} is not in the contract"
            );
        }
    }

    #[test]
    fn internal_causes_do_not_reach_the_client() {
        let status = tonic::Status::from(GatewayError::Internal("table sessions: disk".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("sessions"));
        assert_eq!(reasons::reason_of(&status).unwrap().name, "INTERNAL_ERROR");
    }
}
