//! `fanzha auth`, `fanzha audit` and the key files, end to end on a real data dir (R17.1).

mod common;

use common::{fanzha_cmd, fanzha_in as fanzha, import_example};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn add_user(data: &Path, name: &str, role: &str, password: &str) -> Output {
    let mut child = fanzha_cmd(data)
        .args(["auth", "add-user", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn accounts_are_made_listed_and_revoked_without_showing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let o = add_user(dir.path(), "ana", "supervisor", "Correct-horse-1");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let u = &json_lines(&o)[0];
    assert_eq!(
        (u["name"].as_str(), u["role"].as_str()),
        (Some("ana"), Some("supervisor"))
    );
    assert!(u["totp_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/fanzha:ana?secret="));
    let o = add_user(dir.path(), "bo", "analyst", "password");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 classes"));
    let o = fanzha(dir.path(), &["auth", "add-user", "cy", "--role", "root"]);
    assert_eq!(o.status.code(), Some(2), "an unknown role is a usage error");
    let o = fanzha(
        dir.path(),
        &[
            "auth",
            "add-token",
            "sbc-1",
            "--role",
            "gateway",
            "--days",
            "7",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let t = &json_lines(&o)[0];
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("fzt_") && token.len() > 40);
    assert!(t["expires_at"].as_str().unwrap().ends_with("+08:00"));
    let o = fanzha(
        dir.path(),
        &["auth", "add-token", "sbc-1", "--role", "gateway"],
    );
    assert_eq!(o.status.code(), Some(1), "names are unique");
    let listed = fanzha(dir.path(), &["auth", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(json_lines(&listed).len(), 2);
    assert!(!text.contains(&token[4..]) && !text.contains("argon2") && !text.contains("secret"));
    let o = fanzha(dir.path(), &["auth", "revoke", "sbc-1"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        fanzha(dir.path(), &["auth", "revoke", "sbc-1"])
            .status
            .code(),
        Some(1)
    );
    let listed = json_lines(&fanzha(dir.path(), &["auth", "list"]));
    assert!(listed
        .iter()
        .any(|p| p["name"] == "sbc-1" && p["revoked_at"].is_i64()));
    // Every account change is on record, with the operating-system user.
    let trail = json_lines(&fanzha(dir.path(), &["audit", "export"]));
    let adds: Vec<_> = trail
        .iter()
        .filter(|r| r["action"] == "account_add")
        .collect();
    assert_eq!(
        adds.len(),
        3,
        "two made, one duplicate (a weak password is refused before any change)"
    );
    assert!(adds
        .iter()
        .all(|r| r["principal"].as_str().unwrap().starts_with("os:")));
    assert!(trail
        .iter()
        .any(|r| r["action"] == "account_revoke" && r["object"] == "sbc-1"));
}

/// A trail of a few reads, then the database file edited the ways an insider with database
/// access (but not the key file) would: `audit verify` names the first bad record.
#[test]
fn audit_verify_finds_edited_removed_reordered_and_cut_off_records() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    for _ in 0..3 {
        fanzha(dir.path(), &["ledger", "get", "subscribers", "13500001111"]);
    }
    let o = fanzha(dir.path(), &["audit", "verify"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let ok = &json_lines(&o)[0];
    assert_eq!(ok["intact"], true);
    let n = ok["records"].as_i64().unwrap();
    assert!(n >= 11, "8 imports and 3 reads: {n}");
    let cp = fanzha(dir.path(), &["audit", "checkpoint"]);
    assert_eq!(cp.status.code(), Some(0));
    let checkpoint = dir.path().join("checkpoint.json");
    std::fs::write(&checkpoint, &cp.stdout).unwrap();

    let tamper = |sql: &str| -> Value {
        let copy = tempfile::tempdir().unwrap();
        for f in ["ledger.sqlite", "pii.key", "audit.key"] {
            std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
        }
        for f in ["ledger.sqlite-wal", "ledger.sqlite-shm"] {
            let _ = std::fs::copy(dir.path().join(f), copy.path().join(f));
        }
        let db = rusqlite::Connection::open(copy.path().join("ledger.sqlite")).unwrap();
        db.execute_batch(
            "DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete;",
        )
        .unwrap();
        db.execute_batch(sql).unwrap();
        drop(db);
        let o = fanzha(
            copy.path(),
            &[
                "audit",
                "verify",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        json_lines(&o)[0].clone()
    };
    let edited = tamper("UPDATE audit SET principal = 'nobody' WHERE seq = 9");
    assert_eq!(edited["seq"], 9);
    assert!(
        edited["reason"].as_str().unwrap().contains("edited"),
        "{edited}"
    );
    let removed = tamper("DELETE FROM audit WHERE seq = 5");
    assert_eq!(removed["seq"], 6);
    assert!(
        removed["reason"].as_str().unwrap().contains("missing"),
        "{removed}"
    );
    // Two records' contents swapped (their seqs kept): the chain no longer links.
    let reordered = tamper(
        "CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq IN (3, 4);
         DELETE FROM audit WHERE seq IN (3, 4);
         INSERT INTO audit SELECT 7 - seq, ts, at_ms, principal, role, client, action, object,
            purpose, outcome, detail, prev, mac FROM a;",
    );
    assert_eq!(reordered["seq"], 3);
    let cut = tamper(&format!("DELETE FROM audit WHERE seq > {}", n - 2));
    assert_eq!(cut["seq"], n);
    assert!(cut["reason"].as_str().unwrap().contains("cut off"), "{cut}");
}

#[test]
fn a_ledger_refuses_a_missing_a_wrong_or_an_exposed_pii_key() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let key = dir.path().join("pii.key");
    let get = |d: &Path| fanzha(d, &["ledger", "get", "subscribers", "13500001111"]);
    assert_eq!(get(dir.path()).status.code(), Some(0));
    let original = std::fs::read(&key).unwrap();
    // Missing: never a fresh key over sealed data.
    std::fs::remove_file(&key).unwrap();
    let o = get(dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("is missing") && err.contains("restore"),
        "{err}"
    );
    assert!(!key.exists(), "no key was made");
    // Another key.
    write_key(&key, &[7u8; 64]);
    let o = get(dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not this ledger's key"));
    // The right key, readable by others.
    std::fs::remove_file(&key).unwrap();
    write_key(&key, &original);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = get(dir.path());
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("group or others"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert_eq!(get(dir.path()).status.code(), Some(0));
    // The audit key the same way.
    let audit_key = dir.path().join("audit.key");
    std::fs::remove_file(&audit_key).unwrap();
    let o = fanzha(dir.path(), &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("audit trail exists but its key"));
}

fn write_key(path: &Path, key: &[u8]) {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).unwrap().write_all(key).unwrap();
}

/// `ledger rotate-key`: the data re-sealed under a new key in one go, audited; afterwards
/// only the new key opens the ledger.
#[test]
fn rotate_key_reseals_under_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let new_key = dir.path().join("pii.key.new");
    let o = fanzha(
        dir.path(),
        &[
            "ledger",
            "rotate-key",
            "--new-key",
            new_key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let done = &json_lines(&o)[0];
    assert!(done["records"].as_u64().unwrap() >= 3, "{done}");
    let reveal = |d: &Path, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend([
            "ledger",
            "get",
            "subscribers",
            "13500001111",
            "--reveal",
            "--purpose",
            "test",
        ]);
        fanzha(d, &args)
    };
    // The old key is no longer the ledger's.
    let o = reveal(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not this ledger's key"));
    let o = reveal(dir.path(), &["--pii-key", new_key.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("412723199010050012"));
    let trail = json_lines(&fanzha(
        dir.path(),
        &["--pii-key", new_key.to_str().unwrap(), "audit", "export"],
    ));
    assert!(trail.iter().any(|r| r["action"] == "key_rotate"));
    // A key whose hashing half differs is refused, nothing changed.
    let other = dir.path().join("other.key");
    write_key(&other, &[9u8; 64]);
    let o = fanzha(
        dir.path(),
        &[
            "--pii-key",
            new_key.to_str().unwrap(),
            "ledger",
            "rotate-key",
            "--new-key",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hashing key"));
}
