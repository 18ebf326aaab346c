//! The router, without a socket: the contract's routes, roles and audit.

use crate::auth::{AuthConfig, Authenticator, Caller, Now};
use crate::metrics::Metrics;
use crate::routes::specs;
use crate::{app, AppState, MonitorIngest};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use fanzha_auth::credential::Totp;
use fanzha_auth::{Permission, Role};
use fanzha_ledger::{Ledger, Store};
use fanzha_screen::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// 2026-11-30T13:00:00+08:00 (after the calls and call records the tests send).
const T0_MS: i64 = 1_796_014_800_000;

struct Harness {
    app: Router,
    auth: Arc<Authenticator>,
    clock_ms: Arc<AtomicI64>,
    /// A token per role, named after it.
    tokens: HashMap<Role, String>,
}

fn now_at(ms: i64) -> Now {
    let t = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&fanzha_model::time::cst());
    use chrono::Datelike;
    Now {
        rfc3339: t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        unix_ms: ms,
        today: fanzha_model::Date {
            year: t.year() as u16,
            month: t.month() as u8,
            day: t.day() as u8,
        },
    }
}

/// A clock the tests move.
struct TestClock(Arc<AtomicI64>);

impl crate::Clock for TestClock {
    fn now(&self) -> Now {
        now_at(self.0.load(Ordering::Relaxed))
    }
    fn unix_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn harness() -> Harness {
    harness_over(Box::new(
        fanzha_ledger_sqlite::SqliteStore::in_memory().unwrap(),
    ))
}

fn harness_over(access: Box<dyn fanzha_auth::AccessStore>) -> Harness {
    harness_full(access, None)
}

fn harness_full(
    access: Box<dyn fanzha_auth::AccessStore>,
    log: Option<Arc<fanzha_screen::decision_log::DecisionLog>>,
) -> Harness {
    let store: Box<dyn Store> = Box::new(fanzha_ledger_sqlite::SqliteStore::in_memory().unwrap());
    let vault = fanzha_ledger::PiiVault::new(&[3u8; 64]).unwrap();
    let ledger = Ledger::new(store, vault.clone());
    let auth = Arc::new(
        Authenticator::new(
            access,
            fanzha_auth::AuditKey::new(&[5u8; 32]).unwrap(),
            vault,
            AuthConfig::default(),
        )
        .unwrap(),
    );
    let clock_ms = Arc::new(AtomicI64::new(T0_MS));
    let c = clock_ms.clone();
    let engine = Arc::new(Engine::new(
        fanzha_policy::Snapshot::new(0),
        fanzha_policy::RuleConfig::default(),
    ));
    let state = AppState {
        engine,
        ledger: Arc::new(Mutex::new(ledger)),
        auth: auth.clone(),
        log,
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(TestClock(c)),
        monitor: Some(MonitorIngest {
            pipeline: Arc::new(Mutex::new(fanzha_monitor::Pipeline::new(
                fanzha_detect::monitor::Monitor::new(fanzha_detect::monitor::default_rules()),
            ))),
            dispose: true,
        }),
        max_clock_skew_s: 300,
        request_timeout: std::time::Duration::from_secs(30),
    };
    let root = Caller::local("root");
    let now = now_at(T0_MS);
    let tokens = Role::ALL
        .iter()
        .map(|&r| {
            let t = auth.add_token(r.as_str(), r, 30, &root, &now).unwrap();
            (r, t.token)
        })
        .collect();
    Harness {
        app: app(state),
        auth,
        clock_ms,
        tokens,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Harness {
    fn token(&self, r: Role) -> &str {
        &self.tokens[&r]
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
        }
    }

    /// A request with a bearer token (or none).
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn as_role(&self, r: Role, method: &str, uri: &str, ct: &str, body: &str) -> Answer {
        self.call(method, uri, Some(&self.tokens[&r].clone()), ct, body)
            .await
    }

    fn audit_trail(&self) -> Vec<fanzha_auth::AuditRecord> {
        self.auth.records(0, i64::MIN, 100_000).unwrap()
    }
}

const TRUNKS: &str = "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nintl-a,international,,,,false,active\n";
const SUBSCRIBER: &str = "msisdn,kind,holder_id,holder_name,real_name,state,verification,channel\n13500001111,mobile,110102199101010078,王强,verified,active,id_reader,own_store\n";

#[tokio::test]
async fn ledger_write_is_visible_to_screening_at_once() {
    let h = harness();
    let call_json = r#"{"id":"x","ts":"2026-11-30T09:00:00+08:00","trunk":"intl-a","caller":"+8613500001111","callee":"13912345678"}"#;
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            call_json,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["error"], "unknown trunk \"intl-a\"");
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/trunks",
            "text/csv",
            TRUNKS,
        )
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].clone()),
        (StatusCode::OK, json!(1))
    );
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &format!("[{call_json}]"),
        )
        .await;
    assert_eq!(a.body[0]["rules"], json!(["intl-domestic-cli"]));
    assert_eq!(a.body[0]["code"], 608);
    let rows = r#"[{"number":"+86 189 0000 1234","source":"police_notice","reason":"涉诈","added_at":"","expires_at":""}]"#;
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/blocklist",
            "application/json",
            rows,
        )
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].clone()),
        (StatusCode::OK, json!(1))
    );
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call_json.replace("+8613500001111", "18900001234"),
        )
        .await;
    assert_eq!(
        a.body["rules"],
        json!(["intl-domestic-cli", "number-blocklisted"])
    );
    // The trunk was compiled in whole (one rebuild); the blocklist row was patched in.
    let m = h.as_role(Role::Monitoring, "GET", "/metrics", "", "").await;
    assert!(
        m.body
            .as_str()
            .unwrap()
            .contains("fanzha_snapshot_rebuilds_total 1"),
        "{}",
        m.body
    );
}

