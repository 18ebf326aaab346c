//! Normalisation of every form a network or a file sends a number in.

use super::{classify, cn, is_country_code, world, NumberKind, PhoneNumber};
use thiserror::Error;

/// Why a string is not a phone number at all (as opposed to a well-formed number that the
/// numbering plan does not allow, which is [`super::Invalidity`]).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but white space.
    #[error("empty number")]
    Empty,
    /// A character that no number form contains.
    #[error("unexpected character {ch:?} at position {position}")]
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// Separators but no digit.
    #[error("no digits")]
    NoDigits,
    /// Fewer digits than the shortest number (3).
    #[error("too short to be a phone number ({digits} digits)")]
    TooShort {
        /// Digits seen.
        digits: usize,
    },
    /// More digits than any plan allows.
    #[error("too long to be a phone number ({digits} digits)")]
    TooLong {
        /// Digits seen (capped).
        digits: usize,
    },
    /// International form whose leading digits are no country calling code.
    #[error("unknown country calling code in {prefix}")]
    UnknownCountryCode {
        /// The first three digits after `+`/`00`, as a number.
        prefix: u16,
    },
}

/// Room for the digits of the longest accepted input (IP prefix + `00` + 17 digits).
const BUF: usize = 32;

/// Parses any common form of a phone number into its E.164 identity:
/// `+86…`, `0086…`, `86…` (12+ digits), national with trunk `0`, IP-dialling prefixes
/// (17951, 17911, 12593, 10193, … before a mobile, a `0`+area-code number or `00`+international),
/// `00`+international, with spaces, dashes, dots, slashes and parentheses anywhere.
///
/// The result may still be invalid for its plan: see [`PhoneNumber::classify`].
pub fn parse(input: &str) -> Result<PhoneNumber, ParseError> {
    let mut buf = [0u8; BUF];
    let mut n = 0usize;
    let mut plus = false;
    let mut any = false;
    for (position, ch) in input.char_indices() {
        let digit = match ch {
            '0'..='9' => Some(ch as u8),
            // Full-width digits from Chinese input methods.
            '０'..='９' => Some(b'0' + (ch as u32 - '０' as u32) as u8),
            _ => None,
        };
        if let Some(d) = digit {
            if n == BUF {
                return Err(ParseError::TooLong { digits: n + 1 });
            }
            buf[n] = d;
            n += 1;
            any = true;
            continue;
        }
        match ch {
            '+' | '＋' if n == 0 && !plus => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '/' | '\t' | '\u{a0}' | '\u{3000}' | '（' | '）' => {
                any = true
            }
            _ => return Err(ParseError::InvalidCharacter { ch, position }),
        }
    }
    if n == 0 {
        return Err(if any || plus {
            ParseError::NoDigits
        } else {
            ParseError::Empty
        });
    }
    let d = &buf[..n];
    if plus {
        return international(d);
    }
    if n > 5 && is_ip_prefix(&d[..5]) {
        if let Some(num) = after_ip_prefix(&d[5..]) {
            return Ok(num);
        }
    }
    if let Some(rest) = d.strip_prefix(b"00") {
        return international(rest);
    }
    if let Some(rest) = d.strip_prefix(b"0") {
        return chinese(rest, n);
    }
    if n >= 12 && d.starts_with(b"86") {
        // `86` without `+`: the international form missing its plus sign. No national
        // number of 12+ digits starts with 86, so this cannot swallow a real one.
        return chinese(&d[2..], n);
    }
    chinese(d, n)
}

/// IP long-distance prefixes (IP长途前缀): libphonenumber's `1[12]xxx` and `179xx` plus the
/// carriers' 10193 and 96688.
fn is_ip_prefix(p: &[u8]) -> bool {
    p.starts_with(b"179")
        || p.starts_with(b"11")
        || p.starts_with(b"12")
        || p == b"10193"
        || p == b"96688"
}

/// The number after an IP prefix, when what follows is a mobile, `0`+area code, `00`+intl,
/// or (as libphonenumber accepts) a valid national number without trunk `0`.
fn after_ip_prefix(rest: &[u8]) -> Option<PhoneNumber> {
    let candidate = if let Some(intl) = rest.strip_prefix(b"00") {
        international(intl).ok()?
    } else if let Some(nat) = rest.strip_prefix(b"0") {
        chinese(nat, rest.len()).ok()?
    } else {
        chinese(rest, rest.len()).ok()?
    };
    // Only a valid long-distance number after the prefix is taken as prefixed (IP dialling
    // carries mobiles, fixed lines and international calls, never short numbers); otherwise
    // the digits are read as one national number (e.g. 11012345678 is no IP call).
    let info = classify(candidate);
    let long_distance = !matches!(
        info.kind,
        NumberKind::Short | NumberKind::Service | NumberKind::SmsPort
    );
    (info.valid && long_distance).then_some(candidate)
}

fn international(d: &[u8]) -> Result<PhoneNumber, ParseError> {
    if d.is_empty() {
        return Err(ParseError::TooShort { digits: 0 });
    }
    for k in 1..=3.min(d.len()) {
        let cc = d[..k].iter().fold(0u16, |a, &b| a * 10 + (b - b'0') as u16);
        if d[0] != b'0' && is_country_code(cc) {
            let nsn = &d[k..];
            if cc == 86 {
                return chinese(nsn, d.len());
            }
            if nsn.is_empty() {
                return Err(ParseError::TooShort { digits: d.len() });
            }
            let nsn = world::strip_national_prefix(cc, nsn);
            return PhoneNumber::from_parts(cc, nsn).ok_or(ParseError::TooLong { digits: d.len() });
        }
    }
    let prefix = d[..3.min(d.len())]
        .iter()
        .fold(0u16, |a, &b| a * 10 + (b - b'0') as u16);
    Err(ParseError::UnknownCountryCode { prefix })
}

/// A Chinese national significant number (trunk `0` already removed by the caller; one more
/// is tolerated after `+86`, as in `+86 0 10 12345678`).
fn chinese(nsn: &[u8], seen: usize) -> Result<PhoneNumber, ParseError> {
    let nsn = match nsn {
        [b'0', rest @ ..] if !rest.is_empty() && rest[0] != b'0' => rest,
        _ => nsn,
    };
    if nsn.len() < cn::MIN_LEN {
        return Err(ParseError::TooShort { digits: seen });
    }
    PhoneNumber::from_parts(86, nsn).ok_or(ParseError::TooLong { digits: seen })
}
