#![no_main]
//! Any bytes as a phone number: parse, classify, and check that the E.164 form re-parses to
//! the same number (normalisation is idempotent).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = fanzha_model::parse(s) {
            let info = n.classify();
            let again = fanzha_model::parse(&n.e164()).expect("E.164 form parses");
            assert_eq!(again, n);
            assert_eq!(again.classify(), info);
        }
    }
});
