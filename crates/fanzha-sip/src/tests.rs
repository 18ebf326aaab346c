//! The redirect server's answers, message by message.

use super::*;
use fanzha_model::number::NationalPrefix;
use fanzha_policy::{PatternSet, RuleConfig, Snapshot, SubscriberFlags, Trunk, TrunkKind};

fn engine() -> Arc<Engine> {
    let mut s = Snapshot::new(3);
    s.add_own_block(NationalPrefix::parse("135").unwrap());
    s.add_subscriber(
        fanzha_model::parse("13500001111").unwrap(),
        SubscriberFlags(0),
    );
    for (id, kind) in [
        ("intl-a", TrunkKind::International),
        ("ic-1", TrunkKind::Interconnect),
    ] {
        s.add_trunk(Trunk {
            id: id.into(),
            kind,
            contracted: PatternSet::default(),
            forwarding_approved: false,
            approvals: vec![],
        });
    }
    Arc::new(Engine::new(s, RuleConfig::default()))
}

fn handler(cfg: SipConfig) -> Handler {
    Handler::new(engine(), cfg, None, None)
}

fn config() -> SipConfig {
    SipConfig {
        trunk_map: vec![
            TrunkMapEntry::parse("192.0.2.0/24=intl-a").unwrap(),
            TrunkMapEntry::parse("198.51.100.7=ic-1").unwrap(),
        ],
        // The SBCs: their PAI and tgrp are believed (RFC 3325).
        trusted: vec![
            Cidr::parse("192.0.2.10").unwrap(),
            Cidr::parse("198.51.100.7").unwrap(),
        ],
        ..SipConfig::default()
    }
}

