//! A civil calendar date, enough for birth dates and "not in the future" checks without a
//! clock or a date library in this pure crate.

use serde::Serialize;
use std::fmt;

/// A proleptic Gregorian calendar date.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Date {
    /// Year, e.g. 1990.
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

/// Why a year/month/day triple is no calendar date.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum DateError {
    /// Month outside 1–12.
    Month(u8),
    /// Day outside the month.
    Day {
        /// The day given.
        day: u8,
        /// The month.
        month: u8,
        /// The year.
        year: u16,
    },
}

impl fmt::Display for DateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DateError::Month(m) => write!(f, "month {m:02}"),
            DateError::Day { day, month, year } => {
                write!(f, "day {day:02} does not exist in {year:04}-{month:02}")
            }
        }
    }
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` of `year`.
pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A checked date.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, DateError> {
        if !(1..=12).contains(&month) {
            return Err(DateError::Month(month));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Day { day, month, year });
        }
        Ok(Date { year, month, day })
    }

    /// Parses `YYYYMMDD` digits.
    pub fn from_yyyymmdd(d: &[u8]) -> Option<Result<Date, DateError>> {
        if d.len() != 8 || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n =
            |r: std::ops::Range<usize>| d[r].iter().fold(0u16, |a, &b| a * 10 + (b - b'0') as u16);
        Some(Date::new(n(0..4), n(4..6) as u8, n(6..8) as u8))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_years_and_month_lengths() {
        assert!(Date::new(2000, 2, 29).is_ok());
        assert!(Date::new(1900, 2, 29).is_err());
        assert_eq!(Date::new(2021, 13, 1).unwrap_err().to_string(), "month 13");
        assert!(Date::new(2021, 4, 31).is_err());
    }
}
