//! The one conformance suite every ledger backend runs (SQLite and PostgreSQL alike):
//! the regulation's refusals with their requirement IDs, history, personal-data sealing,
//! audit, the backfill deadline, and race-free limits under concurrency.
//!
//! A backend's tests invoke [`conformance_suite!`] with a function that prepares a fresh,
//! empty database and returns a connector to it (called once per connection needed).

use crate::kind::Kind;
use crate::ledger::{Actor, ImportError, ImportReport, Ledger};
use crate::pii::PiiVault;
use crate::store::{holder_tag, Change, Columns, CountQuery, Event, Field, Store, Tx};
use fanzha_model::synth::{nth_resident_id, uscc};
use fanzha_model::Date;
use serde_json::Value;

/// Generates one `#[test]` per conformance case for a backend.
#[macro_export]
macro_rules! conformance_suite {
    ($fresh:expr) => {
        $crate::conformance_suite!(@cases $fresh;
            subscriber_rules_cite_requirements, five_card_limit, key_service_rules,
            agent_rules, trunk_and_approval_rules, iot_profile_rules, history_is_recorded,
            personal_data_is_sealed_and_reveal_is_audited, unprocessable_file_applies_nothing,
            reimport_is_idempotent, audit_report, backfill_deadline_suspends,
            concurrent_imports_respect_five_card_limit, disposal_and_appeal_are_audited,
            rewrites_in_one_file_and_later_keep_every_body_and_event,
            concurrent_imports_of_the_same_new_rows,
            five_card_limit_follows_rewrites_within_one_import,
            a_long_import_keeps_limits_and_history_across_batches,
            holders_sharing_a_tag_are_counted_apart,
            sealed_values_are_bound_to_their_record_and_rotate_together,
            protected_numbers_are_never_disposed_automatically,
            a_card_changing_holder_in_a_large_batch_counts_as_in_file_order);
    };
    (@cases $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let connect = $fresh;
                $crate::conformance::$name(&connect);
            }
        )*
    };
}

const KEY: [u8; 64] = [42u8; 64];

/// The actor every case writes as.
pub fn actor() -> Actor {
    Actor {
        name: "conformance".into(),
        now: "2026-11-29T10:00:00+08:00".into(),
        today: Date {
            year: 2026,
            month: 11,
            day: 29,
        },
    }
}

fn ledger<S: Store>(connect: &dyn Fn() -> S) -> Ledger<S> {
    Ledger::new(connect(), PiiVault::new(&KEY).expect("key"))
}

fn import<S: Store>(l: &mut Ledger<S>, kind: Kind, csv: &str) -> ImportReport {
    l.import_csv(kind, csv.as_bytes(), &actor(), &mut |_| {})
        .unwrap_or_else(|e| panic!("{kind} import failed: {e}"))
}

fn refusal_at(report: &ImportReport, line: u64) -> (&str, &str) {
    let r = report
        .refusals
        .iter()
        .find(|r| r.line == line)
        .unwrap_or_else(|| panic!("no refusal at line {line}: {report:?}"));
    (r.requirement, r.reason.as_str())
}

const SUB_HEADER: &str = "msisdn,kind,holder_id,holder_name,holder_uscc,province,channel,agent_id,verification,real_name,state,imsi,imei,activated_at,roaming\n";

fn sub_row(msisdn: &str, holder: &str, extra: &str) -> String {
    // extra overrides: "channel|verification|real_name|state"
    let f: Vec<&str> = if extra.is_empty() {
        vec!["own_store", "id_reader", "verified", "active"]
    } else {
        extra.split('|').collect()
    };
    format!(
        "{msisdn},mobile,{holder},王强,,北京,{},,{},{},{},,,2024-05-01T10:00:00+08:00,\n",
        f[0], f[1], f[2], f[3]
    )
}

fn units_csv(units: &[(&str, &str)]) -> String {
    let mut s = String::from("uscc,name,kind,legal_rep_id,legal_rep_name,province\n");
    for (u, rep) in units {
        s.push_str(&format!("{u},测试单位,enterprise,{rep},李明,北京\n"));
    }
    s
}

/// R2.1, R2.2, R5.1 refusals cite their requirement and the right line.
pub fn subscriber_rules_cite_requirements<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(1);
    let mut csv = String::from(SUB_HEADER);
    csv += &sub_row("13500001111", &id, ""); // line 2: ok
    csv += &sub_row("13500001112", &id, "own_store|none|verified|active"); // 3: R2.1
    csv += &sub_row("13500001113", "110102199113010078", ""); // 4: R2.2 invalid ID
    csv += &sub_row("13500001114", &id, "online|id_reader|verified|active"); // 5: R2.1 online needs video
    csv += &sub_row("13500001115", &id, "agent|id_reader|verified|active"); // 6: R5.1 no agent
    csv += &sub_row("12345", &id, ""); // 7: R2.2 bad msisdn
    csv += &sub_row("13500001116", "", "own_store|none|unverified|active"); // 8: legacy, accepted
    csv += &sub_row(
        "+86 135 0000 1117",
        &id,
        "online|video_liveness|verified|active",
    ); // 9: ok
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!((r.accepted, r.refused), (3, 5), "{r:?}");
    assert_eq!(refusal_at(&r, 3).0, "R2.1");
    assert_eq!(refusal_at(&r, 4).0, "R2.2");
    assert!(
        refusal_at(&r, 4).1.contains("month 13"),
        "{:?}",
        refusal_at(&r, 4)
    );
    assert_eq!(refusal_at(&r, 5).0, "R2.1");
    assert_eq!(refusal_at(&r, 6).0, "R5.1");
    assert_eq!(refusal_at(&r, 7).0, "R2.2");
    // The number is normalised: any form finds it.
    assert!(l
        .get(Kind::Subscribers, "0086 13500001117", None)
        .unwrap()
        .is_some());
    assert!(l
        .get(Kind::Subscribers, "13500001112", None)
        .unwrap()
        .is_none());
}