/// R8.1 on trusted time: a call dated in the future is an error, not a verdict, so it can
/// neither use nor reset today's quota; a call record from the future is refused too.
#[tokio::test]
async fn calls_and_records_from_the_future_are_refused() {
    let h = harness();
    h.as_role(
        Role::SystemAdmin,
        "POST",
        "/v1/ledger/trunks",
        "text/csv",
        TRUNKS,
    )
    .await;
    let call = |ts: &str| {
        format!(
            r#"{{"id":"f","ts":"{ts}","trunk":"intl-a","caller":"+85291234567","callee":"13912345678"}}"#
        )
    };
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call("2026-12-01T13:00:00+08:00"),
        )
        .await;
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("ahead of the service's clock"),
        "{}",
        a.body
    );
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call("2026-11-30T13:04:00+08:00"),
        )
        .await;
    assert_eq!(a.body["action"], "allow", "within the skew: {}", a.body);
    let cdr = "start,caller,callee,duration_s,trunk,imei,cell\n2130-01-01T00:00:00+08:00,+8613500000001,+8613900000000,0,acc-1,,\n2026-11-30T12:00:00+08:00,+8613500000001,+8613900000000,30,acc-1,,\n";
    let a = h
        .as_role(Role::Ingest, "POST", "/v1/cdr", "text/csv", cdr)
        .await;
    assert_eq!(
        (a.body["records"].clone(), a.body["bad_records"].clone()),
        (json!(1), json!(1)),
        "{}",
        a.body
    );
    assert_eq!(a.body["errors"][0]["line"], 2);
    assert!(a.body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("from the future"));
}

/// Bodies are limited per route and refused before they are read; the credential is
/// checked before the body either way.
#[tokio::test]
async fn request_bodies_are_limited_per_route() {
    let h = harness();
    let big = format!("[{}]", vec!["{}"; 1_500_000].join(","));
    assert!(big.len() > 4 << 20);
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &big,
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let a = h
        .call("POST", "/v1/screen", None, "application/json", &big)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let form = format!(
        r#"{{"role":"analyst","kind":"token","name":"{}"}}"#,
        "x".repeat(70_000)
    );
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/principals",
            "application/json",
            &form,
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A batch of calls past the inline size runs on the blocking pool, answered in order.
    let calls: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"id":"b{i}","ts":"2026-11-30T09:00:00+08:00","trunk":"none","caller":"+85291234567","callee":"13912345678"}}"#))
        .collect();
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &format!("[{}]", calls.join(",")),
        )
        .await;
    assert_eq!(a.body.as_array().unwrap().len(), 40);
    assert_eq!(a.body[39]["id"], "b39");
}

