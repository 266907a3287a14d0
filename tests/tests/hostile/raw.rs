//! A gRPC client that sends bytes exactly as given, for requests no generated client would
//! build: malformed protobuf, strings that are not UTF-8, lying frame headers, oversized
//! frames. It speaks HTTP/2 through a tonic `Channel` (so the harness's TLS and client
//! certificates apply) and reads the answer's status from the headers of a trailers-only
//! response or from the trailers.

use bytes::Bytes;
use http_body_util::BodyExt;
use kiosk_proto::reasons::{self, Reason};
use tonic::Code;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    /// The status (code `Ok` for a success).
    pub status: tonic::Status,
    /// The gRPC messages of the body, unframed.
    pub messages: Vec<Bytes>,
}

impl Answer {
    /// The status code.
    pub fn code(&self) -> Code {
        self.status.code()
    }

    /// The contract reason of the status, if it carries one.
    pub fn reason(&self) -> Option<&'static Reason> {
        reasons::reason_of(&self.status)
    }

    /// The fields the status's BadRequest names.
    pub fn fields(&self) -> Vec<String> {
        self.status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    }

    /// The descriptions the status's BadRequest gives.
    pub fn descriptions(&self) -> Vec<String> {
        self.status
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| v.description.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether both kiosk texts travel with the status, equal to the reason's.
    pub fn has_kiosk_texts(&self) -> bool {
        let Some(reason) = self.reason() else {
            return false;
        };
        let texts: Vec<(String, String)> = self
            .status
            .get_error_details_vec()
            .into_iter()
            .filter_map(|d| match d {
                tonic_types::ErrorDetail::LocalizedMessage(m) => Some((m.locale, m.message)),
                _ => None,
            })
            .collect();
        texts
            == [
                ("ja-JP".to_owned(), reason.ja.to_owned()),
                ("en-US".to_owned(), reason.en.to_owned()),
            ]
    }
}

/// One gRPC length-prefixed message: flag 0 (uncompressed), big-endian length, bytes.
pub fn frame(message: &[u8]) -> Vec<u8> {
    frame_with(0, message.len() as u32, message)
}

/// A frame with any compressed flag and any declared length, followed by `payload`.
pub fn frame_with(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(flag);
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends `body` (already framed) to `path` with the usual gRPC headers plus `extra`, and
/// reads the whole answer.
pub async fn call(channel: &Channel, path: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = match request.body(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::from(body),
    ))) {
        Ok(request) => request,
        Err(error) => panic!("request for {path} not built: {error}"),
    };
    let mut channel = channel.clone();
    let response = async {
        futures::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
        channel.call(request).await
    }
    .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return Answer {
                status: tonic::Status::from_error(Box::new(error)),
                messages: Vec::new(),
            };
        }
    };
    // A trailers-only answer carries its status in the headers.
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return Answer {
            status,
            messages: Vec::new(),
        };
    }
    let collected = match response.into_body().collect().await {
        Ok(collected) => collected,
        Err(error) => {
            return Answer {
                status: tonic::Status::from_error(error.into()),
                messages: Vec::new(),
            };
        }
    };
    let status = collected
        .trailers()
        .and_then(tonic::Status::from_header_map)
        .unwrap_or_else(|| tonic::Status::unknown("answer without grpc-status"));
    Answer {
        status,
        messages: unframe(&collected.to_bytes()),
    }
}

/// Splits a response body into its messages (each well framed by our server).
fn unframe(mut body: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let end = (5 + len).min(body.len());
        out.push(Bytes::copy_from_slice(&body[5..end]));
        body = &body[end..];
    }
    out
}

/// Protobuf wire encoding by hand, for messages prost would refuse to build.
pub mod wire {
    /// A base-128 varint.
    pub fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A field key: number and wire type.
    pub fn key(field: u32, wire_type: u8) -> Vec<u8> {
        varint((u64::from(field) << 3) | u64::from(wire_type))
    }

    /// A length-delimited field (string, bytes, message).
    pub fn len(field: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = key(field, 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    /// A varint field.
    pub fn int(field: u32, value: u64) -> Vec<u8> {
        let mut out = key(field, 0);
        out.extend(varint(value));
        out
    }
}
