#![no_main]
//! Any bytes as a SIP datagram or stream: the strict extractor and the full parser never
//! panic, and whenever both accept a message they agree on what a decision reads from it.
use fanzha_sip::{full, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = scan::scan(data, false, "P-Generic-Number");
    let _ = scan::scan(data, true, "P-Generic-Number");
    if let (Ok(s), Ok(f)) = (strict, full::parse(data)) {
        assert_eq!(full::decision_view(&f, "P-Generic-Number"), full::decision_view_of_scan(&s));
    }
});