#[tokio::test]
async fn refusals_and_errors_have_stable_codes() {
    let h = harness();
    let csv = "msisdn,kind,holder_id,real_name,state,verification,channel\n13500001111,mobile,110102199101010078,verified,active,none,own_store\n";
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/subscribers",
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["refusals"][0]["requirement"], "R2.1");
    assert_eq!(a.body["refusals"][0]["line"], 2);
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/phones",
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_kind"))
    );
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/subscribers",
            "text/csv",
            "msisdn\n1\n",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("missing_column"))
    );
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            "{nope",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad_json"))
    );
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/13500009999",
            "",
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

/// R17.1: analysts see personal data masked everywhere; only a supervisor reveals, with a
/// purpose, and the reveal is on record before the answer leaves. The actor is the
/// authenticated principal: a forged X-Fanzha-Actor header changes nothing.
#[tokio::test]
async fn reads_mask_and_only_a_supervisor_reveals_with_a_purpose() {
    let h = harness();
    h.as_role(
        Role::SystemAdmin,
        "POST",
        "/v1/ledger/subscribers",
        "text/csv",
        SUBSCRIBER,
    )
    .await;
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/+8613500001111",
            "",
            "",
        )
        .await;
    assert_eq!(a.body["record"]["holder_id"], "110102********0078");
    // An analyst asking to reveal: refused, and the attempt is on record.
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/13500001111?reveal=true&purpose=x",
            "",
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
    // A supervisor without a purpose: 400.
    let a = h
        .as_role(
            Role::Supervisor,
            "GET",
            "/v1/ledger/subscribers/13500001111?reveal=true",
            "",
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("purpose_required"))
    );
    let a = h
        .as_role(
            Role::Supervisor,
            "GET",
            "/v1/ledger/subscribers/13500001111?reveal=true&purpose=%20%20",
            "",
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "a blank purpose is none");
    // With a purpose, and a forged actor header.
    let req = Request::builder()
        .uri("/v1/ledger/subscribers/13500001111?reveal=true&purpose=case%2042")
        .header(
            "authorization",
            format!("Bearer {}", h.token(Role::Supervisor)),
        )
        .header("x-fanzha-actor", "somebody-else")
        .body(Body::empty())
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["record"]["holder_id"], "110102199101010078");
    let trail = h.audit_trail();
    let reveal = trail
        .iter()
        .rfind(|r| r.action == "reveal" && r.outcome == "success")
        .expect("the reveal is audited");
    assert_eq!(
        (
            reveal.principal.as_str(),
            reveal.role.as_str(),
            reveal.purpose.as_str(),
            reveal.object.as_str()
        ),
        (
            "supervisor",
            "supervisor",
            "case 42",
            "subscribers/+8613500001111"
        )
    );
    assert!(trail
        .iter()
        .any(|r| r.action == "reveal" && r.outcome == "denied" && r.principal == "analyst"));
    // History: the reveal event's actor is the principal, never the header.
    let a = h
        .as_role(
            Role::Regulator,
            "GET",
            "/v1/ledger/subscribers/13500001111/history",
            "",
            "",
        )
        .await;
    let last = a.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["command"].clone(), last["actor"].clone()),
        (json!("pii_revealed"), json!("supervisor"))
    );
    let first = a.body["events"][0].clone();
    assert_eq!(first["actor"], "system_admin");
    assert_eq!(first["after"]["holder_id"], "110102********0078");
    // Number views are masked and audited.
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/numbers/0086%20135%200000%201111",
            "",
            "",
        )
        .await;
    assert_eq!(a.body["e164"], "+8613500001111");
    assert_eq!(
        a.body["ledger"]["subscribers"]["holder_id"],
        "110102********0078"
    );
    let trail = h.audit_trail();
    for action in ["record_read", "history_read", "number_view", "ledger_write"] {
        assert!(
            trail
                .iter()
                .any(|r| r.action == action && r.outcome == "success"),
            "{action}"
        );
    }
    assert!(h.auth.verify(None).unwrap().is_ok());
}

