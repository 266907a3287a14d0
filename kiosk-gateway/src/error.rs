//! The gateway's one error type and its one mapping to `tonic::Status`.
//!
//! Every refusal names a stable reason from the contract as a typed constant
//! (`kiosk_proto::reasons::CARD_REVOKED`), so a misspelt reason does not compile; the status
//! carries the reason, both kiosk messages and, for invalid fields, a `BadRequest`. Internal
//! causes (database, issuer transport) go to the log, never to the client.

use kiosk_proto::reasons::{self, FieldViolation, Reason};

/// Why the gateway refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A refusal with a contract reason and a developer-facing detail (no personal data).
    #[error("{}: {detail}", reason.name)]
    Refused {
        /// The contract reason.
        reason: Reason,
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
    /// A refusal with a contract `reason`.
    pub fn refused(reason: Reason, detail: impl Into<String>) -> Self {
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

    /// The contract reason this error travels with.
    pub fn reason(&self) -> Reason {
        match self {
            GatewayError::Refused { reason, .. } => *reason,
            GatewayError::InvalidFields(_) => reasons::INVALID_FIELD,
            GatewayError::Internal(_) => reasons::INTERNAL_ERROR,
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
            } => reasons::status_with_metadata(&reason, &detail, &[], &metadata),
            GatewayError::InvalidFields(violations) => reasons::status(
                &reasons::INVALID_FIELD,
                "invalid request fields",
                &violations,
            ),
            GatewayError::Internal(cause) => {
                // The cause may name a table or a peer; it stays in the log, clipped: a driver
                // error can quote a whole statement (40,000 filter variables made a 700 KB
                // log line, issue 10).
                tracing::error!(cause = reasons::clip(&cause, 2048), "internal error");
                reasons::status(&reasons::INTERNAL_ERROR, "internal error", &[])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_do_not_reach_the_client() {
        let status = tonic::Status::from(GatewayError::Internal("table sessions: disk".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("sessions"));
        assert_eq!(reasons::reason_of(&status).unwrap().name, "INTERNAL_ERROR");
    }
}
