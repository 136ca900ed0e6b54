//! Timestamps as the reference data writes them, parsed without a date crate
//! (a smaller, faster component).
//!
//! Accepted forms: `2019-01-01 00:46:40` (NYC TLC, no offset), RFC 3339
//! (`2019-01-01T00:46:40.5Z`, `…+01:00`), and epoch milliseconds as a JSON
//! number or an all-digit string. A timestamp without an offset is read as
//! UTC for its instant and keeps its wall clock for hour and day-of-week, so
//! TLC's local New York times give local hours.

use serde::de::{self, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

const MS_PER_DAY: i64 = 86_400_000;

/// One instant plus the wall clock it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (UTC).
    pub epoch_ms: i64,
    /// The same instant on the writer's wall clock: `epoch_ms` plus the UTC
    /// offset the text carried (zero for epoch inputs and offset-less text).
    pub local_ms: i64,
}

impl Timestamp {
    /// An instant given in epoch milliseconds, on the UTC wall clock.
    pub fn from_epoch_ms(epoch_ms: i64) -> Self {
        Timestamp {
            epoch_ms,
            local_ms: epoch_ms,
        }
    }

    /// Hour of day (0–23) on the writer's wall clock.
    pub fn hour(&self) -> u32 {
        (self.local_ms.rem_euclid(MS_PER_DAY) / 3_600_000) as u32
    }

    /// ISO day of week on the writer's wall clock: 1 = Monday … 7 = Sunday.
    pub fn iso_weekday(&self) -> u32 {
        let days = self.local_ms.div_euclid(MS_PER_DAY);
        // 1970-01-01 was a Thursday (ISO 4).
        ((days + 3).rem_euclid(7) + 1) as u32
    }

    /// English name of [`Timestamp::iso_weekday`].
    pub fn weekday_name(&self) -> &'static str {
        const NAMES: [&str; 7] = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        NAMES[(self.iso_weekday() - 1) as usize]
    }
}

/// Parses a textual timestamp; see the module documentation for the forms.
pub fn parse(text: &str) -> Result<Timestamp, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map(Timestamp::from_epoch_ms)
            .map_err(|_| unparseable(text));
    }
    parse_datetime(t.as_bytes()).ok_or_else(|| unparseable(text))
}

fn unparseable(text: &str) -> String {
    format!(
        "unparseable timestamp {text:?}: expected `YYYY-MM-DD HH:MM:SS`, RFC 3339 or epoch milliseconds"
    )
}

fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let part = b.get(at..at + len)?;
    part.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn parse_datetime(b: &[u8]) -> Option<Timestamp> {
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let frac = &b[start..at];
        if frac.is_empty() {
            return None;
        }
        // Keep milliseconds; finer digits are truncated.
        millis = frac
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0'));
    }
    let offset_ms = match b.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, at + 1, 2)?;
            let (om, end) = match b.get(at + 3) {
                Some(b':') => (digits(b, at + 4, 2)?, at + 6),
                _ => (digits(b, at + 3, 2)?, at + 5),
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let ms = (oh * 60 + om) * 60_000;
            if sign == b'-' { -ms } else { ms }
        }
        _ => return None,
    };
    let local_ms = days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute) * 60 + second) * 1000
        + millis;
    Some(Timestamp {
        epoch_ms: local_ms - offset_ms,
        local_ms,
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Formats an instant as RFC 3339 in UTC: `2019-01-01T00:46:40Z`, with
/// milliseconds only when they are not zero.
pub fn format_rfc3339(epoch_ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, epoch_ms);
    out
}

/// Appends [`format_rfc3339`]'s text to `out` without allocating.
pub fn write_rfc3339(out: &mut String, epoch_ms: i64) {
    let mut buf = Vec::with_capacity(24);
    push_rfc3339(&mut buf, epoch_ms);
    out.push_str(std::str::from_utf8(&buf).expect("RFC 3339 text is ASCII"));
}

/// Appends [`format_rfc3339`]'s text to a byte buffer. Digits are written
/// by hand: `core::fmt` is a measurable cost per record inside WebAssembly.
pub fn push_rfc3339(out: &mut Vec<u8>, epoch_ms: i64) {
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let in_day = epoch_ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    let digits = |out: &mut Vec<u8>, value: i64, width: u32| {
        for p in (0..width).rev() {
            out.push(b'0' + (value / 10i64.pow(p) % 10) as u8);
        }
    };
    if (0..=9999).contains(&y) {
        digits(out, y, 4);
    } else {
        out.extend_from_slice(format!("{y:04}").as_bytes());
    }
    out.push(b'-');
    digits(out, m, 2);
    out.push(b'-');
    digits(out, d, 2);
    out.push(b'T');
    digits(out, secs / 3600, 2);
    out.push(b':');
    digits(out, secs / 60 % 60, 2);
    out.push(b':');
    digits(out, secs % 60, 2);
    if millis != 0 {
        out.push(b'.');
        digits(out, millis, 3);
    }
    out.push(b'Z');
}

/// A timestamp field as it appears in JSON, before interpretation: text or a
/// number of epoch milliseconds. Deserialising borrows when it can.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTime<'a> {
    /// A string: TLC, RFC 3339 or all-digit epoch milliseconds.
    Text(Cow<'a, str>),
    /// A JSON number: epoch milliseconds.
    Millis(f64),
}

impl RawTime<'_> {
    /// Interprets the field; the error quotes the value and the accepted forms.
    pub fn parse(&self) -> Result<Timestamp, String> {
        match self {
            RawTime::Text(text) => parse(text),
            RawTime::Millis(ms) if ms.is_finite() && ms.abs() < 1e17 => {
                Ok(Timestamp::from_epoch_ms(*ms as i64))
            }
            RawTime::Millis(ms) => Err(format!("timestamp {ms} is out of range")),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawTime<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawTime<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a timestamp string or epoch milliseconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlc_text_keeps_its_wall_clock() {
        let t = parse("2019-01-01 00:46:40").unwrap();
        assert_eq!(t.epoch_ms, 1_546_303_600_000);
        assert_eq!(t.hour(), 0);
        assert_eq!(t.weekday_name(), "Tuesday");
    }

    #[test]
    fn rfc3339_offsets_shift_the_instant_not_the_wall_clock() {
        let t = parse("2019-01-01T01:46:40.250+01:00").unwrap();
        assert_eq!(t.epoch_ms, 1_546_303_600_250);
        assert_eq!(t.hour(), 1);
        assert_eq!(
            parse("2019-01-01T00:46:40Z").unwrap().epoch_ms,
            1_546_303_600_000
        );
        assert_eq!(
            parse("2018-12-31T19:46:40-0500").unwrap().epoch_ms,
            1_546_303_600_000
        );
    }

    #[test]
    fn epoch_millis_as_text_or_number() {
        assert_eq!(parse("1546303600000").unwrap().epoch_ms, 1_546_303_600_000);
        assert_eq!(
            RawTime::Millis(1.5e12).parse().unwrap().epoch_ms,
            1_500_000_000_000
        );
    }

    #[test]
    fn refuses_impossible_dates_and_garbage() {
        for bad in [
            "2019-02-29 00:00:00",
            "2019-13-01 00:00:00",
            "2019-01-01 24:00:00",
            "yesterday",
            "",
            "2019-01-01T00:00:00+01",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse("2020-02-29 23:59:59").is_ok());
    }

    #[test]
    fn civil_round_trip_and_formatting() {
        for days in [-800_000, -1, 0, 1, 17_897, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_rfc3339(1_546_303_600_000), "2019-01-01T00:46:40Z");
        assert_eq!(
            format_rfc3339(1_546_303_600_007),
            "2019-01-01T00:46:40.007Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
