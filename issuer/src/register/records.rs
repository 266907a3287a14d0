//! The register's records as the issuer reads them: municipalities, residents, seal
//! registrations, tax records, 戸籍 and their members, support measures, pending changes and
//! the service configuration. The Debug output of a personal record names only references.

use std::fmt;

use kiosk_document::{CertificateType, ResidentRef};
use time::Date;

use crate::error::IssuerError;

/// A municipality served by this register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 6-digit code.
    pub code: String,
    /// Name as printed (千代田区).
    pub name: String,
    /// Prefecture (東京都).
    pub prefecture: String,
    /// The mayor's title as printed (千代田区長).
    pub mayor_title: String,
    /// The mayor's name as printed.
    pub mayor_name: String,
    /// Minimum age for store issuance.
    pub minimum_age: u32,
    /// Fiscal years of 所得・課税証明書 offered, counting back from the newest.
    pub tax_years_offered: u32,
}

/// A resident's status in the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentStatus {
    /// Living here.
    Active,
    /// Filed a 転出届; still registered until the move.
    MoveOutFiled,
    /// Moved out (消除).
    MovedOut,
    /// Died (消除).
    Deceased,
}

impl ResidentStatus {
    /// Database code.
    pub fn code(self) -> &'static str {
        match self {
            ResidentStatus::Active => "active",
            ResidentStatus::MoveOutFiled => "move_out_filed",
            ResidentStatus::MovedOut => "moved_out",
            ResidentStatus::Deceased => "deceased",
        }
    }

    pub(super) fn parse(code: &str) -> Result<ResidentStatus, IssuerError> {
        match code {
            "active" => Ok(ResidentStatus::Active),
            "move_out_filed" => Ok(ResidentStatus::MoveOutFiled),
            "moved_out" => Ok(ResidentStatus::MovedOut),
            "deceased" => Ok(ResidentStatus::Deceased),
            _ => Err(IssuerError::Corrupt {
                what: "resident status",
            }),
        }
    }
}

/// Sex as the register records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// 男.
    Male,
    /// 女.
    Female,
}

impl Sex {
    /// Database code (1 男, 2 女).
    pub fn code(self) -> i64 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
        }
    }

    pub(super) fn parse(code: i64) -> Result<Sex, IssuerError> {
        match code {
            1 => Ok(Sex::Male),
            2 => Ok(Sex::Female),
            _ => Err(IssuerError::Corrupt { what: "sex" }),
        }
    }

    /// As printed: 男 or 女.
    pub fn japanese(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
}

/// The items a foreign resident's 住民票 carries (外国人住民の記載事項).
#[derive(Clone, PartialEq, Eq)]
pub struct ForeignResidentItems {
    /// 国籍・地域.
    pub nationality: String,
    /// 在留資格.
    pub residence_status: String,
    /// 在留期間の満了の日.
    pub period_of_stay_until: Date,
    /// 在留カード等の番号.
    pub residence_card_number: String,
}

/// One resident as the register holds them. Debug shows only the reference and status.
#[derive(Clone, PartialEq, Eq)]
pub struct Resident {
    /// The opaque reference (the row id).
    pub id: ResidentRef,
    /// The municipality.
    pub municipality_code: String,
    /// The household.
    pub household_id: String,
    /// 氏.
    pub family_name: String,
    /// 名.
    pub given_name: String,
    /// 氏 (kana).
    pub family_name_kana: String,
    /// 名 (kana).
    pub given_name_kana: String,
    /// 旧氏.
    pub former_surname: Option<String>,
    /// 旧氏 (kana).
    pub former_surname_kana: Option<String>,
    /// 生年月日.
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 続柄 to the household head.
    pub relationship: String,
    /// 住所.
    pub address: String,
    /// 住民となった年月日.
    pub resident_since: Date,
    /// 住所を定めた年月日.
    pub address_since: Date,
    /// 前住所.
    pub previous_address: Option<String>,
    /// 本籍.
    pub honseki: Option<String>,
    /// 筆頭者.
    pub hittosha: Option<String>,
    /// The 戸籍 when kept here.
    pub koseki_id: Option<String>,
    /// Status.
    pub status: ResidentStatus,
    /// When the status last changed.
    pub status_date: Option<Date>,
    /// Foreign residents' items.
    pub foreign: Option<ForeignResidentItems>,
}

impl Resident {
    /// 氏名 as printed, with a full-width space.
    pub fn full_name(&self) -> String {
        format!("{}\u{3000}{}", self.family_name, self.given_name)
    }

    /// 氏名 in kana.
    pub fn full_name_kana(&self) -> String {
        format!("{}\u{3000}{}", self.family_name_kana, self.given_name_kana)
    }
}

