//! Hostile bytes below the messages: gRPC framing (compressed flags, lying lengths, oversized
//! frames, empty bodies, unknown methods), protobuf encoding (bad keys and wire types, lengths
//! past the end, deep nesting, unknown fields), and VerifyService's documents.

use bytes::Bytes;
use kiosk_proto::v1 as pb;
use prost::Message;
use tonic::Code;

use super::context::Ctx;
use super::raw::{frame, frame_with, wire};
use super::table::{Caller, Case, body, bytes, msg, one};
use super::terminal_cases::{GET_MENU, OPEN_SESSION};

pub const VERIFY: &str = "/kiosk.v1.VerifyService/VerifyDocument";

/// gRPC framing, on OpenSession (a terminal) and VerifyDocument (anyone).
pub fn framing_cases() -> Vec<Case> {
    let open = pb::OpenSessionRequest {
        locale: "ja-JP".into(),
    }
    .encode_to_vec();
    let open_len = open.len() as u32;
    let framed = |name: &str,
                  rpc,
                  caller,
                  headers: &[(&'static str, &'static str)],
                  build: fn(&[u8]) -> Vec<u8>| {
        let message = open.clone();
        Case::new(
            format!("framing: {name}"),
            rpc,
            caller,
            body(headers, move |_| build(&message)),
        )
    };
    let too_large = (Code::ResourceExhausted, "REQUEST_TOO_LARGE");
    vec![
        framed(
            "compressed flag without grpc-encoding",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |m| frame_with(1, m.len() as u32, m),
        )
        .invalid(""),
        framed("compressed flag 2", OPEN_SESSION, Caller::T1, &[], |m| {
            frame_with(2, m.len() as u32, m)
        })
        .invalid(""),
        framed("compressed flag 0x80", OPEN_SESSION, Caller::T1, &[], |m| {
            frame_with(0x80, m.len() as u32, m)
        })
        .invalid(""),
        framed(
            "grpc-encoding gzip (not offered)",
            OPEN_SESSION,
            Caller::T1,
            &[("grpc-encoding", "gzip")],
            |m| frame_with(1, m.len() as u32, m),
        )
        .bare(Code::Unimplemented),
        framed(
            "grpc-encoding of an unknown name",
            OPEN_SESSION,
            Caller::T1,
            &[("grpc-encoding", "x-rot13")],
            frame,
        )
        .bare(Code::Unimplemented),
        framed(
            "frame length past the body",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |m| frame_with(0, m.len() as u32 + 100, m),
        )
        .invalid(""),
        framed(
            "frame header of 3 bytes",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |_| vec![0, 0, 0],
        )
        .invalid(""),
        framed("empty body", OPEN_SESSION, Caller::T1, &[], |_| Vec::new()).invalid(""),
        framed(
            "a stray byte after the message",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |m| [frame(m), vec![0]].concat(),
        )
        .invalid(""),
        framed(
            "frame declaring 4 GiB",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |_| frame_with(0, u32::MAX, &[]),
        )
        .refused(too_large.0, too_large.1),
        framed(
            "frame declaring 1 MiB + 1",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |_| frame_with(0, (1 << 20) + 1, &[0; 64]),
        )
        .refused(too_large.0, too_large.1),
        framed(
            "a message of 1 MiB + 100 bytes",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |_| {
                frame(
                    &pb::OpenSessionRequest {
                        locale: "a".repeat((1 << 20) + 100),
                    }
                    .encode_to_vec(),
                )
            },
        )
        .refused(too_large.0, too_large.1),
        framed(
            "a frame of length 0 (all defaults)",
            OPEN_SESSION,
            Caller::T1,
            &[],
            |_| frame(&[]),
        )
        .answers(|m: &[Bytes]| one(m, |r: pb::OpenSessionResponse| !r.session_id.is_empty())),
        Case::new(
            "framing: a method that does not exist",
            "/kiosk.v1.TerminalService/Refund",
            Caller::T1,
            body(&[], move |_| frame(&[])),
        )
        .bare(Code::Unimplemented),
        Case::new(
            "framing: a service that does not exist",
            "/kiosk.v1.PaymentService/Pay",
            Caller::T1,
            body(&[], move |_| frame(&[])),
        )
        .bare(Code::Unimplemented),
        Case::new(
            "framing: VerifyDocument declaring 4 GiB",
            VERIFY,
            Caller::Nobody,
            body(&[], |_| frame_with(0, u32::MAX, &[])),
        )
        .refused(too_large.0, too_large.1),
        Case::new(
            "framing: VerifyDocument of 9 MiB",
            VERIFY,
            Caller::Nobody,
            body(&[], |_| {
                frame(
                    &pb::VerifyDocumentRequest {
                        document: Some(pb::verify_document_request::Document::Pdf(vec![
                            b'%';
                            9 << 20
                        ])),
                    }
                    .encode_to_vec(),
                )
            }),
        )
        .refused(too_large.0, too_large.1),
        Case::new(
            format!("framing: two messages in a unary call ({open_len} bytes each)"),
            OPEN_SESSION,
            Caller::T1,
            body(&[], {
                let message = open.clone();
                move |_| [frame(&message), frame(&message)].concat()
            }),
        )
        .answers(|m: &[Bytes]| one(m, |r: pb::OpenSessionResponse| !r.session_id.is_empty())),
    ]
}

