use super::*;

const T0: i64 = 1_795_917_600; // 2026-11-29T10:00:00+08:00

fn cdr<'a>(start: i64, number: &'a str, other: &'a str) -> Cdr<'a> {
    Cdr {
        start,
        number,
        other,
        duration_s: 30,
        direction: Direction::Out,
        imei: Some("860000000000001"),
        cell: Some("c1"),
        area: None,
        trunk: None,
    }
}

fn run(m: &mut Monitor, records: &[Cdr<'_>]) -> Vec<Alert> {
    records.iter().filter_map(|c| m.add(c)).collect()
}

#[test]
fn a_burst_dialler_is_warned_then_blocked_once_each() {
    let mut m = Monitor::new(default_rules());
    let callees: Vec<String> = (0..40).map(|i| format!("+86139{:08}", i * 7919)).collect();
    let records: Vec<Cdr> = callees
        .iter()
        .enumerate()
        .map(|(i, c)| cdr(T0 + i as i64 * 3, "13500000001", c))
        .collect();
    let alerts = run(&mut m, &records);
    let levels: Vec<&str> = alerts.iter().map(|a| a.level).collect();
    assert_eq!(levels, ["warning", "critical"]);
    assert_eq!(alerts[0].action, "reverify");
    assert_eq!(alerts[1].action, "suspend_and_block");
    assert_eq!(alerts[1].number, "+8613500000001");
    assert!(alerts[1].rules.contains(&"burst-dialling".to_string()));
    assert_eq!(alerts[1].features.get("max_calls_per_minute"), Some(15.0));
}

#[test]
fn an_ordinary_caller_raises_nothing() {
    let mut m = Monitor::new(default_rules());
    let callees: Vec<String> = (0..12)
        .map(|i| format!("+86138{:08}", i * 104_729))
        .collect();
    let records: Vec<Cdr> = callees
        .iter()
        .enumerate()
        .map(|(i, c)| cdr(T0 + i as i64 * 1800, "+8613500000002", c))
        .collect();
    assert!(run(&mut m, &records).is_empty());
}

#[test]
fn sequential_scanning_is_found_in_any_written_form() {
    let mut m = Monitor::new(default_rules());
    let callees: Vec<String> = (0..12)
        .map(|i| match i % 3 {
            0 => format!("+86139{:08}", 5000 + i),
            1 => format!("139{:08}", 5000 + i),
            _ => format!("0086139{:08}", 5000 + i),
        })
        .collect();
    let records: Vec<Cdr> = callees
        .iter()
        .enumerate()
        .map(|(i, c)| cdr(T0 + i as i64 * 120, "+8613500000003", c))
        .collect();
    let alerts = run(&mut m, &records);
    assert_eq!(alerts.last().map(|a| a.level), Some("critical"));
    assert!(alerts[0].rules.contains(&"sequential-scan".to_string()));
}

#[test]
fn rules_respect_their_hours_in_china_time() {
    let night = ThresholdRule {
        id: "night".into(),
        feature: "calls_1h".into(),
        class: None,
        warning: Some(3.0),
        critical: None,
        min_calls: 0.0,
        hours: Some([23, 6]),
    };
    let mut m = Monitor::new(vec![night]);
    // 15:00-15:03 China time: outside the window.
    let day: Vec<Cdr> = (0..5)
        .map(|i| cdr(T0 + 5 * 3600 + i * 30, "+8613500000004", "+8613900000000"))
        .collect();
    assert!(run(&mut m, &day).is_empty());
    // 02:00 China time the next night: inside the wrapped window.
    let late: Vec<Cdr> = (0..3)
        .map(|i| cdr(T0 + 16 * 3600 + i * 30, "+8613500000005", "+8613900000000"))
        .collect();
    let alerts = run(&mut m, &late);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rules, ["night"]);
}

#[test]
fn new_cards_get_the_stricter_profile() {
    let callees: Vec<String> = (0..35)
        .map(|i| format!("+86139{:08}", i * 15_485_863 % 100_000_000))
        .collect();
    let records: Vec<Cdr> = callees
        .iter()
        .enumerate()
        .map(|(i, c)| cdr(T0 + i as i64 * 400, "+8613500000006", c))
        .collect();
    let mut old = Monitor::new(default_rules());
    assert!(
        run(&mut old, &records).is_empty(),
        "35 callees a day is fine for an old card"
    );
    let mut fresh = Monitor::new(default_rules());
    fresh.note_activation("+8613500000006", T0 - 86_400);
    let alerts = run(&mut fresh, &records);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rules, ["new-card-mass-dialling"]);
}

#[test]
fn iot_cards_calling_people_are_flagged_by_class() {
    let mut m = Monitor::new(default_rules());
    // An elevator's emergency line calling its service desk now and then: normal.
    let desk: Vec<Cdr> = (0..6)
        .map(|i| cdr(T0 + i * 3600, "1440000000001", "+8610086"))
        .collect();
    assert!(run(&mut m, &desk).is_empty());
    // A card calling one stranger after another: a phone in disguise.
    let people: Vec<String> = (0..6)
        .map(|i| format!("+86139{:08}", i * 104_729))
        .collect();
    let calls: Vec<Cdr> = people
        .iter()
        .enumerate()
        .map(|(i, p)| cdr(T0 + i as i64 * 600, "1440000000002", p))
        .collect();
    let alerts = run(&mut m, &calls);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].action, "watch");
    assert_eq!(alerts[0].rules, ["iot-human-like"]);
}