/// Every route of the table: no credential, a bad one and a revoked one get 401 with
/// WWW-Authenticate; each role gets 403 where it lacks the permission and gets in where it
/// has it. `GET /healthz` and the login are the only routes open without a credential.
#[tokio::test]
async fn every_route_checks_its_permission_for_every_role() {
    let h = harness();
    let revoked = h
        .auth
        .add_token(
            "old",
            Role::Supervisor,
            30,
            &Caller::local("root"),
            &now_at(T0_MS),
        )
        .unwrap()
        .token;
    h.auth
        .revoke("old", &Caller::local("root"), &now_at(T0_MS))
        .unwrap();
    let fill = |p: &str| {
        p.replace("{kind}", "subscribers")
            .replace("{key}", "13500001111")
            .replace("{number}", "13500001111")
            .replace("{name}", "old")
    };
    let mut open = Vec::new();
    for spec in specs() {
        let uri = fill(spec.path);
        let m = spec.method.as_str();
        let Some(perm) = spec.permission else {
            open.push(spec.path);
            continue;
        };
        for token in [
            None,
            Some("fzt_not-a-token"),
            Some("garbage"),
            Some(revoked.as_str()),
        ] {
            let a = h.call(m, &uri, token, "application/json", "{}").await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{m} {uri} with {token:?}"
            );
            assert_eq!(a.body["error"]["code"], "unauthenticated", "{m} {uri}");
            assert!(a.body["error"]["message"].is_string());
            assert_eq!(a.headers["www-authenticate"], "Bearer");
        }
        for role in Role::ALL {
            let a = h.as_role(role, m, &uri, "application/json", "{}").await;
            if role.may(perm) {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{role} may {perm:?}: {m} {uri} → {} {}",
                    a.status,
                    a.body
                );
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{role} {m} {uri}");
                assert_eq!(a.body["error"]["code"], "forbidden");
            }
        }
    }
    assert_eq!(open, ["/v1/session", "/healthz"]);
    // Refused attempts are on record with the client and the reason.
    let trail = h.audit_trail();
    assert!(trail.iter().any(|r| r.action == "authenticate"
        && r.outcome == "failure"
        && r.detail == "unknown credential"));
    assert!(trail
        .iter()
        .any(|r| r.action == "authenticate" && r.detail == "no credential"));
    assert!(trail
        .iter()
        .any(|r| r.action == "authorize" && r.outcome == "denied" && r.principal == "gateway"));
}