/// R3.1: the sixth non-terminated mobile card of one holder is refused; terminated cards do
/// not count; a suspended one does.
pub fn five_card_limit<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(2);
    let mut csv = String::from(SUB_HEADER);
    for i in 0..5 {
        csv += &sub_row(&format!("1390000000{i}"), &id, "");
    }
    csv += &sub_row("13900000005", &id, ""); // line 7: sixth
    csv += &sub_row(
        "13900000006",
        &id,
        "own_store|id_reader|verified|terminated",
    ); // 8: ok
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!((r.accepted, r.refused), (6, 1), "{r:?}");
    let (req, reason) = refusal_at(&r, 7);
    assert_eq!((req, reason), ("R3.1", "holder already has 5 active cards"));
    // Terminating one card frees a place.
    let mut t = String::from(SUB_HEADER);
    t += &sub_row(
        "13900000000",
        &id,
        "own_store|id_reader|verified|terminated",
    );
    t += &sub_row("13900000005", &id, "");
    t += &sub_row("13900000007", &id, "own_store|id_reader|verified|suspended");
    let r = import(&mut l, Kind::Subscribers, &t);
    assert_eq!((r.accepted, r.refused), (2, 1), "{r:?}");
    assert_eq!(refusal_at(&r, 4).0, "R3.1");
}

/// R3.1 within one import, where a backend may count from what it read ahead for the batch:
/// a card moved to another holder, terminated or suspended changes its holders' counts for
/// the very next row, and a card moved in counts against its new holder.
pub fn five_card_limit_follows_rewrites_within_one_import<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, b) = (nth_resident_id(40), nth_resident_id(41));
    let msisdn = |i: u32| format!("1360000000{i}");
    let mut csv = String::from(SUB_HEADER);
    for i in 0..5 {
        csv += &sub_row(&msisdn(i), &a, ""); // lines 2-6: A holds 5
    }
    csv += &sub_row(&msisdn(0), &b, ""); // 7: card 0 moves to B, A holds 4
    csv += &sub_row(&msisdn(5), &a, ""); // 8: A holds 5
    csv += &sub_row(&msisdn(6), &a, ""); // 9: R3.1
    csv += &sub_row(&msisdn(1), &a, "own_store|id_reader|verified|terminated"); // 10: A 4
    csv += &sub_row(&msisdn(6), &a, ""); // 11: A holds 5
    csv += &sub_row(&msisdn(7), &b, ""); // 12: B holds 2
    csv += &sub_row(&msisdn(2), &a, "own_store|id_reader|verified|suspended"); // 13: still 5
    csv += &sub_row(&msisdn(8), &a, ""); // 14: R3.1
    csv += &sub_row(&msisdn(7), &a, ""); // 15: moving B's card to A: R3.1
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!((r.accepted, r.refused), (11, 3), "{r:?}");
    for line in [9, 14, 15] {
        assert_eq!(refusal_at(&r, line).0, "R3.1", "line {line}");
    }
    // What was committed counts the same in the next import.
    let mut next = String::from(SUB_HEADER);
    next += &sub_row(&msisdn(9), &a, ""); // 2: R3.1
    next += &sub_row(&msisdn(9), &b, ""); // 3: B holds 3
    next += &sub_row(&msisdn(6), &b, ""); // 4: A's card 6 moves to B, B holds 4
    next += &sub_row(&msisdn(8), &a, ""); // 5: A holds 5 again
    let r = import(&mut l, Kind::Subscribers, &next);
    assert_eq!((r.accepted, r.refused), (3, 1), "{r:?}");
    assert_eq!(refusal_at(&r, 2).0, "R3.1");
    let mut holder_of = |i: u32| {
        let key = format!("+86{}", msisdn(i));
        l.store()
            .get(Kind::Subscribers, &key)
            .unwrap()
            .unwrap()
            .holder_hash
    };
    let (b_card, a_card) = (holder_of(0), holder_of(8));
    assert_ne!(b_card, a_card);
    assert_eq!(holder_of(7), b_card, "the refused move left card 7 with B");
    assert_eq!(holder_of(6), b_card);
}

/// R3.1 and the history over an import long enough for batches of thousands of rows, within
/// which a backend may send rows ahead while later ones are still checked: 2,000 holders'
/// sixth cards come after their first five (and across batches), and a rewrite of each
/// holder's first card comes last.
pub fn a_long_import_keeps_limits_and_history_across_batches<S: Store>(connect: &dyn Fn() -> S) {
    // 28 000 rows: batches of 5 000, 10 000 and 13 000, the last two large enough for a
    // backend with a second connection to split (`Store::sibling`).
    const HOLDERS: u64 = 4_000;
    let mut l = ledger(connect);
    let holder = |h: u64| nth_resident_id(1_000 + h);
    let card = |h: u64, c: u64| format!("137{:08}", h * 10 + c);
    let mut csv = String::from(SUB_HEADER);
    for c in 0..6 {
        for h in 0..HOLDERS {
            csv += &sub_row(&card(h, c), &holder(h), "");
        }
    }
    for h in 0..HOLDERS {
        csv += &sub_row(
            &card(h, 0),
            &holder(h),
            "own_store|id_reader|verified|suspended",
        );
    }
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!(
        (r.accepted, r.refused),
        (6 * HOLDERS, HOLDERS),
        "{:?}",
        r.refusals.first()
    );
    // The sixth cards: lines 2 + 5 × HOLDERS onwards.
    let sixth = 2 + 5 * HOLDERS;
    for line in [sixth, sixth + HOLDERS / 2, sixth + HOLDERS - 1] {
        assert_eq!(refusal_at(&r, line).0, "R3.1", "line {line}");
    }
    for h in [0, HOLDERS / 2, HOLDERS - 1] {
        let history = l
            .history(Kind::Subscribers, &format!("+86{}", card(h, 0)))
            .unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0]["after"]["state"], "active");
        assert_eq!(history[1]["before"], history[0]["after"]);
        assert_eq!(history[1]["after"]["state"], "suspended");
        assert!(
            history[0]["seq"].as_i64() < history[1]["seq"].as_i64(),
            "{history:?}"
        );
        let refused = l
            .history(Kind::Subscribers, &format!("+86{}", card(h, 5)))
            .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
    }
    // What was committed counts the same afterwards: a suspended card still counts.
    let mut next = String::from(SUB_HEADER);
    next += &sub_row(&card(7, 5), &holder(7), "");
    let r = import(&mut l, Kind::Subscribers, &next);
    assert_eq!(refusal_at(&r, 2).0, "R3.1");
}

