//! The Chinese numbering plan: mobile segments with their original carrier and home city,
//! MVNO / data-card / IoT / satellite segments, fixed lines by area code, 400/800, premium,
//! 95/96 service numbers, short numbers and 106 SMS ports.
//!
//! Mobile segments come from the compiled segment table (which fixes libphonenumber's gaps:
//! 13-digit IoT, 149, 1749, 17406–17412); everything else from libphonenumber's CN patterns.

use super::{Invalidity, NumberInfo, NumberKind, PhoneNumber, MAX_DIGITS};
use regex::bytes::Regex;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

/// Shortest Chinese number we parse (110).
pub const MIN_LEN: usize = 3;

const SEGMENTS: &str = include_str!("../../data/cn-mobile-segments_compiled.tsv");
const CARRIERS: &str =
    include_str!("../../data/libphonenumber-86-mobile-prefix-carrier_9.0.43.tsv");
const AREA_LENGTHS: &str =
    include_str!("../../data/libphonenumber-86-area-codes-local-lengths_9.0.43.tsv");
const FIXED_GEOCODE: &str =
    include_str!("../../data/libphonenumber-86-fixedline-prefix-geocode_9.0.43.tsv");
const MOBILE_GEOCODE_GZ: &[u8] =
    include_bytes!("../../data/libphonenumber-86-mobile-prefix-geocode_9.0.43.tsv.gz");
const CN_METADATA: &str =
    include_str!("../../data/libphonenumber-CN-metadata_phonenumbers-9.0.43.json");

/// The original allocation holder of a segment (number portability since 2019 means the
/// serving carrier can differ).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct Carrier {
    /// Chinese name, e.g. 中国移动.
    pub zh: &'static str,
    /// English name, e.g. China Mobile.
    pub en: &'static str,
}

#[derive(Copy, Clone)]
struct Segment {
    kind: NumberKind,
    carrier: Option<Carrier>,
}

struct AreaCode {
    local7: &'static str,
    local8: &'static str,
}

/// Lazily built lookup tables of the Chinese plan. Public only so that benchmarks and the
/// binary can force the one-time build up front ([`CnTables::get`]).
pub struct CnTables {
    /// Segment id (index into `segments` + 1, 0 = none) by the first five digits of 11-digit numbers.
    seg11: Vec<u8>,
    /// Same for 13-digit IoT numbers.
    seg13: Vec<u8>,
    segments: Vec<Segment>,
    /// Carrier id by first five digits (longest-prefix expanded), 0 = none.
    carrier_by_prefix: Vec<u8>,
    carriers: Vec<Carrier>,
    /// Home city id by first seven digits 1300000..=1999999, u16::MAX = none.
    home_city: Vec<u16>,
    cities: Vec<&'static str>,
    areas: HashMap<u16, AreaCode>,
    /// Fixed-line place by prefix (as number, len) → name.
    places: HashMap<(u32, u8), &'static str>,
    re: Patterns,
}

struct Patterns {
    mobile: Regex,
    fixed_line: Regex,
    toll_free: Regex,
    shared_cost: Regex,
    premium_rate: Regex,
    short_general: Regex,
    short_code: Regex,
    short_emergency: Regex,
    short_sms: Regex,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Data lines of an embedded TSV/CSV (comments and the header skipped).
fn rows(text: &'static str, sep: char) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(move |l| l.split(sep).collect())
}

fn anchored(pattern: &str) -> Regex {
    // The embedded patterns use `\d`; this crate's regex is built without Unicode tables.
    let p = pattern.replace("\\d", "[0-9]");
    Regex::new(&format!("^(?:{p})$")).expect("embedded libphonenumber pattern compiles")
}

fn prefix_value(d: &[u8], len: usize) -> usize {
    d[..len]
        .iter()
        .fold(0usize, |a, &b| a * 10 + (b - b'0') as usize)
}

impl CnTables {
    /// The tables, built on first use (a few tens of milliseconds).
    pub fn get() -> &'static CnTables {
        static TABLES: OnceLock<CnTables> = OnceLock::new();
        TABLES.get_or_init(CnTables::build)
    }

