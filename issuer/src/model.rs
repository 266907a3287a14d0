//! Domain types of the issuer: certificate options, orders, the menu and rendered documents,
//! over the shared vocabulary of [`kiosk_document`] (certificate types, resident references,
//! municipality codes, issuance ids). None of them derives a wire trait; `service` converts
//! them by hand.

use std::fmt;

use kiosk_document::{CertificateType, MunicipalityCode, ResidentRef};

/// Options of one certificate (see `kiosk.v1.CertificateOptions`). Every flag defaults to off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CertificateOptions {
    /// 世帯主・続柄.
    pub include_household_head: bool,
    /// 本籍・筆頭者.
    pub include_honseki: bool,
    /// 個人番号.
    pub include_individual_number: bool,
    /// 旧氏.
    pub include_former_surname: bool,
    /// 外国人住民の記載事項.
    pub include_foreign_resident_items: bool,
    /// 所得・課税証明書: the fiscal year; `None` for every other type.
    pub fiscal_year: Option<u32>,
}

impl CertificateOptions {
    /// The names of the options that are set, as `CertificateOptions` field names.
    pub fn set_option_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.include_household_head {
            names.push("include_household_head");
        }
        if self.include_honseki {
            names.push("include_honseki");
        }
        if self.include_individual_number {
            names.push("include_individual_number");
        }
        if self.include_former_surname {
            names.push("include_former_surname");
        }
        if self.include_foreign_resident_items {
            names.push("include_foreign_resident_items");
        }
        if self.fiscal_year.is_some() {
            names.push("fiscal_year");
        }
        names
    }
}

/// The most items in one order (as `kiosk.v1.QuoteRequest` allows).
pub const MAX_ITEMS: usize = 10;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestItem {
    /// The type.
    pub ty: CertificateType,
    /// Its options.
    pub options: CertificateOptions,
    /// Whom it is about; empty means the requester alone.
    pub subject_refs: Vec<ResidentRef>,
    /// Copies, 1 to the type's maximum.
    pub copies: u32,
}

/// How a member on the menu relates to the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRelation {
    /// The requester.
    SelfPerson,
    /// A member of the requester's household.
    Household,
    /// A member of the requester's 戸籍 outside their household.
    Koseki,
}

/// A person the requester may ask about.
#[derive(Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's opaque reference.
    pub subject_ref: ResidentRef,
    /// The name shown for selection.
    pub display_name: String,
    /// How they relate to the requester.
    pub relation: MemberRelation,
}

impl fmt::Debug for Member {
    // The display name is personal data: keep it out of Debug output and so out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("subject_ref", &self.subject_ref)
            .field("relation", &self.relation)
            .finish_non_exhaustive()
    }
}

/// One certificate type on the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// The type.
    pub ty: CertificateType,
    /// Why the requester cannot obtain it now; `None` when available.
    pub unavailable: Option<crate::reason::Reason>,
    /// Fee per copy, yen.
    pub fee_yen: u32,
    /// Most copies in one order.
    pub max_copies: u32,
    /// For 所得・課税証明書: the fiscal years that can be printed, newest first.
    pub fiscal_years: Vec<u32>,
    /// The references this type may be about.
    pub selectable_subject_refs: Vec<ResidentRef>,
}

/// What a resident may obtain now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// One entry per type the municipality offers, available or not.
    pub entries: Vec<MenuEntry>,
    /// The requester first, then household and 戸籍 members.
    pub members: Vec<Member>,
    /// The municipality.
    pub municipality_code: MunicipalityCode,
    /// Its printed name.
    pub municipality_name: String,
}

/// One signed certificate as the issuer rendered and recorded it.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedDocument {
    /// The document serial (発行番号), unique in the registry.
    pub serial: String,
    /// The type.
    pub ty: CertificateType,
    /// The signed PDF.
    pub pdf: Vec<u8>,
    /// Per page, the subjects printed into the page's marker.
    pub pages: Vec<Vec<ResidentRef>>,
    /// SHA-256 of `pdf`.
    pub pdf_sha256: [u8; 32],
    /// Fee charged, yen.
    pub fee_yen: u32,
    /// SHA-256 of the printed content as signed into the QR payload.
    pub content_digest: [u8; 32],
}

impl fmt::Debug for RenderedDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedDocument")
            .field("serial", &self.serial)
            .field("ty", &self.ty)
            .field("pdf_len", &self.pdf.len())
            .field("pages", &self.pages)
            .field("fee_yen", &self.fee_yen)
            .finish_non_exhaustive()
    }
}
