//! Reading one JSON Lines record's fields with errors that name the field and say why.
//!
//! Every getter removes the field it reads, so [`Fields::finish`] can refuse whatever is
//! left: a misspelt optional field must not be dropped silently, or a municipality's
//! converter would lose data without anyone noticing.

use kiosk_document::MunicipalityCode;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::calendar::unix_ms;

/// Why one field of one line was refused. The reason never quotes the value: values are
/// personal data and errors reach terminals and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    /// The field, as named in the file (`events[1].event_date` inside arrays).
    pub field: String,
    /// Why, in a stable wording the tests pin.
    pub reason: String,
}

impl Bad {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Bad {
        Bad {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The longest text field, in characters (a 住所 with 方書 fits easily).
const MAX_TEXT: usize = 400;

/// The fields of one record, consumed as they are read.
pub struct Fields {
    map: Map<String, Value>,
    prefix: String,
    kind: String,
}

impl Fields {
    /// The fields of `map`, a record of `kind`; `prefix` names nested objects in errors.
    pub fn new(map: Map<String, Value>, kind: &str, prefix: &str) -> Fields {
        Fields {
            map,
            prefix: prefix.to_owned(),
            kind: kind.to_owned(),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn bad(&self, field: &str, reason: &str) -> Bad {
        Bad::new(self.name(field), reason)
    }

    /// The raw value; JSON `null` counts as absent.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    /// A required text field: non-empty, without control characters, at most 400 characters.
    pub fn text(&mut self, field: &str) -> Result<String, Bad> {
        self.opt_text(field)?
            .ok_or_else(|| self.bad(field, "missing"))
    }

    /// An optional text field.
    pub fn opt_text(&mut self, field: &str) -> Result<Option<String>, Bad> {
        let Some(value) = self.take(field) else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Err(self.bad(field, "must be a string"));
        };
        if text.trim().is_empty() {
            return Err(self.bad(field, "must not be empty"));
        }
        if text.chars().any(char::is_control) {
            return Err(self.bad(field, "contains a control character"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(self.bad(field, "longer than 400 characters"));
        }
        Ok(Some(text))
    }

    /// A required identifier: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
    pub fn id(&mut self, field: &str) -> Result<String, Bad> {
        self.opt_id(field)?
            .ok_or_else(|| self.bad(field, "missing"))
    }

    /// An optional identifier.
    pub fn opt_id(&mut self, field: &str) -> Result<Option<String>, Bad> {
        let Some(text) = self.opt_text(field)? else {
            return Ok(None);
        };
        let ok = text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Some(text))
        } else {
            Err(self.bad(field, "must be 1 to 64 of A-Z a-z 0-9 . _ : -"))
        }
    }

    /// Text in full-width katakana (フリガナ): katakana, the long-vowel mark and spaces.
    pub fn kana(&mut self, field: &str) -> Result<String, Bad> {
        let text = self.text(field)?;
        check_kana(&text).map_err(|r| self.bad(field, r))?;
        Ok(text)
    }

    /// Optional katakana.
    pub fn opt_kana(&mut self, field: &str) -> Result<Option<String>, Bad> {
        let text = self.opt_text(field)?;
        if let Some(t) = &text {
            check_kana(t).map_err(|r| self.bad(field, r))?;
        }
        Ok(text)
    }

    /// A required calendar date, `YYYY-MM-DD`.
    pub fn date(&mut self, field: &str) -> Result<Date, Bad> {
        self.opt_date(field)?
            .ok_or_else(|| self.bad(field, "missing"))
    }

    /// An optional calendar date.
    pub fn opt_date(&mut self, field: &str) -> Result<Option<Date>, Bad> {
        let Some(text) = self.opt_text(field)? else {
            return Ok(None);
        };
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let shaped = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
        if !shaped {
            return Err(self.bad(field, "must be a date YYYY-MM-DD"));
        }
        match Date::parse(&text, format) {
            Ok(d) if (1868..=2200).contains(&d.year()) => Ok(Some(d)),
            Ok(_) => Err(self.bad(field, "year must be 1868 to 2200")),
            Err(_) => Err(self.bad(field, "is not a calendar date")),
        }
    }

    /// An optional instant (RFC 3339 with an offset), as unix milliseconds.
    pub fn opt_instant(&mut self, field: &str) -> Result<Option<i64>, Bad> {
        let Some(text) = self.opt_text(field)? else {
            return Ok(None);
        };
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(|t| Some(unix_ms(t)))
            .map_err(|_| self.bad(field, "must be an RFC 3339 time with offset"))
    }

    /// A required instant.
    pub fn instant(&mut self, field: &str) -> Result<i64, Bad> {
        self.opt_instant(field)?
            .ok_or_else(|| self.bad(field, "missing"))
    }

    /// A required integer in `min..=max`.
    pub fn int(&mut self, field: &str, min: i64, max: i64) -> Result<i64, Bad> {
        let value = self.take(field).ok_or_else(|| self.bad(field, "missing"))?;
        let Some(n) = value.as_i64() else {
            return Err(self.bad(field, "must be an integer"));
        };
        if n < min || n > max {
            return Err(self.bad(field, &format!("must be {min} to {max}")));
        }
        Ok(n)
    }

    /// A required boolean.
    pub fn bool(&mut self, field: &str) -> Result<bool, Bad> {
        match self.take(field) {
            None => Err(self.bad(field, "missing")),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(self.bad(field, "must be true or false")),
        }
    }

    /// 性別: 1 男, 2 女 (the register's codes).
    pub fn sex(&mut self, field: &str) -> Result<i64, Bad> {
        self.int(field, 1, 2)
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, field: &str, allowed: &[&str]) -> Result<String, Bad> {
        let text = self.text(field)?;
        if allowed.contains(&text.as_str()) {
            Ok(text)
        } else {
            Err(self.bad(field, &format!("must be one of {}", allowed.join(", "))))
        }
    }

    /// A 全国地方公共団体コード with a valid check digit.
    pub fn municipality(&mut self, field: &str) -> Result<String, Bad> {
        let text = self.text(field)?;
        MunicipalityCode::parse(&text)
            .map(|c| c.as_str().to_owned())
            .map_err(|_| {
                self.bad(
                    field,
                    "must be a 6-digit municipality code with its check digit",
                )
            })
    }

    /// An array of objects, each read by the caller with its own [`Fields`].
    pub fn objects(&mut self, field: &str) -> Result<Vec<Fields>, Bad> {
        let Some(value) = self.take(field) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.bad(field, "must be an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let name = format!("{}{field}[{i}]", self.prefix);
            let Value::Object(map) = item else {
                return Err(Bad::new(name, "must be an object"));
            };
            out.push(Fields::new(map, &self.kind, &format!("{name}.")));
        }
        Ok(out)
    }

    /// Refuses any field no getter read.
    pub fn finish(self) -> Result<(), Bad> {
        match self.map.keys().min() {
            None => Ok(()),
            Some(field) => Err(Bad::new(
                format!("{}{field}", self.prefix),
                format!("unknown field for kind {}", self.kind),
            )),
        }
    }
}

fn check_kana(text: &str) -> Result<(), &'static str> {
    let ok = text
        .chars()
        .all(|c| matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | '・' | '\u{3000}' | ' '));
    if ok {
        Ok(())
    } else {
        Err("must be full-width katakana")
    }
}

/// Checks a 個人番号: 12 digits whose last is the check digit of 番号法施行令 第8条.
pub fn check_individual_number(text: &str) -> Result<(), &'static str> {
    if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be 12 digits");
    }
    let digits: Vec<u32> = text.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits[..11]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, p)| {
            let n = i as u32 + 1;
            p * if n <= 6 { n + 1 } else { n - 5 }
        })
        .sum();
    let rem = sum % 11;
    let check = if rem <= 1 { 0 } else { 11 - rem };
    if digits[11] == check {
        Ok(())
    } else {
        Err("check digit does not match")
    }
}