    fn build() -> CnTables {
        let meta: serde_json::Value =
            serde_json::from_str(CN_METADATA).expect("embedded CN metadata is JSON");
        let pat = |path: &[&str]| {
            let mut v = &meta;
            for p in path {
                v = &v[*p];
            }
            anchored(v.as_str().expect("pattern present in embedded CN metadata"))
        };
        let re = Patterns {
            mobile: pat(&["types", "mobile", "national_number_pattern"]),
            fixed_line: pat(&["types", "fixed_line", "national_number_pattern"]),
            toll_free: pat(&["types", "toll_free", "national_number_pattern"]),
            shared_cost: pat(&["types", "shared_cost", "national_number_pattern"]),
            premium_rate: pat(&["types", "premium_rate", "national_number_pattern"]),
            short_general: pat(&[
                "short_number_metadata",
                "general_desc",
                "national_number_pattern",
            ]),
            short_code: pat(&[
                "short_number_metadata",
                "short_code",
                "national_number_pattern",
            ]),
            short_emergency: pat(&[
                "short_number_metadata",
                "emergency",
                "national_number_pattern",
            ]),
            short_sms: pat(&[
                "short_number_metadata",
                "sms_services",
                "national_number_pattern",
            ]),
        };

        // Carriers: libphonenumber's prefix table, longest prefix wins (expand short first).
        let mut carriers: Vec<Carrier> = Vec::new();
        let carrier_id = |zh: &str, en: &str, carriers: &mut Vec<Carrier>| -> u8 {
            if let Some(i) = carriers.iter().position(|c| c.zh == zh) {
                return i as u8 + 1;
            }
            carriers.push(Carrier {
                zh: leak(zh.to_string()),
                en: leak(en.to_string()),
            });
            carriers.len() as u8
        };
        let mut carrier_by_prefix = vec![0u8; 10_000];
        let mut carrier_rows: Vec<(String, u8)> = Vec::new();
        for r in rows(CARRIERS, '\t') {
            if r.len() >= 3 {
                let id = carrier_id(r[1], r[2], &mut carriers);
                carrier_rows.push((r[0].to_string(), id));
            }
        }
        carrier_rows.sort_by_key(|(p, _)| p.len());
        for (p, id) in &carrier_rows {
            expand5(p, |i| carrier_by_prefix[i] = *id);
        }

        // Segments: category and original holder; longest prefix wins.
        let mut segments: Vec<Segment> = Vec::new();
        let mut seg11 = vec![0u8; 10_000];
        let mut seg13 = vec![0u8; 10_000];
        let mut seg_rows: Vec<(String, usize, Segment)> = Vec::new();
        for r in rows(SEGMENTS, '\t') {
            if r.len() < 4 {
                continue;
            }
            let category = r[3];
            let kind = if category.contains("MVNO") {
                NumberKind::Mvno
            } else if category.contains("data card") {
                NumberKind::DataCard
            } else if category.contains("IoT") || category.contains("M2M") {
                NumberKind::Iot
            } else if category.contains("satellite") {
                NumberKind::Satellite
            } else if category.contains("emergency") {
                NumberKind::EmergencyComms
            } else {
                NumberKind::Mobile
            };
            let holder = r[2];
            let (zh, en) = holder_names(holder);
            let carrier = zh.map(|zh| {
                let id = carrier_id(zh, en.unwrap_or(zh), &mut carriers);
                carriers[id as usize - 1]
            });
            let len: usize = r[1].parse().unwrap_or(11);
            seg_rows.push((r[0].to_string(), len, Segment { kind, carrier }));
        }
        seg_rows.sort_by_key(|(p, _, _)| p.len());
        for (p, len, seg) in seg_rows {
            segments.push(seg);
            let id = segments.len() as u8;
            let table = if len == 13 { &mut seg13 } else { &mut seg11 };
            expand5(&p, |i| table[i] = id);
        }

        // Home cities from the 7-digit geocoding prefixes.
        let mut text = String::new();
        flate2::read::GzDecoder::new(MOBILE_GEOCODE_GZ)
            .read_to_string(&mut text)
            .expect("embedded mobile geocode data decompresses");
        let text: &'static str = leak(text);
        let mut cities: Vec<&'static str> = Vec::new();
        let mut city_ids: HashMap<&'static str, u16> = HashMap::new();
        let mut home_city = vec![u16::MAX; 700_000];
        let mut geo_rows: Vec<(&str, u16)> = Vec::new();
        for r in rows(text, '\t') {
            if r.len() < 2 || r[0].len() > 7 || !r[0].starts_with('1') {
                continue;
            }
            let id = *city_ids.entry(r[1]).or_insert_with(|| {
                cities.push(r[1]);
                (cities.len() - 1) as u16
            });
            geo_rows.push((r[0], id));
        }
        geo_rows.sort_by_key(|(p, _)| p.len());
        for (p, id) in geo_rows {
            let scale = 10usize.pow(7 - p.len() as u32);
            let start = p.parse::<usize>().unwrap_or(0) * scale;
            for v in start..start + scale {
                if (1_300_000..2_000_000).contains(&v) {
                    home_city[v - 1_300_000] = id;
                }
            }
        }

        let mut areas = HashMap::new();
        for r in rows(AREA_LENGTHS, '\t') {
            if let (Some(code), Some(l7), Some(l8)) = (r.first(), r.get(3), r.get(4)) {
                if let Ok(c) = code.parse::<u16>() {
                    areas.insert(
                        c,
                        AreaCode {
                            local7: l7,
                            local8: l8,
                        },
                    );
                }
            }
        }
        let mut places = HashMap::new();
        for r in rows(FIXED_GEOCODE, '\t') {
            if let (Some(p), Some(name)) = (r.first(), r.get(1)) {
                if let Ok(v) = p.parse::<u32>() {
                    places.insert((v, p.len() as u8), *name);
                }
            }
        }

        CnTables {
            seg11,
            seg13,
            segments,
            carrier_by_prefix,
            carriers,
            home_city,
            cities,
            areas,
            places,
            re,
        }
    }