fn seed_units<S: Store>(l: &mut Ledger<S>) -> (String, String, String) {
    let (a, b, c) = (uscc(110000, 1001), uscc(110000, 1002), uscc(310000, 1003));
    let rep_c = nth_resident_id(40);
    let r = import(
        l,
        Kind::Units,
        &units_csv(&[
            (&a, &nth_resident_id(20)),
            (&b, &nth_resident_id(30)),
            (&c, &rep_c),
        ]),
    );
    assert_eq!(r.refused, 0, "{r:?}");
    let bl = format!(
        "subject_kind,subject_id,name,category,reason,source,listed_at\nunit,{b},黑单位,fraud,涉诈,police,2026-01-01\nperson,{rep_c},张三,fraud,涉诈,police,2026-01-01\n"
    );
    let r = import(l, Kind::Blacklist, &bl);
    assert_eq!(r.refused, 0, "{r:?}");
    (a, b, c)
}

/// R7.1–R7.4 and R25.1 on key services.
pub fn key_service_rules<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, b, c) = seed_units(&mut l);
    let person = nth_resident_id(50);
    let unknown = uscc(120000, 4242);
    let mut csv = String::from("number,type,unit_uscc,channel,purpose,state\n");
    for i in 0..5 {
        csv += &format!("400600100{i},400,{a},own_store,客服,active\n"); // 2-6 ok
    }
    csv += &format!("4006001005,400,{a},own_store,客服,active\n"); // 7: R7.4
    csv += &format!("4006001006,400,{person},own_store,客服,active\n"); // 8: R7.1 person
    csv += &format!("4006001007,400,{unknown},own_store,客服,active\n"); // 9: R7.1 unknown unit
    csv += &format!("4006001008,400,{a},agent,客服,active\n"); // 10: R7.2
    csv += &format!("4006001009,400,{b},own_store,客服,active\n"); // 11: R25.1 unit
    csv += &format!("4006001010,400,{c},own_store,客服,active\n"); // 12: R25.1 legal rep
    csv += &format!("01062345678,switchboard,{a},own_store,总机,active\n"); // 13 ok (other type)
    csv += "4006001011,400,91110000600037342L,own_store,客服,active\n"; // 14: R7.3 bad USCC
    let r = import(&mut l, Kind::KeyServices, &csv);
    assert_eq!((r.accepted, r.refused), (6, 7), "{r:?}");
    assert_eq!(
        refusal_at(&r, 7),
        (
            "R7.4",
            format!("unit {a} already holds 5 400 numbers").as_str()
        )
    );
    assert_eq!(refusal_at(&r, 8).0, "R7.1");
    assert_eq!(refusal_at(&r, 9).0, "R7.1");
    assert_eq!(refusal_at(&r, 10).0, "R7.2");
    assert_eq!(refusal_at(&r, 11).0, "R25.1");
    assert_eq!(refusal_at(&r, 12).0, "R25.1");
    assert_eq!(refusal_at(&r, 14).0, "R7.3");
    // A unit with an invalid legal representative ID is refused itself (R7.3).
    let r = import(
        &mut l,
        Kind::Units,
        &units_csv(&[(&uscc(110000, 77), "110102199101010079")]),
    );
    assert_eq!(refusal_at(&r, 2).0, "R7.3");
}

/// R5.1: agents hang off the operator; cancelled agents open nothing; blacklisted units are
/// no agents.
pub fn agent_rules<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, b, _) = seed_units(&mut l);
    let csv = format!(
        "agent_id,name,uscc,parent,state\nag1,一号代理,{a},operator,active\nag2,二级代理,{a},ag1,active\nag3,黑代理,{b},operator,active\nag4,注销代理,{a},operator,cancelled\n"
    );
    let r = import(&mut l, Kind::Agents, &csv);
    assert_eq!((r.accepted, r.refused), (2, 2), "{r:?}");
    assert_eq!(refusal_at(&r, 3).0, "R5.1");
    assert_eq!(refusal_at(&r, 4).0, "R25.1");
    let id = nth_resident_id(60);
    let mut s = String::from(SUB_HEADER);
    s += &sub_row("13600000001", &id, "agent|id_reader|verified|active")
        .replace(",agent,,", ",agent,ag1,");
    s += &sub_row("13600000002", &id, "agent|id_reader|verified|active")
        .replace(",agent,,", ",agent,ag4,");
    let r = import(&mut l, Kind::Subscribers, &s);
    assert_eq!((r.accepted, r.refused), (1, 1), "{r:?}");
    assert!(refusal_at(&r, 3).1.contains("cancelled"));
}

/// R12.1 voice lines; R8.1 outbound approvals (no 一号通, callers of the same unit).
pub fn trunk_and_approval_rules<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, _, _) = seed_units(&mut l);
    let other = uscc(110000, 5005);
    import(
        &mut l,
        Kind::Units,
        &units_csv(&[(&other, &nth_resident_id(70))]),
    );
    let ks = format!(
        "number,type,unit_uscc,channel,purpose,state\n4006001000,400,{a},own_store,客服,active\n4006002000,400,{other},own_store,客服,active\n01088886666,yihaotong,{a},own_store,一号通,active\n"
    );
    assert_eq!(import(&mut l, Kind::KeyServices, &ks).refused, 0);
    let trunks = format!(
        "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\n\
         intl-a,international,,,,false,active\n\
         vl-1,voice_line,{a},,1062345*;4006001000,false,active\n\
         vl-2,voice_line,,,1062345*,false,active\n\
         vl-3,voice_line,{a},,,false,active\n\
         vl-4,voice_line,{a},,abc*,false,active\n\
         x-1,satellite,,,,false,active\n"
    );
    let r = import(&mut l, Kind::Trunks, &trunks);
    assert_eq!((r.accepted, r.refused), (2, 4), "{r:?}");
    assert_eq!(refusal_at(&r, 4).0, "R12.1");
    assert_eq!(
        refusal_at(&r, 5),
        ("R12.1", "a voice line needs contracted numbers")
    );
    assert_eq!(refusal_at(&r, 6).0, "R12.1");
    let ap = "service,allowed_callers,purpose,windows,max_per_hour,max_per_day,valid_until\n\
              4006001000,4006001000,回访,09:00-17:00,2,10,2027-12-31T23:59:59+08:00\n\
              01088886666,01088886666,回访,09:00-17:00,2,10,\n\
              4006001000,4006002000,回访,09:00-17:00,2,10,\n\
              vl-1,10623451*,外呼,09:00-12:00;14:00-18:00,,,\n\
              intl-a,4006001000,外呼,,,,\n\
              4006001000,4006001000,回访,9-17,2,10,\n\
              nothing,4006001000,回访,,,,\n";
    let r = import(&mut l, Kind::OutboundApprovals, ap);
    assert_eq!((r.accepted, r.refused), (2, 5), "{r:?}");
    for line in [3, 4, 6, 7, 8] {
        assert_eq!(refusal_at(&r, line).0, "R8.1", "line {line}");
    }
    assert!(refusal_at(&r, 3).1.contains("一号通"));
    assert!(refusal_at(&r, 4).1.contains("does not belong"));
}

