//! Gregorian ↔ Japanese era (元号) dates, as printed on certificates: 「令和8年11月24日」.
//!
//! Eras covered, with their first Gregorian day (the day the new era took effect):
//! 明治 1868-01-25 (the era was proclaimed on 1868-10-23 and applied retroactively from the
//! lunar new year, which fell on 1868-01-25), 大正 1912-07-30, 昭和 1926-12-25, 平成 1989-01-08,
//! 令和 2019-05-01. The first year of an era prints as 「元年」. Dates before 明治 are an error:
//! the register holds nobody born before 1868.

/// An era (元号).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Era {
    /// 明治.
    Meiji,
    /// 大正.
    Taisho,
    /// 昭和.
    Showa,
    /// 平成.
    Heisei,
    /// 令和.
    Reiwa,
}

impl Era {
    /// The era name in kanji.
    pub fn name(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// First day of the era (Gregorian y, m, d).
    pub fn start(self) -> (i32, u8, u8) {
        match self {
            Era::Meiji => (1868, 1, 25),
            Era::Taisho => (1912, 7, 30),
            Era::Showa => (1926, 12, 25),
            Era::Heisei => (1989, 1, 8),
            Era::Reiwa => (2019, 5, 1),
        }
    }
}

/// Errors of date conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EraError {
    /// Not a valid Gregorian date.
    #[error("invalid calendar date")]
    InvalidDate,
    /// Before 明治 (1868-01-25).
    #[error("date before the Meiji era")]
    BeforeMeiji,
}

/// A civil date and time (proleptic Gregorian), as produced from a UNIX time plus an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDateTime {
    /// Year.
    pub year: i32,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=59.
    pub second: u8,
}

impl CivilDateTime {
    /// Converts seconds since 1970-01-01T00:00 (in whatever zone the caller already shifted
    /// to) into a civil date and time. Uses Howard Hinnant's days-to-civil algorithm.
    pub fn from_unix_seconds(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        CivilDateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = if m <= 2 { y + 1 } else { y };
    (y as i32, m, d)
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A date in the Japanese era calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JapaneseDate {
    /// The era.
    pub era: Era,
    /// Year of the era, 1 = 元年.
    pub year: u32,
    /// Month 1..=12 (same as Gregorian since 1873).
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
}

impl JapaneseDate {
    /// Converts a Gregorian date.
    pub fn from_gregorian(year: i32, month: u8, day: u8) -> Result<Self, EraError> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(EraError::InvalidDate);
        }
        let era = [Era::Reiwa, Era::Heisei, Era::Showa, Era::Taisho, Era::Meiji]
            .into_iter()
            .find(|e| (year, month, day) >= e.start())
            .ok_or(EraError::BeforeMeiji)?;
        let era_year = (year - era.start().0 + 1) as u32;
        Ok(JapaneseDate {
            era,
            year: era_year,
            month,
            day,
        })
    }

    /// The date part of a civil date-time.
    pub fn from_civil(dt: &CivilDateTime) -> Result<Self, EraError> {
        Self::from_gregorian(dt.year, dt.month, dt.day)
    }

    /// The Gregorian year.
    pub fn gregorian_year(&self) -> i32 {
        self.era.start().0 + self.year as i32 - 1
    }

    /// Formats with half-width digits: 「令和8年11月24日」, 「令和元年5月1日」.
    pub fn format(&self) -> String {
        let y = if self.year == 1 {
            "元".to_owned()
        } else {
            self.year.to_string()
        };
        format!("{}{}年{}月{}日", self.era.name(), y, self.month, self.day)
    }

    /// Formats with full-width digits, as 戸籍 certificates print: 「令和８年１１月２４日」.
    pub fn format_fullwidth(&self) -> String {
        to_fullwidth_digits(&self.format())
    }
}

/// Replaces ASCII digits with full-width digits (０-９).
pub fn to_fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(y: i32, m: u8, d: u8) -> String {
        JapaneseDate::from_gregorian(y, m, d).unwrap().format()
    }

    #[test]
    fn reiwa_boundary() {
        assert_eq!(f(2019, 4, 30), "平成31年4月30日");
        assert_eq!(f(2019, 5, 1), "令和元年5月1日");
        assert_eq!(f(2020, 1, 1), "令和2年1月1日");
        assert_eq!(f(2026, 11, 24), "令和8年11月24日");
    }

    #[test]
    fn older_boundaries() {
        assert_eq!(f(1989, 1, 7), "昭和64年1月7日");
        assert_eq!(f(1989, 1, 8), "平成元年1月8日");
        assert_eq!(f(1926, 12, 24), "大正15年12月24日");
        assert_eq!(f(1926, 12, 25), "昭和元年12月25日");
        assert_eq!(f(1912, 7, 29), "明治45年7月29日");
        assert_eq!(f(1912, 7, 30), "大正元年7月30日");
        assert_eq!(f(1900, 1, 1), "明治33年1月1日");
        assert_eq!(
            JapaneseDate::from_gregorian(1868, 1, 24),
            Err(EraError::BeforeMeiji)
        );
    }

    #[test]
    fn invalid_dates() {
        assert_eq!(
            JapaneseDate::from_gregorian(2023, 2, 29),
            Err(EraError::InvalidDate)
        );
        assert!(JapaneseDate::from_gregorian(2024, 2, 29).is_ok());
        assert!(JapaneseDate::from_gregorian(2000, 2, 29).is_ok());
        assert!(JapaneseDate::from_gregorian(1900, 2, 29).is_err());
        assert!(JapaneseDate::from_gregorian(2024, 13, 1).is_err());
        assert!(JapaneseDate::from_gregorian(2024, 4, 31).is_err());
    }

    #[test]
    fn fullwidth() {
        assert_eq!(
            JapaneseDate::from_gregorian(2026, 11, 24)
                .unwrap()
                .format_fullwidth(),
            "令和８年１１月２４日"
        );
    }

    #[test]
    fn civil_from_unix() {
        let dt = CivilDateTime::from_unix_seconds(0);
        assert_eq!((dt.year, dt.month, dt.day, dt.hour), (1970, 1, 1, 0));
        // 2019-04-30T15:00:00Z = 2019-05-01T00:00 JST: the first second of 令和 in Japan.
        let jst = CivilDateTime::from_unix_seconds(1_556_636_400 + 9 * 3600);
        assert_eq!((jst.year, jst.month, jst.day, jst.hour), (2019, 5, 1, 0));
        assert_eq!(
            JapaneseDate::from_civil(&jst).unwrap().format(),
            "令和元年5月1日"
        );
        let before = CivilDateTime::from_unix_seconds(1_556_636_399 + 9 * 3600);
        assert_eq!(
            JapaneseDate::from_civil(&before).unwrap().format(),
            "平成31年4月30日"
        );
        let neg = CivilDateTime::from_unix_seconds(-1);
        assert_eq!(
            (
                neg.year, neg.month, neg.day, neg.hour, neg.minute, neg.second
            ),
            (1969, 12, 31, 23, 59, 59)
        );
        let leap = CivilDateTime::from_unix_seconds(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }
}