    fn segment(&self, table: &[u8], d: &[u8]) -> Option<Segment> {
        let id = table[prefix_value(d, 5) - 10_000];
        (id != 0).then(|| self.segments[id as usize - 1])
    }

    fn carrier(&self, d: &[u8]) -> Option<Carrier> {
        let id = self.carrier_by_prefix[prefix_value(d, 5) - 10_000];
        (id != 0).then(|| self.carriers[id as usize - 1])
    }
}

/// "中国移动 China Mobile" / "MVNO on 中国联通" / "中国电信" → (zh, en) of the carrier.
fn holder_names(holder: &'static str) -> (Option<&'static str>, Option<&'static str>) {
    let h = holder.strip_prefix("MVNO on ").unwrap_or(holder);
    if h.starts_with('(') {
        return (None, None);
    }
    let zh_end = h.find([' ', '(']).unwrap_or(h.len());
    let zh = &h[..zh_end];
    let en = h[zh_end..]
        .trim()
        .split('(')
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    (Some(zh), en)
}

/// Calls `f` with every index 0..10000 of 5-digit prefixes `1xxxx` that `prefix` covers.
fn expand5(prefix: &str, mut f: impl FnMut(usize)) {
    if !prefix.starts_with('1') || prefix.len() > 5 || prefix.is_empty() {
        return;
    }
    let scale = 10usize.pow(5 - prefix.len() as u32);
    let start = prefix.parse::<usize>().unwrap_or(0) * scale;
    for v in start..start + scale {
        if (10_000..20_000).contains(&v) {
            f(v - 10_000);
        }
    }
}

