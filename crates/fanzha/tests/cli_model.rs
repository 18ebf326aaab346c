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