fn invite(from: &str, extra: &str, call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:+8613912345678@fanzha.invalid;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@sbc.invalid;user=phone>;tag=a1\r\n\
         To: <sip:+8613912345678@fanzha.invalid>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn reply(o: Outcome) -> String {
    match o {
        Outcome::Reply(r) => String::from_utf8(r).unwrap(),
        Outcome::Drop => panic!("dropped"),
    }
}

fn src(ip: &str) -> SocketAddr {
    format!("{ip}:5060").parse().unwrap()
}

#[test]
fn allowed_call_is_redirected_to_its_request_uri() {
    let h = handler(config());
    let r = reply(h.handle_datagram(
        &invite("+85291234567", "", "c1"),
        src("192.0.2.10"),
        1_764_464_400,
    ));
    assert!(r.starts_with("SIP/2.0 302 Moved Temporarily\r\n"), "{r}");
    assert!(r.contains("Contact: <sip:+8613912345678@fanzha.invalid;user=phone>\r\n"));
    assert!(r.contains("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-c1\r\n"));
    assert!(r.contains("To: <sip:+8613912345678@fanzha.invalid>;tag=fz"));
    assert!(r.contains("CSeq: 1 INVITE\r\n"));
    assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
}

#[test]
fn spoofed_domestic_number_from_abroad_gets_608_with_redress() {
    let h = handler(config());
    let r = reply(h.handle_datagram(&invite("+8613500009999", "", "c2"), src("192.0.2.10"), 0));
    assert!(r.starts_with("SIP/2.0 608 Rejected\r\n"), "{r}");
    assert!(r.contains("Call-Info: <https://fanzha.invalid/redress>;purpose=jwscard\r\n"));
    assert!(r.contains("X-Fanzha-Rules: intl-domestic-cli\r\n"));
    let h603 = handler(SipConfig {
        use_603_plus: true,
        ..config()
    });
    let r = reply(h603.handle_datagram(&invite("+8613500009999", "", "c3"), src("192.0.2.10"), 0));
    assert!(r.starts_with("SIP/2.0 603 Network Blocked\r\n"), "{r}");
    assert!(r.contains("Reason: SIP;cause=603"));
}

#[test]
fn privacy_id_is_433_and_pai_wins_over_from() {
    let h = handler(config());
    let r = reply(h.handle_datagram(
        &invite(
            "anonymous",
            "Privacy: id\r\nP-Asserted-Identity: <tel:+85291234567>\r\n",
            "c4",
        ),
        src("198.51.100.7"),
        0,
    ));
    assert!(r.starts_with("SIP/2.0 433 Anonymity Disallowed\r\n"), "{r}");
    // PAI is the identity screened: our own number via interconnect.
    let r = reply(h.handle_datagram(
        &invite(
            "+85291234567",
            "P-Asserted-Identity: <sip:+8613500001111@x>\r\n",
            "c5",
        ),
        src("198.51.100.7"),
        0,
    ));
    assert!(r.starts_with("SIP/2.0 608"), "{r}");
}

#[test]
fn tgrp_overrides_the_source_map_and_unknown_trunks_are_refused() {
    let h = handler(config());
    let msg = String::from_utf8(invite("+8618900001234", "", "c6"))
        .unwrap()
        .replace(
            "INVITE sip:+8613912345678@fanzha.invalid;user=phone",
            "INVITE sip:+8613912345678;tgrp=ic-1;trunk-context=x@fanzha.invalid;user=phone",
        );
    let r = reply(h.handle_datagram(msg.as_bytes(), src("192.0.2.10"), 0));
    assert!(
        r.starts_with("SIP/2.0 302"),
        "interconnect, not international: {r}"
    );
    let r = reply(h.handle_datagram(&invite("+85291234567", "", "c7"), src("203.0.113.1"), 0));
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
}

/// RFC 3325's trust domain: a peer outside it cannot choose its trunk with `tgrp` nor its
/// identity with P-Asserted-Identity; a source in no trunk map entry and not trusted is
/// refused (403) or ignored, as configured.
#[test]
fn only_trusted_peers_choose_trunk_and_identity_and_strangers_are_refused() {
    let h = handler(config());
    // 192.0.2.20 is in the international trunk's range but not trusted.
    let untrusted = src("192.0.2.20");
    let msg = String::from_utf8(invite("+8613500001111", "", "t1"))
        .unwrap()
        .replace(
            "INVITE sip:+8613912345678@fanzha.invalid;user=phone",
            "INVITE sip:+8613912345678;tgrp=ic-1;trunk-context=x@fanzha.invalid;user=phone",
        );
    let r = reply(h.handle_datagram(msg.as_bytes(), untrusted, 0));
    assert!(
        r.starts_with("SIP/2.0 608"),
        "tgrp ignored: screened as international, our number presented from abroad: {r}"
    );
    // A PAI from an untrusted peer does not hide the From that is screened.
    let r = reply(h.handle_datagram(
        &invite(
            "+8613500001111",
            "P-Asserted-Identity: <tel:+85291234567>\r\n",
            "t2",
        ),
        untrusted,
        0,
    ));
    assert!(r.starts_with("SIP/2.0 608"), "the From is screened: {r}");
    let r = reply(h.handle_datagram(
        &invite(
            "+8613500001111",
            "P-Asserted-Identity: <tel:+85291234567>\r\n",
            "t3",
        ),
        src("192.0.2.10"),
        0,
    ));
    assert!(
        r.starts_with("SIP/2.0 302"),
        "a trusted peer's PAI is the identity: {r}"
    );
    // Strangers: 403 by default, nothing under `unknown_source = drop`; OPTIONS too.
    let stranger = src("203.0.113.9");
    let r = reply(h.handle_datagram(&invite("+85291234567", "", "t4"), stranger, 0));
    assert!(
        r.starts_with("SIP/2.0 403") && r.contains("not a configured peer"),
        "{r}"
    );
    let quiet = handler(SipConfig {
        unknown_source: UnknownSource::Drop,
        ..config()
    });
    assert!(matches!(
        quiet.handle_datagram(&invite("+85291234567", "", "t5"), stranger, 0),
        Outcome::Drop
    ));
    // A trusted peer outside the trunk map is heard (its tgrp names the trunk).
    let relay = handler(SipConfig {
        trusted: vec![Cidr::parse("10.9.0.0/16").unwrap()],
        ..config()
    });
    let r = reply(relay.handle_datagram(msg.as_bytes(), src("10.9.1.1"), 0));
    assert!(
        r.starts_with("SIP/2.0 608"),
        "ic-1 via tgrp, our own number: {r}"
    );
}

#[test]
fn retransmission_gets_the_same_answer() {
    let h = handler(config());
    let m = invite("+85291234567", "", "c8");
    let a = reply(h.handle_datagram(&m, src("192.0.2.10"), 0));
    let b = reply(h.handle_datagram(&m, src("192.0.2.10"), 5));
    assert_eq!(a, b);
}

#[test]
fn other_methods() {
    let h = handler(config());
    let m = |method: &str| {
        format!("{method} sip:x@fanzha.invalid SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKo\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@fanzha.invalid>\r\nCall-ID: o1\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n")
    };
    assert!(
        reply(h.handle_datagram(m("OPTIONS").as_bytes(), src("192.0.2.10"), 0))
            .starts_with("SIP/2.0 200 OK")
    );
    assert!(
        reply(h.handle_datagram(m("CANCEL").as_bytes(), src("192.0.2.10"), 0))
            .starts_with("SIP/2.0 200 OK")
    );
    assert_eq!(
        h.handle_datagram(m("ACK").as_bytes(), src("192.0.2.10"), 0),
        Outcome::Drop
    );
    assert!(
        reply(h.handle_datagram(m("BYE").as_bytes(), src("192.0.2.10"), 0))
            .starts_with("SIP/2.0 405")
    );
    assert!(
        reply(h.handle_datagram(m("FROBNICATE").as_bytes(), src("192.0.2.10"), 0))
            .starts_with("SIP/2.0 501")
    );
    let bad = m("OPTIONS").replace("CSeq: 2 OPTIONS", "CSeq: 2 INVITE");
    assert!(
        reply(h.handle_datagram(bad.as_bytes(), src("192.0.2.10"), 0)).starts_with("SIP/2.0 400")
    );
    assert_eq!(
        h.handle_datagram(b"garbage", src("192.0.2.10"), 0),
        Outcome::Drop
    );
    assert_eq!(
        h.handle_datagram(b"SIP/2.0 200 OK\r\n\r\n", src("192.0.2.10"), 0),
        Outcome::Drop
    );
}

#[test]
fn stream_framing_waits_for_the_whole_message() {
    let h = handler(config());
    let m = invite("+85291234567", "", "c9");
    let (used, o) = h.handle_stream(&m[..m.len() - 10], src("192.0.2.10"), 0);
    assert_eq!((used, o), (0, Outcome::Drop));
    let mut two = m.clone();
    two.extend_from_slice(&invite("+85291234567", "", "c10"));
    let (used, o) = h.handle_stream(&two, src("192.0.2.10"), 0);
    assert_eq!(used, m.len());
    assert!(reply(o).starts_with("SIP/2.0 302"));
}

#[test]
fn packed_decisions_render_as_the_log_wrote_them_before() {
    let mut rules = fanzha_policy::RuleSet::EMPTY;
    rules.insert(fanzha_policy::RuleId::ALL[3]);
    rules.insert(fanzha_policy::RuleId::ALL[7]);
    let v = fanzha_policy::Verdict {
        action: fanzha_policy::Action::Block,
        code: 608,
        rules,
        shadow: fanzha_policy::RuleSet::EMPTY,
        strip_generic_number: true,
        generation: 42,
    };
    let src: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    let fields: [&[u8]; 4] = [
        b"a\"b\\c@host",
        b"intl-a",
        "+8613500001111".as_bytes(),
        b"13912345678",
    ];
    let d = pack_decision(1_795_917_600, &v, true, src, &fields).unwrap();
    assert_eq!((d.ts, d.generation), (1_795_917_600, 42));
    let (call, verdict) = (d.render)(&d.data[..d.len as usize]);
    assert_eq!(call, call_json(&fields, true, &src.to_string()));
    assert_eq!(verdict, verdict_json(fields[0], &v));
    let parsed: serde_json::Value = serde_json::from_str(&call).unwrap();
    assert_eq!(parsed["id"], "a\"b\\c@host");
    let parsed: serde_json::Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!(parsed["generation"], 42);
    assert_eq!(parsed["code"], 608);
    // A Call-ID too long to pack is refused by the packer (the caller renders in place).
    let long = vec![b'x'; 600];
    let fields: [&[u8]; 4] = [&long, b"", b"", b""];
    assert!(pack_decision(0, &v, false, src, &fields).is_none());
}
