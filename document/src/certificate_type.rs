//! The certificate types a resident can print at a store, with everything that is fixed per
//! type: the stable code, the kiosk.v1 number, the Japanese title, the usual certification
//! sentence, what the type is about and which options it accepts.

use std::fmt;

/// The certificate types a resident can print at a store: kiosk.v1 `CertificateType` (same
/// numbers, see [`CertificateType::number`]) without its wire derives; the issuer's service
/// and the gateway convert at the edge.
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
    /// Every type, in kiosk.v1 order (which is also menu order).
    pub const ALL: [CertificateType; 7] = [
        CertificateType::ResidentRecord,
        CertificateType::ResidentRecordItems,
        CertificateType::SealRegistration,
        CertificateType::IncomeTax,
        CertificateType::KosekiFull,
        CertificateType::KosekiIndividual,
        CertificateType::KosekiFuhyo,
    ];

    /// The stable code: the kiosk.v1 enum value name without its prefix. Registers store it
    /// and audit events carry it, so it never changes.
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

    /// The type with stable code `code`.
    pub fn from_code(code: &str) -> Option<CertificateType> {
        CertificateType::ALL
            .into_iter()
            .find(|ty| ty.code() == code)
    }

    /// The kiosk.v1 `CertificateType` number (1..=7); also the type byte of the QR payload
    /// and of the canonical printed content.
    pub fn number(self) -> u8 {
        match self {
            CertificateType::ResidentRecord => 1,
            CertificateType::ResidentRecordItems => 2,
            CertificateType::SealRegistration => 3,
            CertificateType::IncomeTax => 4,
            CertificateType::KosekiFull => 5,
            CertificateType::KosekiIndividual => 6,
            CertificateType::KosekiFuhyo => 7,
        }
    }

    /// The type with kiosk.v1 number `number`; 0 (UNSPECIFIED) and unknown numbers have none.
    pub fn from_number(number: u8) -> Option<CertificateType> {
        CertificateType::ALL
            .into_iter()
            .find(|ty| ty.number() == number)
    }

    /// The Japanese name, as printed on the menu and as the document title, e.g.
    /// 「住民票の写し」.
    pub fn title(self) -> &'static str {
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

    /// The usual certification sentence (認証文) for this type, as printed above the date.
    /// A municipality may print its own wording instead (the model's header takes one).
    pub fn default_certification(self) -> &'static str {
        match self {
            CertificateType::ResidentRecord => "この写しは、住民票の原本と相違ないことを証明する。",
            CertificateType::ResidentRecordItems => {
                "上記の事項は、住民票に記載されていることを証明する。"
            }
            CertificateType::SealRegistration => {
                "この写しは、登録された印影と相違ないことを証明する。"
            }
            CertificateType::IncomeTax => "上記のとおり相違ないことを証明する。",
            CertificateType::KosekiFull => {
                "これは、戸籍に記録されている事項の全部を証明した書面である。"
            }
            CertificateType::KosekiIndividual => {
                "これは、戸籍中の一部の者について記録されている事項を証明した書面である。"
            }
            CertificateType::KosekiFuhyo => {
                "この写しは、戸籍の附票の原本と相違ないことを証明する。"
            }
        }
    }

    /// Whether this type is about the 住民基本台帳 (resident register) rather than 戸籍 or tax.
    pub fn is_resident_record(self) -> bool {
        matches!(
            self,
            CertificateType::ResidentRecord | CertificateType::ResidentRecordItems
        )
    }

    /// Whether this type is read from a 戸籍 kept by the municipality.
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

    /// The names of the kiosk.v1 `CertificateOptions` fields this type accepts.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip() {
        for t in CertificateType::ALL {
            assert_eq!(CertificateType::from_number(t.number()), Some(t));
            assert_eq!(CertificateType::from_code(t.code()), Some(t));
        }
        assert!(CertificateType::from_number(0).is_none());
        assert!(CertificateType::from_number(8).is_none());
        assert!(CertificateType::from_code("resident_record").is_none());
    }

    /// The codes are stored in registers and audit events, the numbers are on the wire and in
    /// every QR code printed so far: both are fixed.
    #[test]
    fn codes_and_numbers_are_the_contract_values() {
        let table: Vec<(u8, &str)> = CertificateType::ALL
            .into_iter()
            .map(|t| (t.number(), t.code()))
            .collect();
        assert_eq!(
            table,
            [
                (1, "RESIDENT_RECORD"),
                (2, "RESIDENT_RECORD_ITEMS"),
                (3, "SEAL_REGISTRATION"),
                (4, "INCOME_TAX"),
                (5, "KOSEKI_FULL"),
                (6, "KOSEKI_INDIVIDUAL"),
                (7, "KOSEKI_FUHYO"),
            ]
        );
    }
}
