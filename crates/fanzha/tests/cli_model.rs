//! `fanzha model train|eval|score` on the real labelled Sichuan users (tests/data/sichuan,
//! see its README): the cross-validated targets of the monitoring issue (macro-F1 ≥ 0.90,
//! AUC ≥ 0.95) through the CLI contract.

use serde_json::Value;
use std::process::Command;

const DEV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sichuan/dev.csv");

fn fanzha(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn train_eval_score_on_sichuan_users() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    let (code, out) = fanzha(&[
        "model",
        "train",
        "--features",
        DEV,
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let train: Value = serde_json::from_str(out.trim()).unwrap();
    let cv = &train["cv"];
    assert!(cv["auc"].as_f64().unwrap() >= 0.95, "{cv}");
    assert!(cv["macro_f1"].as_f64().unwrap() >= 0.90, "{cv}");
    // eval prints exactly the contract's fields.
    let (code, out) = fanzha(&[
        "model",
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--features",
        DEV,
    ]);
    assert_eq!(code, 0);
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    for k in [
        "rows",
        "auc",
        "macro_f1",
        "precision",
        "recall",
        "threshold",
    ] {
        assert!(e.get(k).is_some(), "missing {k} in {e}");
    }
    assert_eq!(e["rows"], 4274);
    // score: one line per id.
    let (code, out) = fanzha(&[
        "model",
        "score",
        "--model",
        model.to_str().unwrap(),
        "--features",
        DEV,
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4274);
    // Bad tables are refused with the line and column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,a,label\nx,1.5,0\ny,abc,1\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args([
            "model",
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--features",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"abc\" is not a number"));
}

/// A Sichuan-schema call log: `normal` users over a month (both directions, a circle of
/// peers, several areas) and `fraud` users dialling strangers for a few days, then dropped.
fn sichuan_call_log(normal: u64, fraud: u64) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut rows = Vec::new();
    for u in 0..normal {
        for _ in 0..250 + rnd(450) {
            let (day, hour) = (1 + rnd(31), (7 + rnd(18)) % 24);
            // A skewed circle: a few peers take most calls.
            let circle = 1 + rnd(60);
            let peer = rnd(circle);
            rows.push(format!(
                "2019-12-{day:02} {hour:02}:{:02}:00,normal{u:03},peer{u}_{peer},{},{},成都,{},imei{u}",
                rnd(60),
                1 + rnd(2),
                rnd(200),
                ["武侯区", "锦江区", "青羊区", "金牛区"][rnd(4) as usize]
            ));
        }
    }
    for u in 0..fraud {
        for k in 0..200 {
            rows.push(format!(
                "2019-12-{:02} {:02}:{:02}:{:02},fraud{u:03},victim{u}_{},1,{},,,fimei{u}",
                1 + rnd(6),
                9 + rnd(11),
                rnd(60),
                rnd(60),
                k % 140,
                rnd(180)
            ));
        }
    }
    rows.sort();
    // Sorted by time (the line starts with it), then re-ordered into the schema's columns.
    let mut out = String::from(
        "phone_no_m,opposite_no_m,calltype_id,start_datetime,call_dur,city_name,county_name,imei_m\n",
    );
    for r in rows {
        let f: Vec<&str> = r.split(',').collect();
        out += &format!(
            "{},{},{},{},{},{},{},{}\n",
            f[1], f[2], f[3], f[0], f[4], f[5], f[6], f[7]
        );
    }
    out
}

#[test]
fn an_online_model_judges_numbers_in_the_call_stream() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("online.json");
    let (code, out) = fanzha(&[
        "model",
        "train",
        "--online",
        "--rounds",
        "300",
        "--learning-rate",
        "0.06",
        "--features",
        DEV,
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let train: Value = serde_json::from_str(out.trim()).unwrap();
    // Voice features only, yet close to the full model.
    assert!(train["cv"]["auc"].as_f64().unwrap() >= 0.92, "{train}");
    let log = dir.path().join("voc.csv");
    std::fs::write(&log, sichuan_call_log(40, 4)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args(["monitor", "--format", "sichuan", "--cdr"])
        .arg(&log)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let alerts: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_model: Vec<&str> = alerts
        .iter()
        .filter(|a| a["rules"] == serde_json::json!(["model"]))
        .map(|a| a["number"].as_str().unwrap())
        .collect();
    let mut caught: Vec<&str> = by_model.clone();
    caught.sort();
    assert_eq!(
        caught,
        ["fraud000", "fraud001", "fraud002", "fraud003"],
        "{alerts:?}"
    );
    assert!(alerts.iter().all(|a| a["action"] == "reverify"));
    // A model that shares no feature with the monitor is refused with a reason.
    let full = dir.path().join("full.json");
    let mut offline = String::from("id,arpu_mean,label\n");
    for i in 0..60 {
        offline += &format!("u{i},{},{}\n", i % 7, i % 2);
    }
    let table = dir.path().join("offline.csv");
    std::fs::write(&table, offline).unwrap();
    let (code, _) = fanzha(&[
        "model",
        "train",
        "--rounds",
        "5",
        "--features",
        table.to_str().unwrap(),
        "--out",
        full.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let o = Command::new(env!("CARGO_BIN_EXE_fanzha"))
        .args(["monitor", "--format", "sichuan", "--cdr"])
        .arg(&log)
        .arg("--model")
        .arg(&full)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("train it with --online"));
}
