//! The edge: `kiosk.v1.IssuerService` over an [`Issuer`], and the one place that converts
//! between the wire types of `kiosk_proto::v1` and the issuer's domain types (by hand; domain
//! types derive no wire traits).

use std::collections::HashMap;

use kiosk_document::{CertificateType, IssuanceId, MunicipalityCode, ResidentRef};
use kiosk_proto::reasons::{self, FieldViolation};
use kiosk_proto::v1 as pb;
use kiosk_proto::v1::issuer_service_server::{IssuerService, IssuerServiceServer};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::error::IssuerError;
use crate::issuer::Issuer;
use crate::model::{
    CertificateOptions, Member, MemberRelation, Menu, MenuEntry, RenderedDocument, RequestItem,
};

impl From<IssuerError> for Status {
    fn from(error: IssuerError) -> Status {
        let reason = &error.reason();
        match &error {
            IssuerError::InvalidField { field } => reasons::status(
                reason,
                &error.to_string(),
                &[FieldViolation {
                    field: (*field).to_owned(),
                    description: "invalid or not accepted for this certificate type".into(),
                }],
            ),
            IssuerError::Open(_)
            | IssuerError::Database(_)
            | IssuerError::Migrate(_)
            | IssuerError::Corrupt { .. }
            | IssuerError::Render(_) => {
                // The cause goes to the log (it names no resident: our error texts carry no
                // personal data, and sqlx errors are reduced to their kind), never to the
                // client.
                tracing::error!(error = %error, kind = ?std::mem::discriminant(&error), "issuer internal error");
                reasons::status(reason, "internal error", &[])
            }
            _ => reasons::status(reason, &error.to_string(), &[]),
        }
    }
}

/// The wire `CertificateType` number of a type.
pub fn type_to_wire(ty: CertificateType) -> pb::CertificateType {
    match ty {
        CertificateType::ResidentRecord => pb::CertificateType::ResidentRecord,
        CertificateType::ResidentRecordItems => pb::CertificateType::ResidentRecordItems,
        CertificateType::SealRegistration => pb::CertificateType::SealRegistration,
        CertificateType::IncomeTax => pb::CertificateType::IncomeTax,
        CertificateType::KosekiFull => pb::CertificateType::KosekiFull,
        CertificateType::KosekiIndividual => pb::CertificateType::KosekiIndividual,
        CertificateType::KosekiFuhyo => pb::CertificateType::KosekiFuhyo,
    }
}

/// The domain type of a wire `CertificateType` number; UNSPECIFIED and unknown numbers are
/// invalid.
pub fn type_from_wire(value: i32) -> Result<CertificateType, IssuerError> {
    let invalid = IssuerError::InvalidField {
        field: "items.type",
    };
    match pb::CertificateType::try_from(value).map_err(|_| invalid)? {
        pb::CertificateType::Unspecified => Err(IssuerError::InvalidField {
            field: "items.type",
        }),
        pb::CertificateType::ResidentRecord => Ok(CertificateType::ResidentRecord),
        pb::CertificateType::ResidentRecordItems => Ok(CertificateType::ResidentRecordItems),
        pb::CertificateType::SealRegistration => Ok(CertificateType::SealRegistration),
        pb::CertificateType::IncomeTax => Ok(CertificateType::IncomeTax),
        pb::CertificateType::KosekiFull => Ok(CertificateType::KosekiFull),
        pb::CertificateType::KosekiIndividual => Ok(CertificateType::KosekiIndividual),
        pb::CertificateType::KosekiFuhyo => Ok(CertificateType::KosekiFuhyo),
    }
}

