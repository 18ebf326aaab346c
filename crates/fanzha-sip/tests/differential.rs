//! Differential test: the strict zero-copy extractor and the full parser read the same
//! decision inputs from generated INVITEs (header order, name case, compact forms, folding,
//! several Vias per line, optional identity/privacy/diversion/IMEI/tgrp), and from the
//! RFC 4475 messages that both accept.

use fanzha_sip::{full, scan};
use proptest::prelude::*;

fn case_variant(name: &str, pick: u8) -> String {
    match pick % 3 {
        0 => name.to_string(),
        1 => name.to_ascii_lowercase(),
        _ => name.to_ascii_uppercase(),
    }
}

prop_compose! {
    fn invite()(
        caller in "\\+86(13[5-9]|18[019])[0-9]{8}",
        callee in "(\\+86)?139[0-9]{8}",
        pai in proptest::option::of("\\+8613[5-9][0-9]{8}"),
        privacy in any::<bool>(),
        diversion in any::<bool>(),
        generic in any::<bool>(),
        imei in proptest::option::of("[0-9]{8}-[0-9]{6}-[0-9]"),
        tgrp in proptest::option::of("[a-z]{2,5}-[0-9]{1,3}"),
        vias in 1usize..5,
        vias_one_line in any::<bool>(),
        compact in any::<bool>(),
        cases in proptest::collection::vec(any::<u8>(), 12),
        fold in any::<bool>(),
        order in proptest::collection::vec(any::<u16>(), 12),
        call_id in "[a-zA-Z0-9]{4,20}@[a-z]{3,8}",
    ) -> Vec<u8> {
        let uri = match &tgrp {
            Some(t) => format!("sip:{callee};tgrp={t};trunk-context=example.net@gw.example;user=phone"),
            None => format!("sip:{callee}@gw.example;user=phone"),
        };
        let name = |long: &str, short: &str, i: usize| if compact && !short.is_empty() { short.to_string() } else { case_variant(long, cases[i]) };
        let mut headers: Vec<String> = Vec::new();
        let via_values: Vec<String> = (0..vias).map(|i| format!("SIP/2.0/UDP 192.0.2.{i}:5060;branch=z9hG4bK{i}x")).collect();
        if vias_one_line {
            headers.push(format!("{}: {}", name("Via", "v", 0), via_values.join(", ")));
        } else {
            headers.extend(via_values.iter().map(|v| format!("{}: {v}", name("Via", "v", 0))));
        }
        let from_value = if fold { format!("\"Caller\"\r\n <sip:{caller}@sbc.example;user=phone>;tag=9") } else { format!("<sip:{caller}@sbc.example;user=phone>;tag=9") };
        headers.push(format!("{}: {from_value}", name("From", "f", 1)));
        headers.push(format!("{}: <sip:{callee}@gw.example>", name("To", "t", 2)));
        headers.push(format!("{}: {call_id}", name("Call-ID", "i", 3)));
        headers.push("CSeq: 7 INVITE".to_string());
        headers.push(format!("{}: 70", case_variant("Max-Forwards", cases[4])));
        if let Some(p) = &pai {
            headers.push(format!("{}: <tel:{p}>", case_variant("P-Asserted-Identity", cases[5])));
        }
        if privacy {
            headers.push(format!("{}: id", case_variant("Privacy", cases[6])));
        }
        if diversion {
            headers.push(format!("{}: <sip:+8613900000000@x>;reason=unconditional", case_variant("Diversion", cases[7])));
        }
        if generic {
            headers.push(format!("{}: +8613600000000", case_variant("P-Generic-Number", cases[8])));
        }
        let contact = match &imei {
            Some(i) => format!("<sip:ue@192.0.2.9>;+sip.instance=\"<urn:gsma:imei:{i}>\""),
            None => "<sip:ue@192.0.2.9>".to_string(),
        };
        headers.push(format!("{}: {contact}", name("Contact", "m", 9)));
        headers.push(format!("{}: a subject\r\n  that is folded", case_variant("Subject", cases[10])));
        // Shuffle everything after the Vias (Via order is significant and kept).
        let first_other = headers.iter().position(|h| !h.to_ascii_lowercase().starts_with("via") && !h.starts_with("v:")).unwrap_or(0);
        let mut rest: Vec<(u16, String)> = headers.split_off(first_other).into_iter().enumerate().map(|(i, h)| (order[i % order.len()], h)).collect();
        rest.sort_by_key(|(k, _)| *k);
        headers.extend(rest.into_iter().map(|(_, h)| h));
        let mut m = format!("INVITE {uri} SIP/2.0\r\n");
        for h in headers {
            m.push_str(&h);
            m.push_str("\r\n");
        }
        m.push_str(&format!("{}: 0\r\n\r\n", name("Content-Length", "l", 11)));
        m.into_bytes()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn extractor_and_full_parser_agree(msg in invite()) {
        let strict = scan::scan(&msg, false, "P-Generic-Number").map_err(|e| TestCaseError::fail(format!("{e:?}: {}", String::from_utf8_lossy(&msg))))?;
        let full = full::parse(&msg).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&msg))))?;
        prop_assert_eq!(full::decision_view(&full, "P-Generic-Number"), full::decision_view_of_scan(&strict));
    }
}

#[test]
fn agree_on_every_torture_message_both_accept() {
    let dir = format!("{}/tests/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut compared = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("dat") {
            continue;
        }
        let m = std::fs::read(&p).unwrap();
        if let (Ok(s), Ok(f)) = (scan::scan(&m, false, "P-Generic-Number"), full::parse(&m)) {
            let (a, b) = (
                full::decision_view(&f, "P-Generic-Number"),
                full::decision_view_of_scan(&s),
            );
            // Folded values keep their line breaks in the zero-copy view; compare unfolded.
            let unfold = |v: &full::DecisionView| full::DecisionView {
                call_id: v.call_id.split_whitespace().collect::<Vec<_>>().join(" "),
                ..v.clone()
            };
            assert_eq!(unfold(&a), unfold(&b), "{}", p.display());
            compared += 1;
        }
    }
    assert!(compared >= 15, "only {compared} messages compared");
}
