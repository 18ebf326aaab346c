//! IMSI (ITU-T E.212): MCC (3 digits) + MNC (2 or 3 digits) + MSIN, 14 or 15 digits in all.
//! For MCC 460 (China) the MNC must be an assigned one; other MCCs must be assigned and are
//! otherwise valid by format.

use crate::imei::digits_of;
use serde::Serialize;
use std::fmt;

/// Mobile country codes assigned by ITU-T E.212 (geographic ones and 901 international).
const MCCS: &[u16] = &[
    202, 204, 206, 208, 212, 213, 214, 216, 218, 219, 220, 221, 222, 225, 226, 228, 230, 231, 232,
    234, 235, 238, 240, 242, 244, 246, 247, 248, 250, 255, 257, 259, 260, 262, 266, 268, 270, 272,
    274, 276, 278, 280, 282, 283, 284, 286, 288, 289, 290, 292, 293, 294, 295, 297, 302, 308, 310,
    311, 312, 313, 314, 315, 316, 330, 332, 334, 338, 340, 342, 344, 346, 348, 350, 352, 354, 356,
    358, 360, 362, 363, 364, 365, 366, 368, 370, 372, 374, 376, 400, 401, 402, 404, 405, 406, 410,
    412, 413, 414, 415, 416, 417, 418, 419, 420, 421, 422, 424, 425, 426, 427, 428, 429, 430, 431,
    432, 434, 436, 437, 438, 440, 441, 450, 452, 454, 455, 456, 457, 460, 461, 466, 467, 470, 472,
    502, 505, 510, 514, 515, 520, 525, 528, 530, 536, 537, 539, 540, 541, 542, 543, 544, 545, 546,
    547, 548, 549, 550, 551, 552, 553, 554, 555, 557, 602, 603, 604, 605, 606, 607, 608, 609, 610,
    611, 612, 613, 614, 615, 616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 626, 627, 628, 629,
    630, 631, 632, 633, 634, 635, 636, 637, 638, 639, 640, 641, 642, 643, 645, 646, 647, 648, 649,
    650, 651, 652, 653, 654, 655, 657, 658, 659, 702, 704, 706, 708, 710, 712, 714, 716, 722, 724,
    730, 732, 734, 736, 738, 740, 742, 744, 746, 748, 750, 901, 902, 991, 995,
];

/// MNCs assigned under MCC 460 (China), with the operator.
const CN_MNCS: &[(&str, &str)] = &[
    ("00", "China Mobile"),
    ("01", "China Unicom"),
    ("02", "China Mobile"),
    ("03", "China Telecom"),
    ("04", "China Mobile (Global Star Satellite)"),
    ("05", "China Telecom"),
    ("06", "China Unicom"),
    ("07", "China Mobile"),
    ("08", "China Mobile"),
    ("09", "China Unicom"),
    ("11", "China Telecom"),
    ("15", "China Broadnet"),
    ("20", "China Tietong"),
];

/// A validated IMSI.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Imsi {
    /// Digits only.
    pub digits: String,
    /// Mobile country code.
    pub mcc: String,
    /// Mobile network code (2 digits for MCC 460; 2 assumed elsewhere unless unknown).
    pub mnc: String,
    /// Operator for MCC 460.
    pub operator: Option<&'static str>,
}

/// Why a value is no IMSI.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ImsiError {
    /// A character other than digits and separators.
    Character(char),
    /// Not 14–15 digits.
    Length(usize),
    /// MCC not assigned.
    UnknownMcc(String),
    /// MNC not assigned under MCC 460.
    UnknownChineseMnc(String),
}

impl fmt::Display for ImsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImsiError::Character(c) => write!(f, "unexpected character {c:?}"),
            ImsiError::Length(n) => write!(f, "{n} digits: an IMSI has 14 or 15"),
            ImsiError::UnknownMcc(m) => write!(f, "unknown mobile country code {m}"),
            ImsiError::UnknownChineseMnc(m) => {
                write!(f, "unknown mobile network code {m} for MCC 460")
            }
        }
    }
}

impl Imsi {
    /// Validates an IMSI.
    pub fn parse(s: &str) -> Result<Imsi, ImsiError> {
        let d = digits_of(s).map_err(ImsiError::Character)?;
        if !(14..=15).contains(&d.len()) {
            return Err(ImsiError::Length(d.len()));
        }
        let digits = String::from_utf8(d).expect("ascii digits");
        let mcc = &digits[..3];
        let mcc_n: u16 = mcc.parse().expect("digits");
        if !MCCS.contains(&mcc_n) {
            return Err(ImsiError::UnknownMcc(mcc.to_string()));
        }
        let mnc = &digits[3..5];
        let operator = if mcc_n == 460 {
            match CN_MNCS.iter().find(|(m, _)| *m == mnc) {
                Some((_, op)) => Some(*op),
                None => return Err(ImsiError::UnknownChineseMnc(mnc.to_string())),
            }
        } else {
            None
        };
        Ok(Imsi {
            mcc: mcc.to_string(),
            mnc: mnc.to_string(),
            operator,
            digits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_and_others() {
        assert_eq!(
            Imsi::parse("460001234567890").unwrap().operator,
            Some("China Mobile")
        );
        assert!(Imsi::parse("439011234567890").is_err());
        assert!(Imsi::parse("467 07 1234567890").is_ok());
        assert_eq!(
            Imsi::parse("460991234567890").unwrap_err().to_string(),
            "unknown mobile network code 99 for MCC 460"
        );
    }
}