/// A wire order line as a domain one.
pub fn item_from_wire(item: &pb::RequestItem) -> Result<RequestItem, IssuerError> {
    let ty = type_from_wire(item.r#type)?;
    let options = item
        .options
        .as_ref()
        .map_or_else(CertificateOptions::default, |o| CertificateOptions {
            include_household_head: o.include_household_head,
            include_honseki: o.include_honseki,
            include_individual_number: o.include_individual_number,
            include_former_surname: o.include_former_surname,
            include_foreign_resident_items: o.include_foreign_resident_items,
            fiscal_year: (o.fiscal_year != 0).then_some(o.fiscal_year),
        });
    let subject_refs = item
        .subject_refs
        .iter()
        .map(|s| {
            ResidentRef::parse(s).map_err(|_| IssuerError::InvalidField {
                field: "items.subject_refs",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RequestItem {
        ty,
        options,
        subject_refs,
        copies: item.copies,
    })
}

/// A domain order line as a wire one (for the gateway's client side and tests).
pub fn item_to_wire(item: &RequestItem) -> pb::RequestItem {
    let o = &item.options;
    pb::RequestItem {
        r#type: type_to_wire(item.ty) as i32,
        options: Some(pb::CertificateOptions {
            include_household_head: o.include_household_head,
            include_honseki: o.include_honseki,
            include_individual_number: o.include_individual_number,
            include_former_surname: o.include_former_surname,
            include_foreign_resident_items: o.include_foreign_resident_items,
            fiscal_year: o.fiscal_year.unwrap_or(0),
        }),
        subject_refs: item
            .subject_refs
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        copies: item.copies,
    }
}

fn localized(reason: &str) -> Option<pb::LocalizedText> {
    // ja-JP and en-US only: the gateway adds the session's further language at its edge.
    reasons::find(reason).map(|r| kiosk_proto::locales::localized_text(r, ""))
}

fn entry_to_wire(entry: &MenuEntry) -> pb::MenuEntry {
    let reason = entry.unavailable.map(|r| r.name()).unwrap_or_default();
    pb::MenuEntry {
        r#type: type_to_wire(entry.ty) as i32,
        available: entry.unavailable.is_none(),
        unavailable_reason: reason.to_owned(),
        unavailable_message: if reason.is_empty() {
            None
        } else {
            localized(reason)
        },
        fee_yen: entry.fee_yen,
        max_copies: entry.max_copies,
        accepted_options: entry
            .ty
            .accepted_options()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        fiscal_years: entry.fiscal_years.clone(),
        selectable_subject_refs: entry
            .selectable_subject_refs
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        display_name: entry.ty.title().to_owned(),
        // ja-JP and en-US; the gateway adds the session's further language at its edge.
        type_name: kiosk_proto::locales::localized_type_name(type_to_wire(entry.ty), ""),
    }
}

fn member_to_wire(member: &Member) -> pb::Member {
    let relation = match member.relation {
        MemberRelation::SelfPerson => pb::MemberRelation::Self_,
        MemberRelation::Household => pb::MemberRelation::Household,
        MemberRelation::Koseki => pb::MemberRelation::Koseki,
    };
    pb::Member {
        subject_ref: member.subject_ref.as_str().to_owned(),
        display_name: member.display_name.clone(),
        relation: relation as i32,
    }
}

/// A domain menu as the wire `Menu`.
pub fn menu_to_wire(menu: &Menu) -> pb::Menu {
    pb::Menu {
        entries: menu.entries.iter().map(entry_to_wire).collect(),
        members: menu.members.iter().map(member_to_wire).collect(),
        municipality_code: menu.municipality_code.as_str().to_owned(),
        municipality_name: menu.municipality_name.clone(),
    }
}

/// A rendered document as the wire one.
pub fn document_to_wire(doc: &RenderedDocument) -> pb::RenderedDocument {
    pb::RenderedDocument {
        serial: doc.serial.clone(),
        r#type: type_to_wire(doc.ty) as i32,
        pdf: doc.pdf.clone(),
        page_count: u32::try_from(doc.pages.len()).unwrap_or(u32::MAX),
        pages: doc
            .pages
            .iter()
            .map(|page| pb::PageSubjects {
                subject_refs: page.iter().map(|s| s.as_str().to_owned()).collect(),
            })
            .collect(),
        pdf_sha256: doc.pdf_sha256.to_vec(),
        fee_yen: doc.fee_yen,
        content_digest: doc.content_digest.to_vec(),
    }
}

fn timestamp_from_wire(ts: Option<&prost_types::Timestamp>) -> Result<OffsetDateTime, IssuerError> {
    instant_from_wire(ts, "issued_at")
}

/// A required timestamp field as a calendar time; out of range or missing is `field` invalid.
fn instant_from_wire(
    ts: Option<&prost_types::Timestamp>,
    field: &'static str,
) -> Result<OffsetDateTime, IssuerError> {
    let invalid = IssuerError::InvalidField { field };
    let ts = ts.ok_or(IssuerError::InvalidField { field })?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid);
    }
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos),
    )
    .map_err(|_| invalid)
}

