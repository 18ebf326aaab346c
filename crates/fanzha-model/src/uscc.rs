//! Unified Social Credit Code (统一社会信用代码, GB 32100-2015): 18 characters of a
//! 31-character alphabet — registration authority, organisation type, 6-digit region code,
//! the 9-character organisation code (GB 11714, with its own check digit) and a check
//! character (R7.3).

use serde::Serialize;
use std::fmt;

/// The code's alphabet: digits and upper-case letters without I, O, S, V, Z.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A validated USCC.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Uscc {
    /// The 18-character normalised code (upper case, no spaces).
    pub code: String,
    /// Registration authority (登记管理部门) name.
    pub authority: &'static str,
    /// The 6-digit region code.
    pub region_code: String,
    /// The embedded 9-character organisation code.
    pub organisation_code: String,
}

/// Why a value is no USCC.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UsccError {
    /// Not 18 characters.
    Length(usize),
    /// Character outside the alphabet.
    Character {
        /// The character.
        ch: char,
        /// 1-based position.
        position: usize,
    },
    /// Unknown registration authority.
    Authority(char),
    /// Organisation-type or region part not digits.
    Format(&'static str),
    /// Outer check character wrong.
    Check {
        /// What it should be.
        expected: char,
    },
    /// Check digit of the embedded GB 11714 organisation code wrong.
    OrganisationCheck {
        /// What it should be.
        expected: char,
    },
}

impl fmt::Display for UsccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsccError::Length(n) => write!(f, "{n} characters: a USCC has 18"),
            UsccError::Character { ch, position } => write!(
                f,
                "character {ch:?} at position {position} is not in the USCC alphabet (digits and letters except I, O, S, V, Z)"
            ),
            UsccError::Authority(c) => write!(f, "unknown registration authority {c:?}"),
            UsccError::Format(what) => write!(f, "{what}"),
            UsccError::Check { expected } => write!(f, "check character should be {expected}"),
            UsccError::OrganisationCheck { expected } => {
                write!(f, "organisation code check character should be {expected}")
            }
        }
    }
}

fn authority_name(c: u8) -> Option<&'static str> {
    Some(match c {
        b'1' => "机构编制",
        b'2' => "外交",
        b'3' => "司法行政",
        b'4' => "文化",
        b'5' => "民政",
        b'6' => "旅游",
        b'7' => "宗教",
        b'8' => "工会",
        b'9' => "工商",
        b'A' => "中央军委改革和编制办公室",
        b'N' => "农业",
        b'Y' => "其他",
        _ => return None,
    })
}

/// GB 11714 value of a character: digits 0–9, letters A=10 … Z=35.
fn org_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => (c - b'0') as u32,
        _ => (c - b'A') as u32 + 10,
    }
}

impl Uscc {
    /// Validates a USCC (spaces and lower case tolerated).
    pub fn parse(s: &str) -> Result<Uscc, UsccError> {
        let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        if chars.len() != 18 {
            return Err(UsccError::Length(chars.len()));
        }
        let mut d = [0u8; 18];
        let mut vals = [0u32; 18];
        for (i, c) in chars.iter().enumerate() {
            let u = c.to_ascii_uppercase();
            let pos = (u.is_ascii())
                .then(|| ALPHABET.iter().position(|&a| a == u as u8))
                .flatten();
            match pos {
                Some(p) => {
                    d[i] = u as u8;
                    vals[i] = p as u32;
                }
                None => {
                    return Err(UsccError::Character {
                        ch: *c,
                        position: i + 1,
                    })
                }
            }
        }
        let authority = authority_name(d[0]).ok_or(UsccError::Authority(d[0] as char))?;
        if !(d[1].is_ascii_digit() && d[1] != b'0') {
            return Err(UsccError::Format(
                "organisation type (2nd character) must be a digit 1-9",
            ));
        }
        if !d[2..8].iter().all(u8::is_ascii_digit) {
            return Err(UsccError::Format(
                "region code (characters 3-8) must be digits",
            ));
        }
        let sum: u32 = vals[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
        let expected = ALPHABET[((31 - sum % 31) % 31) as usize] as char;
        if d[17] as char != expected {
            return Err(UsccError::Check { expected });
        }
        let org = &d[8..17];
        let osum: u32 = org[..8]
            .iter()
            .zip(ORG_WEIGHTS)
            .map(|(&c, w)| org_value(c) * w)
            .sum();
        let oexpected = match 11 - osum % 11 {
            10 => 'X',
            11 => '0',
            v => (b'0' + v as u8) as char,
        };
        if org[8] as char != oexpected {
            return Err(UsccError::OrganisationCheck {
                expected: oexpected,
            });
        }
        let code = String::from_utf8(d.to_vec()).expect("ascii");
        Ok(Uscc {
            region_code: code[2..8].to_string(),
            organisation_code: code[8..17].to_string(),
            authority,
            code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(Uscc::parse("91110000600037341L").is_ok());
        assert!(Uscc::parse("911522010783762860").is_ok());
        assert!(Uscc::parse("N2110108MA0000015A").is_ok());
        assert!(matches!(
            Uscc::parse("91110000600037342P"),
            Err(UsccError::OrganisationCheck { .. })
        ));
        assert!(matches!(
            Uscc::parse("9111000060003IOZSV"),
            Err(UsccError::Character { .. })
        ));
    }
}
