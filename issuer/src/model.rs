//! Domain types of the issuer: certificate types and options, references, orders, the menu and
//! rendered documents. None of them derives a wire trait; `service` converts them by hand.

use std::fmt;

use crate::error::IssuerError;

/// The certificate types a resident can print at a store (see `kiosk.v1.CertificateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertificateType {
    /// 住民票の写し.
    ResidentRecord,
    /// 住民票記載事項証明書.
    ResidentRecordItems,
    /// 印鑑登録証明書.
    SealRegistration,
    /// 所得・課税証明書.
    IncomeTax,
    /// 戸籍全部事項証明書.
    KosekiFull,
    /// 戸籍個人事項証明書.
    KosekiIndividual,
    /// 戸籍の附票の写し.
    KosekiFuhyo,
}

impl CertificateType {
    /// Every type, in menu order.
    pub const ALL: [CertificateType; 7] = [
        CertificateType::ResidentRecord,
        CertificateType::ResidentRecordItems,
        CertificateType::SealRegistration,
        CertificateType::IncomeTax,
        CertificateType::KosekiFull,
        CertificateType::KosekiIndividual,
        CertificateType::KosekiFuhyo,
    ];

    /// The stable code stored in the database (equal to the `kiosk.v1` enum value name without
    /// its prefix).
    pub fn code(self) -> &'static str {
        match self {
            CertificateType::ResidentRecord => "RESIDENT_RECORD",
            CertificateType::ResidentRecordItems => "RESIDENT_RECORD_ITEMS",
            CertificateType::SealRegistration => "SEAL_REGISTRATION",
            CertificateType::IncomeTax => "INCOME_TAX",
            CertificateType::KosekiFull => "KOSEKI_FULL",
            CertificateType::KosekiIndividual => "KOSEKI_INDIVIDUAL",
            CertificateType::KosekiFuhyo => "KOSEKI_FUHYO",
        }
    }

    /// The type with database code `code`.
    pub fn from_code(code: &str) -> Option<CertificateType> {
        CertificateType::ALL
            .into_iter()
            .find(|ty| ty.code() == code)
    }

    /// The Japanese name as printed on the menu and as the document title.
    pub fn japanese_name(self) -> &'static str {
        match self {
            CertificateType::ResidentRecord => "住民票の写し",
            CertificateType::ResidentRecordItems => "住民票記載事項証明書",
            CertificateType::SealRegistration => "印鑑登録証明書",
            CertificateType::IncomeTax => "所得・課税証明書",
            CertificateType::KosekiFull => "戸籍全部事項証明書",
            CertificateType::KosekiIndividual => "戸籍個人事項証明書",
            CertificateType::KosekiFuhyo => "戸籍の附票の写し",
        }
    }

    /// Whether this type is about the 住民基本台帳 (resident register) rather than 戸籍 or tax.
    pub fn is_resident_record(self) -> bool {
        matches!(
            self,
            CertificateType::ResidentRecord | CertificateType::ResidentRecordItems
        )
    }

    /// Whether this type is read from a 戸籍 kept by this municipality.
    pub fn is_koseki(self) -> bool {
        matches!(
            self,
            CertificateType::KosekiFull
                | CertificateType::KosekiIndividual
                | CertificateType::KosekiFuhyo
        )
    }

    /// Whether the type shows addresses, so that a support measure on anyone it is about blocks
    /// it (住民票 and 附票).
    pub fn shows_address_of_subjects(self) -> bool {
        matches!(
            self,
            CertificateType::ResidentRecord
                | CertificateType::ResidentRecordItems
                | CertificateType::KosekiFuhyo
        )
    }

    /// The names of the `CertificateOptions` fields this type accepts.
    pub fn accepted_options(self) -> &'static [&'static str] {
        match self {
            CertificateType::ResidentRecord => &[
                "include_household_head",
                "include_honseki",
                "include_individual_number",
                "include_former_surname",
                "include_foreign_resident_items",
            ],
            CertificateType::ResidentRecordItems | CertificateType::SealRegistration => {
                &["include_former_surname"]
            }
            CertificateType::IncomeTax => &["fiscal_year"],
            CertificateType::KosekiFuhyo => &["include_honseki"],
            CertificateType::KosekiFull | CertificateType::KosekiIndividual => &[],
        }
    }
}

impl fmt::Display for CertificateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

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

/// Checks the `kiosk.v1` identifier charset: 1 to 64 characters from `[A-Za-z0-9._:/-]`.
fn is_wire_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// The resident reference charset: the wire charset without `/`, which is also what the
/// document page markers accept.
fn is_resident_ref(value: &str) -> bool {
    is_wire_id(value) && !value.contains('/')
}

/// An opaque resident reference: what leaves the issuer instead of any register key that
/// means something, and never the individual number.
///
/// Invariant: 1 to 64 characters from `[A-Za-z0-9._:-]` (so `,` and `;` never occur, which
/// the registry's page-subject column relies on).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentRef(String);

impl ResidentRef {
    /// Parses a reference received from outside.
    pub fn parse(value: &str) -> Result<ResidentRef, IssuerError> {
        if is_resident_ref(value) {
            Ok(ResidentRef(value.to_owned()))
        } else {
            Err(IssuerError::InvalidField {
                field: "resident_ref",
            })
        }
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ResidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentRef({})", self.0)
    }
}

impl fmt::Display for ResidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 6-digit 全国地方公共団体コード.
///
/// Invariant: exactly six ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode(String);

impl MunicipalityCode {
    /// Parses a municipality code.
    pub fn parse(value: &str) -> Result<MunicipalityCode, IssuerError> {
        if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(MunicipalityCode(value.to_owned()))
        } else {
            Err(IssuerError::InvalidField {
                field: "municipality_code",
            })
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gateway's issuance id, printed on every page.
///
/// Invariant: 1 to 64 characters from `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IssuanceId(String);

impl IssuanceId {
    /// Parses an issuance id.
    pub fn parse(value: &str) -> Result<IssuanceId, IssuerError> {
        if is_wire_id(value) {
            Ok(IssuanceId(value.to_owned()))
        } else {
            Err(IssuerError::InvalidField {
                field: "issuance_id",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
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
    pub unavailable: Option<crate::rules::Reason>,
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