/// `kiosk.v1.IssuerService` for one municipality.
#[derive(Clone)]
pub struct IssuerGrpc {
    issuers: HashMap<String, Issuer>,
}

impl IssuerGrpc {
    /// A service answering for each issuer's municipality.
    pub fn new(issuers: impl IntoIterator<Item = Issuer>) -> IssuerGrpc {
        IssuerGrpc {
            issuers: issuers
                .into_iter()
                .map(|i| (i.municipality().as_str().to_owned(), i))
                .collect(),
        }
    }

    /// The tonic server to add to a `Server` builder.
    pub fn into_server(self) -> IssuerServiceServer<IssuerGrpc> {
        IssuerServiceServer::new(self)
    }

    /// The issuer, requester and items of an order (Quote and Render take the same ones).
    fn order(
        &self,
        municipality_code: &str,
        requester_ref: &str,
        items: &[pb::RequestItem],
    ) -> Result<(&Issuer, ResidentRef, Vec<RequestItem>), IssuerError> {
        let issuer = self.issuer(municipality_code)?;
        let requester = ResidentRef::parse(requester_ref)?;
        let items = items
            .iter()
            .map(item_from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((issuer, requester, items))
    }

    fn issuer(&self, code: &str) -> Result<&Issuer, IssuerError> {
        let code = MunicipalityCode::parse(code)?;
        self.issuers
            .get(code.as_str())
            .ok_or(IssuerError::MunicipalityNotServed)
    }
}

#[tonic::async_trait]
impl IssuerService for IssuerGrpc {
    async fn get_menu(
        &self,
        request: Request<pb::IssuerMenuRequest>,
    ) -> Result<Response<pb::IssuerMenuResponse>, Status> {
        let request = request.into_inner();
        let issuer = self.issuer(&request.municipality_code)?;
        let resident = ResidentRef::parse(&request.resident_ref).map_err(IssuerError::from)?;
        // The gateway's clock decides, so the menu agrees with the Render that follows it.
        let menu = match request.as_of.as_ref() {
            Some(as_of) => {
                let at = instant_from_wire(Some(as_of), "as_of")?;
                issuer.get_menu_at(&resident, at).await?
            }
            None => issuer.get_menu(&resident).await?,
        };
        Ok(Response::new(pb::IssuerMenuResponse {
            menu: Some(menu_to_wire(&menu)),
        }))
    }

    async fn quote(
        &self,
        request: Request<pb::IssuerQuoteRequest>,
    ) -> Result<Response<pb::IssuerQuoteResponse>, Status> {
        let request = request.into_inner();
        let (issuer, requester, items) = self.order(
            &request.municipality_code,
            &request.requester_ref,
            &request.items,
        )?;
        // The gateway's clock decides, so the quote agrees with the Render that follows it.
        let now = match request.as_of.as_ref() {
            Some(as_of) => instant_from_wire(Some(as_of), "as_of")?,
            None => OffsetDateTime::now_utc(),
        };
        let lines = issuer.quote(&requester, &items, now).await?;
        Ok(Response::new(pb::IssuerQuoteResponse {
            fee_yen: lines.iter().map(|line| line.fee_yen).collect(),
        }))
    }

    async fn render(
        &self,
        request: Request<pb::RenderRequest>,
    ) -> Result<Response<pb::RenderResponse>, Status> {
        let request = request.into_inner();
        let (issuer, requester, items) = self.order(
            &request.municipality_code,
            &request.requester_ref,
            &request.items,
        )?;
        let issuance_id = IssuanceId::parse(&request.issuance_id).map_err(IssuerError::from)?;
        let issued_at = timestamp_from_wire(request.issued_at.as_ref())?;
        let documents = issuer
            .render(&issuance_id, &requester, &items, issued_at)
            .await?;
        Ok(Response::new(pb::RenderResponse {
            documents: documents.iter().map(document_to_wire).collect(),
        }))
    }

