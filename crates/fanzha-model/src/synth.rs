//! Valid synthetic identifiers for generators, tests and benchmarks (never real people):
//! the check characters are computed, so the values pass the validators.

use crate::resident_id::check_char;

const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// An 18-character resident ID for division `region` (e.g. 110101), birth date and order
/// number `seq` (0–999; odd = male).
pub fn resident_id(region: u32, year: u16, month: u8, day: u8, seq: u16) -> String {
    let first17 = format!("{region:06}{year:04}{month:02}{day:02}{:03}", seq % 1000);
    let c = check_char(first17.as_bytes());
    format!("{first17}{c}")
}

/// The `n`-th synthetic resident ID: spread over a few real divisions and birth dates.
pub fn nth_resident_id(n: u64) -> String {
    const REGIONS: [u32; 8] = [
        110101, 110105, 310115, 440305, 510104, 330106, 420106, 610113,
    ];
    let region = REGIONS[(n % 8) as usize];
    let k = n / 8;
    let year = 1950 + (k % 55) as u16;
    let month = 1 + ((k / 55) % 12) as u8;
    let day = 1 + ((k / 660) % 28) as u8;
    let seq = ((k / 18_480) % 1000) as u16;
    resident_id(region, year, month, day, seq)
}

/// A valid USCC for an enterprise (authority 9, type 1) in `region` with organisation
/// number `n` (the 8-digit body of its GB 11714 code).
pub fn uscc(region: u32, n: u32) -> String {
    let body = format!("{:08}", n % 100_000_000);
    let osum: u32 = body
        .bytes()
        .zip(ORG_WEIGHTS)
        .map(|(c, w)| (c - b'0') as u32 * w)
        .sum();
    let ocheck = match 11 - osum % 11 {
        10 => 'X',
        11 => '0',
        v => (b'0' + v as u8) as char,
    };
    let first17 = format!("91{region:06}{body}{ocheck}");
    let sum: u32 = first17
        .bytes()
        .zip(USCC_WEIGHTS)
        .map(|(c, w)| {
            USCC_ALPHABET
                .iter()
                .position(|&a| a == c)
                .expect("in alphabet") as u32
                * w
        })
        .sum();
    let check = USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char;
    format!("{first17}{check}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resident_id::validate;
    use crate::uscc::Uscc;
    use crate::Date;

    #[test]
    fn synthetic_identifiers_validate() {
        let today = Date {
            year: 2026,
            month: 11,
            day: 29,
        };
        for n in 0..2000 {
            let id = nth_resident_id(n);
            assert!(validate(&id, today).is_ok(), "{id}");
            let u = uscc(110000 + (n as u32 % 7) * 100, n as u32 * 7919);
            assert!(Uscc::parse(&u).is_ok(), "{u}");
        }
        assert_ne!(nth_resident_id(1), nth_resident_id(9));
    }
}
