//! The ledger conformance suite against a real PostgreSQL server. `scripts/test.sh` starts
//! one and sets FANZHA_TEST_DATABASE_URL; each case gets its own empty schema.

use fanzha_ledger_postgres::PgStore;
use std::sync::atomic::{AtomicU32, Ordering};

fn fresh() -> impl Fn() -> PgStore + Sync {
    static N: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("FANZHA_TEST_DATABASE_URL").expect(
        "FANZHA_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
    );
    let schema = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    move || PgStore::connect_in_schema(&url, Some(&schema)).expect("connect to PostgreSQL")
}

fanzha_ledger::conformance_suite!(fresh());

mod access {
    use super::*;
    fanzha_auth::access_conformance_suite!(fresh());
}