pub(super) fn classify(n: PhoneNumber) -> NumberInfo {
    let t = CnTables::get();
    let mut buf = [0u8; MAX_DIGITS];
    let d = n.national_digits(&mut buf);
    let len = d.len();
    let info = |kind| NumberInfo::new(kind, "CN");

    if d[0] == b'0' {
        return NumberInfo::invalid(NumberKind::Unknown, Invalidity::NoClass, "CN");
    }
    if d[0] == b'1' && len >= 5 {
        if len == 13 {
            if let Some(seg) = t.segment(&t.seg13, d) {
                return NumberInfo {
                    carrier: seg.carrier,
                    ..info(seg.kind)
                };
            }
        }
        if (b'3'..=b'9').contains(&d[1]) {
            match len {
                11 => {
                    if let Some(seg) = t.segment(&t.seg11, d) {
                        return NumberInfo {
                            carrier: t.carrier(d).or(seg.carrier),
                            ..info(seg.kind)
                        };
                    }
                    if t.re.mobile.is_match(d) {
                        return NumberInfo {
                            carrier: t.carrier(d),
                            ..info(NumberKind::Mobile)
                        };
                    }
                    let segment = prefix_value(d, 3) as u16;
                    return NumberInfo::invalid(
                        NumberKind::Mobile,
                        Invalidity::UnallocatedMobileSegment { segment },
                        "CN",
                    );
                }
                13 => return NumberInfo::invalid(NumberKind::Iot, Invalidity::NotIotSegment, "CN"),
                9 | 10 | 12 if !t.re.premium_rate.is_match(d) => {
                    return NumberInfo::invalid(
                        NumberKind::Mobile,
                        Invalidity::MobileLength { len: len as u8 },
                        "CN",
                    )
                }
                _ => {}
            }
        }
    }
    if d.starts_with(b"106") && !t.re.fixed_line.is_match(d) {
        let valid = t.re.short_sms.is_match(d) || t.re.short_code.is_match(d);
        return if valid {
            info(NumberKind::SmsPort)
        } else {
            NumberInfo::invalid(NumberKind::SmsPort, Invalidity::UnknownShortNumber, "CN")
        };
    }
    if len <= 6 && (d[0] == b'1' || d[0] == b'9') {
        let kind = if d[0] == b'9' {
            NumberKind::Service
        } else {
            NumberKind::Short
        };
        let valid = t.re.short_general.is_match(d) && t.re.short_code.is_match(d);
        if !valid {
            return NumberInfo::invalid(kind, Invalidity::UnknownShortNumber, "CN");
        }
        return NumberInfo {
            emergency: t.re.short_emergency.is_match(d),
            ..info(kind)
        };
    }
    if t.re.fixed_line.is_match(d) {
        return NumberInfo {
            area_code: area_code_of(t, d),
            ..info(NumberKind::FixedLine)
        };
    }
    if t.re.toll_free.is_match(d) {
        return info(NumberKind::TollFree);
    }
    if t.re.shared_cost.is_match(d) {
        return info(NumberKind::SharedCost);
    }
    if t.re.premium_rate.is_match(d) {
        return info(NumberKind::PremiumRate);
    }
    let why = fixed_line_invalidity(t, d);
    let kind = match why {
        Invalidity::TooShortForArea { .. }
        | Invalidity::TooLongForArea { .. }
        | Invalidity::BadLocalNumber { .. }
        | Invalidity::MissingAreaCode => NumberKind::FixedLine,
        _ if d.starts_with(b"400") => NumberKind::SharedCost,
        _ if d.starts_with(b"800") => NumberKind::TollFree,
        _ => NumberKind::Unknown,
    };
    NumberInfo::invalid(kind, why, "CN")
}