#[test]
fn idle_numbers_are_evicted() {
    let mut m = Monitor::new(default_rules());
    m.add(&cdr(T0, "+8613500000007", "+8613900000000"));
    m.add(&cdr(T0 + 10, "+8613500000008", "+8613900000000"));
    assert_eq!(m.active_numbers(), 2);
    m.add(&cdr(T0 + 4 * 86_400, "+8613500000008", "+8613900000000"));
    assert_eq!(m.active_numbers(), 1);
    assert!(m.state("+8613500000007").is_none());
}

#[test]
fn state_stays_under_256_bytes_per_number_at_scale() {
    let mut m = Monitor::new(default_rules());
    let numbers: Vec<String> = (0..300_000).map(|i| format!("+86135{i:08}")).collect();
    let records: Vec<Cdr> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| cdr(T0 + i as i64 / 100, n, "+8613900000000"))
        .collect();
    let mut alerts = Vec::new();
    m.add_batch(&records, &mut alerts);
    assert_eq!(m.active_numbers(), 300_000);
    assert!(m.bytes_per_number() <= 256, "{}", m.bytes_per_number());
}

#[test]
fn batches_and_single_records_agree() {
    let callees: Vec<String> = (0..400)
        .map(|i| format!("+86139{:08}", i * 7919 % 1000))
        .collect();
    let callers: Vec<String> = (0..37).map(|i| format!("+86135{i:08}")).collect();
    let records: Vec<Cdr> = callees
        .iter()
        .enumerate()
        .map(|(i, c)| cdr(T0 + i as i64 * 2, &callers[i * i % 37], c))
        .collect();
    let mut one = Monitor::new(default_rules());
    let singles: Vec<(String, &str)> = run(&mut one, &records)
        .into_iter()
        .map(|a| (a.number, a.level))
        .collect();
    let mut many = Monitor::new(default_rules());
    let mut alerts = Vec::new();
    many.add_batch(&records, &mut alerts);
    let batched: Vec<(String, &str)> = alerts.into_iter().map(|a| (a.number, a.level)).collect();
    assert!(!singles.is_empty());
    assert_eq!(singles, batched);
}

#[test]
fn rule_files_report_every_error() {
    let errors = parse_rules(
        r#"{"rule":[
            {"id":"a","feature":"nope","warning":1},
            {"id":"a","feature":"calls_1h"},
            {"id":"c","feature":"calls_1h","warning":5,"critical":2,"hours":[3,3]}
        ]}"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "rule 1 (a): unknown feature \"nope\"",
            "rule 2 (a): id used twice",
            "rule 2 (a): needs warning or critical",
            "rule 3 (c): critical 2 is below warning 5",
            "rule 3 (c): hours [3, 3] must be two different hours in 0..=24",
        ]
    );
    assert!(
        parse_rules(r#"{"rule":[{"id":"a","feature":"calls_1h","warning":1,"colour":2}]}"#)
            .unwrap_err()[0]
            .contains("unknown field")
    );
}

#[test]
fn the_disposal_policy_maps_levels_to_actions_by_class() {
    let file = parse_rules(
        r#"{"rule":[{"id":"burst","feature":"max_calls_per_minute","warning":3,"critical":6}],
            "disposal":{"warning":"reverify","critical":"reverify"}}"#,
    )
    .unwrap();
    let mut m = Monitor::new(file.rule);
    m.disposal = file.disposal;
    let records: Vec<Cdr> = (0..6)
        .map(|i| cdr(T0 + i, "+8613500000010", "+8613900000000"))
        .chain((0..6).map(|i| cdr(T0 + i, "1440000000010", "+8613900000000")))
        .collect();
    let got: Vec<(String, &str, &str)> = run(&mut m, &records)
        .into_iter()
        .map(|a| (a.number, a.level, a.action))
        .collect();
    assert_eq!(
        got,
        [
            ("+8613500000010".to_string(), "warning", "reverify"),
            ("+8613500000010".to_string(), "critical", "reverify"),
            // Second real-name verification is for subscribers' cards: IoT is watched.
            ("+861440000000010".to_string(), "warning", "watch"),
            ("+861440000000010".to_string(), "critical", "watch"),
        ]
    );
    assert!(parse_rules(r#"{"rule":[],"disposal":{"critical":"shoot"}}"#).is_err());
}

#[test]
fn two_phones_used_in_turn_are_not_a_sim_box_but_rotation_is() {
    let mut m = Monitor::new(default_rules());
    let imeis = ["860000000000001", "860000000000002"];
    let records: Vec<Cdr> = (0..12)
        .map(|i| Cdr {
            imei: Some(imeis[i % 2]),
            ..cdr(T0 + i as i64 * 600, "+8613500000020", "+8613900000000")
        })
        .collect();
    assert!(run(&mut m, &records).is_empty());
    let boxes: Vec<String> = (0..8).map(|i| format!("86100000000{i:04}")).collect();
    let records: Vec<Cdr> = boxes
        .iter()
        .enumerate()
        .map(|(i, imei)| Cdr {
            imei: Some(imei),
            ..cdr(T0 + i as i64 * 600, "+8613500000021", "+8613900000000")
        })
        .collect();
    let alerts = run(&mut m, &records);
    assert_eq!(alerts.last().map(|a| a.level), Some("critical"));
    assert_eq!(alerts[0].rules, ["sim-box-imei-swap"]);
}
