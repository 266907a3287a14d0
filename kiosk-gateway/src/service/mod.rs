//! The gRPC services: the only place where protobuf messages meet the flow. Each handler
//! identifies the caller from the TLS certificate, converts the message into domain values
//! by hand, calls the flow, and converts back. Errors become statuses through the one
//! `From<GatewayError> for tonic::Status`.

pub mod audit;
pub mod fuzzing;
pub mod issue_stream;
pub mod locale;
pub mod terminal;
pub mod verify;

use kiosk_proto::reasons;
use std::sync::Arc;
use std::time::Duration;

pub use crate::clock::timestamp;
use crate::error::GatewayError;
use crate::identity::{Caller, RoleAnchors, TerminalIdentity};
pub use crate::validate;

/// The caller of a request, from its verified client certificate.
pub fn caller<T>(
    anchors: &RoleAnchors,
    request: &tonic::Request<T>,
) -> Result<Caller, GatewayError> {
    let certs: Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>> = request.peer_certs();
    let leaf = certs
        .as_ref()
        .and_then(|chain| chain.first().cloned())
        .ok_or_else(|| GatewayError::refused(reasons::TERMINAL_UNKNOWN, "no client certificate"))?;
    anchors.caller(leaf.as_ref())
}

/// The terminal calling, or WRONG_CLIENT_ROLE for any other caller.
pub fn terminal<T>(
    anchors: &RoleAnchors,
    request: &tonic::Request<T>,
) -> Result<TerminalIdentity, GatewayError> {
    match caller(anchors, request)? {
        Caller::Terminal(terminal) => Ok(terminal),
        Caller::Auditor(_) => Err(GatewayError::refused(
            reasons::WRONG_CLIENT_ROLE,
            "auditor certificates cannot call TerminalService",
        )),
    }
}

/// The auditor calling, or WRONG_CLIENT_ROLE for any other caller.
pub fn auditor<T>(
    anchors: &RoleAnchors,
    request: &tonic::Request<T>,
) -> Result<String, GatewayError> {
    match caller(anchors, request)? {
        Caller::Auditor(name) => Ok(name),
        Caller::Terminal(_) => Err(GatewayError::refused(
            reasons::WRONG_CLIENT_ROLE,
            "terminal certificates cannot call AuditService",
        )),
    }
}

/// The time left before the client's deadline (`grpc-timeout`), if it sent one.
pub fn remaining<T>(request: &tonic::Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_parse() {
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("grpc-timeout", "1500m".parse().unwrap());
        assert_eq!(remaining(&request), Some(Duration::from_millis(1500)));
        request
            .metadata_mut()
            .insert("grpc-timeout", "2S".parse().unwrap());
        assert_eq!(remaining(&request), Some(Duration::from_secs(2)));
        request
            .metadata_mut()
            .insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(remaining(&request), None);
    }

    #[test]
    fn timestamps_split_milliseconds() {
        let t = timestamp(1_700_000_000_123);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }
}