    async fn void(
        &self,
        request: Request<pb::VoidRequest>,
    ) -> Result<Response<pb::VoidResponse>, Status> {
        let request = request.into_inner();
        // Void carries serials only; each serial starts with its municipality code, so the
        // request is routed by that prefix, and serials of other municipalities are ignored.
        let mut voided = Vec::new();
        for issuer in self.issuers.values() {
            let prefix = format!("{}-", issuer.municipality());
            let mine: Vec<String> = request
                .serials
                .iter()
                .filter(|s| s.starts_with(&prefix))
                .cloned()
                .collect();
            if !mine.is_empty() {
                voided.extend(issuer.void(&mine, &request.reason).await?);
            }
        }
        Ok(Response::new(pb::VoidResponse {
            voided_serials: voided,
        }))
    }

    async fn confirm(
        &self,
        request: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::ConfirmResponse>, Status> {
        let request = request.into_inner();
        let issuer = self.issuer(&request.municipality_code)?;
        let issuance_id = IssuanceId::parse(&request.issuance_id).map_err(IssuerError::from)?;
        let confirmed = issuer.confirm(&issuance_id).await?;
        Ok(Response::new(pb::ConfirmResponse {
            issued_serials: confirmed.issued,
            voided_serials: confirmed.voided,
        }))
    }

    async fn list_pending(
        &self,
        request: Request<pb::ListPendingRequest>,
    ) -> Result<Response<pb::ListPendingResponse>, Status> {
        let request = request.into_inner();
        let issuer = self.issuer(&request.municipality_code)?;
        let before = instant_from_wire(request.issued_before.as_ref(), "issued_before")?;
        if !(1..=MAX_PENDING_LISTED).contains(&request.limit) {
            return Err(IssuerError::InvalidField { field: "limit" }.into());
        }
        let pending = issuer.pending_before(before, request.limit).await?;
        Ok(Response::new(pb::ListPendingResponse {
            issuances: pending
                .into_iter()
                .map(|p| pb::PendingIssuance {
                    issuance_id: p.issuance_id,
                    types: p
                        .documents
                        .iter()
                        .map(|(_, ty)| type_to_wire(*ty) as i32)
                        .collect(),
                    serials: p.documents.into_iter().map(|(serial, _)| serial).collect(),
                })
                .collect(),
        }))
    }

    async fn void_pending(
        &self,
        request: Request<pb::VoidPendingRequest>,
    ) -> Result<Response<pb::VoidResponse>, Status> {
        let request = request.into_inner();
        let issuer = self.issuer(&request.municipality_code)?;
        let issuance_id = IssuanceId::parse(&request.issuance_id).map_err(IssuerError::from)?;
        let before = instant_from_wire(request.issued_before.as_ref(), "issued_before")?;
        let voided = issuer
            .void_pending(&issuance_id, before, &request.reason)
            .await?;
        Ok(Response::new(pb::VoidResponse {
            voided_serials: voided,
        }))
    }
}

/// Most issuances one ListPending answers: reconciliation pages through the rest.
pub const MAX_PENDING_LISTED: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire mapping agrees with the shared type: its kiosk.v1 number and its stable code
    /// (the enum value name, which registers store and audit events carry).
    #[test]
    fn wire_types_agree_with_the_vocabulary() {
        for ty in CertificateType::ALL {
            let wire = type_to_wire(ty);
            assert_eq!(wire as i32, i32::from(ty.number()));
            assert_eq!(wire.as_str_name(), ty.code());
            assert_eq!(type_from_wire(wire as i32).unwrap(), ty);
        }
        assert!(type_from_wire(0).is_err());
    }

    /// The contract's menu names (`certificate_types.toml`) call each type by the title the
    /// document prints, so the menu and the paper agree.
    #[test]
    fn the_menu_names_are_the_printed_titles() {
        for ty in CertificateType::ALL {
            let name = kiosk_proto::certificate_types::name_of(type_to_wire(ty)).unwrap();
            assert_eq!(name.ja, ty.title(), "{}", ty.code());
        }
    }
}
