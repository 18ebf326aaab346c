//! The one conformance suite every access backend runs (SQLite and PostgreSQL alike):
//! principals, login state, the version a cache follows, settings, and an audit chain that
//! stays whole under concurrent writers.
//!
//! A backend's tests invoke [`access_conformance_suite!`] with a function that prepares a
//! fresh, empty database and returns a connector to it (called once per connection).

use crate::audit::{verify, Action, AuditEntry, AuditKey, AuditRecord, Outcome};
use crate::role::Role;
use crate::store::{AccessError, AccessStore, Principal, PrincipalKind};

/// Generates one `#[test]` per conformance case for a backend.
#[macro_export]
macro_rules! access_conformance_suite {
    ($fresh:expr) => {
        $crate::access_conformance_suite!(@cases $fresh;
            principals_round_trip, revocation_and_roles_change_the_version,
            login_state_is_kept, settings_round_trip, audit_appends_chain_in_order,
            audit_queries_page_and_filter_by_time, concurrent_audit_appends_never_fork);
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let connect = $fresh;
                $crate::conformance::$case(&connect);
            }
        )*
    };
}

/// A user as `auth add-user` makes one.
pub fn user(name: &str, role: Role) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::User,
        role,
        created_at: 1_796_000_000,
        expires_at: None,
        revoked_at: None,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        totp_sealed: Some("g:sealed".into()),
        token_hash: None,
        failed_logins: 0,
        locked_until: None,
        created_by: "os:root".into(),
    }
}

/// A token as `auth add-token` makes one.
pub fn token(name: &str, role: Role, hash: &str) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::Token,
        role,
        created_at: 1_796_000_000,
        expires_at: Some(1_796_000_000 + 90 * 86_400),
        revoked_at: None,
        password_hash: None,
        totp_sealed: None,
        token_hash: Some(hash.into()),
        failed_logins: 0,
        locked_until: None,
        created_by: "os:root".into(),
    }
}

fn entry(i: i64, who: &str) -> AuditEntry {
    AuditEntry {
        ts: format!("2026-12-08T10:00:00.{i:03}+08:00"),
        at_ms: 1_796_000_000_000 + i * 1000,
        principal: who.into(),
        role: "analyst".into(),
        client: "127.0.0.1:40000".into(),
        action: Action::RecordRead,
        object: format!("subscribers/+8613800{i:06}"),
        purpose: String::new(),
        outcome: Outcome::Success,
        detail: "读取".into(),
    }
}

fn key() -> AuditKey {
    AuditKey::new(&[9u8; 32]).expect("32 bytes")
}

fn append<S: AccessStore>(s: &mut S, e: &AuditEntry) -> AuditRecord {
    let k = key();
    s.append_audit(e, &|seq, prev| AuditRecord::chain(e, seq, prev, &k))
        .expect("append audit")
}

pub fn principals_round_trip<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    assert_eq!(s.principals().unwrap(), vec![]);
    let ana = user("ana", Role::Supervisor);
    let gw = token("gw-1", Role::Gateway, &"ab".repeat(32));
    s.add_principal(&ana).unwrap();
    s.add_principal(&gw).unwrap();
    assert_eq!(s.principal("ana").unwrap(), Some(ana.clone()));
    assert_eq!(s.principal("gw-1").unwrap(), Some(gw.clone()));
    assert_eq!(s.principal("nobody").unwrap(), None);
    assert_eq!(s.principals().unwrap(), vec![ana.clone(), gw]);
    // A name is taken for good, by a user or a token.
    assert!(matches!(
        s.add_principal(&token("ana", Role::Gateway, "cd")),
        Err(AccessError::Exists(n)) if n == "ana"
    ));
    // Another connection sees the same.
    assert_eq!(connect().principal("ana").unwrap(), Some(ana));
}

