//! The name of each certificate type as a kiosk shows it on the menu, in ja-JP (the paper
//! form's own name, authoritative) and en-US: data in `kiosk/v1/certificate_types.toml`, turned
//! into [`ALL`] by build.rs. The further languages name the same types in their files
//! (`crate::locales`). A test keeps the table equal to the `CertificateType` enum, both ways.

use crate::v1::CertificateType;

/// One certificate type's menu name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeName {
    /// The `CertificateType` value name, e.g. `RESIDENT_RECORD`.
    pub name: &'static str,
    /// ja-JP, as `MenuEntry.display_name` and the document's title.
    pub ja: &'static str,
    /// en-US.
    pub en: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/types_table.rs"));

/// The menu name of `ty`; `None` for `CERTIFICATE_TYPE_UNSPECIFIED`.
pub fn name_of(ty: CertificateType) -> Option<&'static TypeName> {
    ALL.iter().find(|row| row.name == ty.as_str_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_certificate_type_has_a_name_and_no_row_is_stray() {
        let enum_names: Vec<&str> = (1..)
            .map_while(|n| CertificateType::try_from(n).ok())
            .map(|ty| ty.as_str_name())
            .collect();
        let rows: Vec<&str> = ALL.iter().map(|row| row.name).collect();
        assert_eq!(rows, enum_names);
        assert_eq!(name_of(CertificateType::Unspecified), None);
        assert_eq!(
            name_of(CertificateType::ResidentRecord).map(|n| n.ja),
            Some("住民票の写し")
        );
    }
}
