//! Phone numbers: parsing every form a network sends, a packed `u64` representation, and
//! classification by the Chinese numbering plan (R11.3, R11.5, R8.2) and, for foreign
//! numbers, by libphonenumber's plans of every country.
//!
//! Parsing and classifying allocate nothing: digits are collected in a stack buffer and the
//! result is a `Copy` value. The reference tables are built once, lazily, from data embedded
//! in the crate (see `data/README.md`).

mod cn;
mod parse;
mod world;

pub use cn::{Carrier, CnTables};
pub use parse::{parse, ParseError};

use serde::Serialize;
use std::fmt;

/// Most digits of an E.164 number we keep (country code included). E.164 allows 15; Chinese
/// SMS ports and 13-digit IoT numbers with `86` need a little more room.
pub const MAX_DIGITS: usize = 17;

const VALUE_BITS: u32 = 57; // 10^17 < 2^57
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const LEN_SHIFT: u32 = VALUE_BITS; // 5 bits of total digit count
const CC_SHIFT: u32 = 62; // 2 bits of country-code length

/// A phone number normalised to E.164 digits and packed into one `u64`:
/// bits 0..57 hold the digits as an integer, 57..62 the digit count, 62..64 the length of the
/// country code. Equal numbers have equal bits, so the value can key hash sets directly.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(u64);

impl PhoneNumber {
    /// Packs a country code (1–3 digits) and national significant number digits (ASCII).
    /// Returns `None` when the result would not fit.
    pub fn from_parts(country_code: u16, national: &[u8]) -> Option<PhoneNumber> {
        let cc_len = match country_code {
            1..=9 => 1,
            10..=99 => 2,
            100..=999 => 3,
            _ => return None,
        };
        let total = cc_len + national.len();
        if national.is_empty() || total > MAX_DIGITS {
            return None;
        }
        let mut value = country_code as u64;
        for &d in national {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + (d - b'0') as u64;
        }
        Some(PhoneNumber(
            value | ((total as u64) << LEN_SHIFT) | ((cc_len as u64) << CC_SHIFT),
        ))
    }

    /// The raw packed bits (stable within one build; used as a compact key).
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// Inverse of [`PhoneNumber::to_bits`] for bits produced by it.
    pub fn from_bits(bits: u64) -> PhoneNumber {
        PhoneNumber(bits)
    }

    fn total_len(self) -> usize {
        ((self.0 >> LEN_SHIFT) & 0x1f) as usize
    }

    fn cc_len(self) -> usize {
        (self.0 >> CC_SHIFT) as usize
    }

    fn value(self) -> u64 {
        self.0 & VALUE_MASK
    }

    /// The country calling code (86 for China).
    pub fn country_code(self) -> u16 {
        (self.value() / 10u64.pow(self.national_len() as u32)) as u16
    }

    /// Number of digits of the national significant number.
    pub fn national_len(self) -> usize {
        self.total_len() - self.cc_len()
    }

    /// The national significant number as an integer (leading zeros are implied by
    /// [`PhoneNumber::national_len`]).
    pub fn national_value(self) -> u64 {
        self.value() % 10u64.pow(self.national_len() as u32)
    }

    /// Whether this is a Chinese (+86) number.
    pub fn is_chinese(self) -> bool {
        self.country_code() == 86
    }

    /// Writes the E.164 digits (without `+`) into `buf` and returns them.
    pub fn digits(self, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
        let n = self.total_len();
        let mut v = self.value();
        for i in (0..n).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        &buf[..n]
    }

    /// Writes the national significant number digits into `buf` and returns them.
    pub fn national_digits(self, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
        let cc = self.cc_len();
        let n = self.total_len();
        self.digits(buf);
        buf.copy_within(cc..n, 0);
        &buf[..n - cc]
    }

    /// The national significant number as a string (allocates; for output only).
    pub fn national_string(self) -> String {
        let mut buf = [0u8; MAX_DIGITS];
        String::from_utf8_lossy(self.national_digits(&mut buf)).into_owned()
    }

    /// The E.164 form `+8613800138000` (allocates; for output only).
    pub fn e164(self) -> String {
        self.to_string()
    }

    /// Whether the national significant number starts with the digits of `prefix`
    /// (a national prefix such as `1088` from `number_blocks`).
    pub fn national_starts_with(self, prefix: NationalPrefix) -> bool {
        let len = self.national_len() as u32;
        if prefix.len as u32 > len {
            return false;
        }
        self.national_value() / 10u64.pow(len - prefix.len as u32) == prefix.value
    }

    /// Parses any form (see [`parse`]).
    pub fn parse(input: &str) -> Result<PhoneNumber, ParseError> {
        parse(input)
    }

