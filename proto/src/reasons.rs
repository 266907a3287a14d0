//! Every error reason of the contract with its gRPC code and the words a kiosk shows.
//!
//! `kiosk/v1/errors.proto` names the reasons; the data file `kiosk/v1/reasons.toml` adds the
//! code and the two messages, and build.rs turns it into one constant per reason. A test keeps
//! the proto and the table in step, and `docs/errors.md` is generated from it (`errors_doc`; a test
//! checks it is current), so the list lives in one place.

use tonic::Code;

/// One error reason: its stable name, the gRPC code it travels with, and what a kiosk shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The `ErrorInfo.reason` string, equal to an `ErrorReason` value name.
    pub name: &'static str,
    /// The gRPC status code. `None` for terminal-side reasons that never cross the wire.
    pub code: Option<Code>,
    /// ja-JP text a kiosk may show as is. No personal data.
    pub ja: &'static str,
    /// en-US text a kiosk may show as is. No personal data.
    pub en: &'static str,
}

/// One constant per reason, so code names a reason as `reasons::CARD_REVOKED` and a misspelt
/// one does not compile; and [`ALL`], the table in the order of `errors.proto` (a test keeps
/// the two equal, both ways).
macro_rules! reasons {
    ($($name:ident, $code:expr, $ja:literal, $en:literal;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: ", $en)]
            pub const $name: Reason = Reason { name: stringify!($name), code: $code, ja: $ja, en: $en };
        )*
        /// Every reason, in the order of `errors.proto`.
        pub const ALL: &[Reason] = &[$($name,)*];
    };
}

// The table itself is data: kiosk/v1/reasons.toml, turned into a `reasons!` call by build.rs.
include!(concat!(env!("OUT_DIR"), "/reasons_table.rs"));

/// The reason named `name`, if the contract has one.
pub fn find(name: &str) -> Option<&'static Reason> {
    ALL.iter().find(|reason| reason.name == name)
}

/// A field of the request that was invalid, and why (for `google.rpc.BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `items[0].copies`.
    pub field: String,
    /// Why it is invalid, in English, for the vendor's developer (not shown to residents).
    pub description: String,
}

/// Most field violations one status carries. Validators stop at their first violations, and
/// this cap holds whatever a caller passes: 100,000 empty items once drew 200,001 violations,
/// a 9.5 MB trailer that a default gRPC client cannot read (issue 10).
pub const MAX_VIOLATIONS: usize = 8;

/// Longest field path or description carried in a violation, in bytes.
pub const MAX_VIOLATION_TEXT: usize = 200;

/// Longest status message carried, in bytes.
pub const MAX_DETAIL: usize = 500;

/// `text` cut to at most `max` bytes at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Builds the `tonic::Status` of a reason in the contract's shape: the reason's code,
/// `ErrorInfo` (domain `kiosk.v1`), `LocalizedMessage` in ja-JP and en-US, and `BadRequest`
/// when fields are named. `detail` becomes the status message: write it for the vendor's
/// developer and keep personal data out of it.
///
/// The answer stays small whatever the request was: at most [`MAX_VIOLATIONS`] violations,
/// each text clipped to [`MAX_VIOLATION_TEXT`] bytes and the message to [`MAX_DETAIL`], so the
/// details stay under 4 KiB.
///
/// A reason without a code (terminal-side) is sent as `INTERNAL`: the server never sends one.
pub fn status(reason: &Reason, detail: &str, violations: &[FieldViolation]) -> tonic::Status {
    status_with_metadata(reason, detail, violations, &[])
}

/// [`status`] with `ErrorInfo.metadata` entries: facts a terminal acts on (e.g. an
/// issuance's recorded state), never personal data.
pub fn status_with_metadata(
    reason: &Reason,
    detail: &str,
    violations: &[FieldViolation],
    metadata: &[(&str, String)],
) -> tonic::Status {
    use tonic_types::{ErrorDetail, ErrorInfo, LocalizedMessage, StatusExt};
    let metadata: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    let mut details = vec![
        ErrorDetail::from(ErrorInfo::new(reason.name, crate::ERROR_DOMAIN, metadata)),
        ErrorDetail::from(LocalizedMessage::new("ja-JP", reason.ja)),
        ErrorDetail::from(LocalizedMessage::new("en-US", reason.en)),
    ];
    if !violations.is_empty() {
        let violations: Vec<tonic_types::FieldViolation> = violations
            .iter()
            .take(MAX_VIOLATIONS)
            .map(|v| {
                tonic_types::FieldViolation::new(
                    clip(&v.field, MAX_VIOLATION_TEXT),
                    clip(&v.description, MAX_VIOLATION_TEXT),
                )
            })
            .collect();
        details.push(ErrorDetail::from(tonic_types::BadRequest::new(violations)));
    }
    let code = reason.code.unwrap_or(Code::Internal);
    tonic::Status::with_error_details_vec(code, clip(detail, MAX_DETAIL), details)
}

/// The reason named in a status's `ErrorInfo`, if it carries one from this contract.
pub fn reason_of(status: &tonic::Status) -> Option<&'static Reason> {
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info()?.clone();
    if info.domain != crate::ERROR_DOMAIN {
        return None;
    }
    find(&info.reason)
}
