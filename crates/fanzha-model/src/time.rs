//! Timestamps as the contracts write them: RFC 3339; without an offset, China Standard Time
//! (UTC+8). Pure: parsing only, the clock is the caller's.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};

/// China Standard Time, the regulation's and the files' default zone.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Parses `2026-11-29T10:00:00+08:00`, `2026-11-29T10:00:00Z`, or without offset
/// (`2026-11-29T10:00:00`, `2026-11-29 10:00:00`, `2026-11-29`) as China time.
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return cst()
                .from_local_datetime(&n)
                .single()
                .ok_or_else(|| format!("ambiguous time {s:?}"));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let n = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(cst()
            .from_local_datetime(&n)
            .single()
            .expect("fixed offset"));
    }
    Err(format!("{s:?} is not an RFC 3339 time"))
}

/// Unix seconds as RFC 3339 in China time (`2026-11-30T10:00:00+08:00`); `None` when out
/// of chrono's range.
pub fn format_china(unix: i64) -> Option<String> {
    DateTime::from_timestamp(unix, 0).map(|t| {
        t.with_timezone(&cst())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    })
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn two(b: &[u8], i: usize) -> Option<i64> {
    let (a, c) = (
        b.get(i)?.wrapping_sub(b'0'),
        b.get(i + 1)?.wrapping_sub(b'0'),
    );
    // Lazily: for bytes that are not digits `a * 10` would overflow.
    (a < 10 && c < 10).then(|| i64::from(a) * 10 + i64::from(c))
}

/// The fixed layouts of call records, without chrono: `YYYY-MM-DD[T ]HH:MM:SS` then nothing
/// (China time), `Z`, or `±HH:MM`. `None` for anything else (the caller falls back).
fn parse_unix_fixed(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = two(b, 0)? * 100 + two(b, 2)?;
    let (month, day) = (two(b, 5)?, two(b, 8)?);
    let (h, mi, sec) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let offset = match &b[19..] {
        [] => 8 * 3600,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (two(b, 20)?, two(b, 23)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// [`parse_time`] as unix seconds, with an allocation-free fast path for the layouts call
/// records use (the monitor parses millions per second).
pub fn parse_unix(s: &str) -> Result<i64, String> {
    let s = s.trim();
    match parse_unix_fixed(s) {
        Some(t) => Ok(t),
        None => parse_time(s).map(|t| t.timestamp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in [
            "2026-11-29T10:00:00+08:00",
            "2026-11-29 10:00:00",
            "2026-11-29T02:00:00Z",
            "2024-02-29T23:59:59-05:30",
            "1999-12-31 00:00:00",
            "2000-03-01T00:00:00+00:00",
        ] {
            assert_eq!(
                parse_unix_fixed(s),
                Some(parse_time(s).unwrap().timestamp()),
                "{s}"
            );
        }
        for s in [
            "2026-02-30 10:00:00",
            "2026-13-01 00:00:00",
            "2026-11-29T24:00:00",
        ] {
            assert_eq!(parse_unix_fixed(s), None, "{s}");
            assert!(parse_unix(s).is_err(), "{s}");
        }
        assert_eq!(
            parse_unix("2026-11-29T10:00:00.5+08:00").unwrap(),
            parse_unix("2026-11-29T10:00:00+08:00").unwrap()
        );
    }

    proptest::proptest! {
        #[test]
        fn fast_path_matches_chrono_everywhere(t in 0i64..4_102_444_800, off in -12i64..14, z in 0u8..3) {
            let offset = chrono::FixedOffset::east_opt((off * 3600) as i32).unwrap();
            let dt = chrono::DateTime::from_timestamp(t, 0).unwrap().with_timezone(&offset);
            let s = match z {
                0 => dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                1 => dt.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                _ => dt.with_timezone(&cst()).format("%Y-%m-%d %H:%M:%S").to_string(),
            };
            proptest::prop_assert_eq!(parse_unix_fixed(&s), Some(t));
        }
    }

    #[test]
    fn non_digits_where_digits_belong_are_refused_without_overflow() {
        // Found by the cdr fuzz target with overflow checks on: a byte far from '0'.
        assert_eq!(two(b"\xff0", 0), None);
        assert!(parse_unix_fixed("\u{ff}\u{ff}26-11-30T10:00:00").is_none());
        assert!(parse_unix("ab26-11-30T10:00:00").is_err());
    }

    #[test]
    fn offsets_default_to_china_time() {
        let a = parse_time("2026-11-29T10:00:00+08:00").unwrap();
        let b = parse_time("2026-11-29 10:00:00").unwrap();
        let c = parse_time("2026-11-29T02:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(
            parse_time("2026-11-29").unwrap().to_rfc3339(),
            "2026-11-29T00:00:00+08:00"
        );
    }
}
