#![no_main]
//! Any bytes as resident ID, USCC, IMEI and IMSI: never a panic, and a valid resident ID's
//! normalised form validates to the same facts.
use fanzha_model::{imei::Imei, imsi::Imsi, resident_id, uscc::Uscc, Date};
use libfuzzer_sys::fuzz_target;

const TODAY: Date = Date { year: 2026, month: 11, day: 29 };

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(f) = resident_id::validate(s, TODAY) {
            let again = resident_id::validate(f.number(), TODAY).expect("normalised ID validates");
            assert_eq!(again.birth_date, f.birth_date);
        }
        let _ = Uscc::parse(s);
        let _ = Imei::parse(s);
        let _ = Imsi::parse(s);
    }
});
