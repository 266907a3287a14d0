//! Decoding register rows: typed column readers that turn a malformed value into
//! `IssuerError::Corrupt` naming the column's meaning (never its value), and the resident row
//! that every resident read shares.

use kiosk_document::ResidentRef;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::Date;

use super::records::{ForeignResidentItems, Resident, ResidentStatus, Sex};
use crate::calendar::parse_date;
use crate::error::IssuerError;

pub(super) fn text(row: &AnyRow, column: &str) -> Result<String, IssuerError> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(super) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, IssuerError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

pub(super) fn int(row: &AnyRow, column: &str) -> Result<i64, IssuerError> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(super) fn flag(row: &AnyRow, column: &str) -> Result<bool, IssuerError> {
    Ok(int(row, column)? != 0)
}

pub(super) fn small(row: &AnyRow, column: &str, what: &'static str) -> Result<u32, IssuerError> {
    u32::try_from(int(row, column)?).map_err(|_| IssuerError::Corrupt { what })
}

pub(super) fn date(row: &AnyRow, column: &str, what: &'static str) -> Result<Date, IssuerError> {
    parse_date(&text(row, column)?, what)
}

pub(super) fn opt_date(
    row: &AnyRow,
    column: &str,
    what: &'static str,
) -> Result<Option<Date>, IssuerError> {
    opt_text(row, column)?
        .map(|value| parse_date(&value, what))
        .transpose()
}

pub(super) fn resident_ref(row: &AnyRow, column: &str) -> Result<ResidentRef, IssuerError> {
    ResidentRef::parse(&text(row, column)?).map_err(|_| IssuerError::Corrupt {
        what: "resident reference",
    })
}

pub(super) const RESIDENT_COLUMNS: &str = "id, municipality_code, household_id, family_name, given_name, \
    family_name_kana, given_name_kana, former_surname, former_surname_kana, birth_date, sex, \
    relationship, address, resident_since, address_since, previous_address, honseki, hittosha, \
    koseki_id, status, status_date, nationality, residence_status, period_of_stay_until, \
    residence_card_number";

pub(super) fn resident_from_row(row: &AnyRow) -> Result<Resident, IssuerError> {
    let foreign = match opt_text(row, "nationality")? {
        Some(nationality) => Some(ForeignResidentItems {
            nationality,
            residence_status: opt_text(row, "residence_status")?.unwrap_or_default(),
            period_of_stay_until: opt_date(row, "period_of_stay_until", "period of stay")?.ok_or(
                IssuerError::Corrupt {
                    what: "period of stay",
                },
            )?,
            residence_card_number: opt_text(row, "residence_card_number")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Resident {
        id: resident_ref(row, "id")?,
        municipality_code: text(row, "municipality_code")?,
        household_id: text(row, "household_id")?,
        family_name: text(row, "family_name")?,
        given_name: text(row, "given_name")?,
        family_name_kana: text(row, "family_name_kana")?,
        given_name_kana: text(row, "given_name_kana")?,
        former_surname: opt_text(row, "former_surname")?,
        former_surname_kana: opt_text(row, "former_surname_kana")?,
        birth_date: date(row, "birth_date", "birth date")?,
        sex: Sex::parse(int(row, "sex")?)?,
        relationship: text(row, "relationship")?,
        address: text(row, "address")?,
        resident_since: date(row, "resident_since", "resident since")?,
        address_since: date(row, "address_since", "address since")?,
        previous_address: opt_text(row, "previous_address")?,
        honseki: opt_text(row, "honseki")?,
        hittosha: opt_text(row, "hittosha")?,
        koseki_id: opt_text(row, "koseki_id")?,
        status: ResidentStatus::parse(&text(row, "status")?)?,
        status_date: opt_date(row, "status_date", "status date")?,
        foreign,
    })
}