/// The area code a fixed-line national number starts with, by the plan's structure:
/// 10 and 2x are two digits, every other area code three.
fn split_area(d: &[u8]) -> Option<(u16, usize)> {
    if d.len() < 2 {
        return None;
    }
    let alen = match (d[0], d[1]) {
        (b'1', b'0') | (b'2', _) => 2,
        (b'1', _) | (b'0', _) => return None,
        _ => 3,
    };
    (d.len() >= alen).then(|| (prefix_value(d, alen) as u16, alen))
}

fn area_code_of(t: &CnTables, d: &[u8]) -> Option<u16> {
    let (code, _) = split_area(d)?;
    t.areas.contains_key(&code).then_some(code).or(Some(code))
}

fn fixed_line_invalidity(t: &CnTables, d: &[u8]) -> Invalidity {
    let Some((area, alen)) = split_area(d) else {
        return Invalidity::NoClass;
    };
    let Some(a) = t.areas.get(&area) else {
        if (7..=8).contains(&d.len()) {
            return Invalidity::MissingAreaCode;
        }
        return Invalidity::UnknownAreaCode {
            code: area,
            digits: alen as u8,
        };
    };
    let local = d.len() - alen;
    let shortest = if a.local7.is_empty() { 8 } else { 7 };
    let longest = if a.local8.is_empty() { 7 } else { 8 };
    if local < shortest {
        Invalidity::TooShortForArea { area }
    } else if local > longest {
        Invalidity::TooLongForArea { area }
    } else {
        Invalidity::BadLocalNumber { area }
    }
}

pub(super) fn home_city(n: PhoneNumber) -> Option<&'static str> {
    if !n.is_chinese() || n.national_len() != 11 {
        return None;
    }
    let v = (n.national_value() / 10_000) as usize;
    if !(1_300_000..2_000_000).contains(&v) {
        return None;
    }
    let t = CnTables::get();
    let id = t.home_city[v - 1_300_000];
    (id != u16::MAX).then(|| t.cities[id as usize])
}

pub(super) fn area_name(area: u16) -> Option<&'static str> {
    let t = CnTables::get();
    let len = if area < 100 { 2 } else { 3 };
    t.places.get(&(area as u32, len)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(s: &str) -> NumberInfo {
        super::super::parse(s).unwrap().classify()
    }

    #[test]
    fn segments_and_gaps_libphonenumber_misses() {
        assert_eq!(info("14901234567").kind, NumberKind::DataCard);
        assert!(info("14901234567").valid);
        assert_eq!(info("17491234567").kind, NumberKind::Satellite);
        assert!(info("17406123456").valid);
        assert_eq!(info("17406123456").kind, NumberKind::EmergencyComms);
        assert_eq!(info("1440123456789").kind, NumberKind::Iot);
        assert_eq!(info("1064812345678").kind, NumberKind::Iot);
        assert_eq!(info("17001234567").kind, NumberKind::Mvno);
        assert_eq!(info("13800138000").carrier.unwrap().zh, "中国移动");
        assert_eq!(info("17001234567").carrier.unwrap().zh, "中国电信");
    }

    #[test]
    fn unallocated_segment_reason() {
        let i = info("15401234567");
        assert!(!i.valid);
        assert_eq!(
            i.invalidity.unwrap().to_string(),
            "unallocated mobile segment 154"
        );
    }

    #[test]
    fn fixed_line_reasons() {
        assert_eq!(
            info("0371 123456").invalidity.unwrap().to_string(),
            "too short for area code 0371"
        );
        assert_eq!(info("0371 12345678").area_code, Some(371));
        assert!(info("010 95588").valid);
        assert_eq!(area_name(371), Some("河南省郑州市"));
    }

    #[test]
    fn home_city_of_mobile() {
        assert_eq!(
            home_city(super::super::parse("13800138000").unwrap()),
            Some("北京市")
        );
    }
}
