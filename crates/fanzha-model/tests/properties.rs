//! Property tests: normalisation is idempotent, every written form of a number is the same
//! number, and no input — however garbled — makes a parser panic.

use fanzha_model::imei::Imei;
use fanzha_model::imsi::Imsi;
use fanzha_model::resident_id::ResidentId;
use fanzha_model::uscc::Uscc;
use fanzha_model::{parse, Date};
use proptest::prelude::*;

const TODAY: Date = Date {
    year: 2026,
    month: 11,
    day: 29,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalisation_is_idempotent(s in "[+]?[0-9 ()-]{3,24}") {
        if let Ok(n) = parse(&s) {
            let again = parse(&n.e164()).expect("an E.164 form parses");
            prop_assert_eq!(again, n);
            prop_assert_eq!(again.e164(), n.e164());
            // Classification is a pure function of the number.
            prop_assert_eq!(n.classify(), again.classify());
        }
    }

    #[test]
    fn every_form_of_a_mobile_is_the_same_number(seg in "1[3-9][0-9]", rest in "[0-9]{8}") {
        let national = format!("{seg}{rest}");
        let n = parse(&national).unwrap();
        prop_assume!(n.classify().valid);
        for form in [
            format!("+86{national}"),
            format!("0086{national}"),
            format!("86{national}"),
            format!("+86 {} {} {}", &national[..3], &national[3..7], &national[7..]),
            format!("17951{national}"),
            format!("12593 {national}"),
        ] {
            prop_assert_eq!(parse(&form).unwrap(), n, "{}", form);
        }
    }

    #[test]
    fn every_form_of_a_fixed_line_is_the_same_number(local in "[2-79][0-9]{7}") {
        let n = parse(&format!("010{local}")).unwrap();
        prop_assert!(n.classify().valid);
        for form in [
            format!("+8610{local}"),
            format!("008610{local}"),
            format!("(010) {}-{}", &local[..4], &local[4..]),
            format!("17951 010 {local}"),
            format!("+86 0 10 {local}"),
        ] {
            prop_assert_eq!(parse(&form).unwrap(), n, "{}", form);
        }
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,40}") {
        if let Ok(n) = parse(&s) {
            let _ = n.classify();
        }
        let _ = ResidentId::parse(&s, TODAY);
        let _ = Uscc::parse(&s);
        let _ = Imei::parse(&s);
        let _ = Imsi::parse(&s);
    }

    #[test]
    fn random_digits_never_panic(s in "[0-9xX+ ]{0,40}") {
        if let Ok(n) = parse(&s) {
            let _ = n.classify();
            let _ = fanzha_model::number::mobile_home_city(n);
        }
        let _ = ResidentId::parse(&s, TODAY);
        let _ = Uscc::parse(&s);
    }

    #[test]
    fn valid_resident_ids_round_trip(region in prop::sample::select(vec!["110101", "440305", "510104", "650102"]),
                                     y in 1930u16..2020, m in 1u8..=12, d in 1u8..=28, seq in 0u16..1000) {
        let first17 = format!("{region}{y:04}{m:02}{d:02}{seq:03}");
        let check = fanzha_model::resident_id::check_char(first17.as_bytes());
        let id = ResidentId::parse(&format!("{first17}{check}"), TODAY).unwrap();
        prop_assert_eq!(id.birth_date, Date::new(y, m, d).unwrap());
        // Any other check character is refused with the right one named.
        let wrong = if check == '0' { '1' } else { '0' };
        let err = ResidentId::parse(&format!("{first17}{wrong}"), TODAY).unwrap_err();
        prop_assert_eq!(err.to_string(), format!("check character should be {check}"));
    }
}
