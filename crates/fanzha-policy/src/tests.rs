//! Every rule with positive and negative cases, including the tricky number forms, roaming
//! and porting exceptions, quota boundaries and window edges.

use super::*;
use fanzha_model::number::NationalPrefix;
use fanzha_model::parse;

fn n(s: &str) -> PhoneNumber {
    parse(s).unwrap()
}

fn pattern(items: &[&str]) -> PatternSet {
    let mut p = PatternSet::default();
    for i in items {
        assert!(p.add_pattern(&if i.ends_with('*') {
            i.to_string()
        } else {
            n(i).e164()
        }));
    }
    p
}

fn trunk(id: &str, kind: TrunkKind, contracted: &[&str], forwarding: bool) -> Trunk {
    Trunk {
        id: id.into(),
        kind,
        contracted: pattern(contracted),
        forwarding_approved: forwarding,
        approvals: vec![],
    }
}

/// 2026-11-30T09:00:00+08:00 plus `secs`.
fn at(secs: i64) -> i64 {
    1_764_464_400 + secs
}

fn province() -> Snapshot {
    let mut s = Snapshot::new(7);
    for p in ["135", "136", "1062", "4006", "1440"] {
        s.add_own_block(NationalPrefix::parse(p).unwrap());
    }
    s.add_subscriber(n("13500001111"), SubscriberFlags(0));
    s.add_subscriber(n("13500002222"), SubscriberFlags(SubscriberFlags::ROAMING));
    s.add_subscriber(
        n("13500003333"),
        SubscriberFlags(SubscriberFlags::SUSPENDED),
    );
    s.add_subscriber(
        n("13500004444"),
        SubscriberFlags(SubscriberFlags::TERMINATED),
    );
    s.add_subscriber(n("1440123456789"), SubscriberFlags(SubscriberFlags::IOT));
    s.add_subscriber(n("1440123456790"), SubscriberFlags(SubscriberFlags::IOT));
    s.add_iot_profile(
        n("1440123456789"),
        IotProfile {
            voice: false,
            sms: true,
            bound_imei: Some(35417803685978),
            allowed_callees: pattern(&["10086", "95*"]),
        },
    );
    s.add_ported_out(n("13600009999"));
    s.add_official(n("01062345000"));
    s.add_blocked(n("18900001234"), None);
    s.add_blocked(n("18900001235"), Some(at(3600)));
    s.add_key_service(n("4006001000"), KeyServiceType::N400);
    s.add_key_service(n("4006002000"), KeyServiceType::N400);
    s.add_key_service(n("01062340000"), KeyServiceType::Yihaotong);
    s.add_trunk(trunk("intl", TrunkKind::International, &[], false));
    s.add_trunk(trunk("ic", TrunkKind::Interconnect, &[], false));
    s.add_trunk(trunk(
        "vl",
        TrunkKind::VoiceLine,
        &[
            "1062345*",
            "4006001000",
            "4006002000",
            "01062340000",
            "95555",
        ],
        false,
    ));
    s.add_trunk(trunk("vl-fwd", TrunkKind::VoiceLine, &["1062345*"], true));
    s.add_trunk(trunk("acc", TrunkKind::Access, &[], false));
    let approval = Approval {
        key: "+864006001000".into(),
        callers: pattern(&["4006001000"]),
        windows: vec![(9 * 3600, 17 * 3600)],
        max_per_hour: Some(2),
        max_per_day: Some(3),
        valid_until: Some(at(86_400 * 365)),
    };
    assert!(s.add_approval(approval, Some(n("4006001000")), ""));
    let night = Approval {
        key: "vl-fwd".into(),
        callers: pattern(&["1062345*"]),
        windows: vec![(22 * 3600, 6 * 3600)],
        max_per_hour: None,
        max_per_day: None,
        valid_until: None,
    };
    assert!(s.add_approval(night, None, "vl-fwd"));
    s
}

struct Bench {
    s: Snapshot,
    c: Counters,
    cfg: RuleConfig,
}

impl Bench {
    fn new() -> Bench {
        let s = province();
        let c = Counters::new(&s);
        Bench {
            s,
            c,
            cfg: RuleConfig::default(),
        }
    }

