//! A kiosk.v1 terminal client over mutual TLS: the calls of the issuance in the order a
//! terminal makes them, each returning either the answer or a [`TerminalError`] that says what
//! to show.

use std::path::Path;
use std::time::Duration;

use kiosk_proto::v1 as pb;
use kiosk_proto::v1::terminal_service_client::TerminalServiceClient;
use ring::digest::{SHA256, digest};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Why a terminal operation failed, with what the kiosk shows.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// The gateway refused with a contract reason.
    #[error("{reason} ({code:?}): {en}")]
    Refused {
        /// The ErrorInfo reason (e.g. `CARD_REVOKED`), or `UNKNOWN` without one.
        reason: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The ja-JP message to show.
        ja: String,
        /// The en-US message to show.
        en: String,
    },
    /// A card-side failure (terminal-side reason such as `PIN_WRONG`).
    #[error("card: {reason}: {detail}")]
    Card {
        /// The terminal-side reason.
        reason: &'static str,
        /// Developer detail (no PIN, no personal data).
        detail: String,
    },
    /// The documents did not arrive intact (size, digest or a missing trailer).
    #[error("incomplete or corrupt issuance stream: {0}")]
    Integrity(String),
    /// Configuration or connection problem.
    #[error("connection: {0}")]
    Connection(String),
}

impl TerminalError {
    /// The contract reason name.
    pub fn reason(&self) -> &str {
        match self {
            TerminalError::Refused { reason, .. } => reason,
            TerminalError::Card { reason, .. } => reason,
            TerminalError::Integrity(_) => "INTEGRITY",
            TerminalError::Connection(_) => "CONNECTION",
        }
    }
}

impl From<tonic::Status> for TerminalError {
    fn from(status: tonic::Status) -> Self {
        use tonic_types::{ErrorDetail, StatusExt};
        let mut ja = String::new();
        let mut en = String::new();
        for detail in status.get_error_details_vec() {
            if let ErrorDetail::LocalizedMessage(m) = detail {
                match m.locale.as_str() {
                    "ja-JP" => ja = m.message,
                    "en-US" => en = m.message,
                    _ => {}
                }
            }
        }
        let reason = kiosk_proto::reasons::reason_of(&status)
            .map(|r| r.name.to_owned())
            .unwrap_or_else(|| "UNKNOWN".to_owned());
        if en.is_empty() {
            en = status.message().to_owned();
        }
        TerminalError::Refused {
            reason,
            code: status.code(),
            ja,
            en,
        }
    }
}

/// The terminal's TLS material, PEM.
#[derive(Clone)]
pub struct TerminalTls {
    /// The CA that signed the gateway's server certificate.
    pub server_ca_pem: Vec<u8>,
    /// The terminal's client certificate chain.
    pub cert_pem: Vec<u8>,
    /// The terminal's private key.
    pub key_pem: Vec<u8>,
    /// The name in the gateway's certificate (e.g. `localhost`).
    pub server_name: String,
}

impl std::fmt::Debug for TerminalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TerminalTls {
    /// Reads `<pki>/server-ca.crt.pem` and `<pki>/<stem>.{crt,key}.pem`.
    pub fn from_pki_dir(pki: &Path, stem: &str, server_name: &str) -> Result<Self, TerminalError> {
        let read = |name: String| {
            std::fs::read(pki.join(&name))
                .map_err(|e| TerminalError::Connection(format!("{name}: {e}")))
        };
        Ok(TerminalTls {
            server_ca_pem: read("server-ca.crt.pem".into())?,
            cert_pem: read(format!("{stem}.crt.pem"))?,
            key_pem: read(format!("{stem}.key.pem"))?,
            server_name: server_name.to_owned(),
        })
    }
}

/// Opens a channel to the gateway at `url` (e.g. `https://127.0.0.1:7443`). With TLS 1.3 a
/// refused client certificate shows up on the first call, not here.
pub async fn connect(url: &str, tls: &TerminalTls) -> Result<Channel, TerminalError> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.server_ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(tls.server_name.clone());
    Endpoint::from_shared(url.to_owned())
        .map_err(|e| TerminalError::Connection(e.to_string()))?
        .tls_config(config)
        .map_err(|e| TerminalError::Connection(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| TerminalError::Connection(e.to_string()))
}

/// One PDF as received and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    /// Serial number printed on it.
    pub serial: String,
    /// Its type.
    pub certificate_type: pb::CertificateType,
    /// Pages.
    pub page_count: u32,
    /// The PDF bytes (SHA-256 checked against the gateway's).
    pub pdf: Vec<u8>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("serial", &self.serial)
            .field("type", &self.certificate_type)
            .field("bytes", &self.pdf.len())
            .finish()
    }
}

/// A complete issuance: the header and every document, verified.
#[derive(Debug, Clone)]
pub struct Issued {
    /// From the header.
    pub header: pb::IssuanceHeader,
    /// In order.
    pub documents: Vec<Document>,
}

/// The terminal side of one gateway connection.
#[derive(Clone)]
pub struct Terminal {
    client: TerminalServiceClient<Channel>,
}

impl Terminal {
    /// A terminal over an open channel.
    pub fn new(channel: Channel) -> Self {
        Terminal {
            client: TerminalServiceClient::new(channel).max_decoding_message_size(16 << 20),
        }
    }

    /// OpenSession.
    pub async fn open_session(&self) -> Result<pb::OpenSessionResponse, TerminalError> {
        let request = with_deadline(
            pb::OpenSessionRequest {
                locale: "ja-JP".into(),
            },
            5,
        );
        Ok(self
            .client
            .clone()
            .open_session(request)
            .await?
            .into_inner())
    }

