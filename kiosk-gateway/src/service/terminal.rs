//! `kiosk.v1.TerminalService`.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_server::TerminalService;
use tonic::{Request, Response, Status};

use super::{remaining, terminal, timestamp, validate};
use crate::flow::Flow;
use crate::identity::RoleAnchors;
use crate::store::{self, IssuanceState};

/// Largest piece of a PDF in one `DocumentChunk`.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The terminal-facing service over the flow.
pub struct TerminalApi {
    flow: Arc<Flow>,
    anchors: Arc<RoleAnchors>,
}

impl TerminalApi {
    /// The service over `flow`, identifying callers with `anchors`.
    pub fn new(flow: Arc<Flow>, anchors: Arc<RoleAnchors>) -> Self {
        TerminalApi { flow, anchors }
    }
}

fn issuance_state(state: IssuanceState) -> pb::IssuanceState {
    match state {
        IssuanceState::Released => pb::IssuanceState::Released,
        IssuanceState::Printed => pb::IssuanceState::Printed,
        IssuanceState::Voided => pb::IssuanceState::Voided,
        IssuanceState::Unconfirmed => pb::IssuanceState::Unconfirmed,
    }
}

/// The stream type of `Issue`.
pub type IssueStream = Pin<Box<dyn Stream<Item = Result<pb::IssueResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TerminalService for TerminalApi {
    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        validate::open_session(request.get_ref())?;
        let opened = self.flow.open_session(&terminal).await?;
        let service_status = match opened.closed_reason {
            None => pb::ServiceStatus {
                state: pb::ServiceState::Open as i32,
                reason: String::new(),
                message: None,
            },
            Some(reason) => {
                let r = kiosk_proto::reasons::named(reason);
                pb::ServiceStatus {
                    state: pb::ServiceState::Closed as i32,
                    reason: r.name.to_owned(),
                    message: Some(pb::LocalizedText {
                        ja: r.ja.to_owned(),
                        en: r.en.to_owned(),
                    }),
                }
            }
        };
        Ok(Response::new(pb::OpenSessionResponse {
            session_id: opened.session_id.clone(),
            challenge: opened.challenge,
            auth_context: Some(pb::AuthContext {
                gateway_id: opened.gateway_id,
                terminal_id: opened.terminal_id,
                session_id: opened.session_id,
            }),
            auth_context_bytes: opened.context,
            challenge_expires_at: Some(timestamp(opened.challenge_expires_at)),
            session_expires_at: Some(timestamp(opened.session_expires_at)),
            service_status: Some(service_status),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        validate::authenticate(&message)?;
        let menu = self
            .flow
            .authenticate(
                &terminal,
                &message.session_id,
                &message.card_certificate,
                &message.signature,
            )
            .await?;
        Ok(Response::new(pb::AuthenticateResponse { menu: Some(menu) }))
    }

    async fn get_menu(
        &self,
        request: Request<pb::GetMenuRequest>,
    ) -> Result<Response<pb::GetMenuResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        validate::get_menu(&message)?;
        let menu = self.flow.menu(&terminal, &message.session_id).await?;
        Ok(Response::new(pb::GetMenuResponse { menu: Some(menu) }))
    }

    async fn quote(
        &self,
        request: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::QuoteResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        validate::quote(&message, self.flow.settings().max_items)?;
        let priced = self
            .flow
            .quote(&terminal, &message.session_id, &message.items)
            .await?;
        let lines: Vec<pb::QuoteLine> = priced
            .into_iter()
            .map(|(item, fee)| pb::QuoteLine {
                r#type: item.r#type,
                copies: item.copies,
                fee_yen: fee,
                amount_yen: fee.saturating_mul(item.copies),
            })
            .collect();
        let total = lines
            .iter()
            .map(|l| l.amount_yen)
            .fold(0u32, u32::saturating_add);
        Ok(Response::new(pb::QuoteResponse {
            lines,
            total_fee_yen: total,
        }))
    }

    type IssueStream = IssueStream;

    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<Self::IssueStream>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let deadline = remaining(&request);
        let message = request.into_inner();
        validate::issue(&message, self.flow.settings().max_items)?;
        let released = self
            .flow
            .issue(
                &terminal,
                &message.session_id,
                &message.client_request_id,
                &message.items,
                message.expected_total_fee_yen,
                deadline,
            )
            .await?;
        let issuance = &released.issuance;
        let mut out = Vec::with_capacity(2 + released.documents.len());
        out.push(Ok(pb::IssueResponse {
            event: Some(pb::issue_response::Event::Header(pb::IssuanceHeader {
                issuance_id: issuance.issuance_id.clone(),
                client_request_id: issuance.client_request_id.clone(),
                document_count: released.documents.len() as u32,
                total_fee_yen: u32::try_from(issuance.total_fee_yen).unwrap_or(u32::MAX),
                print_deadline: Some(timestamp(issuance.print_deadline)),
                replayed: released.replayed,
            })),
        }));
        let mut total_bytes = 0u64;
        for (
            index,
            store::IssuedDocument {
                record: document,
                pdf,
            },
        ) in released.documents.iter().enumerate()
        {
            let cert_type = pb::CertificateType::from_str_name(&document.cert_type)
                .unwrap_or(pb::CertificateType::Unspecified) as i32;
            let size = pdf.len();
            let mut offset = 0usize;
            for piece in pdf.chunks(CHUNK_SIZE) {
                out.push(Ok(pb::IssueResponse {
                    event: Some(pb::issue_response::Event::Chunk(pb::DocumentChunk {
                        serial: document.serial.clone(),
                        document_index: index as u32,
                        r#type: cert_type,
                        page_count: u32::try_from(document.page_count).unwrap_or(0),
                        offset: offset as u64,
                        data: piece.to_vec(),
                        last: offset + piece.len() == size,
                        document_size: size as u64,
                        document_sha256: document.pdf_sha256.clone(),
                    })),
                }));
                offset += piece.len();
            }
            total_bytes += size as u64;
        }
        out.push(Ok(pb::IssueResponse {
            event: Some(pb::issue_response::Event::Trailer(pb::IssuanceTrailer {
                document_count: released.documents.len() as u32,
                total_bytes,
            })),
        }));
        Ok(Response::new(Box::pin(tokio_stream::iter(out))))
    }

    async fn report_print(
        &self,
        request: Request<pb::ReportPrintRequest>,
    ) -> Result<Response<pb::ReportPrintResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        let result = validate::report_print(&message)?;
        let report = self
            .flow
            .report_print(
                &terminal,
                &message.session_id,
                &message.issuance_id,
                result,
                message.collected_yen,
            )
            .await?;
        Ok(Response::new(pb::ReportPrintResponse {
            state: issuance_state(report.state) as i32,
            refund_due_yen: u32::try_from(report.refund_due_yen).unwrap_or(u32::MAX),
            voided_serials: report.voided_serials,
        }))
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        validate::close_session(&message)?;
        self.flow
            .close_session(&terminal, &message.session_id)
            .await?;
        Ok(Response::new(pb::CloseSessionResponse {}))
    }
}
