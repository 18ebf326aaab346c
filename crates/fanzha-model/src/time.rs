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

#[cfg(test)]
mod tests {
    use super::*;

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
