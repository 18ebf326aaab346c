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

/// Most characters of an input value a message repeats.
const ECHO_CHARS: usize = 64;

/// An input value as an error message may repeat it (quoted): any run of 15 or more digits
/// (an ID number, whatever column it was put in) masked as [`mask_id`] masks it, and at
/// most 64 characters, so a refusal never echoes personal data in clear or a huge field
/// whole.
pub fn echo(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == 'X' || **c == 'x')
            .count();
        if run >= 15 {
            out.push_str(&mask_id(&chars[i..i + run].iter().collect::<String>()));
            i += run;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    let n = out.chars().count();
    if n > ECHO_CHARS {
        let cut: String = out.chars().take(ECHO_CHARS).collect();
        format!("{cut:?}… ({n} characters)")
    } else {
        format!("{out:?}")
    }
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
    fn echoed_values_never_show_an_id_number_or_a_huge_field() {
        assert_eq!(echo("unit"), "\"unit\"");
        assert_eq!(echo("110102199101010078"), "\"110102********0078\"");
        assert_eq!(
            echo("id 11010219910101007X here"),
            "\"id 110102********007X here\""
        );
        assert_eq!(
            echo("13500001111"),
            "\"13500001111\"",
            "phone numbers are not masked"
        );
        let long = echo(&"名".repeat(100_000));
        assert!(
            long.ends_with("… (100000 characters)") && long.len() < 300,
            "{long}"
        );
    }

    #[test]
    fn resident_id_mask_matches_contract() {
        assert_eq!(mask_id("110102199101010078"), "110102********0078");
        assert_eq!(mask_name("王强"), "王*");
        assert_eq!(mask_id("abc"), "***");
    }
}
