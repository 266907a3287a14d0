//! The kit's front: a kiosk.v1 TerminalService the terminal under test connects to, with the
//! development PKI (the gateway's server certificate; terminal certificates from the terminal
//! CA). It forwards every call to the development gateway as the development terminal,
//! records each request and answer in the kit's own types ([`crate::record`]), and injects the
//! scenario's fault ([`Fault`]). This module is the only place the kit handles protobuf.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use kiosk_gateway::clock::Clock;
use kiosk_proto::reasons::{self, Reason};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_client::TerminalServiceClient;
use kiosk_proto::v1::terminal_service_server::{TerminalService, TerminalServiceServer};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};
use tonic::{Request, Response, Status, Streaming};

use crate::error::ConformanceError;
use crate::gateway::{DevGateway, TERMINAL_STEM};
use crate::pin;
use crate::record::{Answer, Call, Delivery, Outcome, Recording};
use crate::scenario::{Fault, WITHHELD_TYPE};

/// How long the front waits for the gateway on a forwarded call.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The scenario in progress.
struct Active {
    fault: Fault,
    pin: String,
    card_certificate: Vec<u8>,
    issue_calls: u32,
    authenticate_calls: u32,
    recording: Recording,
}

/// The front service: shared by every connection, reset per scenario.
#[derive(Clone)]
pub struct Front {
    upstream: TerminalServiceClient<Channel>,
    active: Arc<Mutex<Active>>,
    clock: Arc<dyn Clock>,
}

