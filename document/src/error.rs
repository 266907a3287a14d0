//! The one error type of building a vocabulary or model value from untrusted or register data.

/// Why a value of this crate could not be built. Messages never echo the value (it may come
/// from a register or from a stranger).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A municipality code is not six digits with a valid JIS X 0402 check digit; the text
    /// says which rule it broke.
    #[error("invalid municipality code: {0}")]
    MunicipalityCode(&'static str),
    /// A serial (交付番号) is empty, too long or has characters outside `[0-9A-Z-]`.
    #[error("invalid serial")]
    Serial,
    /// An issuance id is empty, too long or has characters outside `[A-Za-z0-9._:/-]`.
    #[error("invalid issuance id")]
    IssuanceId,
    /// A resident reference is empty, too long or has characters outside `[A-Za-z0-9._:-]`.
    #[error("invalid resident reference")]
    ResidentRef,
    /// A text field contains a control character (only `'\n'` is allowed, in values and notes).
    #[error("control character in text field `{0}`")]
    ControlCharacter(&'static str),
    /// A required text field is empty.
    #[error("empty text field `{0}`")]
    EmptyText(&'static str),
    /// The certificate has no blocks, or a block has no subjects.
    #[error("certificate structure: {0}")]
    Structure(&'static str),
    /// The issue time is outside the supported range (years 1900..=9999).
    #[error("issue time out of range")]
    IssueTime,
}