    /// Authenticate with the card's certificate and login signature; returns the menu.
    pub async fn authenticate(
        &self,
        session_id: &str,
        certificate: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<pb::Menu, TerminalError> {
        let request = with_deadline(
            pb::AuthenticateRequest {
                session_id: session_id.to_owned(),
                card_certificate: certificate,
                signature,
            },
            10,
        );
        let menu = self
            .client
            .clone()
            .authenticate(request)
            .await?
            .into_inner()
            .menu;
        menu.ok_or_else(|| TerminalError::Integrity("no menu".into()))
    }

    /// Quote.
    pub async fn quote(
        &self,
        session_id: &str,
        items: Vec<pb::RequestItem>,
    ) -> Result<pb::QuoteResponse, TerminalError> {
        let request = with_deadline(
            pb::QuoteRequest {
                session_id: session_id.to_owned(),
                items,
            },
            10,
        );
        Ok(self.client.clone().quote(request).await?.into_inner())
    }

    /// Issue, collecting and checking the whole stream. Retry with the same
    /// `client_request_id` after any failure.
    pub async fn issue(
        &self,
        session_id: &str,
        client_request_id: &str,
        items: Vec<pb::RequestItem>,
        expected_total_fee_yen: u32,
        timeout: Duration,
    ) -> Result<Issued, TerminalError> {
        let mut header_seen = None;
        self.issue_observed(
            session_id,
            client_request_id,
            items,
            expected_total_fee_yen,
            timeout,
            &mut header_seen,
        )
        .await
    }

    /// [`Terminal::issue`], also leaving in `header_seen` the stream's header when one
    /// arrived, even if the stream then failed: the issuance it names still needs its print
    /// report (FAILED, when the terminal gives up on it).
    pub async fn issue_observed(
        &self,
        session_id: &str,
        client_request_id: &str,
        items: Vec<pb::RequestItem>,
        expected_total_fee_yen: u32,
        timeout: Duration,
        header_seen: &mut Option<pb::IssuanceHeader>,
    ) -> Result<Issued, TerminalError> {
        let mut request = tonic::Request::new(pb::IssueRequest {
            session_id: session_id.to_owned(),
            client_request_id: client_request_id.to_owned(),
            items,
            expected_total_fee_yen,
        });
        request.set_timeout(timeout);
        let mut stream = self.client.clone().issue(request).await?.into_inner();
        let mut header = None;
        let mut documents: Vec<(Document, Vec<u8>, u64)> = Vec::new();
        let mut trailer = None;
        while let Some(message) = stream.message().await? {
            match message.event {
                Some(pb::issue_response::Event::Header(h)) if header.is_none() => {
                    *header_seen = Some(h.clone());
                    header = Some(h);
                }
                Some(pb::issue_response::Event::Chunk(chunk)) if header.is_some() => {
                    let index = chunk.document_index as usize;
                    if index == documents.len() {
                        documents.push((
                            Document {
                                serial: chunk.serial.clone(),
                                certificate_type: pb::CertificateType::try_from(chunk.r#type)
                                    .unwrap_or(pb::CertificateType::Unspecified),
                                page_count: chunk.page_count,
                                pdf: Vec::new(),
                            },
                            chunk.document_sha256.clone(),
                            chunk.document_size,
                        ));
                    }
                    let Some((document, _, _)) = documents.get_mut(index) else {
                        return Err(TerminalError::Integrity("chunk out of order".into()));
                    };
                    if document.serial != chunk.serial || document.pdf.len() as u64 != chunk.offset
                    {
                        return Err(TerminalError::Integrity("chunk out of order".into()));
                    }
                    document.pdf.extend_from_slice(&chunk.data);
                }
                Some(pb::issue_response::Event::Trailer(t)) => trailer = Some(t),
                _ => return Err(TerminalError::Integrity("unexpected message".into())),
            }
        }
        let header = header.ok_or_else(|| TerminalError::Integrity("no header".into()))?;
        let trailer = trailer.ok_or_else(|| TerminalError::Integrity("no trailer".into()))?;
        if trailer.document_count as usize != documents.len()
            || header.document_count as usize != documents.len()
        {
            return Err(TerminalError::Integrity("document count".into()));
        }
        let mut out = Vec::new();
        for (document, sha256, size) in documents {
            if document.pdf.len() as u64 != size
                || digest(&SHA256, &document.pdf).as_ref() != sha256.as_slice()
            {
                return Err(TerminalError::Integrity(format!(
                    "document {} is corrupt",
                    document.serial
                )));
            }
            out.push(document);
        }
        Ok(Issued {
            header,
            documents: out,
        })
    }

    /// ReportPrint.
    pub async fn report_print(
        &self,
        session_id: &str,
        issuance_id: &str,
        outcome: pb::PrintOutcome,
        collected_yen: u32,
        failure_detail: &str,
    ) -> Result<pb::ReportPrintResponse, TerminalError> {
        let request = with_deadline(
            pb::ReportPrintRequest {
                session_id: session_id.to_owned(),
                issuance_id: issuance_id.to_owned(),
                outcome: outcome as i32,
                failure_detail: failure_detail.to_owned(),
                collected_yen,
            },
            10,
        );
        Ok(self
            .client
            .clone()
            .report_print(request)
            .await?
            .into_inner())
    }

    /// CloseSession.
    pub async fn close_session(&self, session_id: &str) -> Result<(), TerminalError> {
        let request = with_deadline(
            pb::CloseSessionRequest {
                session_id: session_id.to_owned(),
            },
            5,
        );
        self.client.clone().close_session(request).await?;
        Ok(())
    }
}

fn with_deadline<T>(message: T, seconds: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(seconds));
    request
}