/// The running front server.
pub struct FrontServer {
    /// Where terminals connect.
    pub addr: SocketAddr,
    /// The service, to begin and finish scenarios.
    pub front: Front,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl FrontServer {
    /// Starts the front on 127.0.0.1, port 0, forwarding to `gateway`.
    pub async fn start(gateway: &DevGateway) -> Result<Self, ConformanceError> {
        let pki = gateway.pki_dir();
        let read = |name: &str| {
            let path = pki.join(name);
            std::fs::read(&path).map_err(|e| ConformanceError::file(&path, e))
        };
        let front_error = |e: &dyn std::fmt::Display| ConformanceError::Front(e.to_string());
        let client_tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("server-ca.crt.pem")?))
            .identity(Identity::from_pem(
                read(&format!("{TERMINAL_STEM}.crt.pem"))?,
                read(&format!("{TERMINAL_STEM}.key.pem"))?,
            ))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(gateway.url().to_owned())
            .map_err(|e| front_error(&e))?
            .tls_config(client_tls)
            .map_err(|e| front_error(&e))?
            .connect()
            .await
            .map_err(|e| front_error(&e))?;
        let front = Front {
            upstream: TerminalServiceClient::new(channel).max_decoding_message_size(64 << 20),
            active: Arc::new(Mutex::new(Active {
                fault: Fault::None,
                pin: String::new(),
                card_certificate: Vec::new(),
                issue_calls: 0,
                authenticate_calls: 0,
                recording: Recording::new(),
            })),
            clock: gateway.clock(),
        };
        let server_tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                read("gateway.crt.pem")?,
                read("gateway.key.pem")?,
            ))
            .client_ca_root(Certificate::from_pem(read("terminal-ca.crt.pem")?));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| front_error(&e))?;
        let addr = listener.local_addr().map_err(|e| front_error(&e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = Server::builder()
            .tls_config(server_tls)
            .map_err(|e| front_error(&e))?
            .add_service(
                TerminalServiceServer::new(front.clone()).max_decoding_message_size(16 << 20),
            );
        let task = tokio::spawn(router.serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(FrontServer {
            addr,
            front,
            stop: Some(stop),
            task,
        })
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

impl Front {
    /// Starts a scenario: a fresh recording, the fault to inject, the PIN to look for and
    /// the card's certificate (DER), which may pass unscanned when sent unchanged.
    pub fn begin(&self, fault: Fault, pin: &str, card_certificate: Vec<u8>) {
        let mut active = self.lock();
        active.fault = fault;
        active.pin = pin.to_owned();
        active.card_certificate = card_certificate;
        active.issue_calls = 0;
        active.authenticate_calls = 0;
        active.recording = Recording::new();
    }

    /// Ends the scenario and hands over what was recorded; the front passes calls through
    /// unchanged until the next [`Front::begin`].
    pub fn finish(&self) -> Recording {
        let mut active = self.lock();
        active.fault = Fault::None;
        std::mem::take(&mut active.recording)
    }

    fn lock(&self) -> MutexGuard<'_, Active> {
        // A panic elsewhere while recording leaves a usable recording behind.
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call and returns its index. `scan` looks for the PIN in the request's
    /// fields (given the PIN and the values handed out so far).
    fn record(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        call: Call,
        scan: impl FnOnce(&str, &std::collections::HashSet<String>, &mut Vec<String>),
    ) -> usize {
        let mut active = self.lock();
        let mut found = Vec::new();
        pin::scan_metadata(metadata, &active.pin, &mut found);
        let pin = active.pin.clone();
        scan(&pin, &active.recording.handed_out, &mut found);
        active.recording.push(call, found)
    }

    fn answer<T>(&self, index: usize, result: &Result<T, Status>) {
        let answer = match result {
            Ok(_) => Answer::Ok,
            Err(status) => Answer::Refused {
                code: format!("{:?}", status.code()),
                reason: reasons::reason_of(status)
                    .map(|r| r.name.to_owned())
                    .unwrap_or_default(),
            },
        };
        if let Some(call) = self.lock().recording.calls.get_mut(index) {
            call.answer = answer;
        }
    }

    fn hand_out(&self, values: impl IntoIterator<Item = String>) {
        let mut active = self.lock();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            active.recording.handed_out.insert(value);
        }
    }

    fn hand_out_menu(&self, menu: Option<&pb::Menu>) {
        if let Some(menu) = menu {
            let members = menu.members.iter().map(|m| m.subject_ref.clone());
            let selectable = menu
                .entries
                .iter()
                .flat_map(|e| e.selectable_subject_refs.iter().cloned());
            self.hand_out(members.chain(selectable).collect::<Vec<_>>());
        }
    }

    fn client(&self) -> TerminalServiceClient<Channel> {
        self.upstream.clone()
    }
}

/// A request to the gateway carrying `message`, with the front's deadline.
fn forward<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(FORWARD_TIMEOUT);
    request
}

/// The `CertificateType` names of an order's items.
fn type_names(items: &[pb::RequestItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.r#type().as_str_name().to_owned())
        .collect()
}

/// `menu` with the scenario's withheld type unavailable, as the issuer marks an item the
/// resident cannot obtain now: reason, message, no copies.
fn withhold(menu: &mut pb::Menu) {
    let reason = reasons::PENDING_CHANGE;
    for entry in &mut menu.entries {
        if entry.r#type().as_str_name() == WITHHELD_TYPE {
            entry.available = false;
            entry.unavailable_reason = reason.name.to_owned();
            entry.unavailable_message = Some(kiosk_proto::locales::localized_text(&reason, ""));
        }
    }
}

/// A refusal in the contract's shape, as the gateway would send it.
fn injected(reason: &Reason) -> Status {
    reasons::status(reason, "injected by the conformance kit", &[])
}

/// A closed service as the gateway reports it outside the national service hours.
fn out_of_hours() -> pb::ServiceStatus {
    let reason = reasons::OUT_OF_SERVICE_HOURS;
    pb::ServiceStatus {
        state: pb::ServiceState::Closed as i32,
        reason: reason.name.to_owned(),
        message: Some(kiosk_proto::locales::localized_text(&reason, "")),
    }
}

fn outcome(value: i32) -> Outcome {
    match pb::PrintOutcome::try_from(value) {
        Ok(pb::PrintOutcome::Printed) => Outcome::Printed,
        Ok(pb::PrintOutcome::Failed) => Outcome::Failed,
        Ok(pb::PrintOutcome::PartlyPrinted) => Outcome::PartlyPrinted,
        _ => Outcome::Other,
    }
}

/// The Issue stream as the terminal receives it.
type IssueStream = Pin<Box<dyn Stream<Item = Result<pb::IssueResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TerminalService for Front {
    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::OpenSession {
            session_id: String::new(),
            closed: false,
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("locale", &message.locale, pin, known, found);
        });
        let mut result = self.client().open_session(forward(message)).await;
        if let Ok(response) = &mut result {
            if self.lock().fault == Fault::OutOfHours {
                response.get_mut().service_status = Some(out_of_hours());
            }
            let opened = response.get_ref();
            let closed = opened
                .service_status
                .as_ref()
                .is_some_and(|s| s.state == pb::ServiceState::Closed as i32);
            self.hand_out([opened.session_id.clone()]);
            if let Some(observed) = self.lock().recording.calls.get_mut(index) {
                observed.call = Call::OpenSession {
                    session_id: opened.session_id.clone(),
                    closed,
                };
            }
        }
        self.answer(index, &result);
        result
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::Authenticate {
            session_id: message.session_id.clone(),
        };
        let card_certificate = self.lock().card_certificate.clone();
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
            // The card's own certificate holds digits by chance (dates, serials): only a
            // certificate other than the card's is scanned.
            if message.card_certificate != card_certificate {
                let certificate = &message.card_certificate;
                pin::scan_bytes("card_certificate", certificate, pin, found);
            }
            pin::scan_bytes("signature", &message.signature, pin, found);
        });
        let (fault, nth) = {
            let mut active = self.lock();
            active.authenticate_calls += 1;
            (active.fault, active.authenticate_calls)
        };
        let refusal = match fault {
            Fault::ChallengeExpired => Some(&reasons::CHALLENGE_EXPIRED),
            Fault::SignatureInvalid => Some(&reasons::SIGNATURE_INVALID),
            Fault::CardExpired => Some(&reasons::CARD_EXPIRED),
            _ => None,
        };
        if let Some(reason) = refusal.filter(|_| nth == 1) {
            let status = injected(reason);
            let result: Result<(), Status> = Err(status.clone());
            self.answer(index, &result);
            return Err(status);
        }
        let mut result = self.client().authenticate(forward(message)).await;
        if let (Ok(response), Fault::IneligibleItem) = (&mut result, fault)
            && let Some(menu) = response.get_mut().menu.as_mut()
        {
            withhold(menu);
        }
        if let Ok(response) = &result {
            self.hand_out_menu(response.get_ref().menu.as_ref());
        }
        self.answer(index, &result);
        result
    }

    async fn get_menu(
        &self,
        request: Request<pb::GetMenuRequest>,
    ) -> Result<Response<pb::GetMenuResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::GetMenu {
            session_id: message.session_id.clone(),
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
        });
        let mut result = self.client().get_menu(forward(message)).await;
        let withholding = self.lock().fault == Fault::IneligibleItem;
        if let (Ok(response), true) = (&mut result, withholding)
            && let Some(menu) = response.get_mut().menu.as_mut()
        {
            withhold(menu);
        }
        if let Ok(response) = &result {
            self.hand_out_menu(response.get_ref().menu.as_ref());
        }
        self.answer(index, &result);
        result
    }

    async fn quote(
        &self,
        request: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::QuoteResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::Quote {
            session_id: message.session_id.clone(),
            types: type_names(&message.items),
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
            scan_items(&message.items, pin, known, found);
        });
        let result = self.client().quote(forward(message)).await;
        self.answer(index, &result);
        result
    }

    type IssueStream = IssueStream;

    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<IssueStream>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::Issue {
            session_id: message.session_id.clone(),
            request_id: message.client_request_id.clone(),
            types: type_names(&message.items),
            delivery: None,
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
            let id = &message.client_request_id;
            pin::scan_text("client_request_id", id, pin, known, found);
            scan_items(&message.items, pin, known, found);
        });
        let (fault, nth) = {
            let mut active = self.lock();
            active.issue_calls += 1;
            (active.fault, active.issue_calls)
        };
        let first = nth == 1;
        let refusal = match fault {
            Fault::DeadlineBeforeForward if first => Some(injected(&reasons::TIMED_OUT)),
            Fault::Overloaded if first => Some(injected(&reasons::OVERLOADED)),
            Fault::IssuerUnavailable if first => Some(injected(&reasons::ISSUER_UNAVAILABLE)),
            Fault::SubjectMismatch if first => Some(injected(&reasons::SUBJECT_MISMATCH)),
            Fault::FeeMismatch if first => Some(injected(&reasons::FEE_MISMATCH)),
            Fault::IssuanceFinished if first => Some(injected(&reasons::ISSUANCE_FINISHED)),
            _ => None,
        };
        if let Some(status) = refusal {
            let result: Result<(), Status> = Err(status.clone());
            self.answer(index, &result);
            return Err(status);
        }
        let mut upstream = match self.client().issue(forward(message)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                let result: Result<(), Status> = Err(status.clone());
                self.answer(index, &result);
                return Err(status);
            }
        };
        if fault == Fault::DeadlineAfterCommit && first {
            // The gateway recorded and released the issuance; the terminal never hears of it.
            while let Ok(Some(_)) = upstream.message().await {}
            let status = injected(&reasons::TIMED_OUT);
            let result: Result<(), Status> = Err(status.clone());
            self.answer(index, &result);
            return Err(status);
        }
        self.answer(index, &Ok::<(), Status>(()));
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(relay(self.clone(), index, fault, upstream, sender));
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_print(
        &self,
        request: Request<pb::ReportPrintRequest>,
    ) -> Result<Response<pb::ReportPrintResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::ReportPrint {
            session_id: message.session_id.clone(),
            issuance_id: message.issuance_id.clone(),
            outcome: outcome(message.outcome),
            at_gateway_ms: self.clock.now_ms(),
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
            pin::scan_text("issuance_id", &message.issuance_id, pin, known, found);
            let detail = &message.failure_detail;
            pin::scan_text("failure_detail", detail, pin, known, found);
        });
        let result = self.client().report_print(forward(message)).await;
        self.answer(index, &result);
        result
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let call = Call::CloseSession {
            session_id: message.session_id.clone(),
        };
        let index = self.record(&metadata, call, |pin, known, found| {
            pin::scan_text("session_id", &message.session_id, pin, known, found);
        });
        let result = self.client().close_session(forward(message)).await;
        self.answer(index, &result);
        result
    }
}

