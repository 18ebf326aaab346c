//! The ledger conformance suite against a real SQLite file.

use fanzha_ledger_sqlite::SqliteStore;
use std::path::PathBuf;

/// A fresh ledger file in a temporary directory (kept alive for the test's duration by
/// leaking the directory handle; the OS cleans /tmp).
fn fresh() -> impl Fn() -> SqliteStore + Sync {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("ledger.sqlite");
    std::mem::forget(dir);
    move || SqliteStore::open(&path).expect("open ledger")
}

fanzha_ledger::conformance_suite!(fresh());

mod access {
    use super::*;
    fanzha_auth::access_conformance_suite!(fresh());
}
