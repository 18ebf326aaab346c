//! `fanzha monitor` on a CDR file with planted patterns (burst dialler, sequential scanner,
//! IMEI-swapping SIM box, IoT card making calls) among ordinary users: every planted number
//! alerts, no ordinary one does; bad records are counted, never fatal.

mod common;

use common::{fanzha_in, EXAMPLE};
use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;

fn ts(secs: i64) -> String {
    // 2026-11-30T00:00:00+08:00 + secs
    let t = 1_764_432_000 + secs;
    let (h, m, s) = ((t - 1_764_432_000) / 3600, (t % 3600) / 60, t % 60);
    format!("2026-11-30T{:02}:{:02}:{:02}+08:00", h % 24, m, s)
}

#[test]
fn planted_patterns_alert_and_ordinary_numbers_do_not() {
    let mut csv = String::from("start,caller,callee,duration_s,trunk,imei,cell\n");
    let mut x: u64 = 7;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut rows: Vec<(i64, String)> = Vec::new();
    for u in 0..300u64 {
        let calls = 3 + rnd(12);
        for _ in 0..calls {
            let t = 8 * 3600 + rnd(13 * 3600) as i64;
            rows.push((
                t,
                format!(
                    "{},1350000{u:04},139{:08},{},acc-1,35000000000{u:04},cell-{}\n",
                    ts(t),
                    rnd(100_000_000),
                    20 + rnd(300),
                    rnd(3)
                ),
            ));
        }
    }
    for i in 0..40 {
        let t = 10 * 3600 + i * 3;
        rows.push((
            t,
            format!(
                "{},13600000001,139{:08},3,acc-1,350000000009999,cell-1\n",
                ts(t),
                rnd(100_000_000)
            ),
        ));
    }
    for i in 0..15 {
        let t = 11 * 3600 + i * 40;
        rows.push((
            t,
            format!(
                "{},13600000002,13912340{:03},0,acc-1,350000000008888,cell-1\n",
                ts(t),
                i + 1
            ),
        ));
    }
    for i in 0..10 {
        let t = 12 * 3600 + i * 300;
        rows.push((
            t,
            format!(
                "{},13600000003,139{:08},45,acc-1,3500000000{i:05},cell-2\n",
                ts(t),
                rnd(100_000_000)
            ),
        ));
    }
    for i in 0..8 {
        let t = 13 * 3600 + i * 600;
        rows.push((
            t,
            format!(
                "{},1440123456789,139{:08},60,acc-1,350000000007777,cell-3\n",
                ts(t),
                rnd(100_000_000)
            ),
        ));
    }
    rows.sort();
    for (_, r) in rows {
        csv.push_str(&r);
    }
    csv.push_str("not-a-time,13500000001,139,abc,,,\n");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cdr.csv");
    std::fs::write(&f, csv).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args(["monitor", "--cdr", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flagged: HashSet<String> = alerts
        .iter()
        .map(|a| a["number"].as_str().unwrap().to_string())
        .collect();
    for planted in [
        "+8613600000001",
        "+8613600000002",
        "+8613600000003",
        "+861440123456789",
    ] {
        assert!(
            flagged.contains(planted),
            "{planted} not flagged: {alerts:?}"
        );
    }
    assert!(
        flagged
            .iter()
            .all(|n| n.starts_with("+86136") || n.starts_with("+861440")),
        "false alerts: {flagged:?}"
    );
    let burst = alerts
        .iter()
        .find(|a| a["number"] == "+8613600000001" && a["level"] == "critical")
        .expect("critical burst");
    assert_eq!(burst["action"], "suspend_and_block");
    for k in [
        "number", "ts", "score", "level", "rules", "features", "action",
    ] {
        assert!(burst.get(k).is_some(), "{k}");
    }
    let summary: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(summary["bad_records"], 1);
    assert!(summary["bytes_per_number"].as_u64().unwrap() > 0);
    assert!(summary["active_numbers"].as_u64().unwrap() > 0);
}

#[test]
fn rules_file_errors_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nid = \"a\"\nfeature = \"nope\"\nwarning = 1.0\n[[rule]]\nid = \"b\"\nfeature = \"calls_1h\"\nwarning = 10.0\ncritical = 5.0\n").unwrap();
    let cdr = dir.path().join("c.csv");
    std::fs::write(&cdr, "start,caller,callee,duration_s,trunk,imei,cell\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args([
            "monitor",
            "--cdr",
            cdr.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown feature \"nope\"") && err.contains("critical 5 is below warning 10"),
        "{err}"
    );
}

