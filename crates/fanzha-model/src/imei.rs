//! IMEI (3GPP TS 23.003): 15 digits with a Luhn check digit, the 14-digit form without it,
//! and the 16-digit IMEISV (software version instead of a check digit).

use serde::Serialize;
use std::fmt;

/// A validated IMEI or IMEISV.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Imei {
    /// Digits only.
    pub digits: String,
    /// Which form it is.
    pub form: ImeiForm,
}

/// The three IMEI forms.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImeiForm {
    /// 15 digits, last one a Luhn check digit.
    Imei,
    /// 14 digits (TAC + serial), no check digit.
    ImeiWithoutCheck,
    /// 16 digits: TAC + serial + 2-digit software version.
    Imeisv,
}

/// Why a value is no IMEI.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ImeiError {
    /// A character other than digits and separators.
    Character(char),
    /// Not 14, 15 or 16 digits.
    Length(usize),
    /// Luhn check failed; the right check digit is given.
    Check {
        /// The check digit the first 14 digits require.
        expected: u8,
    },
}

impl fmt::Display for ImeiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImeiError::Character(c) => write!(f, "unexpected character {c:?}"),
            ImeiError::Length(n) => write!(
                f,
                "{n} digits: an IMEI has 15 (14 without check digit, 16 as IMEISV)"
            ),
            ImeiError::Check { expected } => write!(f, "check digit should be {expected}"),
        }
    }
}

/// The Luhn check digit for `digits` (ASCII).
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Digits of `s` with the separators people write (space, `-`, `/`, `.`) removed.
pub(crate) fn digits_of(s: &str) -> Result<Vec<u8>, char> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.trim().chars() {
        match c {
            '0'..='9' => out.push(c as u8),
            ' ' | '-' | '/' | '.' => {}
            _ => return Err(c),
        }
    }
    Ok(out)
}

impl Imei {
    /// Validates an IMEI in any of its forms.
    pub fn parse(s: &str) -> Result<Imei, ImeiError> {
        let d = digits_of(s).map_err(ImeiError::Character)?;
        let form = match d.len() {
            14 => ImeiForm::ImeiWithoutCheck,
            15 => {
                let expected = luhn_check_digit(&d[..14]);
                if d[14] - b'0' != expected {
                    return Err(ImeiError::Check { expected });
                }
                ImeiForm::Imei
            }
            16 => ImeiForm::Imeisv,
            n => return Err(ImeiError::Length(n)),
        };
        Ok(Imei {
            digits: String::from_utf8(d).expect("ascii digits"),
            form,
        })
    }

    /// Type Allocation Code: the first 8 digits (device model).
    pub fn tac(&self) -> &str {
        &self.digits[..8]
    }

    /// Serial number: digits 9–14.
    pub fn serial(&self) -> &str {
        &self.digits[8..14]
    }

    /// The 14 digits that identify the device whatever the form (for comparing a call's IMEI
    /// with a bound IMEI given in another form).
    pub fn device_key(&self) -> &str {
        &self.digits[..14]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Imei::parse("35-209900-176148-1").unwrap().form,
            ImeiForm::Imei
        );
        assert_eq!(
            Imei::parse("35-209900-176148-23").unwrap().form,
            ImeiForm::Imeisv
        );
        assert_eq!(
            Imei::parse("49-015420-323751").unwrap().form,
            ImeiForm::ImeiWithoutCheck
        );
        assert_eq!(
            Imei::parse("35-417803-685978-2").unwrap_err().to_string(),
            "check digit should be 9"
        );
    }
}