fn scan_items(
    items: &[pb::RequestItem],
    pin: &str,
    known: &std::collections::HashSet<String>,
    found: &mut Vec<String>,
) {
    for item in items {
        for subject in &item.subject_refs {
            pin::scan_text("items.subject_refs", subject, pin, known, found);
        }
    }
}

/// Passes the gateway's Issue stream to the terminal, applying the fault. What reaches the
/// terminal is recorded before it is sent, so the recording is complete once the terminal
/// has acted on it.
async fn relay(
    front: Front,
    index: usize,
    fault: Fault,
    mut upstream: Streaming<pb::IssueResponse>,
    sender: mpsc::Sender<Result<pb::IssueResponse, Status>>,
) {
    loop {
        let message = match upstream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(status) => {
                let _ = sender.send(Err(status)).await;
                return;
            }
        };
        let Some(message) = apply(&front, index, fault, message) else {
            // Cut: the stream ends here, cleanly, without its trailer.
            return;
        };
        if sender.send(Ok(message)).await.is_err() {
            return;
        }
    }
}

/// One message of the stream after the fault, recorded; `None` to end the stream instead.
fn apply(
    front: &Front,
    index: usize,
    fault: Fault,
    mut message: pb::IssueResponse,
) -> Option<pb::IssueResponse> {
    use pb::issue_response::Event;
    let mut active = front.lock();
    let recording = &mut active.recording;
    let Some(Call::Issue { delivery, .. }) = recording.calls.get_mut(index).map(|c| &mut c.call)
    else {
        return Some(message);
    };
    let delivery = delivery.get_or_insert_with(Delivery::default);
    match &mut message.event {
        Some(Event::Header(header)) => {
            delivery.issuance_id = header.issuance_id.clone();
            delivery.print_deadline_ms = header
                .print_deadline
                .as_ref()
                .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
                .unwrap_or(0);
            let id = header.issuance_id.clone();
            recording.handed_out.insert(id);
        }
        Some(Event::Chunk(chunk))
            if fault == Fault::CorruptEveryStream
                && chunk.document_index == 0
                && chunk.offset == 0
                && !chunk.data.is_empty() =>
        {
            let middle = chunk.data.len() / 2;
            chunk.data[middle] ^= 0xff;
            delivery.corrupted = true;
        }
        Some(Event::Chunk(_)) => {}
        Some(Event::Trailer(_)) => {
            if fault == Fault::CutEveryStream {
                return None;
            }
            delivery.trailer = true;
        }
        None => {}
    }
    Some(message)
}
