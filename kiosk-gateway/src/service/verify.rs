//! `kiosk.v1.VerifyService`: anyone handed a printed certificate checks it, with no client
//! certificate. The QR payload's signature is checked against the municipalities' document
//! signing keys; the document's void status and printed digest come from the gateway's own
//! record. The answer carries only what the paper already prints.

use kiosk_proto::reasons;
use std::collections::HashMap;
use std::sync::Arc;

use kiosk_document::markers::read_page_markers;
use kiosk_document::qr::{self, QrError, TrustedKeys};
use kiosk_document::signature::verify_pdf_signature;
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::verify_service_server::VerifyService;
use tonic::{Request, Response, Status};

use super::{timestamp, validate};
use crate::error::GatewayError;
use crate::store::{self, Store};

/// Largest PDF accepted for verification.
pub const MAX_PDF_BYTES: usize = 8 << 20;

/// The verification service.
pub struct VerifyApi {
    store: Store,
    trusted: Arc<TrustedKeys>,
    municipalities: HashMap<String, Municipality>,
}

/// What the verifier knows of a municipality.
#[derive(Debug, Clone)]
pub struct Municipality {
    /// The name printed on its documents.
    pub name: String,
    /// Its document-signing certificate (DER), which also signs the PDFs.
    pub signer_cert_der: Vec<u8>,
}

impl VerifyApi {
    /// Verifies against `trusted` QR keys and each municipality's signing certificate.
    pub fn new(
        store: Store,
        trusted: Arc<TrustedKeys>,
        municipalities: HashMap<String, Municipality>,
    ) -> Self {
        VerifyApi {
            store,
            trusted,
            municipalities,
        }
    }
}

fn verdict(validity: pb::Validity, reason: &str, ja: &str, en: &str) -> pb::VerifyDocumentResponse {
    pb::VerifyDocumentResponse {
        validity: validity as i32,
        reason: reason.to_owned(),
        message: Some(pb::LocalizedText {
            ja: ja.to_owned(),
            en: en.to_owned(),
            ..Default::default()
        }),
        summary: None,
        pdf_signature_valid: false,
    }
}

fn unreadable() -> GatewayError {
    GatewayError::refused(reasons::DOCUMENT_UNREADABLE, "not a kiosk.v1 document")
}

impl VerifyApi {
    /// The verdict of the QR payload's signature and of the gateway's record of the serial:
    /// issued and unchanged, voided, or never issued.
    async fn registry_verdict(
        &self,
        payload: &str,
        fields: &qr::PayloadFields,
    ) -> Result<pb::VerifyDocumentResponse, GatewayError> {
        match qr::verify_qr_payload(payload, &self.trusted) {
            Err(QrError::UnknownKey) => Ok(verdict(
                pb::Validity::UnknownIssuer,
                "QR_UNKNOWN_ISSUER",
                "発行元を確認できません。",
                "The issuer of this document is not known.",
            )),
            Err(_) => Ok(verdict(
                pb::Validity::Invalid,
                "QR_SIGNATURE_INVALID",
                "この証明書は改ざんされているか、正規のものではありません。",
                "This document has been altered or is not genuine.",
            )),
            Ok(_) => {
                let mut conn = self.store.pool().acquire().await?;
                let record = store::document(&mut conn, fields.serial.as_str()).await?;
                Ok(match record {
                    None => verdict(
                        pb::Validity::Invalid,
                        "NOT_ISSUED",
                        "この証明書は交付されていません。",
                        "This document was never issued.",
                    ),
                    Some(doc) if doc.content_digest != fields.content_digest => verdict(
                        pb::Validity::Invalid,
                        "CONTENT_MISMATCH",
                        "この証明書は改ざんされているか、正規のものではありません。",
                        "This document has been altered or is not genuine.",
                    ),
                    Some(doc) if doc.status == "voided" => verdict(
                        pb::Validity::Voided,
                        "VOIDED",
                        "この証明書は無効にされています。",
                        "This document has been voided.",
                    ),
                    Some(_) => verdict(
                        pb::Validity::Valid,
                        "",
                        "この証明書は有効です。",
                        "This document is valid.",
                    ),
                })
            }
        }
    }
}

/// `response` with the PDF's embedded signature checked: a PDF whose signature fails was
/// changed after signing, whatever its QR code says, so a VALID verdict becomes INVALID.
fn pdf_signature_verdict(
    mut response: pb::VerifyDocumentResponse,
    pdf: &[u8],
    signer_cert_der: &[u8],
) -> pb::VerifyDocumentResponse {
    let checked = verify_pdf_signature(pdf, signer_cert_der);
    // The caller only learns PDF_SIGNATURE_INVALID; the precise refusal (an appended
    // incremental update, a second signature, ...) is for the operators.
    if let Err(refusal) = checked {
        tracing::info!(%refusal, "verify: embedded PDF signature refused");
    }
    response.pdf_signature_valid = checked.is_ok();
    if !response.pdf_signature_valid && response.validity == pb::Validity::Valid as i32 {
        let summary = response.summary.take();
        response = verdict(
            pb::Validity::Invalid,
            "PDF_SIGNATURE_INVALID",
            "この証明書は改ざんされているか、正規のものではありません。",
            "This document has been altered or is not genuine.",
        );
        response.summary = summary;
    }
    response
}

#[tonic::async_trait]
impl VerifyService for VerifyApi {
    async fn verify_document(
        &self,
        request: Request<pb::VerifyDocumentRequest>,
    ) -> Result<Response<pb::VerifyDocumentResponse>, Status> {
        validate::verify_document(request.get_ref(), MAX_PDF_BYTES)?;
        let (payload, pdf) = match request.into_inner().document {
            Some(pb::verify_document_request::Document::QrPayload(payload)) => (payload, None),
            Some(pb::verify_document_request::Document::Pdf(pdf)) => {
                let markers = read_page_markers(&pdf).map_err(|_| unreadable())?;
                let first = markers.first().ok_or_else(unreadable)?;
                (first.qr_payload.clone(), Some(pdf))
            }
            None => {
                return Err(
                    GatewayError::invalid_field("document", "a QR payload or a PDF").into(),
                );
            }
        };
        let (fields, _, _) = qr::parse_unverified(&payload).map_err(|_| unreadable())?;
        let summary = pb::DocumentSummary {
            serial: fields.serial.as_str().to_owned(),
            municipality_code: fields.municipality.as_str().to_owned(),
            municipality_name: self
                .municipalities
                .get(fields.municipality.as_str())
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            r#type: i32::from(fields.kind.number()),
            issued_at: Some(timestamp(fields.issued_at.unix_seconds() * 1000)),
            content_digest: fields.content_digest.to_vec(),
        };
        let mut response = self.registry_verdict(&payload, &fields).await?;
        response.summary = Some(summary);
        if let (Some(pdf), Some(municipality)) =
            (pdf, self.municipalities.get(fields.municipality.as_str()))
        {
            response = pdf_signature_verdict(response, &pdf, &municipality.signer_cert_der);
        }
        Ok(Response::new(response))
    }
}
