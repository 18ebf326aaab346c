//! End-to-end through the public CLI on real files: ledger import (exit codes, refusals with
//! line numbers and requirement IDs), get/history masking, screening the worked example, the
//! decision log, and crash safety of imports under `kill -9`.

mod common;

use common::{fanzha_in as fanzha, import_example, EXAMPLE};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn worked_example_verdicts_match_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let o = fanzha(
        dir.path(),
        &["screen", "--calls", &format!("{EXAMPLE}/calls.jsonl")],
    );
    assert_eq!(o.status.code(), Some(0));
    let got = lines(&o);
    let want: Vec<Value> = std::fs::read_to_string(format!("{EXAMPLE}/expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for k in ["id", "action", "code", "rules", "strip"] {
            assert_eq!(g[k], w[k], "{k} of {}", w["id"]);
        }
    }
    // Every verdict is in the hash-chained decision log.
    let v = fanzha(dir.path(), &["decisions", "verify"]);
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(lines(&v)[0]["records"], 13);
}

#[test]
fn bad_call_lines_are_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(
        &calls,
        "{\"id\":\"a\",\"ts\":\"2026-11-30T09:00:00+08:00\",\"trunk\":\"intl-a\",\"caller\":\"+8613500001111\",\"callee\":\"13912345678\"}\n\
         not json\n\
         {\"id\":\"b\",\"ts\":\"yesterday\",\"trunk\":\"intl-a\",\"caller\":\"1\"}\n\
         {\"id\":\"c\",\"ts\":\"2026-11-30T09:00:00\",\"trunk\":\"nowhere\",\"caller\":\"1\"}\n\
         {\"id\":\"d\",\"ts\":\"2026-11-30T09:00:00\",\"trunk\":\"ic-telecom\",\"caller\":\"\"}\n",
    )
    .unwrap();
    let o = fanzha(dir.path(), &["screen", "--calls", calls.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let v = lines(&o);
    assert_eq!(v.len(), 5);
    assert_eq!(v[0]["rules"][0], "intl-domestic-cli");
    assert!(v[1]["error"]
        .as_str()
        .unwrap()
        .contains("not a call attempt"));
    assert_eq!(v[2]["id"], "b");
    assert!(v[2]["error"].as_str().unwrap().starts_with("ts"));
    assert!(v[3]["error"].as_str().unwrap().contains("unknown trunk"));
    assert_eq!(v[4]["rules"][0], "cli-missing");
}

#[test]
fn import_exit_codes_and_refusal_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("subs.csv");
    std::fs::write(
        &f,
        "msisdn,kind,holder_id,holder_name,holder_uscc,province,channel,agent_id,verification,real_name,state,imsi,imei,activated_at,roaming\n\
         13500001111,mobile,412723199010050012,王强,,北京,own_store,,id_reader,verified,active,,,,\n\
         13500001112,mobile,412723199010050012,王强,,北京,own_store,,none,verified,active,,,,\n",
    )
    .unwrap();
    let o = fanzha(
        dir.path(),
        &["ledger", "import", "subscribers", f.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    let v = lines(&o);
    assert_eq!(v[0]["line"], 3);
    assert_eq!(v[0]["requirement"], "R2.1");
    assert_eq!(
        v[1],
        serde_json::json!({"kind": "subscribers", "accepted": 1, "refused": 1})
    );
    // Unknown kind, missing column, unreadable file: exit 1, nothing applied.
    assert_eq!(
        fanzha(
            dir.path(),
            &["ledger", "import", "phones", f.to_str().unwrap()]
        )
        .status
        .code(),
        Some(1)
    );
    let g = dir.path().join("g.csv");
    std::fs::write(&g, "msisdn,kind\n13500001113,mobile\n").unwrap();
    assert_eq!(
        fanzha(
            dir.path(),
            &["ledger", "import", "subscribers", g.to_str().unwrap()]
        )
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        fanzha(
            dir.path(),
            &["ledger", "import", "subscribers", "/nonexistent.csv"]
        )
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        fanzha(dir.path(), &["ledger", "get", "subscribers", "13500001113"])
            .status
            .code(),
        Some(1)
    );
    // get masks, --reveal shows and is recorded.
    let o = fanzha(
        dir.path(),
        &["ledger", "get", "subscribers", "+86 135 0000 1111"],
    );
    let rec = &lines_pretty(&o)["record"];
    assert_eq!(rec["holder_id"], "412723********0012");
    // Revealing needs a purpose (R17.1).
    let o = fanzha(
        dir.path(),
        &["ledger", "get", "subscribers", "13500001111", "--reveal"],
    );
    assert_eq!(o.status.code(), Some(2), "clap refuses --reveal alone");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--purpose"));
    let o = fanzha(
        dir.path(),
        &[
            "--actor",
            "auditor-7",
            "ledger",
            "get",
            "subscribers",
            "13500001111",
            "--reveal",
            "--purpose",
            "police request 2026-118",
        ],
    );
    assert_eq!(
        lines_pretty(&o)["record"]["holder_id"],
        "412723199010050012"
    );
    let h = lines_pretty(&fanzha(
        dir.path(),
        &["ledger", "history", "subscribers", "13500001111"],
    ));
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["command"], "pii_revealed");
    // The actor is the operating-system user; --actor only annotates it.
    let actor = events.last().unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        actor.starts_with("os:") && actor.ends_with(" (auditor-7)"),
        "{actor}"
    );
    // The reveal is in the audit trail with its purpose.
    let o = fanzha(dir.path(), &["audit", "export"]);
    let trail: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reveal = trail
        .iter()
        .find(|r| r["action"] == "reveal")
        .expect("audited");
    assert_eq!(reveal["purpose"], "police request 2026-118");
    assert_eq!(reveal["client"], "local");
    assert_eq!(reveal["principal"], actor);
    assert!(trail.iter().any(|r| r["action"] == "ledger_write"));
    assert!(trail.iter().any(|r| r["action"] == "history_read"));
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pii.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

fn lines_pretty(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// kill -9 during a large import: every committed row is intact, nothing is half-applied
/// (each subscriber has exactly its creation event), and the import can be re-run.
#[test]
fn kill_9_during_import_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_big_import(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["ledger", "import", "subscribers", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some batches are committed, then kill.
    let db = dir.path().join("ledger.sqlite");
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if std::fs::metadata(dir.path().join("ledger.sqlite-wal"))
            .map(|m| m.len() > 4_000_000)
            .unwrap_or(false)
        {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(db.exists());
    let (records, events) = rusqlite_count(&db);
    assert_whole_batches(records, events);
    // Re-running completes the import; rows already there are unchanged no-ops.
    let o = fanzha(
        dir.path(),
        &["ledger", "import", "subscribers", f.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(rusqlite_count(&db), (60_000, 60_000));
}

/// What an import killed midway must leave: every record with its event, and only whole
/// batches (5,000 rows, then 10,000, 20,000, …).
fn assert_whole_batches(records: i64, events: i64) {
    assert_eq!(
        records, events,
        "a record without its event (or the reverse): half-applied write"
    );
    assert_eq!(
        records % 5000,
        0,
        "only whole batches are committed: {records}"
    );
}

/// 60,000 new subscribers, two per holder, in `dir/big.csv`.
fn write_big_import(dir: &Path) -> std::path::PathBuf {
    let f = dir.join("big.csv");
    let mut csv = String::from("msisdn,kind,holder_id,holder_name,holder_uscc,province,channel,agent_id,verification,real_name,state,imsi,imei,activated_at,roaming\n");
    for i in 0..60_000u64 {
        csv.push_str(&format!(
            "138{i:08},mobile,{},测试,,北京,own_store,,id_reader,verified,active,,,,\n",
            fanzha_model::synth::nth_resident_id(i / 2)
        ));
    }
    std::fs::write(&f, csv).unwrap();
    f
}

/// kill -9 during an import into PostgreSQL, whose events stream to the server while a
/// batch is still being applied: the server drops the killed transaction whole, every
/// committed batch is intact, and the import can be re-run. Needs the test server
/// (`scripts/test.sh`).
#[test]
fn kill_9_during_postgres_import_loses_nothing_committed() {
    use fanzha_ledger::{Kind, Store};
    use fanzha_ledger_postgres::PgStore;
    let url = std::env::var("FANZHA_TEST_DATABASE_URL")
        .expect("FANZHA_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh");
    let schema = format!("kill9_{}", std::process::id());
    PgStore::drop_schema(&url, &schema).unwrap();
    let open = || PgStore::connect_in_schema(&url, Some(&schema)).unwrap();
    drop(open());
    // The CLI's sessions work in that schema.
    let in_schema = format!("{url}?options=-csearch_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let f = write_big_import(dir.path());
    let import = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fanzha"));
        c.arg("--data-dir")
            .arg(dir.path())
            .args(["--database-url", &in_schema])
            .args(["ledger", "import", "subscribers", f.to_str().unwrap()])
            .stdout(std::process::Stdio::null());
        c
    };
    let mut child = import().spawn().unwrap();
    // Wait until a batch is committed, then kill.
    let mut watch = open();
    let start = std::time::Instant::now();
    while watch.version().unwrap() == 0 && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let counts = |store: &mut PgStore| {
        let records = store.scan(Kind::Subscribers).unwrap().len() as i64;
        (records, store.version().unwrap())
    };
    let (records, events) = counts(&mut watch);
    assert!(records > 0, "no batch was committed before the kill");
    assert_whole_batches(records, events);
    let o = import().output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(counts(&mut watch), (60_000, 60_000));
    drop(watch);
    PgStore::drop_schema(&url, &schema).unwrap();
}

fn rusqlite_count(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).expect("open ledger");
    let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).expect("count");
    (
        count("SELECT count(*) FROM records WHERE kind = 'subscribers'"),
        count("SELECT count(*) FROM events WHERE kind = 'subscribers'"),
    )
}
