//! `kiosk.v1.TerminalService`.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kiosk_proto::locales::localized_text;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_server::TerminalService;
use tonic::{Request, Response, Status};

use super::{issue_stream, locale, remaining, terminal, timestamp, validate};
use crate::error::GatewayError;
use crate::flow::Flow;
use crate::identity::{RoleAnchors, TerminalIdentity};
use crate::limits::StreamBudget;
use crate::store::IssuanceState;

pub use super::issue_stream::CHUNK_SIZE;

/// The terminal-facing service over the flow.
pub struct TerminalApi {
    flow: Arc<Flow>,
    anchors: Arc<RoleAnchors>,
    budget: Arc<StreamBudget>,
}

impl TerminalApi {
    /// The service over `flow`, identifying callers with `anchors`; Issue streams hold
    /// their unsent documents within `budget`.
    pub fn new(flow: Arc<Flow>, anchors: Arc<RoleAnchors>, budget: Arc<StreamBudget>) -> Self {
        TerminalApi {
            flow,
            anchors,
            budget,
        }
    }
}

impl TerminalApi {
    /// `result`, its error in the language of the session it names (see [`locale`]): the
    /// session is read only when there is an error to order.
    async fn localized<T>(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        result: Result<T, GatewayError>,
    ) -> Result<T, Status> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                let session_locale = self.flow.session_locale(terminal, session_id).await;
                Err(locale::in_locale(error.into(), &session_locale))
            }
        }
    }

    /// `result` localized as [`Self::localized`], and the menu's type names and unavailable
    /// entries in the session's language.
    async fn localized_menu(
        &self,
        terminal: &TerminalIdentity,
        session_id: &str,
        result: Result<pb::Menu, GatewayError>,
    ) -> Result<pb::Menu, Status> {
        let menu = self.localized(terminal, session_id, result).await?;
        let session_locale = self.flow.session_locale(terminal, session_id).await;
        Ok(locale::menu_in_locale(menu, &session_locale))
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
        let locale = request.get_ref().locale.clone();
        let opened = match validate::open_session(request.get_ref()) {
            Ok(()) => self.flow.open_session(&terminal, &locale).await,
            Err(error) => Err(error),
        }
        .map_err(|error| locale::in_locale(error.into(), &locale))?;
        let service_status = match opened.closed_reason {
            None => pb::ServiceStatus {
                state: pb::ServiceState::Open as i32,
                reason: String::new(),
                message: None,
            },
            Some(reason) => pb::ServiceStatus {
                state: pb::ServiceState::Closed as i32,
                reason: reason.name.to_owned(),
                message: Some(localized_text(&reason, &locale)),
            },
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
        let menu = async {
            validate::authenticate(&message)?;
            self.flow
                .authenticate(
                    &terminal,
                    &message.session_id,
                    &message.card_certificate,
                    &message.signature,
                )
                .await
        }
        .await;
        let menu = self
            .localized_menu(&terminal, &message.session_id, menu)
            .await?;
        Ok(Response::new(pb::AuthenticateResponse { menu: Some(menu) }))
    }

    async fn get_menu(
        &self,
        request: Request<pb::GetMenuRequest>,
    ) -> Result<Response<pb::GetMenuResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        let menu = async {
            validate::get_menu(&message)?;
            self.flow.menu(&terminal, &message.session_id).await
        }
        .await;
        let menu = self
            .localized_menu(&terminal, &message.session_id, menu)
            .await?;
        Ok(Response::new(pb::GetMenuResponse { menu: Some(menu) }))
    }

    async fn quote(
        &self,
        request: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::QuoteResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        let priced = async {
            validate::quote(&message, self.flow.settings().max_items)?;
            self.flow
                .quote(&terminal, &message.session_id, &message.items)
                .await
        }
        .await;
        let priced = self
            .localized(&terminal, &message.session_id, priced)
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
        let started = tokio::time::Instant::now();
        let terminal = terminal(&self.anchors, &request)?;
        self.budget.check_room(&terminal.id())?;
        let deadline = remaining(&request);
        let message = request.into_inner();
        let released = async {
            validate::issue(&message, self.flow.settings().max_items)?;
            self.flow
                .issue(
                    &terminal,
                    &message.session_id,
                    &message.client_request_id,
                    &message.items,
                    message.expected_total_fee_yen,
                    deadline,
                )
                .await
        }
        .await;
        let released = self
            .localized(&terminal, &message.session_id, released)
            .await?;
        // The issuance is recorded: a refusal here leaves it to a retry with the same id.
        let bytes = released
            .documents()
            .iter()
            .map(|d| d.pdf().len() as u64)
            .sum();
        let lease = self.budget.reserve(&terminal.id(), bytes)?;
        let limit = self.budget.timeout();
        let expires_at = started + deadline.map_or(limit, |d| d.min(limit));
        Ok(Response::new(Box::pin(issue_stream::IssueStream::new(
            released, lease, expires_at,
        ))))
    }

    async fn report_print(
        &self,
        request: Request<pb::ReportPrintRequest>,
    ) -> Result<Response<pb::ReportPrintResponse>, Status> {
        let terminal = terminal(&self.anchors, &request)?;
        let message = request.into_inner();
        let report = async {
            let result = validate::report_print(&message)?;
            self.flow
                .report_print(
                    &terminal,
                    &message.session_id,
                    &message.issuance_id,
                    result,
                    message.collected_yen,
                )
                .await
        }
        .await;
        let report = self
            .localized(&terminal, &message.session_id, report)
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
        let closed = async {
            validate::close_session(&message)?;
            self.flow
                .close_session(&terminal, &message.session_id)
                .await
        }
        .await;
        self.localized(&terminal, &message.session_id, closed)
            .await?;
        Ok(Response::new(pb::CloseSessionResponse {}))
    }
}
