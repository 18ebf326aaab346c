use super::*;
use fanzha_detect::monitor::default_rules;
use fanzha_ledger::Kind;

fn ledger() -> Arc<Mutex<Ledger<Box<dyn Store>>>> {
    let store: Box<dyn Store> = Box::new(fanzha_ledger_sqlite::SqliteStore::in_memory().unwrap());
    Arc::new(Mutex::new(Ledger::new(
        store,
        fanzha_ledger::PiiVault::new(&[5u8; 64]).unwrap(),
    )))
}

fn disposer(ledger: &Arc<Mutex<Ledger<Box<dyn Store>>>>) -> LedgerDisposer {
    LedgerDisposer {
        ledger: ledger.clone(),
        actor: Arc::new(|| Actor {
            name: "fanzha-monitor".into(),
            now: "2026-11-30T10:00:00+08:00".into(),
            today: fanzha_model::Date {
                year: 2026,
                month: 11,
                day: 30,
            },
        }),
    }
}

/// 20 calls in one minute from +8613500000001, as native CSV rows without header.
fn burst_rows() -> Vec<String> {
    (0..20)
        .map(|i| {
            format!(
                "2026-11-30T10:00:{:02}+08:00,+8613500000001,+86139{:08},0,acc-1,860000000000001,c1",
                i * 2,
                i * 7919
            )
        })
        .collect()
}

#[test]
fn a_csv_body_alerts_disposes_and_reports_bad_records() {
    let ledger = ledger();
    let mut p = Pipeline::new(Monitor::new(default_rules()));
    let mut body = String::from("start,caller,callee,duration_s,trunk,imei,cell\n");
    for r in burst_rows() {
        body += &r;
        body.push('\n');
    }
    body += "not a time,+8613500000002,x,1,,,\n";
    let report = p
        .ingest_body(body.as_bytes(), Format::Native, &mut disposer(&ledger))
        .unwrap();
    assert_eq!(report.records, 20);
    assert_eq!(report.bad_records, 1);
    assert_eq!(report.errors[0].line, 22);
    let levels: Vec<&str> = report.alerts.iter().map(|a| a.level).collect();
    assert_eq!(levels, ["warning", "critical"]);
    // The critical alert put the number on the blocklist (R15.3).
    assert_eq!(report.disposals, 1);
    let mut l = ledger.lock().unwrap();
    let entry = l
        .get(Kind::Blocklist, "+8613500000001", None)
        .unwrap()
        .unwrap();
    assert_eq!(entry["record"]["source"], "detection", "{entry}");
    // Replaying the same records disposes of nothing twice (at-least-once delivery).
    drop(l);
    let again = p
        .ingest_body(body.as_bytes(), Format::Native, &mut disposer(&ledger))
        .unwrap();
    assert_eq!(again.disposals, 0);
}

#[test]
fn messages_may_be_json_or_csv_rows_and_bad_ones_are_counted() {
    let mut p = Pipeline::new(Monitor::new(default_rules()));
    let rows = burst_rows();
    let mut messages: Vec<(u64, Vec<u8>)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = if i % 2 == 0 {
                r.clone()
            } else {
                let f: Vec<&str> = r.split(',').collect();
                serde_json::json!({"start": f[0], "caller": f[1], "callee": f[2], "duration_s": 0, "imei": f[5]}).to_string()
            };
            (i as u64, v.into_bytes())
        })
        .collect();
    messages.push((99, b"{\"caller\": 5".to_vec()));
    messages.push((100, vec![0xff, 0xfe]));
    let report = p
        .ingest_messages(
            messages.iter().map(|(o, v)| (*o, v.as_slice())),
            &mut ReportOnly,
        )
        .unwrap();
    assert_eq!(report.records, 20);
    assert_eq!(report.bad_records, 2);
    assert_eq!(
        report.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [99, 100]
    );
    assert_eq!(report.alerts.last().unwrap().level, "critical");
    assert_eq!(p.records, 20);
    assert_eq!(p.alerts, 2);
}

#[test]
fn a_body_without_the_required_columns_is_refused_whole() {
    let mut p = Pipeline::new(Monitor::new(default_rules()));
    let err = p
        .ingest_body(
            b"caller,callee\n+8613500000001,x\n",
            Format::Native,
            &mut ReportOnly,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "missing column(s): start, duration_s");
    assert_eq!(p.records, 0);
}
