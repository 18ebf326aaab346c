//! `fanzha decisions verify` on a real data dir: the keyed chain and the checkpoint kept in
//! the store find what the log's own files cannot show (R12.1, R13.1).

mod common;

use common::{fanzha_in as fanzha, import_example, EXAMPLE};
use serde_json::Value;
use std::path::Path;

fn verify(data: &Path) -> (i32, Value) {
    let o = fanzha(data, &["decisions", "verify"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

fn screen(data: &Path) {
    let o = fanzha(
        data,
        &["screen", "--calls", &format!("{EXAMPLE}/calls.jsonl")],
    );
    assert!(o.status.code().is_some_and(|c| c == 0 || c == 2));
}

fn segments(data: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(data.join("decisions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_finds_a_deleted_newest_segment_and_a_recomputed_record() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    screen(dir.path());
    let (code, v) = verify(dir.path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["checkpoint"], true,
        "checked against the store's checkpoint: {v}"
    );
    let records = v["records"].as_u64().unwrap();
    assert!(records > 0);
    // The whole log deleted: its files say nothing, the store's checkpoint does.
    let keep = tempfile::tempdir().unwrap();
    for s in segments(dir.path()) {
        std::fs::copy(&s, keep.path().join(s.file_name().unwrap())).unwrap();
        std::fs::remove_file(&s).unwrap();
    }
    let (code, v) = verify(dir.path());
    assert_eq!(code, 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("missing"), "{v}");
    // Restored, then one record edited and its old-style SHA-256 recomputed: the MAC needs
    // the key, which is not in the log directory.
    for e in std::fs::read_dir(keep.path()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(
            &p,
            dir.path().join("decisions").join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    assert_eq!(verify(dir.path()).0, 0);
    let seg = segments(dir.path()).pop().unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    let edited = text.replacen("\"block\"", "\"allow\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&seg, edited).unwrap();
    let (code, v) = verify(dir.path());
    assert_eq!(code, 1);
    assert!(v["error"].as_str().unwrap().contains("altered"), "{v}");
    // The key is not in the log directory, and a log with records refuses a missing key.
    assert!(!dir.path().join("decisions").join("decisions.key").exists());
    std::fs::remove_file(dir.path().join("decisions.key")).unwrap();
    let o = fanzha(dir.path(), &["decisions", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("its key"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