pub fn revocation_and_roles_change_the_version<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    let v0 = s.access_version().unwrap();
    s.add_principal(&user("bo", Role::Analyst)).unwrap();
    let v1 = s.access_version().unwrap();
    assert_ne!(v0, v1);
    assert!(s.set_role("bo", Role::Supervisor).unwrap());
    let v2 = s.access_version().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(s.principal("bo").unwrap().unwrap().role, Role::Supervisor);
    assert!(!s.set_role("nobody", Role::Analyst).unwrap());
    assert!(s.revoke("bo", 1_796_000_100).unwrap());
    assert!(!s.revoke("bo", 1_796_000_200).unwrap(), "already revoked");
    assert!(!s.revoke("nobody", 1_796_000_200).unwrap());
    let v3 = connect().access_version().unwrap();
    assert_ne!(v2, v3, "seen from another connection");
    let bo = s.principal("bo").unwrap().unwrap();
    assert_eq!(bo.revoked_at, Some(1_796_000_100));
    assert!(!bo.active_at(1_796_000_100));
}

pub fn login_state_is_kept<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    s.add_principal(&user("cy", Role::Analyst)).unwrap();
    s.set_login_state("cy", 5, Some(1_796_001_800)).unwrap();
    let cy = connect().principal("cy").unwrap().unwrap();
    assert_eq!(
        (cy.failed_logins, cy.locked_until),
        (5, Some(1_796_001_800))
    );
    s.set_login_state("cy", 0, None).unwrap();
    let cy = s.principal("cy").unwrap().unwrap();
    assert_eq!((cy.failed_logins, cy.locked_until), (0, None));
    let v = s.access_version().unwrap();
    assert!(s.set_totp("cy", "r:resealed").unwrap());
    assert!(!s.set_totp("nobody", "r:x").unwrap());
    assert_eq!(
        connect()
            .principal("cy")
            .unwrap()
            .unwrap()
            .totp_sealed
            .as_deref(),
        Some("r:resealed")
    );
    assert_ne!(s.access_version().unwrap(), v);
}

pub fn settings_round_trip<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    assert_eq!(s.setting("pii_key_check").unwrap(), None);
    s.set_setting("pii_key_check", "abc").unwrap();
    s.set_setting("pii_key_check", "def").unwrap();
    assert_eq!(
        connect().setting("pii_key_check").unwrap().as_deref(),
        Some("def")
    );
}

pub fn audit_appends_chain_in_order<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    let mut written = Vec::new();
    for i in 1..=5 {
        written.push(append(&mut s, &entry(i, "ana")));
    }
    assert_eq!(
        written.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let read = connect().audit_records(0, 0, 100).unwrap();
    assert_eq!(
        read, written,
        "read back exactly as written (UTF-8 included)"
    );
    assert_eq!(verify(&key(), &read, None).unwrap().records, 5);
}

pub fn audit_queries_page_and_filter_by_time<S: AccessStore>(connect: &dyn Fn() -> S) {
    let mut s = connect();
    for i in 1..=10 {
        append(&mut s, &entry(i, "ana"));
    }
    let page = s.audit_records(0, 0, 4).unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let next = s.audit_records(4, 0, 4).unwrap();
    assert_eq!(next.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6, 7, 8]);
    let since = s.audit_records(0, 1_796_000_000_000 + 8_000, 100).unwrap();
    assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9, 10]);
}

pub fn concurrent_audit_appends_never_fork<S: AccessStore>(connect: &dyn Fn() -> S) {
    let stores: Vec<S> = (0..3).map(|_| connect()).collect();
    std::thread::scope(|scope| {
        for (w, mut s) in stores.into_iter().enumerate() {
            scope.spawn(move || {
                for i in 1..=30 {
                    append(&mut s, &entry(i, &format!("writer-{w}")));
                }
            });
        }
    });
    let all = connect().audit_records(0, 0, 1000).unwrap();
    assert_eq!(all.len(), 90);
    verify(&key(), &all, None).expect("one chain, no fork, no gap");
}