/// A decision log that cannot write: `/healthz` says so (503, the reason), metrics count
/// what is lost, and under `on_failure = refuse` screening answers 503 until it writes
/// again.
#[tokio::test]
async fn a_decision_log_that_cannot_write_degrades_health_and_refuses_by_policy() {
    use fanzha_screen::decision_log::{DecisionLog, LogConfig, LogKey, OnFailure};
    let dir = std::env::temp_dir().join(format!("fanzha-api-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = LogConfig::new(LogKey::new(&[4u8; 32]).unwrap());
    config.on_failure = OnFailure::Refuse;
    let log = Arc::new(DecisionLog::open_with(&dir, config).unwrap());
    let h = harness_full(
        Box::new(fanzha_ledger_sqlite::SqliteStore::in_memory().unwrap()),
        Some(log.clone()),
    );
    h.as_role(
        Role::SystemAdmin,
        "POST",
        "/v1/ledger/trunks",
        "text/csv",
        TRUNKS,
    )
    .await;
    let call = |ts: &str| {
        format!(
            r#"{{"id":"x","ts":"{ts}","trunk":"intl-a","caller":"+8613500001111","callee":"13912345678"}}"#
        )
    };
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call("2026-11-30T09:00:00+08:00"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    log.flush();
    assert_eq!(
        h.call("GET", "/healthz", None, "", "").await.status,
        StatusCode::OK
    );
    // The next day's segment cannot be made.
    std::fs::create_dir(dir.join("seg-000000000002.jsonl")).unwrap();
    h.clock_ms.store(T0_MS + 86_400_000, Ordering::Relaxed);
    h.as_role(
        Role::Gateway,
        "POST",
        "/v1/screen",
        "application/json",
        &call("2026-12-01T09:00:00+08:00"),
    )
    .await;
    log.flush();
    let a = h.call("GET", "/healthz", None, "", "").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body["status"], "degraded");
    assert!(
        a.body["reason"].as_str().unwrap().contains("decision log"),
        "{}",
        a.body
    );
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call("2026-12-01T09:00:01+08:00"),
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("decision_log_unavailable")
        )
    );
    let m = h.as_role(Role::Monitoring, "GET", "/metrics", "", "").await;
    let text = m.body.as_str().unwrap();
    assert!(text.contains("fanzha_decision_log_writing 0"), "{text}");
    assert!(text.contains("fanzha_decision_log_lost_total 1"), "{text}");
    std::fs::remove_dir(dir.join("seg-000000000002.jsonl")).unwrap();
    let t = std::time::Instant::now();
    while log.refusing() {
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call("2026-12-01T09:00:02+08:00"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// No unaudited read: when the audit trail cannot be written, the record is not sent.
#[tokio::test]
async fn a_read_that_cannot_be_audited_is_refused() {
    let dir = std::env::temp_dir().join(format!("fanzha-api-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.sqlite");
    let _ = std::fs::remove_file(&path);
    let h = harness_over(Box::new(
        fanzha_ledger_sqlite::SqliteStore::open(&path).unwrap(),
    ));
    h.as_role(
        Role::SystemAdmin,
        "POST",
        "/v1/ledger/subscribers",
        "text/csv",
        SUBSCRIBER,
    )
    .await;
    let ok = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/13500001111",
            "",
            "",
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE audit RENAME TO audit_gone")
        .unwrap();
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/13500001111",
            "",
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body["error"]["code"], "audit_unavailable");
    assert!(
        !a.body.to_string().contains("0078"),
        "no part of the record: {}",
        a.body
    );
    let a = h
        .as_role(
            Role::Supervisor,
            "GET",
            "/v1/ledger/subscribers/13500001111?reveal=true&purpose=p",
            "",
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!a.body.to_string().contains("110102199101010078"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_revoked_token_stops_at_once_and_an_expired_one_too() {
    let h = harness();
    let a = h.as_role(Role::Monitoring, "GET", "/metrics", "", "").await;
    assert_eq!(a.status, StatusCode::OK);
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/principals/monitoring/revoke",
            "",
            "",
        )
        .await;
    assert_eq!(
        (a.status, a.body["revoked"].clone()),
        (StatusCode::OK, json!(true))
    );
    let a = h.as_role(Role::Monitoring, "GET", "/metrics", "", "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Tokens were made for 30 days.
    h.clock_ms.store(T0_MS + 30 * 86_400_000, Ordering::Relaxed);
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            "[]",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn accounts_separation_of_duties_and_no_change_of_ones_own_role() {
    let h = harness();
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "PUT",
            "/v1/principals/security_admin/role",
            "application/json",
            r#"{"role":"supervisor"}"#,
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "PUT",
            "/v1/principals/analyst/role",
            "application/json",
            r#"{"role":"supervisor"}"#,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // The analyst's token now carries the new role.
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/subscribers/1?reveal=true",
            "",
            "",
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "a supervisor now: only the purpose is missing"
    );
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/principals",
            "application/json",
            r#"{"name":"weak","kind":"user","role":"analyst","password":"short"}"#,
        )
        .await;
    assert_eq!(a.body["error"]["code"], "weak_password");
    let a = h
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/principals",
            "application/json",
            r#"{"name":"gw-2","kind":"token","role":"gateway","days":7}"#,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let token = a.body["token"].as_str().unwrap().to_string();
    let a = h
        .call("POST", "/v1/screen", Some(&token), "application/json", "[]")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = h
        .as_role(Role::SecurityAdmin, "GET", "/v1/principals", "", "")
        .await;
    let listed = a.body["principals"].to_string();
    assert!(listed.contains("gw-2") && !listed.contains(&token[4..]) && !listed.contains("argon2"));
    let trail = h.audit_trail();
    assert!(trail
        .iter()
        .any(|r| r.action == "account_role" && r.outcome == "denied"));
    assert!(trail
        .iter()
        .any(|r| r.action == "account_add" && r.object == "gw-2"));
}

fn totp_of(uri: &str) -> Totp {
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    Totp::from_base32(secret).unwrap()
}

async fn login(h: &Harness, name: &str, password: &str, code: &str) -> Answer {
    let body = json!({"name": name, "password": password, "totp": code}).to_string();
    h.call("POST", "/v1/session", None, "application/json", &body)
        .await
}

/// People log in with password and TOTP; the cookie is HttpOnly, SameSite=Strict; a
/// session's state changes need its CSRF token; five failures lock the account for 30
/// minutes; 30 minutes idle end the session; every attempt is audited.
#[tokio::test]
async fn sessions_login_csrf_lockout_and_idle_timeout() {
    let h = harness();
    let root = Caller::local("root");
    let now = now_at(T0_MS);
    let ana = h
        .auth
        .add_user(
            "ana",
            Role::SystemAdmin,
            "Correct-horse-1",
            true,
            &root,
            &now,
        )
        .unwrap();
    let totp = totp_of(ana.totp_uri.as_deref().unwrap());
    let code = format!("{:06}", totp.code_at(T0_MS / 1000));
    let a = login(&h, "ana", "Correct-horse-1", "000000").await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthenticated"))
    );
    let a = login(&h, "ana", "Correct-horse-1", &code).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not over TLS here");
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = a.body["csrf_token"].as_str().unwrap().to_string();
    let with_session = |method: &str, uri: &str, csrf: Option<&str>, body: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("cookie", &session)
            .header("content-type", "text/csv");
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        b.body(Body::from(body.to_string())).unwrap()
    };
    let a = h.send(with_session("GET", "/v1/session", None, "")).await;
    assert_eq!(
        (a.body["name"].clone(), a.body["session"].clone()),
        (json!("ana"), json!(true))
    );
    let a = h
        .send(with_session("POST", "/v1/ledger/trunks", None, TRUNKS))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no CSRF token");
    let a = h
        .send(with_session(
            "POST",
            "/v1/ledger/trunks",
            Some("wrong"),
            TRUNKS,
        ))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let a = h
        .send(with_session(
            "POST",
            "/v1/ledger/trunks",
            Some(&csrf),
            TRUNKS,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // 29 minutes idle is fine, then 31 more ends it.
    h.clock_ms.fetch_add(29 * 60_000, Ordering::Relaxed);
    assert_eq!(
        h.send(with_session("GET", "/v1/session", None, ""))
            .await
            .status,
        StatusCode::OK
    );
    h.clock_ms.fetch_add(31 * 60_000, Ordering::Relaxed);
    let a = h.send(with_session("GET", "/v1/session", None, "")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Five failures lock the account; the right password is refused until 30 minutes pass.
    let t = h.clock_ms.load(Ordering::Relaxed);
    for _ in 0..5 {
        assert_eq!(
            login(&h, "ana", "Wrong-pass-1", "").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let code = format!("{:06}", totp.code_at(t / 1000));
    let a = login(&h, "ana", "Correct-horse-1", &code).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("locked"));
    h.clock_ms.store(t + 31 * 60_000, Ordering::Relaxed);
    let code = format!("{:06}", totp.code_at((t + 31 * 60_000) / 1000));
    let a = login(&h, "ana", "Correct-horse-1", &code).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // A security admin ends the person's sessions without closing the account.
    let ended_one = a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let e = h
        .as_role(
            Role::SecurityAdmin,
            "DELETE",
            "/v1/principals/ana/sessions",
            "",
            "",
        )
        .await;
    assert_eq!(e.body["ended"], 1, "{}", e.body);
    let gone = Request::builder()
        .uri("/v1/session")
        .header("cookie", &ended_one)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(gone).await.status, StatusCode::UNAUTHORIZED);
    let a = login(&h, "ana", "Correct-horse-1", &code).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "a TOTP code is good once"
    );
    h.clock_ms.fetch_add(30_000, Ordering::Relaxed);
    let code = format!("{:06}", totp.code_at((t + 31 * 60_000 + 30_000) / 1000));
    let a = login(&h, "ana", "Correct-horse-1", &code).await;
    assert_eq!(a.status, StatusCode::OK, "the account stays: {}", a.body);
    // Logging out ends the session.
    let session = a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = a.body["csrf_token"].as_str().unwrap().to_string();
    let out = Request::builder()
        .method("DELETE")
        .uri("/v1/session")
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(out).await.body["ended"], true);
    let again = Request::builder()
        .uri("/v1/session")
        .header("cookie", &session)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(again).await.status, StatusCode::UNAUTHORIZED);
    // Unknown names fail the same way, and every attempt is on record.
    assert_eq!(
        login(&h, "nobody", "Correct-horse-1", "").await.status,
        StatusCode::UNAUTHORIZED
    );
    let logins: Vec<_> = h
        .audit_trail()
        .into_iter()
        .filter(|r| r.action == "login")
        .collect();
    assert_eq!(logins.iter().filter(|r| r.outcome == "success").count(), 3);
    // A wrong code, five wrong passwords, one while locked, a replayed code, an unknown name.
    assert_eq!(logins.iter().filter(|r| r.outcome == "failure").count(), 9);
    assert!(logins.iter().any(|r| r.detail.starts_with("locked out")));
}

#[tokio::test]
async fn the_audit_admin_reads_the_trail_since_a_time() {
    let h = harness();
    h.as_role(
        Role::Analyst,
        "GET",
        "/v1/ledger/subscribers/13500001111",
        "",
        "",
    )
    .await;
    h.clock_ms.fetch_add(3_600_000, Ordering::Relaxed);
    h.as_role(Role::Analyst, "GET", "/v1/numbers/13500001111", "", "")
        .await;
    let a = h
        .as_role(
            Role::AuditAdmin,
            "GET",
            "/v1/audit?since=2026-11-30T13:30:00%2B08:00",
            "",
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let records = a.body.as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", a.body);
    let r = &records[0];
    for field in [
        "seq",
        "ts",
        "principal",
        "role",
        "client",
        "action",
        "object",
        "purpose",
        "outcome",
        "prev",
        "mac",
    ] {
        assert!(r.get(field).is_some(), "{field}");
    }
    assert_eq!(
        (r["action"].clone(), r["principal"].clone()),
        (json!("number_view"), json!("analyst"))
    );
    let a = h
        .as_role(Role::AuditAdmin, "GET", "/v1/audit?since=yesterday", "", "")
        .await;
    assert_eq!(a.body["error"]["code"], "bad_time");
    let a = h
        .as_role(Role::AuditAdmin, "GET", "/v1/audit?limit=1", "", "")
        .await;
    assert_eq!(a.body.as_array().unwrap().len(), 1);
    assert_eq!(a.headers["x-fanzha-next-after"], "1");
    // Reading it is itself on record.
    assert!(h.audit_trail().iter().any(|r| r.action == "audit_read"));
}

#[tokio::test]
async fn health_metrics_openapi() {
    let h = harness();
    let a = h.call("GET", "/healthz", None, "", "").await;
    assert_eq!(
        (a.status, a.body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let a = h
        .as_role(Role::Gateway, "GET", "/openapi.json", "", "")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.body;
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for spec in specs() {
        let op = &doc["paths"][spec.path][spec.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is documented",
            spec.method,
            spec.path
        );
        match spec.permission {
            Some(p) => {
                assert_eq!(op["x-fanzha-permission"], p.as_str());
                assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
            }
            None => assert_eq!(op["security"], json!([])),
        }
    }
    assert_eq!(
        doc["paths"]["/v1/screen"]["post"]["x-fanzha-roles"],
        json!(["gateway"])
    );
    let a = h.as_role(Role::Monitoring, "GET", "/metrics", "", "").await;
    assert!(a
        .body
        .as_str()
        .unwrap()
        .contains("fanzha_snapshot_generation"));
    assert!(Role::Monitoring.may(Permission::Metrics));
}

#[tokio::test]
async fn call_records_in_disposal_out_and_screening_blocks_at_once() {
    let h = harness();
    let trunks = "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nacc-1,access,,,,false,active\n";
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/trunks",
            "text/csv",
            trunks,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let attempt = r#"{"id":"c","ts":"2026-11-30T11:00:00+08:00","trunk":"acc-1","caller":"+8613500000001","callee":"13912345678"}"#;
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            attempt,
        )
        .await;
    assert_eq!(a.body["action"], "allow", "{}", a.body);
    // A burst dialler: 20 calls in 40 seconds (R9.1), plus one bad record.
    let mut cdr = String::from("start,caller,callee,duration_s,trunk,imei,cell\n");
    for i in 0..20 {
        cdr += &format!(
            "2026-11-30T10:00:{:02}+08:00,+8613500000001,+86139{:08},0,acc-1,,\n",
            i * 2,
            i * 7919
        );
    }
    cdr += "yesterday,+8613500000002,+8613900000000,0,acc-1,,\n";
    let a = h
        .as_role(Role::Ingest, "POST", "/v1/cdr", "text/csv", &cdr)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["records"], 20);
    assert_eq!(a.body["bad_records"], 1);
    assert_eq!(a.body["errors"][0]["line"], 22);
    assert_eq!(a.body["alerts"][1]["level"], "critical");
    assert_eq!(a.body["alerts"][1]["action"], "suspend_and_block");
    assert_eq!(a.body["disposals"], 1);
    // The answer came back after the snapshot swap: the number is blocked now (R15.3).
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            attempt,
        )
        .await;
    assert_eq!(a.body["action"], "block", "{}", a.body);
    assert_eq!(a.body["rules"][0], "number-blocklisted", "{}", a.body);
    // The disposal's history names the feed that caused it.
    let a = h
        .as_role(
            Role::Analyst,
            "GET",
            "/v1/ledger/blocklist/+8613500000001/history",
            "",
            "",
        )
        .await;
    assert_eq!(a.body["events"][0]["actor"], "fanzha-monitor (ingest)");
    // A bursting number on the protected list (a hospital's line) is held for a
    // supervisor: not blocked, not suspended (R15.3).
    let protected = "number,owner,reason\n+8613500000002,某医院,急救线路\n";
    let a = h
        .as_role(
            Role::SystemAdmin,
            "POST",
            "/v1/ledger/protected_numbers",
            "text/csv",
            protected,
        )
        .await;
    assert_eq!(a.body["accepted"], 1, "{}", a.body);
    let burst = cdr
        .replace("+8613500000001", "+8613500000002")
        .replace("2026-11-30T10:00:", "2026-11-30T10:30:");
    let a = h
        .as_role(Role::Ingest, "POST", "/v1/cdr", "text/csv", &burst)
        .await;
    assert_eq!(a.body["disposals"], 0, "{}", a.body);
    assert!(
        a.body["held"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("protected list"),
        "{}",
        a.body
    );
    let call2 = attempt.replace("+8613500000001", "+8613500000002");
    let a = h
        .as_role(
            Role::Gateway,
            "POST",
            "/v1/screen",
            "application/json",
            &call2,
        )
        .await;
    assert_eq!(a.body["action"], "allow", "{}", a.body);
    let line = r#"{"start":"2026-11-30T12:00:00+08:00","caller":"+8613500000009","callee":"+8613900000000","duration_s":30}"#;
    let a = h
        .as_role(
            Role::Ingest,
            "POST",
            "/v1/cdr",
            "application/x-ndjson",
            line,
        )
        .await;
    assert_eq!(
        (a.status, a.body["records"].clone()),
        (StatusCode::OK, json!(1))
    );
    let a = h
        .as_role(Role::Ingest, "POST", "/v1/cdr?format=xml", "text/csv", &cdr)
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("unknown_format"))
    );
    let a = h
        .as_role(
            Role::Ingest,
            "POST",
            "/v1/cdr",
            "text/csv",
            "caller\n+8613500000001\n",
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("missing_column"))
    );
    let a = h
        .as_role(Role::Monitoring, "GET", "/metrics", "text/plain", "")
        .await;
    let text = a.body.as_str().unwrap();
    assert!(
        text.contains("fanzha_monitor_records_total{outcome=\"processed\"} 41"),
        "{text}"
    );
    assert!(text.contains("fanzha_monitor_alerts_total 4"), "{text}");
}
