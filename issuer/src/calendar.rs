//! Japan time, calendar dates and ages. Every rule that depends on "today" reads the date in
//! Japan Standard Time (UTC+9, no daylight saving), whatever the server's zone.

use time::{Date, Month, OffsetDateTime, UtcOffset, macros::format_description};

use crate::error::IssuerError;

/// Japan Standard Time.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// `at` seen in Japan time.
pub fn in_jst(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(JST)
}

/// An instant from unix milliseconds.
pub fn from_unix_ms(ms: i64) -> Result<OffsetDateTime, IssuerError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| IssuerError::InvalidField { field: "issued_at" })
}

/// Unix milliseconds of an instant.
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    // Clamped: instants this far out never occur in a register, and clamping beats a panic.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Parses an ISO `YYYY-MM-DD` date from the register.
pub fn parse_date(text: &str, what: &'static str) -> Result<Date, IssuerError> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| IssuerError::Corrupt { what })
}

/// Formats a date as ISO `YYYY-MM-DD` for the register.
pub fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Age in completed years on `on` for someone born on `birth` (0 before the first birthday).
pub fn age_on(birth: Date, on: Date) -> u32 {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// The newest fiscal year (年度) whose 所得・課税証明書 exists on `on`: tax for 年度 N is
/// assessed on income of year N-1 and fixed in June of year N, so before June the newest is
/// N-1.
pub fn newest_tax_fiscal_year(on: Date) -> u32 {
    let year = u32::try_from(on.year()).unwrap_or(0);
    if on.month() >= Month::June {
        year
    } else {
        year.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn age_counts_completed_years() {
        assert_eq!(age_on(date!(2011 - 11 - 25), date!(2026 - 11 - 24)), 14);
        assert_eq!(age_on(date!(2011 - 11 - 24), date!(2026 - 11 - 24)), 15);
        assert_eq!(age_on(date!(2030 - 01 - 01), date!(2026 - 11 - 24)), 0);
    }

    #[test]
    fn tax_year_switches_in_june() {
        assert_eq!(newest_tax_fiscal_year(date!(2026 - 05 - 31)), 2025);
        assert_eq!(newest_tax_fiscal_year(date!(2026 - 06 - 01)), 2026);
    }

    #[test]
    fn japan_date_crosses_midnight_utc() {
        let at = datetime!(2026-12-28 15:30 UTC);
        assert_eq!(in_jst(at).date(), date!(2026 - 12 - 29));
    }

    #[test]
    fn iso_round_trip() {
        let d = date!(1987 - 03 - 09);
        assert_eq!(parse_date(&format_date(d), "x").unwrap(), d);
        assert!(parse_date("1987-13-01", "x").is_err());
    }
}
