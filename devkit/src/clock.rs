//! The rehearsal clock's start, a TEST AND DEMO FIXTURE: the first instant within weekday
//! office hours in JST.
//!
//! Store issuance follows service hours (戸籍 on weekdays 9:00–17:00 JST), so the demo's
//! gateway clock and the tests' clocks start at [`office_hours_at`] the real time: whenever
//! they run, every certificate type is within its window. The clock itself stays with the
//! gateway's `Clock` trait (`kiosk_gateway::clock::OffsetClock`, which a deployment's
//! `rehearsal_clock_start` also configures); only the choice of where a test or the demo
//! starts it is here.

/// The first instant at or after `now_ms` (Unix milliseconds) that is within weekday office
/// hours in JST: `now_ms` itself if it is a weekday between 9:00 and 16:00 JST outside
/// 12/29–1/3, otherwise the next such weekday at 10:00 JST.
pub fn office_hours_at(now_ms: i64) -> i64 {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let jst = now_ms + 9 * HOUR;
    let day_start = jst.div_euclid(DAY) * DAY;
    let in_hours = |day: i64, ms_of_day: i64| {
        let date = time::OffsetDateTime::from_unix_timestamp(day / 1000)
            .map(|t| t.date())
            .ok();
        let Some(date) = date else { return false };
        let weekday = date.weekday().number_days_from_monday() < 5;
        let holiday = matches!((date.month() as u8, date.day()), (12, 29..=31) | (1, 1..=3));
        weekday && !holiday && (9 * HOUR..16 * HOUR).contains(&ms_of_day)
    };
    if in_hours(day_start, jst - day_start) {
        return now_ms;
    }
    // The first 10:00 JST, today or later, on a day with office hours (two weeks always
    // contain one: the longest closure is 12/29 to 1/3 plus a weekend).
    (0..14)
        .map(|n| day_start + n * DAY)
        .find(|&day| day + 10 * HOUR >= jst && in_hours(day, 10 * HOUR))
        .map(|day| day + 10 * HOUR - 9 * HOUR)
        .unwrap_or(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_hours_start_on_the_next_weekday_morning() {
        // 2026-11-26 (Thu) 00:00 JST → 10:00 JST the same day.
        assert_eq!(office_hours_at(1_795_532_400_000), 1_795_568_400_000);
        // Within hours: unchanged.
        assert_eq!(office_hours_at(1_795_485_600_000), 1_795_485_600_000);
        // Saturday 2026-11-28 night → Monday 10:00 JST.
        assert_eq!(office_hours_at(1_795_834_800_000), 1_796_000_400_000);
        // 2026-12-29 → 2027-01-04 (Mon) 10:00 JST.
        assert_eq!(office_hours_at(1_798_592_400_000), 1_799_024_400_000);
    }
}