impl fmt::Debug for Resident {
    // Names, addresses and dates are personal data and must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resident")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A seal registration with its impression.
#[derive(Clone, PartialEq, Eq)]
pub struct SealRegistration {
    /// 登録番号.
    pub registration_number: String,
    /// The holder.
    pub resident_id: ResidentRef,
    /// 登録年月日.
    pub registered_on: Date,
    /// The impression (PNG).
    pub image_png: Vec<u8>,
}

impl fmt::Debug for SealRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealRegistration")
            .field("resident_id", &self.resident_id)
            .finish_non_exhaustive()
    }
}

/// One fiscal year's income and tax of one resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRecord {
    /// 年度.
    pub fiscal_year: u32,
    /// 給与収入.
    pub salary_income: i64,
    /// 総所得金額.
    pub total_income: i64,
    /// 所得控除合計.
    pub deductions: i64,
    /// 課税標準額.
    pub taxable_income: i64,
    /// 市町村民税.
    pub municipal_tax: i64,
    /// 道府県民税.
    pub prefectural_tax: i64,
    /// 扶養人数.
    pub dependents: u32,
}

/// A 戸籍 kept by this municipality.
#[derive(Clone, PartialEq, Eq)]
pub struct Koseki {
    /// Row id.
    pub id: String,
    /// 本籍.
    pub honseki: String,
    /// 筆頭者.
    pub hittosha_name: String,
    /// 編製日.
    pub created_on: Date,
    /// Whether it is still current (not 除籍).
    pub current: bool,
}

impl fmt::Debug for Koseki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Koseki")
            .field("id", &self.id)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// One event in a member's 身分事項.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KosekiEvent {
    /// 出生, 婚姻, 死亡 ...
    pub kind: String,
    /// When.
    pub date: Date,
    /// Where (出生地, 届出地 ...).
    pub place: Option<String>,
    /// Further text (配偶者氏名 ...).
    pub detail: Option<String>,
}

/// One address of a member's 附票.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuhyoEntry {
    /// 住所.
    pub address: String,
    /// 住所を定めた年月日.
    pub since: Date,
}

/// A member of a 戸籍, with their events and 附票 entries.
#[derive(Clone, PartialEq, Eq)]
pub struct KosekiMember {
    /// Position in the 戸籍.
    pub member_no: u32,
    /// The opaque reference (the resident id when the member lives here).
    pub person_ref: ResidentRef,
    /// 氏.
    pub family_name: String,
    /// 名.
    pub given_name: String,
    /// 生年月日.
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 父.
    pub father_name: Option<String>,
    /// 母.
    pub mother_name: Option<String>,
    /// 父母との続柄.
    pub parent_relationship: String,
    /// 筆頭者 / 夫 / 妻 / 子.
    pub role: String,
    /// Still in the 戸籍 (not 除籍).
    pub present: bool,
    /// 身分事項.
    pub events: Vec<KosekiEvent>,
    /// 附票 entries, oldest first.
    pub fuhyo: Vec<FuhyoEntry>,
}

impl KosekiMember {
    /// 氏名 as printed.
    pub fn full_name(&self) -> String {
        format!("{}\u{3000}{}", self.family_name, self.given_name)
    }
}

impl fmt::Debug for KosekiMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KosekiMember")
            .field("member_no", &self.member_no)
            .field("person_ref", &self.person_ref)
            .finish_non_exhaustive()
    }
}

/// A support measure (支援措置) on a resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportMeasure {
    /// Set in the 住民票 system.
    pub covers_resident_record: bool,
    /// Set in the 戸籍の附票 system.
    pub covers_fuhyo: bool,
}

/// A change filed but not yet reflected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Row id.
    pub id: String,
    /// Kind (転入, 住所変更, 外字登録, 戸籍届出 ...).
    pub kind: String,
}

/// A type's service window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceWindow {
    /// The type.
    pub ty: CertificateType,
    /// Offered at stores at all.
    pub offered: bool,
    /// Weekdays only (戸籍 depends on office systems).
    pub weekdays_only: bool,
    /// Opening, minutes after midnight JST.
    pub opens_at_minute: u32,
    /// Closing, minutes after midnight JST (exclusive).
    pub closes_at_minute: u32,
    /// Most copies in one order.
    pub max_copies: u32,
}

/// A configured closed day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedDate {
    /// Closed only for weekday-only types (a public holiday) rather than for all.
    pub weekday_types_only: bool,
}

/// The municipality's kill switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSwitch {
    /// Suspended now.
    pub suspended: bool,
}
