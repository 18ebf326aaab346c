//! The router, without a socket.

use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn state() -> AppState {
    let store: Box<dyn Store> = Box::new(fanzha_ledger_sqlite::SqliteStore::in_memory().unwrap());
    let ledger = Ledger::new(store, fanzha_ledger::PiiVault::new(&[3u8; 64]).unwrap());
    let engine = Arc::new(Engine::new(
        fanzha_policy::Snapshot::new(0),
        fanzha_policy::RuleConfig::default(),
    ));
    AppState {
        engine,
        ledger: Arc::new(Mutex::new(ledger)),
        log: None,
        metrics: Arc::new(Metrics::default()),
        clock: Arc::new(|| {
            (
                "2026-11-29T10:00:00+08:00".to_string(),
                fanzha_model::Date {
                    year: 2026,
                    month: 11,
                    day: 29,
                },
            )
        }),
        monitor: Some(MonitorIngest {
            pipeline: Arc::new(Mutex::new(fanzha_monitor::Pipeline::new(
                fanzha_detect::monitor::Monitor::new(fanzha_detect::monitor::default_rules()),
            ))),
            dispose: true,
        }),
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("x-fanzha-actor", "tester")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
    )
}

const TRUNKS: &str = "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nintl-a,international,,,,false,active\n";

#[tokio::test]
async fn ledger_write_is_visible_to_screening_at_once() {
    let app = app(state());
    let call_json = r#"{"id":"x","ts":"2026-11-30T09:00:00+08:00","trunk":"intl-a","caller":"+8613500001111","callee":"13912345678"}"#;
    let (s, v) = call(&app, "POST", "/v1/screen", "application/json", call_json).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["error"], "unknown trunk \"intl-a\"");
    let (s, v) = call(&app, "POST", "/v1/ledger/trunks", "text/csv", TRUNKS).await;
    assert_eq!((s, v["accepted"].clone()), (StatusCode::OK, json!(1)));
    let (_, v) = call(
        &app,
        "POST",
        "/v1/screen",
        "application/json",
        &format!("[{call_json}]"),
    )
    .await;
    assert_eq!(v[0]["rules"], json!(["intl-domestic-cli"]));
    assert_eq!(v[0]["code"], 608);
    // Blocklist through JSON rows, then the number is blocked on any ingress.
    let rows = r#"[{"number":"+86 189 0000 1234","source":"police_notice","reason":"涉诈","added_at":"","expires_at":""}]"#;
    let (s, v) = call(
        &app,
        "POST",
        "/v1/ledger/blocklist",
        "application/json",
        rows,
    )
    .await;
    assert_eq!((s, v["accepted"].clone()), (StatusCode::OK, json!(1)));
    let (_, v) = call(
        &app,
        "POST",
        "/v1/screen",
        "application/json",
        &call_json.replace("+8613500001111", "18900001234"),
    )
    .await;
    assert_eq!(
        v["rules"],
        json!(["intl-domestic-cli", "number-blocklisted"])
    );
}

#[tokio::test]
async fn refusals_and_errors_have_stable_codes() {
    let app = app(state());
    let csv = "msisdn,kind,holder_id,real_name,state,verification,channel\n13500001111,mobile,110102199101010078,verified,active,none,own_store\n";
    let (s, v) = call(&app, "POST", "/v1/ledger/subscribers", "text/csv", csv).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["refusals"][0]["requirement"], "R2.1");
    assert_eq!(v["refusals"][0]["line"], 2);
    let (s, v) = call(&app, "POST", "/v1/ledger/phones", "text/csv", csv).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_kind"))
    );
    let (s, v) = call(
        &app,
        "POST",
        "/v1/ledger/subscribers",
        "text/csv",
        "msisdn\n1\n",
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("missing_column"))
    );
    let (s, v) = call(&app, "POST", "/v1/screen", "application/json", "{nope").await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad_json"))
    );
    let (s, v) = call(&app, "GET", "/v1/ledger/subscribers/13500009999", "", "").await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

