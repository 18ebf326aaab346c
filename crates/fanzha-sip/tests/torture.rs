//! RFC 4475 torture messages against the redirect server: valid ones are handled (answered,
//! or absorbed as ACK), invalid ones answered 400/505 or dropped when no response can be
//! addressed — and nothing ever panics. Plus random bytes and mutations of real messages.

use fanzha_policy::{PatternSet, RuleConfig, Snapshot, Trunk, TrunkKind};
use fanzha_screen::Engine;
use fanzha_sip::{Handler, Outcome, SipConfig, TrunkMapEntry};
use proptest::prelude::*;
use std::sync::Arc;

fn handler() -> Handler {
    let mut s = Snapshot::new(1);
    s.add_trunk(Trunk {
        id: "t".into(),
        kind: TrunkKind::Interconnect,
        contracted: PatternSet::default(),
        forwarding_approved: false,
        approvals: vec![],
    });
    let cfg = SipConfig {
        trunk_map: vec![TrunkMapEntry::parse("0.0.0.0/0=t").unwrap()],
        ..SipConfig::default()
    };
    Handler::new(
        Arc::new(Engine::new(s, RuleConfig::default())),
        cfg,
        None,
        None,
    )
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn first_line(o: &Outcome) -> String {
    match o {
        Outcome::Reply(r) => String::from_utf8_lossy(r)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Outcome::Drop => "DROP".into(),
    }
}

const SRC: &str = "192.0.2.1:5060";

#[test]
fn rfc4475_valid_messages_are_handled() {
    let h = handler();
    for name in [
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "badbranch",
        "unkscm",
        "novelsc",
        "unksm2",
        "bext01",
        "cparam01",
        "cparam02",
        "regescrt",
        "sdp01",
        "inv2543",
    ] {
        let o = h.handle_datagram(&corpus(name), SRC.parse().unwrap(), 0);
        let line = first_line(&o);
        assert!(!line.contains(" 400 ") && line != "DROP", "{name}: {line}");
    }
    // The responses in the corpus (unreason, noreason) are never answered.
    for name in ["unreason", "noreason"] {
        assert_eq!(
            h.handle_datagram(&corpus(name), SRC.parse().unwrap(), 0),
            Outcome::Drop,
            "{name}"
        );
    }
}

#[test]
fn rfc4475_invalid_messages_get_400_505_or_are_dropped() {
    let h = handler();
    for name in [
        "clerr",
        "ncl",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "scalar02",
        "mismatch01",
        "mismatch02",
        "badvers",
        "insuf",
        "baddn",
    ] {
        let line = first_line(&h.handle_datagram(&corpus(name), SRC.parse().unwrap(), 0));
        assert!(
            line == "DROP" || line.starts_with("SIP/2.0 400") || line.starts_with("SIP/2.0 505"),
            "{name}: {line}"
        );
    }
    assert!(
        first_line(&h.handle_datagram(&corpus("badvers"), SRC.parse().unwrap(), 0))
            .starts_with("SIP/2.0 505")
    );
}

#[test]
fn every_corpus_message_is_survived_on_udp_and_tcp() {
    let h = handler();
    let dir = format!("{}/tests/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("dat") {
            let m = std::fs::read(&p).unwrap();
            let _ = h.handle_datagram(&m, SRC.parse().unwrap(), 0);
            let _ = h.handle_stream(&m, SRC.parse().unwrap(), 0);
            n += 1;
        }
    }
    assert_eq!(n, 50);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let h = handler();
        let _ = h.handle_datagram(&data, SRC.parse().unwrap(), 0);
        let _ = h.handle_stream(&data, SRC.parse().unwrap(), 0);
    }

    #[test]
    fn mutated_invites_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let h = handler();
        let mut m = corpus("wsinv");
        let p = pos % m.len();
        m[p] = byte;
        m.truncate(m.len() - cut % m.len());
        let _ = h.handle_datagram(&m, SRC.parse().unwrap(), 0);
        let _ = h.handle_stream(&m, SRC.parse().unwrap(), 0);
    }
}
