//! The refusals tonic makes before a handler runs, answered in the contract's shape.
//!
//! tonic reads and decodes a request before any handler sees it, and answers on its own when
//! that fails: a body that is not a protobuf message of the RPC's type (a truncated varint, a
//! wrong wire type, a string that is not UTF-8), a gRPC frame that is cut short or sets the
//! compressed flag without `grpc-encoding`, an empty body, or a message over the service's
//! `max_decoding_message_size`. Those answers are INTERNAL or OUT_OF_RANGE with a bare
//! message, where the contract promises INVALID_ARGUMENT `INVALID_FIELD` (and
//! RESOURCE_EXHAUSTED `REQUEST_TOO_LARGE` for an oversized message) with `ErrorInfo`, both
//! kiosk texts and `BadRequest`.
//!
//! [`ContractErrors`] wraps a generated server and rewrites exactly those answers. It knows
//! them by their shape: an error answered trailers-only (before any message was sent) that
//! carries no `google.rpc` details. Every refusal of a kiosk.v1 handler is built by
//! [`crate::reasons::status`] and carries details, so nothing else has that shape, except
//! UNIMPLEMENTED (unknown method, unsupported `grpc-encoding`), which gRPC clients act on and
//! which passes through unchanged.
//!
//! Why not a codec (tonic-prost-build's `codec_path`): a codec sees only the protobuf bytes of
//! a well-framed message; framing and size are checked by tonic before the codec runs. And the
//! generated clients share the servers' codec, so a client would report a server's malformed
//! answer as its own INVALID_ARGUMENT.

use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

use crate::reasons::{self, FieldViolation};

/// A kiosk.v1 server whose transport-level refusals speak the contract (see the module doc).
#[derive(Debug, Clone)]
pub struct ContractErrors<S> {
    inner: S,
}

impl<S> ContractErrors<S> {
    /// Wraps a generated server (`TerminalServiceServer`, `IssuerServiceServer`, ...).
    pub fn new(inner: S) -> Self {
        ContractErrors { inner }
    }
}

impl<S, B, R> Service<http::Request<B>> for ContractErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(
                match answered_status(&response).and_then(|s| contract_answer(&s)) {
                    Some(status) => status.into_http(),
                    None => response,
                },
            )
        })
    }
}

impl<S: NamedService> NamedService for ContractErrors<S> {
    const NAME: &'static str = S::NAME;
}

/// The status of a trailers-only answer (one sent before any message), if `response` is one.
fn answered_status<R>(response: &http::Response<R>) -> Option<Status> {
    // tonic keeps the status of a trailers-only answer in the extensions; the headers are the
    // fallback for a layer in between that dropped them.
    match response.extensions().get::<Status>() {
        Some(status) => Some(status.clone()),
        None => Status::from_header_map(response.headers()),
    }
}

/// The contract's answer for `status` if tonic made it itself, `None` for any other status.
///
/// tonic's own refusals carry no details: INTERNAL for anything it could not decode,
/// OUT_OF_RANGE and RESOURCE_EXHAUSTED for its size limits (message and decompressed
/// message). A status with details was built by a handler and is already the contract's.
pub fn contract_answer(status: &Status) -> Option<Status> {
    if !status.details().is_empty() {
        return None;
    }
    match status.code() {
        Code::Internal => Some(reasons::status(
            &reasons::INVALID_FIELD,
            "the request could not be decoded",
            &[undecodable(status.message())],
        )),
        Code::OutOfRange | Code::ResourceExhausted => Some(reasons::status(
            &reasons::REQUEST_TOO_LARGE,
            &format!(
                "the request is larger than this service accepts: {}",
                status.message()
            ),
            &[],
        )),
        _ => None,
    }
}

/// What prost prefixes to every decode error it reports.
const PROST_PREFIX: &str = "failed to decode Protobuf message: ";

/// The violation for a request tonic could not decode, from its message.
///
/// prost names the field where decoding failed as a stack of `Message.field: ` segments,
/// innermost first, before the description; the violation names that field as a path from the
/// request (`items.subject_refs`). A framing error names no field: the path is empty, meaning
/// the whole message.
fn undecodable(message: &str) -> FieldViolation {
    let Some(rest) = message.strip_prefix(PROST_PREFIX) else {
        return FieldViolation {
            field: String::new(),
            description: format!("not a well-formed gRPC request: {message}"),
        };
    };
    let mut fields = Vec::new();
    let mut description = rest;
    while let Some((segment, tail)) = description.split_once(": ") {
        // prost spells fields named after Rust keywords as raw identifiers (`r#type`).
        match segment.split_once('.') {
            Some((message, field)) if is_name(message) => {
                let field = field.strip_prefix("r#").unwrap_or(field);
                if !is_name(field) {
                    break;
                }
                fields.push(field);
                description = tail;
            }
            _ => break,
        }
    }
    fields.reverse();
    FieldViolation {
        field: fields.join("."),
        description: format!("not a valid protobuf encoding: {description}"),
    }
}

/// Whether `text` is a protobuf identifier.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_error_names_the_field_path_from_the_request() {
        let violation = undecodable(
            "failed to decode Protobuf message: RequestItem.subject_refs: \
             QuoteRequest.items: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(violation.field, "items.subject_refs");
        assert_eq!(
            violation.description,
            "not a valid protobuf encoding: invalid string value: data is not UTF-8 encoded"
        );
    }

    #[test]
    fn a_field_named_after_a_keyword_loses_its_raw_prefix() {
        let violation = undecodable(
            "failed to decode Protobuf message: RequestItem.r#type: QuoteRequest.items: \
             invalid wire type: LengthDelimited (expected Varint)",
        );
        assert_eq!(violation.field, "items.type");
    }

    #[test]
    fn a_decode_error_without_a_field_names_the_whole_message() {
        let violation = undecodable(
            "failed to decode Protobuf message: invalid wire type: LengthDelimited (expected Varint)",
        );
        assert_eq!(violation.field, "");
        assert!(violation.description.ends_with("(expected Varint)"));
        let framing = undecodable("Unexpected EOF decoding stream.");
        assert_eq!(framing.field, "");
    }

    #[test]
    fn tonic_refusals_become_contract_statuses_and_others_pass() {
        let decoded = contract_answer(&Status::internal("Missing request message.")).unwrap();
        assert_eq!(decoded.code(), Code::InvalidArgument);
        assert_eq!(
            reasons::reason_of(&decoded).map(|r| r.name),
            Some("INVALID_FIELD")
        );
        let large = contract_answer(&Status::out_of_range("too large")).unwrap();
        assert_eq!(large.code(), Code::ResourceExhausted);
        assert_eq!(
            reasons::reason_of(&large).map(|r| r.name),
            Some("REQUEST_TOO_LARGE")
        );

        let ours = reasons::status(&reasons::INTERNAL_ERROR, "internal error", &[]);
        for kept in [
            Status::unimplemented("no such method"),
            Status::ok(""),
            ours,
        ] {
            let response: http::Response<()> = kept.into_http();
            let status = answered_status(&response).unwrap();
            assert!(contract_answer(&status).is_none(), "{status:?}");
        }
        let response: http::Response<()> = Status::internal("bad").into_http();
        assert!(
            answered_status(&response)
                .and_then(|s| contract_answer(&s))
                .is_some()
        );
    }
}
