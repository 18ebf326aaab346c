//! Foreign numbers: valid or not by libphonenumber's per-territory patterns of every country
//! (embedded `data/libphonenumber-world.tsv`). Patterns of a country code are compiled on the
//! first number of that country seen, so start-up pays nothing for the 250 territories.

use super::{Invalidity, NumberInfo, NumberKind, PhoneNumber, MAX_DIGITS};
use regex::bytes::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

const WORLD: &str = include_str!("../../data/libphonenumber-world.tsv");

const TYPE_NAMES: [&str; 10] = [
    "FIXED_LINE",
    "MOBILE",
    "TOLL_FREE",
    "PREMIUM_RATE",
    "SHARED_COST",
    "PERSONAL_NUMBER",
    "VOIP",
    "PAGER",
    "UAN",
    "VOICEMAIL",
];

struct RawTerritory {
    region: &'static str,
    national_prefix: &'static str,
    general: &'static str,
    types: [&'static str; 10],
}

struct Territory {
    region: &'static str,
    general: Option<Regex>,
    types: Vec<(&'static str, Regex)>,
}

struct Country {
    raw: Vec<RawTerritory>,
    compiled: OnceLock<Vec<Territory>>,
}

fn countries() -> &'static HashMap<u16, Country> {
    static WORLD_PLAN: OnceLock<HashMap<u16, Country>> = OnceLock::new();
    WORLD_PLAN.get_or_init(|| {
        let mut map: HashMap<u16, Country> = HashMap::new();
        for line in WORLD.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let f: Vec<&'static str> = line.split('\t').collect();
            if f.len() < 15 {
                continue;
            }
            let Ok(cc) = f[1].parse::<u16>() else {
                continue;
            };
            if cc == 86 {
                continue; // China has its own, more complete plan (cn.rs).
            }
            let mut types = [""; 10];
            types.copy_from_slice(&f[5..15]);
            let raw = RawTerritory {
                region: f[0],
                national_prefix: f[2],
                general: f[4],
                types,
            };
            map.entry(cc)
                .or_insert_with(|| Country {
                    raw: Vec::new(),
                    compiled: OnceLock::new(),
                })
                .raw
                .push(raw);
        }
        map
    })
}

fn anchored(p: &str) -> Option<Regex> {
    if p.is_empty() {
        return None;
    }
    let p = p.replace("\\d", "[0-9]");
    Regex::new(&format!("^(?:{p})$")).ok()
}

impl Country {
    fn territories(&self) -> &[Territory] {
        self.compiled.get_or_init(|| {
            self.raw
                .iter()
                .map(|r| Territory {
                    region: r.region,
                    general: anchored(r.general),
                    types: TYPE_NAMES
                        .iter()
                        .zip(r.types.iter())
                        .filter_map(|(name, p)| anchored(p).map(|re| (*name, re)))
                        .collect(),
                })
                .collect()
        })
    }

    /// (region, type) of the first territory whose plan accepts the national number.
    fn match_number(&self, nsn: &[u8]) -> Option<(&'static str, &'static str)> {
        for t in self.territories() {
            if let Some(g) = &t.general {
                if !g.is_match(nsn) {
                    continue;
                }
            }
            for (name, re) in &t.types {
                if re.is_match(nsn) {
                    return Some((t.region, name));
                }
            }
        }
        None
    }

    fn main_region(&self) -> &'static str {
        self.raw.first().map(|r| r.region).unwrap_or("ZZ")
    }
}

/// Compiles the patterns of every country (normally done on first use per country).
pub(super) fn compile_all() {
    for c in countries().values() {
        c.territories();
    }
}

pub(super) fn is_country_code(cc: u16) -> bool {
    countries().contains_key(&cc)
}

/// Drops a trunk prefix written after the country code (`+44 0 20 …`) when the number is
/// only valid without it, as libphonenumber does.
pub(super) fn strip_national_prefix(cc: u16, nsn: &[u8]) -> &[u8] {
    let Some(c) = countries().get(&cc) else {
        return nsn;
    };
    let Some(rest) = nsn.strip_prefix(b"0") else {
        return nsn;
    };
    let uses_zero = c.raw.iter().any(|r| {
        r.national_prefix == "0"
            || r.national_prefix.starts_with("0|")
            || r.national_prefix.ends_with("|0")
    });
    if uses_zero
        && !rest.is_empty()
        && c.match_number(nsn).is_none()
        && c.match_number(rest).is_some()
    {
        rest
    } else {
        nsn
    }
}

pub(super) fn classify(n: PhoneNumber) -> NumberInfo {
    let Some(c) = countries().get(&n.country_code()) else {
        return NumberInfo::invalid(NumberKind::Foreign, Invalidity::ForeignPattern, "ZZ");
    };
    let mut buf = [0u8; MAX_DIGITS];
    let nsn = n.national_digits(&mut buf);
    match c.match_number(nsn) {
        Some((region, line_type)) => NumberInfo {
            line_type,
            ..NumberInfo::new(NumberKind::Foreign, region)
        },
        None => NumberInfo::invalid(
            NumberKind::Foreign,
            Invalidity::ForeignPattern,
            c.main_region(),
        ),
    }
}
