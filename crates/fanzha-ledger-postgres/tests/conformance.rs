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

/// `sslmode=require` with the test server's CA: the connection is encrypted and the
/// ledger works through it; a wrong CA is refused (scripts/postgres.sh serves TLS with a
/// throwaway CA in FANZHA_TEST_PG_CA).
#[test]
fn tls_when_the_url_asks_for_it() {
    let url = std::env::var("FANZHA_TEST_DATABASE_URL").expect("FANZHA_TEST_DATABASE_URL");
    let ca = std::env::var("FANZHA_TEST_PG_CA")
        .expect("FANZHA_TEST_PG_CA is not set: run the tests with scripts/test.sh");
    let mut plain = PgStore::connect_in_schema(&url, Some("tls_case")).unwrap();
    assert!(!plain.encrypted().unwrap());
    let tls_url = format!("{url}?sslmode=require&sslrootcert={ca}");
    let mut tls = PgStore::connect_in_schema(&tls_url, Some("tls_case")).unwrap();
    assert!(tls.encrypted().unwrap());
    use fanzha_ledger::Store;
    assert!(tls.version().is_ok());
    // A CA that did not sign the server's certificate.
    let other = std::env::temp_dir().join(format!("fanzha-other-ca-{}.pem", std::process::id()));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.with_extension("key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(o.status.success());
    let e = PgStore::connect(&format!(
        "{url}?sslmode=require&sslrootcert={}",
        other.display()
    ))
    .err()
    .expect("an unknown CA is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    PgStore::drop_schema(&url, "tls_case").unwrap();
}