/// Detection → disposal in the ledger → screening blocks → appeal lifts it, all audited.
#[test]
fn disposal_blocks_in_screening_and_appeal_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        "units",
        "number_blocks",
        "subscribers",
        "trunks",
        "official_numbers",
        "blocklist",
    ] {
        let o = fanzha_in(
            dir.path(),
            &["ledger", "import", kind, &format!("{EXAMPLE}/{kind}.csv")],
        );
        assert_eq!(o.status.code(), Some(0), "{kind}");
    }
    let mut cdr = String::from("start,caller,callee,duration_s,trunk,imei,cell\n");
    for i in 0..40 {
        cdr.push_str(&format!(
            "2026-11-29T10:00:{:02}+08:00,13500001111,1391234{i:04},2,acc,,\n",
            i % 60
        ));
    }
    let f = dir.path().join("cdr.csv");
    std::fs::write(&f, cdr).unwrap();
    let o = fanzha_in(
        dir.path(),
        &["monitor", "--cdr", f.to_str().unwrap(), "--dispose"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("suspend_and_block"));
    let calls = dir.path().join("calls.jsonl");
    // An appeal lifts the block as of the moment it is made (the real clock): the call
    // comes a day later, so that it is after the lift on any day the test runs.
    let call_ts = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        &calls,
        format!("{{\"id\":\"x\",\"ts\":\"{call_ts}\",\"trunk\":\"ic-telecom\",\"caller\":\"13500001111\",\"callee\":\"13912345678\"}}\n"),
    )
    .unwrap();
    let o = fanzha_in(dir.path(), &["screen", "--calls", calls.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["rules"]
            .as_array()
            .unwrap()
            .contains(&Value::from("number-blocklisted")),
        "{v}"
    );
    let h = fanzha_in(
        dir.path(),
        &["ledger", "history", "subscribers", "13500001111"],
    );
    assert!(String::from_utf8_lossy(&h.stdout).contains("dispose_suspend"));
    let a = fanzha_in(dir.path(), &["ledger", "appeal", "+86 135 0000 1111"]);
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    let o = fanzha_in(dir.path(), &["screen", "--calls", calls.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !v["rules"]
            .as_array()
            .unwrap()
            .contains(&Value::from("number-blocklisted")),
        "{v}"
    );
}

#[test]
fn card_farms_in_a_subscribers_file_are_found_and_their_agent_suspended() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.csv");
    std::fs::write(
        &agents,
        "agent_id,name,uscc,parent,state\nshop-1,营业厅,91110000600037341L,operator,active\nfarm-1,某代理,91110000600037341L,operator,active\n",
    )
    .unwrap();
    let o = fanzha_in(
        dir.path(),
        &["ledger", "import", "agents", agents.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let mut subs = String::from("msisdn,kind,holder_id,holder_name,holder_uscc,province,channel,agent_id,verification,real_name,state,imsi,imei,activated_at,roaming\n");
    // The shop: 12 cards for 10 people over a working day; the farm: 45 people in 45 minutes.
    for i in 0..12 {
        subs += &format!(
            "1350000{i:04},mobile,shop-person-{},,,北京,agent,shop-1,id_reader,verified,active,,,2026-11-30T{:02}:15:00+08:00,\n",
            i % 10,
            9 + i / 2
        );
    }
    for i in 0..45 {
        subs += &format!(
            "1360000{i:04},mobile,farm-person-{i},,,北京,agent,farm-1,id_reader,verified,active,,,2026-11-30T14:{i:02}:00+08:00,\n"
        );
    }
    let file = dir.path().join("subscribers.csv");
    std::fs::write(&file, subs).unwrap();
    let o = fanzha_in(
        dir.path(),
        &["monitor", "--openings", file.to_str().unwrap(), "--dispose"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let alerts: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().unwrap(),
                a["level"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("farm-1", "warning", "watch"),
            ("farm-1", "critical", "suspend_agent")
        ]
    );
    assert_eq!(alerts[1]["ts"], "2026-11-30T14:39:00+08:00");
    let o = fanzha_in(dir.path(), &["ledger", "get", "agents", "farm-1"]);
    let agent: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(agent["record"]["state"], "suspended", "{agent}");
    let o = fanzha_in(dir.path(), &["ledger", "history", "agents", "farm-1"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("dispose_suspend_agent"));
    let o = fanzha_in(dir.path(), &["ledger", "get", "agents", "shop-1"]);
    let agent: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(agent["record"]["state"], "active");
}