/// R4.2 / R4.3 IoT profiles.
pub fn iot_profile_rules<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, _, _) = seed_units(&mut l);
    let mut s = String::from(SUB_HEADER);
    s += &format!("1440123456789,iot,,,{a},北京,own_store,,id_reader,verified,active,,,,\n");
    s += &format!("14700000001,iot,,,{a},北京,own_store,,id_reader,verified,active,,,,\n");
    s += &format!(
        "14700000002,iot,{},王强,{a},北京,own_store,,id_reader,verified,active,,,,\n",
        nth_resident_id(80)
    );
    s += "1440123456790,iot,,,,北京,own_store,,id_reader,verified,active,,,,\n"; // 5: R4.2 no unit
    let r = import(&mut l, Kind::Subscribers, &s);
    assert_eq!((r.accepted, r.refused), (3, 1), "{r:?}");
    assert_eq!(refusal_at(&r, 5).0, "R4.2");
    let p = "msisdn,voice,sms,bound_imei,allowed_callees,allowed_ips\n\
             1440123456789,false,false,354178036859789,10086;95*,10.0.0.0/8\n\
             14700000001,true,false,,,\n\
             14700000002,true,false,,,\n\
             13800000000,false,false,,,\n\
             1440123456789,false,false,354178036859788,,\n";
    let r = import(&mut l, Kind::IotProfiles, p);
    assert_eq!((r.accepted, r.refused), (2, 3), "{r:?}");
    assert_eq!(refusal_at(&r, 3).0, "R4.3");
    assert_eq!(refusal_at(&r, 5).0, "R4.2");
    assert_eq!(refusal_at(&r, 6).0, "R4.2");
}

/// Every change is an event with actor, time, command, before and after (R2.2, R7.5).
pub fn history_is_recorded<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(90);
    import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER) + &sub_row("13700000001", &id, "")),
    );
    import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER)
            + &sub_row("13700000001", &id, "own_store|id_reader|verified|suspended")),
    );
    let h = l.history(Kind::Subscribers, "13700000001").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["before"], Value::Null);
    assert_eq!(h[0]["after"]["state"], "active");
    assert_eq!(h[1]["before"]["state"], "active");
    assert_eq!(h[1]["after"]["state"], "suspended");
    assert_eq!(h[1]["actor"], "conformance");
    assert_eq!(h[1]["command"], "import");
    assert!(h[0]["seq"].as_i64().unwrap() < h[1]["seq"].as_i64().unwrap());
    assert!(
        !serde_json::to_string(&h).unwrap().contains(&id),
        "history leaks an ID number"
    );
}

/// R17.1: no clear ID numbers or names in the store; masked output; audited reveal.
pub fn personal_data_is_sealed_and_reveal_is_audited<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(100);
    import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER) + &sub_row("13700000002", &id, "")),
    );
    let raw = l.record(Kind::Subscribers, "13700000002").unwrap().unwrap();
    let stored = serde_json::to_string(&raw).unwrap();
    assert!(!stored.contains(&id), "clear ID stored");
    assert!(!stored.contains("王强"), "clear name stored");
    let masked = l
        .get(Kind::Subscribers, "13700000002", None)
        .unwrap()
        .unwrap();
    assert_eq!(
        masked["record"]["holder_id"],
        format!("{}********{}", &id[..6], &id[14..])
    );
    assert_eq!(masked["record"]["holder_name"], "王*");
    let before = l.history(Kind::Subscribers, "13700000002").unwrap().len();
    let shown = l
        .get(Kind::Subscribers, "13700000002", Some(&actor()))
        .unwrap()
        .unwrap();
    assert_eq!(shown["record"]["holder_id"], id.as_str());
    assert_eq!(shown["record"]["holder_name"], "王强");
    let h = l.history(Kind::Subscribers, "13700000002").unwrap();
    assert_eq!(h.len(), before + 1);
    assert_eq!(h.last().unwrap()["command"], "pii_revealed");
    assert_eq!(h.last().unwrap()["actor"], "conformance");
}