/// Protobuf bytes of a request, written by hand from the context.
type Encode = Box<dyn Fn(&Ctx) -> Vec<u8> + Send + Sync>;

/// A GetMenu request of the authenticated session, after `prefix`.
fn menu_after(prefix: Vec<u8>) -> impl Fn(&Ctx) -> Vec<u8> + Send + Sync {
    move |c| [prefix.clone(), wire::len(1, c.authed.as_bytes())].concat()
}

/// `depth` unknown groups nested in field 9.
fn groups(depth: usize) -> Vec<u8> {
    [
        vec![wire::key(9, 3); depth].concat(),
        vec![wire::key(9, 4); depth].concat(),
    ]
    .concat()
}

/// Protobuf encoding, on GetMenu.
pub fn protobuf_cases() -> Vec<Case> {
    let menu = |name: &str, build: Encode| {
        Case::new(
            format!("protobuf: {name}"),
            GET_MENU,
            Caller::T1,
            bytes(build),
        )
    };
    let served = |m: &[Bytes]| one(m, |r: pb::GetMenuResponse| r.menu.is_some());
    vec![
        menu("a key whose varint never ends", Box::new(|_| vec![0x80])).invalid(""),
        menu(
            "an 11-byte varint",
            Box::new(|_| [wire::key(20, 0), vec![0xff; 10], vec![0x01]].concat()),
        )
        .invalid(""),
        menu("wire type 6", Box::new(|_| wire::key(1, 6))).invalid(""),
        menu("wire type 7", Box::new(|_| wire::key(1, 7))).invalid(""),
        menu(
            "field number 0",
            Box::new(|_| [wire::key(0, 0), vec![1]].concat()),
        )
        .invalid(""),
        menu(
            "field number 2^29 (past the largest)",
            Box::new(|_| [wire::varint(1 << 32), vec![1]].concat()),
        )
        .invalid(""),
        menu(
            "session_id length past the end",
            Box::new(|_| [wire::key(1, 2), wire::varint(40), b"s-1".to_vec()].concat()),
        )
        .invalid("session_id"),
        menu(
            "session_id length 2^64 - 1",
            Box::new(|_| [wire::key(1, 2), wire::varint(u64::MAX)].concat()),
        )
        .invalid("session_id"),
        menu(
            "session_id as fixed32",
            Box::new(|_| [wire::key(1, 5), vec![0; 4]].concat()),
        )
        .invalid("session_id"),
        menu("session_id as a varint", Box::new(|_| wire::int(1, 1))).invalid("session_id"),
        menu(
            "an end-group without its start",
            Box::new(|_| wire::key(9, 4)),
        )
        .invalid(""),
        menu("a group that never ends", Box::new(|_| wire::key(9, 3))).invalid(""),
        menu(
            "a group ended by another field's end",
            Box::new(|_| [wire::key(9, 3), wire::key(8, 4)].concat()),
        )
        .invalid(""),
        menu("unknown groups nested 200 deep", Box::new(|_| groups(200))).invalid(""),
        menu(
            "unknown groups nested 20 deep",
            Box::new(menu_after(groups(20))),
        )
        .answers(served),
        menu(
            "an unknown field of the largest number",
            Box::new(menu_after(wire::int((1 << 29) - 1, 1))),
        )
        .answers(served),
        menu(
            "unknown fixed64, fixed32 and bytes",
            Box::new(menu_after(
                [
                    [wire::key(30, 1), vec![0; 8]].concat(),
                    [wire::key(31, 5), vec![0; 4]].concat(),
                    wire::len(32, &[0xff; 16]),
                ]
                .concat(),
            )),
        )
        .answers(served),
        menu(
            "session_id twice (the last wins)",
            Box::new(|c| [wire::len(1, b"s-bogus"), wire::len(1, c.authed.as_bytes())].concat()),
        )
        .answers(served),
        menu(
            "a varint with redundant continuation bytes",
            Box::new(menu_after(
                [wire::key(40, 0), vec![0x81, 0x80, 0x80, 0x00]].concat(),
            )),
        )
        .answers(served),
    ]
}

