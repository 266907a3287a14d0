//! The municipality file: JSON, one object, unknown fields refused (a misspelt field must not
//! be silently ignored in a fee ordinance). See docs/municipality.example.json.

use std::collections::BTreeSet;

use kiosk_document::{CertificateType, MunicipalityCode};
use serde::Deserialize;
use time::Date;

use crate::calendar::parse_date;
use crate::error::IssuerError;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MunicipalityFile {
    code: String,
    name: String,
    prefecture: String,
    mayor_title: String,
    mayor_name: String,
    minimum_age: u32,
    tax_years_offered: u32,
    fees: Vec<FeeEntry>,
    hours: Vec<HoursEntry>,
    #[serde(default)]
    closures: Vec<ClosureEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeeEntry {
    certificate_type: String,
    effective_from: String,
    fee_yen: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursEntry {
    certificate_type: String,
    offered: bool,
    weekdays_only: bool,
    opens: String,
    closes: String,
    max_copies: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureEntry {
    date: String,
    weekday_types_only: bool,
    note: String,
}

/// The municipality row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub prefecture: String,
    pub mayor_title: String,
    pub mayor_name: String,
    pub minimum_age: u32,
    pub tax_years_offered: u32,
}

/// A fee taking effect on a date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fee {
    pub ty: CertificateType,
    pub from: Date,
    pub yen: u32,
}

/// One type's service window (minutes after midnight, Japan time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hours {
    pub ty: CertificateType,
    pub offered: bool,
    pub weekdays_only: bool,
    pub opens: u32,
    pub closes: u32,
    pub max_copies: u32,
}

/// A closed day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub date: Date,
    pub weekday_types_only: bool,
    pub note: String,
}

/// A file that passed every check that needs no database.
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) code: MunicipalityCode,
    pub(crate) profile: Profile,
    pub(crate) fees: Vec<Fee>,
    pub(crate) hours: Vec<Hours>,
    pub(crate) closures: Vec<Closure>,
}

impl Plan {
    /// The municipality the file describes.
    pub fn code(&self) -> &MunicipalityCode {
        &self.code
    }

    /// Reads and checks a file, naming every conflict at once.
    pub fn read(path: &std::path::Path) -> Result<Plan, IssuerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| IssuerError::Operator(vec![format!("--file {}: {e}", path.display())]))?;
        Plan::parse(&text)
    }

    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Plan, IssuerError> {
        let file: MunicipalityFile = serde_json::from_str(text)
            .map_err(|e| IssuerError::Operator(vec![format!("--file: {e}")]))?;
        let mut conflicts = Vec::new();
        let code = MunicipalityCode::parse(&file.code);
        if code.is_err() {
            conflicts.push(format!(
                "code {:?}: 6 digits with a valid check digit",
                file.code
            ));
        }
        let fees = fees(&file.fees, &mut conflicts);
        let hours = hours(&file.hours, &mut conflicts);
        let closures = closures(&file.closures, &mut conflicts);
        if file.name.trim().is_empty() {
            conflicts.push("name: empty".to_owned());
        }
        match code {
            Ok(code) if conflicts.is_empty() => Ok(Plan {
                code,
                profile: Profile {
                    name: file.name,
                    prefecture: file.prefecture,
                    mayor_title: file.mayor_title,
                    mayor_name: file.mayor_name,
                    minimum_age: file.minimum_age,
                    tax_years_offered: file.tax_years_offered,
                },
                fees,
                hours,
                closures,
            }),
            _ => Err(IssuerError::Operator(conflicts)),
        }
    }
}

/// A certificate type by its stable code, or a named conflict.
fn certificate_type(code: &str, at: &str, conflicts: &mut Vec<String>) -> Option<CertificateType> {
    let ty = CertificateType::from_code(code);
    if ty.is_none() {
        conflicts.push(format!("{at}: unknown certificate type {code:?}"));
    }
    ty
}

fn date(text: &str, at: &str, conflicts: &mut Vec<String>) -> Option<Date> {
    let date = parse_date(text, "date").ok();
    if date.is_none() {
        conflicts.push(format!("{at}: date {text:?} is not YYYY-MM-DD"));
    }
    date
}

fn fees(entries: &[FeeEntry], conflicts: &mut Vec<String>) -> Vec<Fee> {
    let mut seen = BTreeSet::new();
    let mut fees = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("fees[{i}]");
        let ty = certificate_type(&entry.certificate_type, &at, conflicts);
        let from = date(&entry.effective_from, &at, conflicts);
        let (Some(ty), Some(from)) = (ty, from) else {
            continue;
        };
        if !seen.insert((ty.code(), from)) {
            conflicts.push(format!(
                "{at}: {} from {} is given twice",
                ty.code(),
                entry.effective_from
            ));
            continue;
        }
        fees.push(Fee {
            ty,
            from,
            yen: entry.fee_yen,
        });
    }
    fees
}

/// `HH:MM` as minutes after midnight; `24:00` is allowed as a closing time.
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let total = h * 60 + m;
    (m < 60 && total <= 24 * 60).then_some(total)
}

fn hours(entries: &[HoursEntry], conflicts: &mut Vec<String>) -> Vec<Hours> {
    let mut seen = BTreeSet::new();
    let mut hours = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("hours[{i}]");
        let Some(ty) = certificate_type(&entry.certificate_type, &at, conflicts) else {
            continue;
        };
        if !seen.insert(ty.code()) {
            conflicts.push(format!("{at}: {} is given twice", ty.code()));
            continue;
        }
        let (Some(opens), Some(closes)) = (minutes(&entry.opens), minutes(&entry.closes)) else {
            conflicts.push(format!("{at}: {}: opens and closes are HH:MM", ty.code()));
            continue;
        };
        if closes <= opens {
            conflicts.push(format!(
                "{at}: {}: closes at {} before it opens at {}",
                ty.code(),
                entry.closes,
                entry.opens
            ));
            continue;
        }
        if entry.max_copies == 0 {
            conflicts.push(format!(
                "{at}: {}: max_copies must be at least 1",
                ty.code()
            ));
        }
        hours.push(Hours {
            ty,
            offered: entry.offered,
            weekdays_only: entry.weekdays_only,
            opens,
            closes,
            max_copies: entry.max_copies,
        });
    }
    hours
}

fn closures(entries: &[ClosureEntry], conflicts: &mut Vec<String>) -> Vec<Closure> {
    let mut seen = BTreeSet::new();
    let mut closures = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("closures[{i}]");
        let Some(day) = date(&entry.date, &at, conflicts) else {
            continue;
        };
        if !seen.insert(day) {
            conflicts.push(format!("{at}: {} is given twice", entry.date));
            continue;
        }
        closures.push(Closure {
            date: day,
            weekday_types_only: entry.weekday_types_only,
            note: entry.note.clone(),
        });
    }
    closures
}

/// Minutes after midnight as `HH:MM`.
pub fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::minutes;

    #[test]
    fn times() {
        assert_eq!(minutes("06:30"), Some(390));
        assert_eq!(minutes("24:00"), Some(1440));
        assert_eq!(minutes("24:01"), None);
        assert_eq!(minutes("6:30"), None);
        assert_eq!(minutes("06:60"), None);
    }
}