/// A sealed value opens only in the record it was sealed for: copied into another
/// record's body it reveals an error, not the other person. A key rotation re-seals every
/// record in one go under the new key (whose hashing half is the old one's); a key that
/// hashes differently is refused with nothing changed.
pub fn sealed_values_are_bound_to_their_record_and_rotate_together<S: Store>(
    connect: &dyn Fn() -> S,
) {
    let mut l = ledger(connect);
    let (a, b) = (nth_resident_id(300), nth_resident_id(301));
    import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER)
            + &sub_row("13700000301", &a, "")
            + &sub_row("13700000302", &b, "")),
    );
    // An insider with database access copies A's sealed ID into B's record.
    let ra = l.record(Kind::Subscribers, "13700000301").unwrap().unwrap();
    let mut rb = l.record(Kind::Subscribers, "13700000302").unwrap().unwrap();
    rb.body["holder_id_enc"] = ra.body["holder_id_enc"].clone();
    write_raw(l.store(), &rb, "tamper");
    let shown = l
        .get(Kind::Subscribers, "13700000302", Some(&actor()))
        .unwrap()
        .unwrap();
    assert_ne!(
        shown["record"]["holder_id"],
        a.as_str(),
        "a moved value opened"
    );
    assert!(shown["record"]["holder_id"]
        .as_str()
        .unwrap()
        .starts_with('<'));
    // Rotation: same hashing half, new cipher half.
    let mut new_key = KEY;
    new_key[32..].copy_from_slice(&[43u8; 32]);
    let rotated = PiiVault::new(&new_key).unwrap();
    let e = l
        .reseal(Some(PiiVault::new(&[44u8; 64]).unwrap()), &actor())
        .unwrap_err();
    assert!(
        matches!(e, crate::ledger::ResealError::HashingKeyChanged),
        "{e}"
    );
    // B's tampered value does not open under the current key: nothing is re-sealed.
    let e = l.reseal(Some(rotated.clone()), &actor()).unwrap_err();
    assert!(
        matches!(e, crate::ledger::ResealError::Unreadable { .. }),
        "{e}"
    );
    let mut rb = l.record(Kind::Subscribers, "13700000302").unwrap().unwrap();
    rb.body.as_object_mut().unwrap().remove("holder_id_enc");
    write_raw(l.store(), &rb, "repair");
    let done = l.reseal(Some(rotated.clone()), &actor()).unwrap();
    assert_eq!(
        (done.records, done.values),
        (2, 3),
        "A's ID and name, B's name"
    );
    let shown = l
        .get(Kind::Subscribers, "13700000301", Some(&actor()))
        .unwrap()
        .unwrap();
    assert_eq!(shown["record"]["holder_id"], a.as_str());
    let h = l.history(Kind::Subscribers, "13700000301").unwrap();
    assert!(h.iter().any(|e| e["command"] == "rotate_key"));
    // A ledger opened with the old key no longer opens the data.
    let old = Ledger::new(connect(), PiiVault::new(&KEY).unwrap());
    let mut old = old;
    let shown = old
        .get(Kind::Subscribers, "13700000301", Some(&actor()))
        .unwrap()
        .unwrap();
    assert_ne!(shown["record"]["holder_id"], a.as_str());
    // The five-card count and matching still work under the new key (same hashes).
    let c = import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER) + &sub_row("13700000303", &a, "")),
    );
    assert_eq!(c.accepted, 1);
    let raw = l.record(Kind::Subscribers, "13700000303").unwrap().unwrap();
    assert_eq!(raw.holder_hash, ra.holder_hash);
    // A value sealed as before binding (to the field only) is not shown until the ledger
    // re-seals it bound to its record, which it then does in place.
    let mut old = raw.clone();
    old.body["holder_id_enc"] = serde_json::json!(rotated.encrypt("holder_id", &a).unwrap());
    write_raw(l.store(), &old, "from an older version");
    let shown = l
        .get(Kind::Subscribers, "13700000303", Some(&actor()))
        .unwrap()
        .unwrap();
    assert!(shown["record"]["holder_id"]
        .as_str()
        .unwrap()
        .starts_with('<'));
    let done = l.reseal(None, &actor()).unwrap();
    assert_eq!((done.records, done.values), (1, 1));
    let shown = l
        .get(Kind::Subscribers, "13700000303", Some(&actor()))
        .unwrap()
        .unwrap();
    assert_eq!(shown["record"]["holder_id"], a.as_str());
    assert_eq!(
        l.reseal(None, &actor()).unwrap().records,
        0,
        "nothing left to bind"
    );
}

/// Writes a record as it is, past the rules (as someone with database access could).
fn write_raw<S: Store>(store: &mut S, r: &crate::store::Record, command: &str) {
    let before = store
        .get(r.kind, &r.key)
        .unwrap()
        .map(|x| x.body)
        .unwrap_or(Value::Null);
    let mut tx = store.begin().unwrap();
    tx.write(
        &r.columns(),
        &serde_json::to_string(&r.body).unwrap(),
        &Change {
            ts: "2026-11-29T10:00:00+08:00",
            actor: "insider",
            command,
            before: &before,
        },
    )
    .unwrap();
    tx.commit().unwrap();
}

/// A file without a required column is refused whole; nothing is applied.
pub fn unprocessable_file_applies_nothing<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let csv = "msisdn,kind,holder_id,real_name\n13700000003,mobile,x,verified\n";
    let e = l.import_csv(Kind::Subscribers, csv.as_bytes(), &actor(), &mut |_| {});
    assert!(
        matches!(
            e,
            Err(ImportError::MissingColumn {
                column: "state",
                ..
            })
        ),
        "{e:?}"
    );
    assert!(l
        .record(Kind::Subscribers, "13700000003")
        .unwrap()
        .is_none());
    assert_eq!(l.store().version().unwrap(), 0);
    let e = l.import_csv(Kind::Subscribers, b"", &actor(), &mut |_| {});
    assert!(e.is_err());
}

/// Importing the same file twice changes nothing the second time.
pub fn reimport_is_idempotent<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(110);
    let csv = String::from(SUB_HEADER)
        + &sub_row("13700000004", &id, "")
        + &sub_row("13700000005", &id, "");
    import(&mut l, Kind::Subscribers, &csv);
    let v = l.store().version().unwrap();
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!((r.accepted, r.refused), (2, 0));
    assert_eq!(
        l.store().version().unwrap(),
        v,
        "a no-op import wrote events"
    );
}