    /// Classifies by the numbering plan (see [`classify`]).
    pub fn classify(self) -> NumberInfo {
        classify(self)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; MAX_DIGITS];
        let d = self.digits(&mut buf);
        write!(f, "+{}", std::str::from_utf8(d).unwrap_or("?"))
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({self})")
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A prefix of national significant numbers (`135`, `1062`, `4006`): how `number_blocks`
/// and `*` patterns are written (DESIGN.md: no `+86`, no trunk `0`).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NationalPrefix {
    /// The prefix digits as an integer.
    pub value: u64,
    /// Number of digits (leading zeros are significant).
    pub len: u8,
}

impl NationalPrefix {
    /// Parses a digit-only prefix of 1–17 digits, tolerating a trunk `0`, `+86`/`0086`/`86`
    /// is *not* stripped here: prefixes are national by contract.
    pub fn parse(s: &str) -> Option<NationalPrefix> {
        let s = s.trim();
        let s = s.strip_prefix('0').filter(|r| !r.is_empty()).unwrap_or(s);
        if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(NationalPrefix {
            value: s.parse().ok()?,
            len: s.len() as u8,
        })
    }

    /// The prefix covering exactly the whole national number of `n`.
    pub fn of_number(n: PhoneNumber) -> NationalPrefix {
        NationalPrefix {
            value: n.national_value(),
            len: n.national_len() as u8,
        }
    }
}

impl fmt::Display for NationalPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.len as usize)
    }
}

/// What a number is, in the numbering plan's own classes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// Public mobile number of a basic operator (11 digits, 1[3-9]…).
    Mobile,
    /// Mobile virtual network operator segments (170x, 171, 162, 165, 167) — R1.2.
    Mvno,
    /// Data-card segments (145, 147, 149).
    DataCard,
    /// 13-digit IoT/M2M segments (1440x, 1441x, 148, 146, 1410x, 1064x) — R4.3.
    Iot,
    /// Satellite mobile (1349, 17400–17405) and maritime satellite (1749).
    Satellite,
    /// MIIT emergency-communications segment (17406–17412).
    EmergencyComms,
    /// Fixed line: area code + 7- or 8-digit local number.
    FixedLine,
    /// 400 numbers (and 950xx, area+96xxx shared-cost numbers).
    SharedCost,
    /// 800 numbers.
    TollFree,
    /// 160/168 information services.
    PremiumRate,
    /// 95xxx / 96xxx national service numbers (banks, carriers' hotlines).
    Service,
    /// Short numbers: emergency (110, 119, 120, 122), carrier (10086), government (12321 …).
    Short,
    /// 106 SMS ports.
    SmsPort,
    /// A number of another country.
    Foreign,
    /// A Chinese number that fits no class of the plan.
    Unknown,
}

impl NumberKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::Mobile => "mobile",
            NumberKind::Mvno => "mvno",
            NumberKind::DataCard => "data_card",
            NumberKind::Iot => "iot",
            NumberKind::Satellite => "satellite",
            NumberKind::EmergencyComms => "emergency_comms",
            NumberKind::FixedLine => "fixed_line",
            NumberKind::SharedCost => "shared_cost",
            NumberKind::TollFree => "toll_free",
            NumberKind::PremiumRate => "premium_rate",
            NumberKind::Service => "service",
            NumberKind::Short => "short",
            NumberKind::SmsPort => "sms_port",
            NumberKind::Foreign => "foreign",
            NumberKind::Unknown => "unknown",
        }
    }

    /// libphonenumber's name of the closest `PhoneNumberType`.
    pub fn libphonenumber_type(self) -> &'static str {
        match self {
            NumberKind::Mobile
            | NumberKind::Mvno
            | NumberKind::DataCard
            | NumberKind::Satellite
            | NumberKind::EmergencyComms
            | NumberKind::Iot => "MOBILE",
            NumberKind::FixedLine => "FIXED_LINE",
            NumberKind::SharedCost => "SHARED_COST",
            NumberKind::TollFree => "TOLL_FREE",
            NumberKind::PremiumRate => "PREMIUM_RATE",
            NumberKind::Service | NumberKind::Short | NumberKind::SmsPort => "SHORT_CODE",
            NumberKind::Foreign | NumberKind::Unknown => "UNKNOWN",
        }
    }
}