    fn call(
        &mut self,
        trunk: &str,
        caller: &str,
        ts: i64,
        f: impl FnOnce(&mut CallAttempt),
    ) -> Verdict {
        let mut call = CallAttempt {
            ts,
            trunk: self.s.trunk(trunk).unwrap(),
            caller: Caller::from_presented(caller),
            restricted: false,
            callee: Some(n("13912345678")),
            has_generic_number: false,
            has_diversion: false,
            service: Service::Voice,
            imei: None,
        };
        f(&mut call);
        evaluate(&self.s, &call, &mut self.c, &self.cfg)
    }

    fn rules(&mut self, trunk: &str, caller: &str) -> Vec<&'static str> {
        names(self.call(trunk, caller, at(0), |_| {}))
    }
}

fn names(v: Verdict) -> Vec<&'static str> {
    v.rules.iter().map(RuleId::as_str).collect()
}

#[test]
fn cli_missing_only_for_empty_and_invalid_only_for_nonempty() {
    let mut b = Bench::new();
    assert_eq!(b.rules("intl", ""), ["cli-missing"]);
    assert_eq!(b.rules("ic", "  "), ["cli-missing"]);
    assert_eq!(b.rules("vl", ""), ["cli-missing"]);
    assert!(b.rules("acc", "").is_empty());
    let v = b.call("ic", "abc", at(0), |_| {});
    assert_eq!(names(v), ["cli-invalid"]);
    assert_eq!(v.code, 403);
    assert_eq!(b.rules("ic", "+33 1 42 68 53 00"), Vec::<&str>::new());
    assert_eq!(b.rules("ic", "+999 1234"), ["cli-invalid"]);
    assert_eq!(b.rules("ic", "15401234567"), ["cli-invalid"]);
}

#[test]
fn withheld_on_international_and_interconnect_only() {
    let mut b = Bench::new();
    let v = b.call("intl", "+33142685300", at(0), |c| c.restricted = true);
    assert_eq!((names(v), v.code), (vec!["cli-withheld"], 433));
    let v = b.call("acc", "13500001111", at(0), |c| c.restricted = true);
    assert!(v.rules.is_empty());
}

#[test]
fn domestic_numbers_from_abroad_in_every_form_except_roaming_subscribers() {
    let mut b = Bench::new();
    for form in [
        "+8613500001111",
        "008613500001111",
        "8613500001111",
        "013500001111",
        "13500001111",
        "17951 13500001111",
        "+86 10 6234 5678",
    ] {
        let v = b.call("intl", form, at(0), |_| {});
        assert_eq!(names(v), ["intl-domestic-cli"], "{form}");
        assert_eq!(v.code, 608);
    }
    assert!(
        b.rules("intl", "+8613500002222").is_empty(),
        "roaming subscriber"
    );
    assert!(b.rules("intl", "+85291234567").is_empty());
    assert_eq!(
        b.rules("intl", "+8610 6234 5000"),
        ["intl-domestic-cli", "intl-spoofed-official"]
    );
}

#[test]
fn own_numbers_on_interconnect_unless_ported_out() {
    let mut b = Bench::new();
    assert_eq!(b.rules("ic", "13600001234"), ["interconnect-own-cli"]);
    assert_eq!(b.rules("ic", "+86 136 0000 1234"), ["interconnect-own-cli"]);
    assert!(b.rules("ic", "13600009999").is_empty(), "ported out");
    assert!(b.rules("ic", "18900005678").is_empty());
    assert!(b
        .rules("vl", "13600001234")
        .contains(&"voice-line-unauthenticated"));
}

#[test]
fn generic_number_is_stripped_not_blocked() {
    let mut b = Bench::new();
    let v = b.call("ic", "18900005678", at(0), |c| c.has_generic_number = true);
    assert_eq!(
        (v.action, names(v), v.strip_generic_number),
        (Action::Allow, vec!["generic-number-strip"], true)
    );
    let v = b.call("vl", "01062345678", at(0), |c| c.has_generic_number = true);
    assert!(!v.strip_generic_number);
}

#[test]
fn voice_lines_present_only_contracted_own_numbers() {
    let mut b = Bench::new();
    assert!(b.rules("vl", "01062345678").is_empty());
    assert!(b.rules("vl", "+86 10 6234 5678").is_empty());
    assert_eq!(b.rules("vl", "01062999999"), ["voice-line-unauthenticated"]);
    assert_eq!(
        b.rules("vl", "18900005678"),
        ["voice-line-unauthenticated", "foreign-number-on-trunk"]
    );
}