/// A QR payload document.
fn qr(text: &str) -> Option<pb::verify_document_request::Document> {
    Some(pb::verify_document_request::Document::QrPayload(
        text.to_owned(),
    ))
}

/// VerifyDocument: QR payloads, PDFs and roles.
pub fn verify_cases() -> Vec<Case> {
    use pb::verify_document_request::Document;
    let verify = |name: &str, caller, build: fn(&Ctx) -> Option<Document>| {
        Case::new(
            format!("VerifyDocument: {name}"),
            VERIFY,
            caller,
            msg(move |c| pb::VerifyDocumentRequest { document: build(c) }),
        )
    };
    let unreadable = (Code::InvalidArgument, "DOCUMENT_UNREADABLE");
    let verdict = |v: pb::Validity| {
        move |m: &[Bytes]| one(m, |r: pb::VerifyDocumentResponse| r.validity == v as i32)
    };
    vec![
        verify("no document", Caller::Nobody, |_| None).invalid("document"),
        verify("QR payload empty", Caller::Nobody, |_| qr("")).refused(unreadable.0, unreadable.1),
        verify("QR payload of prose", Caller::Nobody, |_| qr("hello"))
            .refused(unreadable.0, unreadable.1),
        verify("QR payload of the prefix alone", Caller::Nobody, |_| {
            qr("KV1:")
        })
        .refused(unreadable.0, unreadable.1),
        verify("QR payload of 513 characters", Caller::Nobody, |_| {
            qr(&format!("KV1:{}", "0".repeat(509)))
        })
        .refused(unreadable.0, unreadable.1),
        verify("QR payload with NUL", Caller::Nobody, |c| {
            qr(&format!("{}\0", c.qr))
        })
        .refused(unreadable.0, unreadable.1),
        verify("QR payload with a full-width prefix", Caller::Nobody, |c| {
            qr(&c.qr.replacen("KV1:", "ＫＶ１：", 1))
        })
        .refused(unreadable.0, unreadable.1),
        verify("QR payload lower-cased", Caller::Nobody, |c| {
            qr(&c.qr.to_lowercase())
        })
        .refused(unreadable.0, unreadable.1),
        verify("a real QR payload (control)", Caller::Nobody, |c| qr(&c.qr))
            .answers(verdict(pb::Validity::Valid)),
        verify("a QR payload from a terminal", Caller::T1, |c| qr(&c.qr))
            .answers(verdict(pb::Validity::Valid)),
        verify("PDF empty", Caller::Nobody, |_| {
            Some(Document::Pdf(Vec::new()))
        })
        .refused(unreadable.0, unreadable.1),
        verify("PDF of garbage", Caller::Nobody, |_| {
            Some(Document::Pdf(vec![0xff; 1000]))
        })
        .refused(unreadable.0, unreadable.1),
        verify("PDF cut to its first 100 bytes", Caller::Nobody, |c| {
            Some(Document::Pdf(c.pdf[..100].to_vec()))
        })
        .refused(unreadable.0, unreadable.1),
        verify("a real PDF (control)", Caller::Nobody, |c| {
            Some(Document::Pdf(c.pdf.clone()))
        })
        .answers(verdict(pb::Validity::Valid)),
        verify("a real PDF with bytes appended", Caller::Nobody, |c| {
            Some(Document::Pdf(
                [c.pdf.clone(), b"\n% extra\n".to_vec()].concat(),
            ))
        })
        .answers(verdict(pb::Validity::Invalid)),
        verify("PDF of 8 MiB + 1", Caller::Nobody, |_| {
            Some(Document::Pdf(vec![b'%'; (8 << 20) + 1]))
        })
        .invalid("pdf"),
        Case::new(
            "VerifyDocument: a QR payload then a garbage PDF (the last wins)",
            VERIFY,
            Caller::Nobody,
            bytes(|c| [wire::len(1, c.qr.as_bytes()), wire::len(2, b"not a pdf")].concat()),
        )
        .refused(unreadable.0, unreadable.1),
        Case::new(
            "VerifyDocument: QR payload not UTF-8",
            VERIFY,
            Caller::Nobody,
            bytes(|_| wire::len(1, b"KV1:\xff")),
        )
        .invalid("document"),
    ]
}