#[tokio::test]
async fn reads_mask_and_reveal_is_audited() {
    let app = app(state());
    let csv = "msisdn,kind,holder_id,holder_name,real_name,state,verification,channel\n13500001111,mobile,110102199101010078,王强,verified,active,id_reader,own_store\n";
    call(&app, "POST", "/v1/ledger/subscribers", "text/csv", csv).await;
    let (_, v) = call(&app, "GET", "/v1/ledger/subscribers/+8613500001111", "", "").await;
    assert_eq!(v["record"]["holder_id"], "110102********0078");
    let (_, v) = call(
        &app,
        "GET",
        "/v1/ledger/subscribers/13500001111?reveal=true",
        "",
        "",
    )
    .await;
    assert_eq!(v["record"]["holder_id"], "110102199101010078");
    let (_, v) = call(
        &app,
        "GET",
        "/v1/ledger/subscribers/13500001111/history",
        "",
        "",
    )
    .await;
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["command"].clone(), last["actor"].clone()),
        (json!("pii_revealed"), json!("tester"))
    );
    let (_, v) = call(&app, "GET", "/v1/numbers/0086%20135%200000%201111", "", "").await;
    assert_eq!(v["e164"], "+8613500001111");
    assert_eq!(v["ledger"]["subscribers"]["state"], "active");
    assert_eq!(
        v["ledger"]["subscribers"]["holder_id"],
        "110102********0078"
    );
}

#[tokio::test]
async fn health_metrics_openapi() {
    let app = app(state());
    let (s, v) = call(&app, "GET", "/healthz", "", "").await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("ok")));
    let (s, v) = call(&app, "GET", "/openapi.json", "", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"]["/v1/screen"].is_object());
    let (_, m) = call(&app, "GET", "/metrics", "", "").await;
    assert!(m.as_str().unwrap().contains("fanzha_snapshot_generation"));
}

#[tokio::test]
async fn call_records_in_disposal_out_and_screening_blocks_at_once() {
    let app = app(state());
    let trunks = "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nacc-1,access,,,,false,active\n";
    let (s, _) = call(&app, "POST", "/v1/ledger/trunks", "text/csv", trunks).await;
    assert_eq!(s, StatusCode::OK);
    let attempt = r#"{"id":"c","ts":"2026-11-30T11:00:00+08:00","trunk":"acc-1","caller":"+8613500000001","callee":"13912345678"}"#;
    let (_, v) = call(&app, "POST", "/v1/screen", "application/json", attempt).await;
    assert_eq!(v["action"], "allow", "{v}");
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
    let (s, v) = call(&app, "POST", "/v1/cdr", "text/csv", &cdr).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"], 20);
    assert_eq!(v["bad_records"], 1);
    assert_eq!(v["errors"][0]["line"], 22);
    assert_eq!(v["alerts"][1]["level"], "critical");
    assert_eq!(v["alerts"][1]["action"], "suspend_and_block");
    assert_eq!(v["disposals"], 1);
    // The answer came back after the snapshot swap: the number is blocked now (R15.3).
    let (_, v) = call(&app, "POST", "/v1/screen", "application/json", attempt).await;
    assert_eq!(v["action"], "block", "{v}");
    assert_eq!(v["rules"][0], "number-blocklisted", "{v}");
    // JSON lines too; bad requests get stable codes.
    let line = r#"{"start":"2026-11-30T12:00:00+08:00","caller":"+8613500000009","callee":"+8613900000000","duration_s":30}"#;
    let (s, v) = call(&app, "POST", "/v1/cdr", "application/x-ndjson", line).await;
    assert_eq!((s, v["records"].clone()), (StatusCode::OK, json!(1)));
    let (s, v) = call(&app, "POST", "/v1/cdr?format=xml", "text/csv", &cdr).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("unknown_format"))
    );
    let (s, v) = call(
        &app,
        "POST",
        "/v1/cdr",
        "text/csv",
        "caller\n+8613500000001\n",
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("missing_column"))
    );
    let (_, v) = call(&app, "GET", "/metrics", "text/plain", "").await;
    let text = v.as_str().unwrap();
    assert!(
        text.contains("fanzha_monitor_records_total{outcome=\"processed\"} 21"),
        "{text}"
    );
    assert!(text.contains("fanzha_monitor_alerts_total 2"), "{text}");
}
