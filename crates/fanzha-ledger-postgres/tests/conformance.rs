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

/// The server drops the connection (as a restart does): the store reconnects on its next
/// call, and the ledger and the audit trail work again without restarting the service.
#[test]
fn reconnects_after_the_server_drops_the_connection() {
    use fanzha_auth::AccessStore;
    use fanzha_ledger::Store;
    let url = std::env::var("FANZHA_TEST_DATABASE_URL").expect("FANZHA_TEST_DATABASE_URL");
    let app = format!("fanzha-reconnect-{}", std::process::id());
    let mut store = PgStore::connect_in_schema(
        &format!("{url}?application_name={app}"),
        Some("reconnect_case"),
    )
    .unwrap();
    assert!(store.version().is_ok());
    let mut killer = PgStore::connect(&url).unwrap();
    let killed = killer.terminate_sessions_of(&app).unwrap();
    assert_eq!(killed, 1);
    // The backend ends asynchronously: wait until it is gone.
    let gone = std::time::Instant::now();
    while killer.terminate_sessions_of(&app).unwrap() > 0 {
        assert!(gone.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The first call sees the dead connection; the next has a new one.
    let first = store.version();
    assert!(first.is_err() || store.version().is_ok());
    assert!(store.version().is_ok(), "reconnected");
    assert!(store.setting("anything").is_ok(), "the access store too");
    PgStore::drop_schema(&url, "reconnect_case").unwrap();
}