/// A key written twice in one file and again later: each write is an event whose `before`
/// is the previous body, the record ends as the last row says, and bodies with quotes,
/// backslashes and tabs come back exactly.
pub fn rewrites_in_one_file_and_later_keep_every_body_and_event<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(115);
    let odd = "北\\京 \"x\"\ty";
    let row = |province: &str, state: &str| {
        format!(
            "13700000009,mobile,{id},王强,,\"{}\",own_store,,id_reader,verified,{state},,,,\n",
            province.replace('"', "\"\"")
        )
    };
    let csv = String::from(SUB_HEADER) + &row("上海", "active") + &row(odd, "active");
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!((r.accepted, r.refused), (2, 0), "{r:?}");
    let r = import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER) + &row(odd, "suspended")),
    );
    assert_eq!((r.accepted, r.refused), (1, 0), "{r:?}");
    let card = l
        .record(Kind::Subscribers, "13700000009")
        .unwrap()
        .expect("stored");
    assert_eq!(card.field("province"), odd);
    assert_eq!(card.state.as_deref(), Some("suspended"));
    let history = l.history(Kind::Subscribers, "13700000009").unwrap();
    let provinces: Vec<(&str, &str)> = history
        .iter()
        .map(|e| {
            (
                e["before"]["province"].as_str().unwrap_or("-"),
                e["after"]["province"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(provinces, [("-", "上海"), ("上海", odd), (odd, odd)]);
    assert_eq!(history[2]["before"]["state"], "active");
    assert_eq!(history[2]["after"]["state"], "suspended");
    // Three writes, three events, numbered from 1 in a fresh ledger.
    assert_eq!(l.store().version().unwrap(), 3);
}

/// The compliance report's sections.
pub fn audit_report<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let (a, _, c) = seed_units(&mut l);
    let id = nth_resident_id(120);
    let mut s = String::from(SUB_HEADER);
    for i in 0..5 {
        s += &sub_row(&format!("1380000000{i}"), &id, "");
    }
    s += &sub_row("17000000001", "", "own_store|none|unverified|active");
    s += &sub_row("17100000001", "", "own_store|none|unverified|active");
    import(&mut l, Kind::Subscribers, &s);
    let ks = format!(
        "number,type,unit_uscc,channel,purpose,state\n4006001000,400,{a},own_store,,active\n"
    );
    import(&mut l, Kind::KeyServices, &ks);
    // A later blacklisting touches an existing agent.
    import(
        &mut l,
        Kind::Agents,
        &format!("agent_id,name,uscc,parent,state\nag9,代理,{a},operator,active\n"),
    );
    let rep_a_black = format!("subject_kind,subject_id,name,category,reason,source,listed_at\nunit,{a},单位,fraud,涉诈,police,2026-02-01\n");
    import(&mut l, Kind::Blacklist, &rep_a_black);
    let _ = c;
    let audit = l.audit(&["170", "171"]).unwrap();
    assert_eq!(audit["R1.1"]["unverified"], 2);
    assert_eq!(audit["R1.2"]["to_reverify"], 2);
    assert_eq!(audit["R3.2"]["holders_at_limit"], 1);
    assert_eq!(audit["R3.2"]["holders"][0]["cards"], 5);
    assert_eq!(audit["R6.1"]["deficient"], 1, "{}", audit["R6.1"]);
    assert!(
        audit["R25.1"]["touching_blacklist"].as_u64().unwrap() >= 2,
        "{}",
        audit["R25.1"]
    );
    assert!(!audit.to_string().contains(&id));
}

/// R1.1: after the deadline every active unverified subscriber is suspended, each an event.
pub fn backfill_deadline_suspends<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let mut s = String::from(SUB_HEADER);
    s += &sub_row("13800000011", "", "own_store|none|unverified|active");
    s += &sub_row("13800000012", "", "own_store|none|unverified|terminated");
    s += &sub_row("13800000013", &nth_resident_id(130), "");
    import(&mut l, Kind::Subscribers, &s);
    let done = l
        .enforce_backfill("2026-11-01T00:00:00+08:00", &actor())
        .unwrap();
    assert_eq!(done, vec!["+8613800000011".to_string()]);
    let rec = l
        .get(Kind::Subscribers, "13800000011", None)
        .unwrap()
        .unwrap();
    assert_eq!(rec["record"]["state"], "suspended");
    let h = l.history(Kind::Subscribers, "13800000011").unwrap();
    assert_eq!(h.last().unwrap()["command"], "suspend_backfill_deadline");
    assert!(l
        .enforce_backfill("2026-11-01T00:00:00+08:00", &actor())
        .unwrap()
        .is_empty());
}

/// R3.1 race-free: four connections import cards for one holder at once; at most five stay.
pub fn concurrent_imports_respect_five_card_limit<S: Store>(connect: &(dyn Fn() -> S + Sync)) {
    let id = nth_resident_id(140);
    let accepted: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let id = id.clone();
                scope.spawn(move || {
                    let mut l = ledger(connect);
                    let mut total = 0;
                    for i in 0..3 {
                        let csv = String::from(SUB_HEADER)
                            + &sub_row(&format!("1590000{t}{i:03}"), &id, "");
                        total += import(&mut l, Kind::Subscribers, &csv).accepted;
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(
        accepted, 5,
        "exactly five of twelve concurrent cards may be accepted"
    );
    let mut l = ledger(connect);
    let audit = l.audit(&[]).unwrap();
    assert_eq!(audit["R3.2"]["holders"][0]["cards"], 5);
}

/// The same file of new rows imported by three writers at once: every writer sees every row
/// accepted (the later ones find it already there, unchanged), and each record has one
/// creation event. On PostgreSQL the losers' batches fail on the key and are redone row by
/// row.
pub fn concurrent_imports_of_the_same_new_rows<S: Store>(connect: &(dyn Fn() -> S + Sync)) {
    let mut csv = String::from(SUB_HEADER);
    for i in 0..40u64 {
        csv += &sub_row(&format!("1580000{i:04}"), &nth_resident_id(160 + i), "");
    }
    let accepted: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let csv = &csv;
                scope.spawn(move || {
                    let mut l = ledger(connect);
                    import(&mut l, Kind::Subscribers, csv).accepted
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(accepted, [40, 40, 40]);
    let mut l = ledger(connect);
    for i in 0..40u64 {
        let key = format!("1580000{i:04}");
        let history = l.history(Kind::Subscribers, &key).unwrap();
        assert_eq!(history.len(), 1, "{key}: {history:?}");
        assert!(l.record(Kind::Subscribers, &key).unwrap().is_some());
    }
}

/// R15.3: a detection blocks and suspends through audited writes; an appeal lifts both.
pub fn disposal_and_appeal_are_audited<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let id = nth_resident_id(150);
    import(
        &mut l,
        Kind::Subscribers,
        &(String::from(SUB_HEADER)
            + &sub_row("13700000009", &id, "")
            + &sub_row("13700000010", &id, "")),
    );
    let evidence = serde_json::json!({"level": "critical", "rules": ["burst-dialling"]});
    let d = l
        .dispose(
            "13700000009",
            "suspend_and_block",
            "burst-dialling",
            &evidence,
            &actor(),
        )
        .unwrap();
    assert!(d.blocklisted && d.suspended, "{d:?}");
    assert_eq!(
        l.get(Kind::Blocklist, "+8613700000009", None)
            .unwrap()
            .unwrap()["record"]["evidence"],
        evidence,
        "the disposal names its evidence"
    );
    assert_eq!(
        l.get(Kind::Subscribers, "13700000009", None)
            .unwrap()
            .unwrap()["record"]["state"],
        "suspended"
    );
    assert_eq!(
        l.get(Kind::Blocklist, "+8613700000009", None)
            .unwrap()
            .unwrap()["record"]["source"],
        "detection"
    );
    // Idempotent.
    let v = l.store().version().unwrap();
    assert_eq!(
        l.dispose(
            "13700000009",
            "suspend_and_block",
            "burst-dialling",
            &evidence,
            &actor()
        )
        .unwrap(),
        crate::ledger::Disposal {
            number: "+8613700000009".into(),
            ..Default::default()
        }
    );
    assert_eq!(l.store().version().unwrap(), v);
    let r = l
        .dispose(
            "13700000010",
            "reverify",
            "mass-dialling",
            &evidence,
            &actor(),
        )
        .unwrap();
    assert!(r.reverify);
    assert_eq!(
        l.get(Kind::Subscribers, "13700000010", None)
            .unwrap()
            .unwrap()["record"]["real_name"],
        "pending"
    );
    let a = l.appeal("13700000009", &actor()).unwrap();
    assert!(a.blocklisted && a.suspended);
    assert_eq!(
        l.get(Kind::Subscribers, "13700000009", None)
            .unwrap()
            .unwrap()["record"]["state"],
        "active"
    );
    let h = l.history(Kind::Subscribers, "13700000009").unwrap();
    let commands: Vec<&str> = h.iter().map(|e| e["command"].as_str().unwrap()).collect();
    assert_eq!(commands, ["import", "dispose_suspend", "appeal_unblock"]);
}

/// R15.3: automatic disposal never blocks or suspends an emergency or short number, an
/// official number, a registered unit's key-service number or a protected number; the
/// alert is held on record for a supervisor and the ledger is otherwise unchanged.
pub fn protected_numbers_are_never_disposed_automatically<S: Store>(connect: &dyn Fn() -> S) {
    let mut l = ledger(connect);
    let rep = nth_resident_id(160);
    let bank = uscc(110000, 160);
    import(&mut l, Kind::Units, &units_csv(&[(&bank, &rep)]));
    import(
        &mut l,
        Kind::KeyServices,
        &format!("number,type,unit_uscc,channel,purpose,state\n4008001234,400,{bank},own_store,hotline,active\n"),
    );
    import(
        &mut l,
        Kind::OfficialNumbers,
        "number,owner\n010-12345678,公安局\n",
    );
    let r = import(
        &mut l,
        Kind::ProtectedNumbers,
        "number,owner,reason\n13700000160,某医院,急救热线\n",
    );
    assert_eq!(r.accepted, 1, "{:?}", r.refusals);
    let evidence = serde_json::json!({"level": "critical"});
    for (number, why) in [
        ("110", "emergency"),
        ("12321", "short"),
        ("01012345678", "official"),
        ("4008001234", "key-service"),
        ("13700000160", "protected"),
    ] {
        let v = l.store().version().unwrap();
        let d = l
            .dispose(number, "suspend_and_block", "burst", &evidence, &actor())
            .unwrap();
        assert!(!d.blocklisted && !d.suspended, "{number}: {d:?}");
        assert!(
            d.held.as_deref().unwrap_or("").contains(why),
            "{number}: {d:?}"
        );
        assert!(
            l.get(Kind::Blocklist, number, None).unwrap().is_none(),
            "{number}"
        );
        assert_eq!(
            l.store().version().unwrap(),
            v + 1,
            "only the held event: {number}"
        );
        let h = l.history(Kind::Subscribers, number).unwrap();
        assert_eq!(h.last().unwrap()["command"], "dispose_held", "{number}");
    }
}

/// Holders whose hashes share a tag (what the backends' holder indexes key, see [`holder_tag`])
/// or a long prefix are told apart: counts, lookups and the read-ahead answer for the exact
/// hash only (R3.1's count must never merge two people).
pub fn holders_sharing_a_tag_are_counted_apart<S: Store>(connect: &dyn Fn() -> S) {
    let mut store = connect();
    let prefix = "0123456789abcdef";
    let (a, b) = (
        format!("{prefix}{}", "0".repeat(48)),
        format!("{prefix}{}", "1".repeat(48)),
    );
    // Not hex: tagged by their first eight bytes of text, the same for both.
    let (c, d) = ("holder-x-1", "holder-x-2");
    assert_eq!(holder_tag(&a), holder_tag(&b));
    assert_eq!(holder_tag(c), holder_tag(d));
    assert_ne!(holder_tag(&a), holder_tag(c));
    let cards = [(&*a, 2), (&*b, 1), (c, 3), (d, 1)];
    let change = Change {
        ts: "2026-01-01T00:00:00+08:00",
        actor: "conformance",
        command: "import",
        before: &Value::Null,
    };
    let active = |h| CountQuery::active_mobile_cards(h, "");
    let mut tx = store.begin().expect("begin");
    let mut n = 0;
    for (holder, count) in cards {
        for _ in 0..count {
            let key = format!("+86138000000{n:02}");
            n += 1;
            let card = Columns {
                kind: Kind::Subscribers,
                key: &key,
                holder_hash: Some(holder),
                unit: None,
                subtype: Some("mobile"),
                state: Some("active"),
            };
            assert!(tx.write_new(&card, "{}", &change).expect("write"));
        }
    }
    assert_counted_apart(tx.as_mut(), &cards);
    tx.commit().expect("commit");
    // From the database: read ahead for one holder of each pair only, then for all; then
    // without reading ahead.
    let mut tx = store.begin().expect("begin");
    tx.prefetch(Kind::Subscribers, &[], &[&a, c])
        .expect("prefetch");
    assert_eq!(tx.count(&active(&a)).expect("count"), 2);
    assert_eq!(tx.count(&active(c)).expect("count"), 3);
    tx.prefetch(Kind::Subscribers, &[], &[&a, &b, c, d])
        .expect("prefetch");
    for (holder, count) in cards {
        assert_eq!(tx.count(&active(holder)).expect("count"), count, "{holder}");
    }
    drop(tx);
    assert_counted_apart(store.begin().expect("begin").as_mut(), &cards);
}

/// Each holder's count and lookup find exactly its own cards, `count` of them.
fn assert_counted_apart(tx: &mut dyn Tx, cards: &[(&str, u64)]) {
    for &(holder, count) in cards {
        let counted = tx
            .count(&CountQuery::active_mobile_cards(holder, ""))
            .expect("count");
        assert_eq!(counted, count, "{holder}");
        let found = tx
            .find(Kind::Subscribers, Field::HolderHash, holder)
            .expect("find");
        assert_eq!(found.len() as u64, count, "{holder}");
        assert!(found
            .iter()
            .all(|r| r.holder_hash.as_deref() == Some(holder)));
    }
}

/// For a backend's upgrade test, whose ledger from before the upgrade holds the card
/// `+8613800138000` of holder `h1` with the history import, import, pii_revealed: the card
/// is written twice after the upgrade, with an event that writes no record in between. Its
/// history then holds the events from before and after, in order.
pub fn history_spans_an_upgrade(store: &mut dyn Store) {
    let key = "+8613800138000";
    let earlier = ["import", "import", "pii_revealed"];
    let write = |tx: &mut dyn Tx, state: &str, command: &str, before: &Value| {
        let columns = Columns {
            kind: Kind::Subscribers,
            key,
            holder_hash: Some("h1"),
            unit: None,
            subtype: Some("mobile"),
            state: Some(state),
        };
        let change = Change {
            ts: "2026-02-01T00:00:00+08:00",
            actor: "ops",
            command,
            before,
        };
        let body = serde_json::json!({ "state": state }).to_string();
        tx.write(&columns, &body, &change).unwrap();
    };
    let mut tx = store.begin().unwrap();
    let before = tx.get(Kind::Subscribers, key).unwrap().unwrap().body;
    write(tx.as_mut(), "suspended", "suspend", &before);
    tx.commit().unwrap();
    let mut tx = store.begin().unwrap();
    tx.append(&Event {
        seq: 0,
        ts: "2026-02-02T00:00:00+08:00".into(),
        actor: "ops".into(),
        command: "pii_revealed".into(),
        kind: Kind::Subscribers,
        key: key.into(),
        before: Value::Null,
        after: Value::Null,
    })
    .unwrap();
    let suspended = serde_json::json!({"state": "suspended"});
    write(tx.as_mut(), "active", "resume", &suspended);
    tx.commit().unwrap();
    let history = store.history(Kind::Subscribers, key).unwrap();
    let commands: Vec<&str> = history.iter().map(|e| e.command.as_str()).collect();
    let expected: Vec<&str> = earlier
        .into_iter()
        .chain(["suspend", "pii_revealed", "resume"])
        .collect();
    assert_eq!(commands, expected);
    assert!(
        history.windows(2).all(|w| w[0].seq < w[1].seq),
        "{history:?}"
    );
    assert_eq!(history[earlier.len()].after, suspended);
    let card = store.get(Kind::Subscribers, key).unwrap().unwrap();
    assert_eq!(card.body, serde_json::json!({"state": "active"}));
}

/// Cards moving to other holders in a batch large enough to be split between two
/// connections (`Store::sibling`) are seen by their old holders' counts as in file order:
/// an old holder, who had five cards, may then take a new one, while a holder who still
/// has five may not.
pub fn a_card_changing_holder_in_a_large_batch_counts_as_in_file_order<S: Store>(
    connect: &dyn Fn() -> S,
) {
    // Eight holders give up a card each: some to a new holder whose rows a split would
    // put in the other half (a one-in-256 chance that none does).
    const MOVERS: u64 = 8;
    const FULL: u64 = 20;
    let mut l = ledger(connect);
    let holder = |h: u64| nth_resident_id(30_000 + h);
    let card = |h: u64, c: u64| format!("136{:08}", h * 10 + c);
    let mut csv = String::from(SUB_HEADER);
    for h in (0..MOVERS).chain([FULL]) {
        for c in 0..5 {
            csv += &sub_row(&card(h, c), &holder(h), "");
        }
    }
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!(r.refused, 0, "{:?}", r.refusals.first());
    // 5 000 rows first (the first batch), then the rows of interest within the next batch
    // of 10 000 (lines 5 002 to 15 001), among cards of new holders.
    let mut csv = String::from(SUB_HEADER);
    let mut filler = 0..;
    let mut fill = |csv: &mut String, rows: u64| {
        for n in filler.by_ref().take(rows as usize) {
            csv.push_str(&sub_row(&card(1_000 + n, 0), &holder(1_000 + n), ""));
        }
    };
    fill(&mut csv, 5_000);
    // Lines 5 002 onwards: each mover's first card goes to a new holder.
    for h in 0..MOVERS {
        csv += &sub_row(&card(h, 0), &holder(100 + h), "");
    }
    fill(&mut csv, 4_000);
    // Then each mover, with four cards now, takes a fifth; the full holder may not.
    for h in 0..MOVERS {
        csv += &sub_row(&card(h, 5), &holder(h), "");
    }
    let full_line = 2 + 5_000 + MOVERS + 4_000 + MOVERS;
    csv += &sub_row(&card(FULL, 5), &holder(FULL), "");
    fill(&mut csv, 6_000);
    let r = import(&mut l, Kind::Subscribers, &csv);
    assert_eq!(r.refused, 1, "{:?}", r.refusals);
    assert_eq!(refusal_at(&r, full_line).0, "R3.1");
    for h in 0..MOVERS {
        let moved = l
            .history(Kind::Subscribers, &format!("+86{}", card(h, 0)))
            .unwrap();
        assert_eq!(moved.len(), 2, "{moved:?}");
    }
    // The movers have five again (cards 1 to 5): a sixth is refused.
    let mut next = String::from(SUB_HEADER);
    next += &sub_row(&card(0, 6), &holder(0), "");
    let r = import(&mut l, Kind::Subscribers, &next);
    assert_eq!(refusal_at(&r, 2).0, "R3.1");
}
