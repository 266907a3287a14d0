//! The body of an `Issue` answer: the header, each document in chunks, the trailer, each
//! message made only when tonic asks for it.
//!
//! tonic asks for the next message only when HTTP/2 flow control lets it send, so a terminal
//! that does not read holds its released documents and no copies of them: the chunk being
//! sent is the only copy, and a document's bytes are dropped as soon as its last chunk is
//! out. While the stream lives it holds a [`Lease`] on the stream budget for the whole
//! issuance, so the bytes that unread streams can hold are bounded per terminal and in total.
//!
//! A stream not collected by its deadline (the caller's, or the configured limit if shorter)
//! drops its documents and its lease at once, from a timer task: hyper does not poll a body
//! whose peer grants no window, so the stream could not notice by itself. When it is polled
//! again it ends with OVERLOADED; the issuance stays recorded, and a retry with the same
//! `client_request_id` gets the documents.

use kiosk_proto::reasons;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use kiosk_proto::v1 as pb;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

use super::timestamp;
use crate::error::GatewayError;
use crate::flow::{CheckedDocument, ReleasedIssuance};
use crate::limits::Lease;

/// Largest piece of a PDF in one `DocumentChunk`.
pub const CHUNK_SIZE: usize = 1 << 20;

/// One document still to send.
struct Outgoing {
    serial: String,
    cert_type: i32,
    page_count: u32,
    sha256: Vec<u8>,
    pdf: Vec<u8>,
}

/// What is left to send, shared with the timer that may expire it.
struct Remaining {
    header: Option<pb::IssuanceHeader>,
    documents: VecDeque<Outgoing>,
    /// Index of the front document within the issuance.
    index: u32,
    /// Bytes of the front document already sent.
    offset: usize,
    trailer: Option<pb::IssuanceTrailer>,
    lease: Option<Lease>,
    expired: bool,
}

/// The `Issue` response stream.
pub struct IssueStream {
    remaining: Arc<Mutex<Remaining>>,
    timer: JoinHandle<()>,
}

fn lock(remaining: &Mutex<Remaining>) -> MutexGuard<'_, Remaining> {
    // Every update below leaves `Remaining` consistent, so a poisoned lock is still usable.
    remaining.lock().unwrap_or_else(|p| p.into_inner())
}

impl IssueStream {
    /// Streams `released`, holding `lease` until the stream ends or `expires_at`.
    pub fn new(released: ReleasedIssuance, lease: Lease, expires_at: Instant) -> Self {
        let (issuance, documents, replayed) = released.into_parts();
        let document_count = documents.len() as u32;
        let total_bytes = documents.iter().map(|d| d.pdf().len() as u64).sum();
        let header = pb::IssuanceHeader {
            issuance_id: issuance.issuance_id.clone(),
            client_request_id: issuance.client_request_id.clone(),
            document_count,
            total_fee_yen: u32::try_from(issuance.total_fee_yen).unwrap_or(u32::MAX),
            print_deadline: Some(timestamp(issuance.print_deadline)),
            replayed,
        };
        let documents = documents
            .into_iter()
            .map(CheckedDocument::into_parts)
            .map(|(record, pdf)| Outgoing {
                cert_type: pb::CertificateType::from_str_name(&record.cert_type)
                    .unwrap_or(pb::CertificateType::Unspecified) as i32,
                page_count: u32::try_from(record.page_count).unwrap_or(0),
                serial: record.serial,
                sha256: record.pdf_sha256,
                pdf,
            })
            .collect();
        let remaining = Arc::new(Mutex::new(Remaining {
            header: Some(header),
            documents,
            index: 0,
            offset: 0,
            trailer: Some(pb::IssuanceTrailer {
                document_count,
                total_bytes,
            }),
            lease: Some(lease),
            expired: false,
        }));
        let timer = tokio::spawn(expire_at(Arc::downgrade(&remaining), expires_at));
        IssueStream { remaining, timer }
    }
}

async fn expire_at(remaining: Weak<Mutex<Remaining>>, at: Instant) {
    tokio::time::sleep_until(at).await;
    if let Some(remaining) = remaining.upgrade() {
        lock(&remaining).expire();
    }
}

impl Drop for IssueStream {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

impl Stream for IssueStream {
    type Item = Result<pb::IssueResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(lock(&self.remaining).next_message())
    }
}

impl Remaining {
    /// Frees the documents and the lease of a stream not collected in time.
    fn expire(&mut self) {
        if self.trailer.is_some() {
            self.header = None;
            self.documents.clear();
            self.lease = None;
            self.expired = true;
        }
    }

    fn next_message(&mut self) -> Option<Result<pb::IssueResponse, Status>> {
        use pb::issue_response::Event;
        if self.expired {
            // Once: the error ends the stream.
            self.expired = false;
            self.trailer = None;
            let refusal = GatewayError::refused(
                reasons::OVERLOADED,
                "the documents were not collected in time; retry with the same client_request_id",
            );
            return Some(Err(refusal.into()));
        }
        let event = if let Some(header) = self.header.take() {
            Event::Header(header)
        } else if let Some(chunk) = self.next_chunk() {
            Event::Chunk(chunk)
        } else {
            let trailer = self.trailer.take()?;
            // Everything has been handed to the transport.
            self.lease = None;
            Event::Trailer(trailer)
        };
        Some(Ok(pb::IssueResponse { event: Some(event) }))
    }

    /// The next piece of the front document; drops the document after its last piece.
    fn next_chunk(&mut self) -> Option<pb::DocumentChunk> {
        let document = self.documents.front()?;
        let size = document.pdf.len();
        let end = size.min(self.offset + CHUNK_SIZE);
        let chunk = pb::DocumentChunk {
            serial: document.serial.clone(),
            document_index: self.index,
            r#type: document.cert_type,
            page_count: document.page_count,
            offset: self.offset as u64,
            data: document.pdf[self.offset..end].to_vec(),
            last: end == size,
            document_size: size as u64,
            document_sha256: document.sha256.clone(),
        };
        if end == size {
            self.documents.pop_front();
            self.index += 1;
            self.offset = 0;
        } else {
            self.offset = end;
        }
        Some(chunk)
    }
}