/// Why a parsed number is not a valid number of its plan. Display gives the operator-facing
/// sentence (e.g. "too short for area code 0371").
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Invalidity {
    /// 11-digit 1[3-9] number in a segment nobody was allocated.
    UnallocatedMobileSegment { segment: u16 },
    /// Mobile-looking number of the wrong length.
    MobileLength { len: u8 },
    /// 13-digit number outside the IoT segments.
    NotIotSegment,
    /// Fixed-line number whose local part is too short.
    TooShortForArea { area: u16 },
    /// Fixed-line number whose local part is too long.
    TooLongForArea { area: u16 },
    /// Local number with a length or first digit the area does not use.
    BadLocalNumber { area: u16 },
    /// Leading digits that are no area code.
    UnknownAreaCode { code: u16, digits: u8 },
    /// Local number without area code.
    MissingAreaCode,
    /// Short/service number that is not in the short-number plan.
    UnknownShortNumber,
    /// A foreign number that matches none of its country's patterns.
    ForeignPattern,
    /// Anything else.
    NoClass,
}

impl fmt::Display for Invalidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalidity::UnallocatedMobileSegment { segment } => {
                write!(f, "unallocated mobile segment {segment}")
            }
            Invalidity::MobileLength { len } => {
                write!(f, "mobile numbers have 11 digits, not {len}")
            }
            Invalidity::NotIotSegment => {
                write!(f, "13-digit number outside the IoT segments (1440x, 1441x, 148, 146, 1410x, 1064x)")
            }
            Invalidity::TooShortForArea { area } => write!(f, "too short for area code 0{area}"),
            Invalidity::TooLongForArea { area } => write!(f, "too long for area code 0{area}"),
            Invalidity::BadLocalNumber { area } => {
                write!(f, "not a valid local number for area code 0{area}")
            }
            Invalidity::UnknownAreaCode { code, digits } => {
                write!(
                    f,
                    "unknown area code 0{code:0width$}",
                    width = digits as usize
                )
            }
            Invalidity::MissingAreaCode => write!(f, "local number without area code"),
            Invalidity::UnknownShortNumber => write!(f, "not a number of the short-number plan"),
            Invalidity::ForeignPattern => {
                write!(f, "not a valid number of the country's numbering plan")
            }
            Invalidity::NoClass => write!(f, "fits no class of the numbering plan"),
        }
    }
}

/// The result of classifying a number. `Copy`, allocation-free.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct NumberInfo {
    /// The class of the number (for invalid Chinese numbers: what it looked like).
    pub kind: NumberKind,
    /// Whether the number is valid in its plan.
    pub valid: bool,
    /// Why not, when invalid.
    pub invalidity: Option<Invalidity>,
    /// Original allocation holder of a mobile/IoT segment (porting may differ).
    pub carrier: Option<Carrier>,
    /// Area code (without trunk 0) of a fixed line.
    pub area_code: Option<u16>,
    /// ISO region of a foreign number ("HK"), `"CN"` for Chinese numbers.
    pub region: &'static str,
    /// Emergency short number (110, 119, 120, 122).
    pub emergency: bool,
    /// libphonenumber's type name (MOBILE, FIXED_LINE, …; UNKNOWN when invalid).
    pub line_type: &'static str,
}

impl NumberInfo {
    fn new(kind: NumberKind, region: &'static str) -> NumberInfo {
        NumberInfo {
            kind,
            valid: true,
            invalidity: None,
            carrier: None,
            area_code: None,
            region,
            emergency: false,
            line_type: kind.libphonenumber_type(),
        }
    }

    fn invalid(kind: NumberKind, why: Invalidity, region: &'static str) -> NumberInfo {
        NumberInfo {
            valid: false,
            invalidity: Some(why),
            line_type: "UNKNOWN",
            ..NumberInfo::new(kind, region)
        }
    }
}

/// Classifies a number by its plan. Chinese numbers by the Chinese numbering plan with
/// libphonenumber's gaps fixed; others by libphonenumber's per-country patterns.
pub fn classify(n: PhoneNumber) -> NumberInfo {
    if n.is_chinese() {
        cn::classify(n)
    } else {
        world::classify(n)
    }
}

/// Where a mobile number is registered (号码归属地), e.g. "北京市", from its first 7 digits.
pub fn mobile_home_city(n: PhoneNumber) -> Option<&'static str> {
    cn::home_city(n)
}

/// Place name of a fixed-line area code (e.g. 371 → "河南省郑州市").
pub fn area_name(area_code: u16) -> Option<&'static str> {
    cn::area_name(area_code)
}

/// Builds every lazily built table now (Chinese plan, region codes, the patterns of every
/// country), so that a long-running service pays this at start and not on its first calls.
pub fn warm_up() {
    CnTables::get();
    world::compile_all();
    let _ = crate::resident_id::region_name(110000);
}

/// Whether `cc` is an assigned country calling code (per libphonenumber's metadata).
pub fn is_country_code(cc: u16) -> bool {
    cc == 86 || world::is_country_code(cc)
}
