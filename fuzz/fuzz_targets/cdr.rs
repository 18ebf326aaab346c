#![no_main]
//! Any bytes as call records — an HTTP body on `POST /v1/cdr` or a Kafka message value:
//! parsing in every format and feeding the monitor never panics, and every record is either
//! processed or reported bad.
use fanzha_detect::monitor::{default_rules, Format, Monitor};
use fanzha_monitor::{Pipeline, ReportOnly};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(Monitor::new(default_rules()));
    for format in [Format::Native, Format::Sichuan, Format::JsonLines] {
        let _ = p.ingest_body(data, format, &mut ReportOnly);
    }
    let lines = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let r = p
        .ingest_messages([(0u64, data)], &mut ReportOnly)
        .expect("messages have no header to refuse");
    assert!(r.records + r.bad_records <= lines);
});
