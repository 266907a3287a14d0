//! The issuer's one error type.

use kiosk_document::ModelError;

use crate::reason::Reason;

/// Everything the issuer can refuse or fail with. Messages carry no personal data.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The register or the configuration refuses the request, with the contract's reason.
    #[error("refused: {}", .0.name())]
    Refused(Reason),
    /// A request field is malformed or not allowed for its type.
    #[error("invalid field {field}")]
    InvalidField {
        /// The `kiosk.v1` field name.
        field: &'static str,
    },
    /// More copies than the type allows in one order.
    #[error("too many copies of one certificate type")]
    TooManyCopies,
    /// The issuance id was rendered before with other items.
    #[error("issuance id already rendered with other items")]
    IssuanceConflict,
    /// The request names a municipality this issuer does not serve.
    #[error("municipality not served by this issuer")]
    MunicipalityNotServed,
    /// The caller's certificate does not name a gateway (only gateways call an issuer).
    #[error("only a gateway may call the issuer")]
    WrongClientRole,
    /// A register row holds a value the issuer does not understand.
    #[error("register row is corrupt: {what}")]
    Corrupt {
        /// Which column or rule, no values.
        what: &'static str,
    },
    /// The register's database could not be opened: the driver's or TLS's reason, which
    /// names no URL (so no password).
    #[error("the register's database cannot be opened: {0}")]
    Open(String),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("schema migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Rendering or signing a document failed.
    #[error("document rendering failed: {0}")]
    Render(String),
    /// An operator command (`issuer municipality apply`) was refused and wrote nothing; each
    /// entry names one conflict (a field, a certificate type, a date), never register data
    /// about residents.
    #[error("refused, nothing written: {}", .0.join("; "))]
    Operator(Vec<String>),
}

impl From<ModelError> for IssuerError {
    /// A vocabulary value that did not parse is the request field it came from; any other
    /// model error can only come from building a document, so rendering failed.
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::MunicipalityCode(_) => IssuerError::InvalidField {
                field: "municipality_code",
            },
            ModelError::IssuanceId => IssuerError::InvalidField {
                field: "issuance_id",
            },
            ModelError::ResidentRef => IssuerError::InvalidField {
                field: "resident_ref",
            },
            other => IssuerError::Render(other.to_string()),
        }
    }
}

impl IssuerError {
    /// The contract's reason for this error (`kiosk.v1.ErrorReason`).
    pub fn reason(&self) -> kiosk_proto::reasons::Reason {
        use kiosk_proto::reasons;
        match self {
            IssuerError::Refused(reason) => reason.contract(),
            IssuerError::InvalidField { .. } => reasons::INVALID_FIELD,
            IssuerError::TooManyCopies => reasons::TOO_MANY_COPIES,
            IssuerError::IssuanceConflict => reasons::IDEMPOTENCY_KEY_REUSED,
            IssuerError::MunicipalityNotServed => reasons::MUNICIPALITY_NOT_SERVED,
            IssuerError::WrongClientRole => reasons::WRONG_CLIENT_ROLE,
            // Only the command line raises it; no kiosk.v1 call can.
            IssuerError::Operator(_) => reasons::INVALID_FIELD,
            IssuerError::Corrupt { .. }
            | IssuerError::Open(_)
            | IssuerError::Database(_)
            | IssuerError::Migrate(_)
            | IssuerError::Render(_) => reasons::INTERNAL_ERROR,
        }
    }
}
