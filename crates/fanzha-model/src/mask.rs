//! Masking of personal data for every output and log (R17.1).

/// Masks an ID-like value: keeps the first 6 and last 4 characters of an 18-character
/// resident ID (`110102********0078`), and proportionally less of shorter values, so that the
/// region and the tail stay recognisable to an operator but the person is not identified.
pub fn mask_id(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=4 => (0, 0),
        5..=10 => (1, 1),
        11..=14 => (3, 2),
        _ => (6, 4),
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// Masks a person's name: keeps the first character (`王*`, `李**`).
pub fn mask_name(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        out.push(if i == 0 { c } else { '*' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_mask_matches_contract() {
        assert_eq!(mask_id("110102199101010078"), "110102********0078");
        assert_eq!(mask_name("王强"), "王*");
        assert_eq!(mask_id("abc"), "***");
    }
}
