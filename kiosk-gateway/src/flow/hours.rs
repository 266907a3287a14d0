//! The national service hours of store issuance, which the start screen shows before any card
//! is read: every day 6:30–23:00 JST, closed 12/29–1/3 (common.proto, `ServiceState`).
//!
//! A municipality's own windows per certificate type (e.g. 戸籍 on weekdays 9:00–17:00) are
//! its issuer's and show on the menu (`OUT_OF_SERVICE_HOURS` per entry): they lie within
//! these hours, so a terminal never authenticates a card when nothing could be issued.

use time::{OffsetDateTime, UtcOffset};

/// Opening, minutes after midnight JST.
pub const OPENS_AT_MINUTE: u32 = 6 * 60 + 30;
/// Closing, minutes after midnight JST (exclusive).
pub const CLOSES_AT_MINUTE: u32 = 23 * 60;

/// Whether `now_ms` (Unix milliseconds) lies outside the national service hours.
pub fn outside_service_hours(now_ms: i64) -> bool {
    let jst = UtcOffset::from_hms(9, 0, 0).unwrap_or(UtcOffset::UTC);
    let Ok(at) = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)) else {
        // Instants past the calendar never occur on a deployment's clock: closed is safe.
        return true;
    };
    let at = at.to_offset(jst);
    let (month, day) = (u8::from(at.month()), at.day());
    if (month == 12 && day >= 29) || (month == 1 && day <= 3) {
        return true;
    }
    let minute = u32::from(at.hour()) * 60 + u32::from(at.minute());
    !(OPENS_AT_MINUTE..CLOSES_AT_MINUTE).contains(&minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ms(at: OffsetDateTime) -> i64 {
        (at.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn open_from_half_past_six_to_eleven_jst_outside_the_year_end() {
        assert!(outside_service_hours(ms(datetime!(2026-11-26 03:00 +9))));
        assert!(outside_service_hours(ms(datetime!(2026-11-26 06:29 +9))));
        assert!(!outside_service_hours(ms(datetime!(2026-11-26 06:30 +9))));
        assert!(!outside_service_hours(ms(datetime!(2026-11-28 22:59 +9))));
        assert!(outside_service_hours(ms(datetime!(2026-11-26 23:00 +9))));
        assert!(outside_service_hours(ms(datetime!(2026-11-26 23:30 +9))));
        assert!(outside_service_hours(ms(datetime!(2026-12-30 10:00 +9))));
        assert!(outside_service_hours(ms(datetime!(2027-01-03 10:00 +9))));
        assert!(!outside_service_hours(ms(datetime!(2027-01-04 10:00 +9))));
        // JST, whatever the server's zone: 2026-12-28 15:30 UTC is 12/29 in Japan.
        assert!(outside_service_hours(ms(datetime!(2026-12-28 15:30 UTC))));
    }
}
