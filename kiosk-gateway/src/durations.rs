//! Durations in human form for the configuration's duration settings: `reconcile_interval =
//! "60s"` beside `reconcile_interval_secs = 60`, `preface_timeout = "5s"` beside
//! `preface_timeout_ms = 5000`, and their variables (`KIOSK_RECONCILE_INTERVAL=60s`). A
//! human key is turned into its integer key before the file is read into `Config`, so the
//! rest of the gateway sees only the integer settings; a file may not set both.
//!
//! The form is one or more `<integer><unit>` with the units `ms`, `s`, `m` and `h`, e.g.
//! `250ms`, `30s`, `5m`, `1h30m`.

use std::time::Duration;

/// Each human key with its integer key and how many milliseconds one unit of that is.
pub const DURATION_KEYS: [(&str, &str, u64); 11] = [
    ("handshake_timeout", "handshake_timeout_ms", 1),
    ("reconcile_interval", "reconcile_interval_secs", 1000),
    ("print_window", "print_window_secs", 1000),
    ("drain", "drain_ms", 1),
    ("grace", "grace_ms", 1),
    ("crl_refresh", "crl_refresh_secs", 1000),
    ("preface_timeout", "preface_timeout_ms", 1),
    ("anonymous_idle_timeout", "anonymous_idle_timeout_ms", 1),
    ("http2_keepalive_interval", "http2_keepalive_interval_ms", 1),
    ("http2_keepalive_timeout", "http2_keepalive_timeout_ms", 1),
    ("issue_stream_timeout", "issue_stream_timeout_ms", 1),
];

/// The human key of an integer duration key (`reconcile_interval_secs` →
/// `reconcile_interval`).
pub fn human_key(integer_key: &str) -> Option<&'static str> {
    DURATION_KEYS
        .iter()
        .find(|(_, integer, _)| *integer == integer_key)
        .map(|(human, _, _)| *human)
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `1m30s`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let why = || format!("{text:?} is not a duration like 250ms, 30s, 5m or 1h30m");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(why());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(why)?;
        if digits == 0 {
            return Err(why());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| why())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(why()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(millis_per)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(why)?;
    }
    Ok(Duration::from_millis(total))
}

/// `text` as a whole number of units of `unit_ms` milliseconds.
pub fn in_units(text: &str, unit_ms: u64) -> Result<u64, String> {
    let ms = u64::try_from(parse(text)?.as_millis()).map_err(|_| format!("{text:?}: too long"))?;
    if ms % unit_ms != 0 {
        return Err(format!("{text:?} is not a whole number of seconds"));
    }
    Ok(ms / unit_ms)
}

/// Rewrites the human keys of a configuration file's `table` into their integer keys.
pub fn normalize(table: &mut toml::Table) -> Result<(), String> {
    for (human, integer, unit_ms) in DURATION_KEYS {
        let Some(value) = table.remove(human) else {
            continue;
        };
        if table.contains_key(integer) {
            return Err(format!("{human} and {integer} are both set: set one"));
        }
        let text = value
            .as_str()
            .ok_or_else(|| format!("{human}: a string like \"30s\""))?;
        let units = in_units(text, unit_ms).map_err(|why| format!("{human}: {why}"))?;
        let units = i64::try_from(units).map_err(|_| format!("{human}: {text:?}: too long"))?;
        table.insert(integer.to_owned(), toml::Value::Integer(units));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_parse() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            (" 2s ", 2_000),
            ("0s", 0),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for bad in [
            "",
            "30",
            "s",
            "5 m",
            "1d",
            "-1s",
            "1.5s",
            "99999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(in_units("2m", 1000), Ok(120));
        assert!(in_units("1500ms", 1000).is_err());
    }

    #[test]
    fn human_keys_become_integer_keys() {
        let mut table: toml::Table =
            toml::from_str("reconcile_interval = \"2m\"\npreface_timeout = \"250ms\"\n").unwrap();
        normalize(&mut table).unwrap();
        assert_eq!(table["reconcile_interval_secs"].as_integer(), Some(120));
        assert_eq!(table["preface_timeout_ms"].as_integer(), Some(250));
        assert!(!table.contains_key("reconcile_interval"));
        let mut both: toml::Table = toml::from_str("drain = \"1s\"\ndrain_ms = 1000\n").unwrap();
        assert!(normalize(&mut both).unwrap_err().contains("both set"));
        let mut number: toml::Table = toml::from_str("drain = 5\n").unwrap();
        assert!(normalize(&mut number).is_err());
        let mut fraction: toml::Table = toml::from_str("crl_refresh = \"90ms\"\n").unwrap();
        assert!(
            normalize(&mut fraction)
                .unwrap_err()
                .contains("whole number")
        );
    }
}