/// R8.1 across replicas: two screening nodes, each counting only what it allowed, split
/// every quota, so together they never allow more than the approval (here 3 a day, split
/// 2 + 1), however the SBC spreads the calls.
#[test]
fn replicas_split_the_quota_and_never_exceed_it_together() {
    let mut a = Bench::new();
    let mut b = Bench::new();
    a.cfg.replica = Replica { index: 0, count: 2 };
    b.cfg.replica = Replica { index: 1, count: 2 };
    let mut allowed = 0;
    for i in 0..12 {
        // Spread across the day's window (09:00-17:00 China time), alternating nodes.
        let node = if i % 2 == 0 { &mut a } else { &mut b };
        let v = node.call("vl", "4006001000", at(i * 40 * 60), |_| {});
        if v.action == Action::Allow {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "the daily quota of 3, across both replicas");
    assert_eq!(Replica { index: 0, count: 2 }.share(3), 2);
    assert_eq!(Replica { index: 1, count: 2 }.share(3), 1);
    assert_eq!(Replica { index: 2, count: 3 }.share(10), 3);
    assert_eq!(Replica::default().share(7), 7);
}

#[test]
fn outbound_quota_window_and_approval() {
    let mut b = Bench::new();
    let v1 = b.call("vl", "4006001000", at(30 * 60), |_| {});
    let v2 = b.call("vl", "4006001000", at(40 * 60), |_| {});
    let v3 = b.call("vl", "4006001000", at(50 * 60), |_| {});
    assert_eq!((v1.action, v2.action), (Action::Allow, Action::Allow));
    assert_eq!((names(v3), v3.code), (vec!["outbound-over-frequency"], 403));
    // The rolling hour: 60 minutes after the first call, one slot is free again.
    assert_eq!(
        b.call("vl", "4006001000", at(90 * 60), |_| {}).action,
        Action::Allow
    );
    // Daily quota 3 is now used up.
    assert_eq!(
        names(b.call("vl", "4006001000", at(5 * 3600), |_| {})),
        ["outbound-over-frequency"]
    );
    // Window edges: 17:00 excluded, 08:59:59 excluded.
    let mut b = Bench::new();
    assert_eq!(
        names(b.call("vl", "4006001000", at(8 * 3600), |_| {})),
        ["outbound-outside-window"]
    );
    assert_eq!(
        names(b.call("vl", "4006001000", at(-1), |_| {})),
        ["outbound-outside-window"]
    );
    assert_eq!(
        b.call("vl", "4006001000", at(8 * 3600 - 1), |_| {}).action,
        Action::Allow
    );
    assert_eq!(
        b.call("vl", "4006001000", at(0), |_| {}).action,
        Action::Allow
    );
    // Blocked calls are not counted: only two allowed so far today.
    assert_eq!(
        b.call("vl", "4006001000", at(3 * 3600), |_| {}).action,
        Action::Allow
    );
    // A 400 number without any approval; a 95 service number over a voice line.
    let mut b = Bench::new();
    assert_eq!(
        names(b.call("vl", "4006002000", at(0), |_| {})),
        ["outbound-not-approved"]
    );
    assert_eq!(
        names(b.call("vl", "95555", at(0), |_| {})),
        ["foreign-number-on-trunk", "outbound-not-approved"]
    );
    // Expired approval.
    assert_eq!(
        names(b.call("vl", "4006001000", at(86_400 * 366), |_| {})),
        ["outbound-not-approved"]
    );
}

#[test]
fn window_crossing_midnight() {
    let mut b = Bench::new();
    // vl-fwd: 22:00-06:00 for 1062345*; 09:00 is outside, 23:00 and 05:59:59 inside, 06:00 outside.
    assert_eq!(
        names(b.call("vl-fwd", "01062345678", at(0), |_| {})),
        ["outbound-outside-window"]
    );
    assert_eq!(
        b.call("vl-fwd", "01062345678", at(14 * 3600), |_| {})
            .action,
        Action::Allow
    );
    assert_eq!(
        b.call("vl-fwd", "01062345678", at(21 * 3600 - 1), |_| {})
            .action,
        Action::Allow
    );
    assert_eq!(
        names(b.call("vl-fwd", "01062345678", at(21 * 3600), |_| {})),
        ["outbound-outside-window"]
    );
}

#[test]
fn yihaotong_never_calls_out() {
    let mut b = Bench::new();
    assert_eq!(b.rules("vl", "01062340000"), ["yihaotong-outbound"]);
    assert_eq!(b.rules("acc", "010 6234 0000"), ["yihaotong-outbound"]);
}

#[test]
fn forwarding_needs_approval_on_voice_lines() {
    let mut b = Bench::new();
    let v = b.call("vl", "01062345678", at(0), |c| c.has_diversion = true);
    assert_eq!(names(v), ["forwarding-not-approved"]);
    let v = b.call("vl-fwd", "01062345678", at(14 * 3600), |c| {
        c.has_diversion = true
    });
    assert!(v.rules.is_empty());
}

#[test]
fn iot_profiles() {
    let mut b = Bench::new();
    let v = b.call("acc", "1440123456789", at(0), |c| {
        c.callee = Some(n("10086"))
    });
    assert_eq!(names(v), ["iot-voice-disabled"]);
    let v = b.call("acc", "1440123456789", at(0), |c| {
        c.service = Service::Sms;
        c.callee = Some(n("95588"));
    });
    assert!(v.rules.is_empty());
    let v = b.call("acc", "1440123456789", at(0), |c| {
        c.service = Service::Sms;
        c.callee = Some(n("13912345678"));
        c.imei = Some(35417803685979);
    });
    assert_eq!(names(v), ["iot-callee-not-allowed", "iot-imei-mismatch"]);
    // No profile: voice and SMS disabled by default (R4.3).
    let v = b.call("acc", "1440123456790", at(0), |c| c.service = Service::Sms);
    assert_eq!(names(v), ["iot-sms-disabled"]);
}

#[test]
fn suspended_cards_and_blocklist() {
    let mut b = Bench::new();
    assert_eq!(b.rules("acc", "13500003333"), ["subscriber-suspended"]);
    assert_eq!(b.rules("acc", "13500004444"), ["subscriber-suspended"]);
    assert!(b.rules("acc", "13500001111").is_empty());
    assert!(b
        .rules("ic", "13500003333")
        .contains(&"interconnect-own-cli"));
    let v = b.call("ic", "18900001234", at(0), |_| {});
    assert_eq!((names(v), v.code), (vec!["number-blocklisted"], 608));
    assert_eq!(b.rules("acc", "+86 189 0000 1234"), ["number-blocklisted"]);
    // Expired entries no longer block.
    assert_eq!(
        names(b.call("ic", "18900001235", at(3599), |_| {})),
        ["number-blocklisted"]
    );
    assert!(b
        .call("ic", "18900001235", at(3600), |_| {})
        .rules
        .is_empty());
}

#[test]
fn code_is_that_of_the_first_blocking_rule_and_shadow_rules_do_not_block() {
    let mut b = Bench::new();
    let v = b.call("intl", "+8618900001234", at(0), |c| c.restricted = true);
    assert_eq!(
        names(v),
        ["cli-withheld", "intl-domestic-cli", "number-blocklisted"]
    );
    assert_eq!(v.code, 433);
    b.cfg.shadow.insert(RuleId::CliWithheld);
    let v = b.call("intl", "+8618900001234", at(0), |c| c.restricted = true);
    assert_eq!(v.code, 608);
    assert!(v.shadow.contains(RuleId::CliWithheld));
    b.cfg.shadow = [
        RuleId::IntlDomesticCli,
        RuleId::CliWithheld,
        RuleId::NumberBlocklisted,
    ]
    .into_iter()
    .collect();
    let v = b.call("intl", "+8618900001234", at(0), |c| c.restricted = true);
    assert_eq!((v.action, v.code), (Action::Allow, 302));
    assert_eq!(v.rules.iter().count(), 3);
    assert_eq!(v.generation, 7);
}

#[test]
fn counters_survive_a_new_generation() {
    let mut b = Bench::new();
    b.call("vl", "4006001000", at(0), |_| {});
    b.call("vl", "4006001000", at(60), |_| {});
    let mut next = province();
    next.generation = 8;
    let c = std::mem::take(&mut b.c).rebind(&b.s, &next);
    b.s = next;
    b.c = c;
    assert_eq!(
        names(b.call("vl", "4006001000", at(120), |_| {})),
        ["outbound-over-frequency"]
    );
}
