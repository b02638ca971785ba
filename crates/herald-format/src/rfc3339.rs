//! RFC 3339 timestamps for the CloudEvents `time` attribute, without a date library.
//!
//! Formatting always writes UTC (`Z`) with as many fraction digits as the time needs (none
//! for whole seconds, up to nine). Parsing accepts any offset and fraction length.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `time` as an RFC 3339 UTC timestamp, e.g. `2024-05-01T12:30:00.25Z`.
pub fn format(time: SystemTime) -> String {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut secs = -(d.as_secs() as i64);
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 timestamp (`date-time` of section 5.6), returning what is wrong.
pub fn parse(s: &str) -> Result<SystemTime, String> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Result<i64, String> {
        let part = b
            .get(from..from + len)
            .ok_or_else(|| format!("too short at byte {from}"))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(format!("expected {len} digits at byte {from}"));
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, allowed: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(format!(
                "expected one of {:?} at byte {at}",
                allowed_str(allowed)
            )),
        }
    };
    let year = digits(0, 4)?;
    expect(4, b"-")?;
    let month = digits(5, 2)?;
    expect(7, b"-")?;
    let day = digits(8, 2)?;
    expect(10, b"Tt ")?;
    let hour = digits(11, 2)?;
    expect(13, b":")?;
    let minute = digits(14, 2)?;
    expect(16, b":")?;
    let second = digits(17, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("no such time {hour:02}:{minute:02}:{second:02}"));
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + u32::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(format!("expected fraction digits at byte {start}"));
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let sign = if *sign == b'+' { 1 } else { -1 };
            let oh = digits(at + 1, 2)?;
            expect(at + 3, b":")?;
            let om = digits(at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err(format!("offset out of range at byte {at}"));
            }
            at += 6;
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(format!("expected 'Z' or an offset at byte {at}")),
    };
    if at != b.len() {
        return Err(format!("unexpected characters from byte {at}"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let time = if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    };
    Ok(time)
}

fn allowed_str(allowed: &[u8]) -> Vec<char> {
    allowed.iter().map(|c| char::from(*c)).collect()
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56Z, a leap day: 1709210096 seconds after the epoch.
        assert_eq!(format(at(1_709_210_096, 0)), "2024-02-29T12:34:56Z");
        assert_eq!(
            format(at(1_709_210_096, 250_000_000)),
            "2024-02-29T12:34:56.25Z"
        );
        assert_eq!(format(at(0, 1)), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            format(UNIX_EPOCH - Duration::from_millis(1500)),
            "1969-12-31T23:59:58.5Z"
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(parse("2024-02-29T12:34:56Z").unwrap(), at(1_709_210_096, 0));
        assert_eq!(
            parse("2024-02-29T14:34:56.125+02:00").unwrap(),
            at(1_709_210_096, 125_000_000)
        );
        assert_eq!(
            parse("2024-02-29t07:04:56.1234567891-05:30").unwrap(),
            at(1_709_210_096, 123_456_789)
        );
        assert_eq!(
            parse("1969-12-31T23:59:58.5Z").unwrap(),
            UNIX_EPOCH - Duration::from_millis(1500)
        );
    }

    #[test]
    fn round_trips() {
        for (s, n) in [
            (0, 0),
            (1, 5),
            (1_700_000_000, 999_999_999),
            (4_102_444_800, 1),
        ] {
            let t = at(s, n);
            assert_eq!(parse(&format(t)).unwrap(), t);
        }
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "2024/01/01T00:00:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }
}
