//! fanzha's HTTP API: `fn app(state) -> Router`, tested without a socket. Screening, ledger
//! writes and reads (same rules and per-row refusals as the CLI), number look-ups, OpenAPI,
//! health and metrics. Errors are JSON with stable codes.
//!
//! Knows HTTP and the JSON contract. Does not know SIP, which database backs the ledger, or
//! the clock (the state carries one).

pub mod metrics;
pub mod numbers;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fanzha_ledger::{Actor, ImportError, Kind, Ledger, Store};
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::{DecisionLog, Entry};
use fanzha_screen::wire::{CallWire, VerdictWire};
use fanzha_screen::Engine;
use metrics::Metrics;
use serde_json::{json, Map, Value};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// The clock as the binary gives it: (now RFC 3339, today in China).
pub type Clock = Arc<dyn Fn() -> (String, fanzha_model::Date) + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The screening engine.
    pub engine: Arc<Engine>,
    /// The ledger (blocking; used from `spawn_blocking`).
    pub ledger: Arc<Mutex<Ledger<Box<dyn Store>>>>,
    /// The decision log, if any.
    pub log: Option<Arc<DecisionLog>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Clock,
    /// The monitor's ingest (`POST /v1/cdr`), when enabled.
    pub monitor: Option<MonitorIngest>,
}

/// The monitor as the API drives it.
#[derive(Clone)]
pub struct MonitorIngest {
    /// The detector (shared with the Kafka consumer).
    pub pipeline: Arc<Mutex<fanzha_monitor::Pipeline>>,
    /// Execute alerts' actions in the ledger (else only report them).
    pub dispose: bool,
}

impl AppState {
    fn actor(&self, headers: &HeaderMap) -> Actor {
        let (now, today) = (self.clock)();
        let name = headers
            .get("x-fanzha-actor")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .unwrap_or("api")
            .to_string();
        Actor { name, now, today }
    }
}

/// Recompiles the snapshot when the ledger changed and installs it. Returns the generation.
pub fn refresh(
    ledger: &Mutex<Ledger<Box<dyn Store>>>,
    engine: &Engine,
    metrics: &Metrics,
) -> Result<u64, fanzha_ledger::StoreError> {
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let version = l.store().version()? as u64;
    if version == engine.snapshot().generation {
        return Ok(version);
    }
    let (snapshot, report) = compile(l.store().as_mut())?;
    drop(l);
    for s in &report.skipped {
        tracing::warn!(skipped = %s, "snapshot compile");
    }
    let generation = snapshot.generation;
    engine.swap(snapshot);
    metrics
        .generation
        .store(generation, std::sync::atomic::Ordering::Relaxed);
    metrics
        .rebuilds
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(generation)
}

/// Makes the monitor's `suspend_and_block` disposals effective in screening at once (a
/// patched copy of the live snapshot: blocklisted, and suspended where the number is our
/// card); the refresher's full recompile from the ledger follows. Returns how many numbers
/// were patched in.
pub fn block_disposed(engine: &Engine, alerts: &[fanzha_detect::monitor::Alert]) -> usize {
    let numbers: Vec<fanzha_model::PhoneNumber> = alerts
        .iter()
        .filter(|a| a.action == "suspend_and_block")
        .filter_map(|a| fanzha_model::parse(&a.number).ok())
        .collect();
    if !numbers.is_empty() {
        engine.patch(|s| {
            for &n in &numbers {
                s.add_blocked(n, None);
                s.suspend_subscriber(n);
            }
        });
    }
    numbers.len()
}

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<fanzha_ledger::StoreError> for ApiError {
    fn from(e: fanzha_ledger::StoreError) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    }
}

fn kind_of(s: &str) -> Result<Kind, ApiError> {
    Kind::from_str(s)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_kind", e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/screen", post(screen))
        .route("/v1/ledger/{kind}", post(ledger_write))
        .route("/v1/ledger/{kind}/{key}", get(ledger_get))
        .route("/v1/ledger/{kind}/{key}/history", get(ledger_history))
        .route("/v1/numbers/{number}", get(number))
        .route("/v1/cdr", post(cdr_ingest))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(state)
}

fn screen_one(state: &AppState, v: Value) -> Value {
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let wire: CallWire = match serde_json::from_value(v) {
        Ok(w) => w,
        Err(e) => return json!({"id": id, "error": format!("not a call attempt: {e}")}),
    };
    let snapshot = state.engine.snapshot();
    let started = std::time::Instant::now();
    match wire.resolve(&snapshot) {
        Ok(call) => {
            let verdict = state.engine.decide(&snapshot, &call);
            state
                .metrics
                .record(&verdict, started.elapsed().as_nanos() as u64);
            let out = VerdictWire::new(wire.id.clone(), &verdict);
            if let Some(log) = &state.log {
                log.log(Entry {
                    ts: call.ts,
                    generation: verdict.generation,
                    call: serde_json::to_string(&wire).unwrap_or_default(),
                    verdict: serde_json::to_string(&out).unwrap_or_default(),
                });
            }
            serde_json::to_value(out).unwrap_or_default()
        }
        Err(e) => json!({"id": wire.id, "error": e.to_string()}),
    }
}

async fn screen(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.to_string()))?;
    Ok(Json(match v {
        Value::Array(calls) => {
            Value::Array(calls.into_iter().map(|c| screen_one(&state, c)).collect())
        }
        one @ Value::Object(_) => screen_one(&state, one),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "expected a call object or an array of them",
            ))
        }
    }))
}

async fn ledger_write(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&kind)?;
    let actor = state.actor(&headers);
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    blocking(move || {
        let report = {
            let mut l = state.ledger.lock().unwrap_or_else(|p| p.into_inner());
            if is_json {
                let rows: Vec<Map<String, Value>> = match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Array(a)) => a
                        .into_iter()
                        .map(|r| match r {
                            Value::Object(m) => {
                                Ok(m.into_iter().map(|(k, v)| (k, stringify(v))).collect())
                            }
                            _ => Err(ApiError::new(
                                StatusCode::BAD_REQUEST,
                                "bad_json",
                                "rows must be JSON objects",
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    Ok(_) => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "bad_json",
                            "expected an array of rows",
                        ))
                    }
                    Err(e) => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "bad_json",
                            e.to_string(),
                        ))
                    }
                };
                l.import_json_rows(kind, &rows, &actor)?
            } else {
                l.import_csv(kind, &body, &actor, &mut |_| {})
                    .map_err(|e| match e {
                        ImportError::Store(s) => ApiError::from(s),
                        ImportError::MissingColumn { .. } => {
                            ApiError::new(StatusCode::BAD_REQUEST, "missing_column", e.to_string())
                        }
                        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_csv", e.to_string()),
                    })?
            }
        };
        state
            .metrics
            .ledger_accepted
            .fetch_add(report.accepted, std::sync::atomic::Ordering::Relaxed);
        state
            .metrics
            .ledger_refused
            .fetch_add(report.refused, std::sync::atomic::Ordering::Relaxed);
        // Visible to screening before the answer returns.
        let generation = refresh(&state.ledger, &state.engine, &state.metrics)?;
        Ok(Json(
            json!({"kind": kind, "accepted": report.accepted, "refused": report.refused,
                        "refusals": report.refusals, "generation": generation}),
        ))
    })
    .await
}

#[derive(serde::Deserialize)]
struct CdrQuery {
    format: Option<String>,
}

/// A batch of call records for the monitor: native CSV (default), Sichuan CSV, or JSON lines
/// (`?format=`, or `Content-Type: application/x-ndjson`). Alerts are disposed of through the
/// ledger and patched into the screening snapshot before the answer returns, so a disposed
/// number is blocked by the time the client reads it.
async fn cdr_ingest(
    State(state): State<AppState>,
    Query(q): Query<CdrQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use fanzha_detect::monitor::Format;
    let Some(ingest) = state.monitor.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "monitor_disabled",
            "the monitor is not enabled in this service ([monitor] enabled = false)",
        ));
    };
    let ndjson = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("ndjson") || c.contains("jsonl"));
    let format = match q.format.as_deref() {
        None if ndjson => Format::JsonLines,
        None | Some("native") => Format::Native,
        Some("sichuan") => Format::Sichuan,
        Some("jsonl") => Format::JsonLines,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_format",
                format!("format {other:?} is not native, sichuan or jsonl"),
            ))
        }
    };
    let actor_name = state.actor(&headers).name;
    blocking(move || {
        let report = {
            let mut pipeline = ingest.pipeline.lock().unwrap_or_else(|p| p.into_inner());
            let result = if ingest.dispose {
                let clock = state.clock.clone();
                let mut disposer = fanzha_monitor::LedgerDisposer {
                    ledger: state.ledger.clone(),
                    actor: Arc::new(move || {
                        let (now, today) = clock();
                        Actor {
                            name: format!("fanzha-monitor ({actor_name})"),
                            now,
                            today,
                        }
                    }),
                };
                pipeline.ingest_body(&body, format, &mut disposer)
            } else {
                pipeline.ingest_body(&body, format, &mut fanzha_monitor::ReportOnly)
            };
            result.map_err(|e| match e {
                fanzha_monitor::IngestError::Header(m) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "missing_column", m)
                }
                fanzha_monitor::IngestError::Disposal(s) => ApiError::from(s),
            })?
        };
        state.metrics.record_ingest(&report);
        // Blocked in screening before the answer returns; the refresher recompiles from the
        // ledger (now one version ahead) in the background.
        if ingest.dispose {
            block_disposed(&state.engine, &report.alerts);
        }
        let generation = state.engine.snapshot().generation;
        Ok(Json(json!({
            "records": report.records,
            "bad_records": report.bad_records,
            "errors": report.errors,
            "alerts": report.alerts,
            "disposals": report.disposals,
            "generation": generation,
        })))
    })
    .await
}

/// JSON row values as the CSV contract's text (numbers and booleans as written).
fn stringify(v: Value) -> Value {
    match v {
        Value::String(_) => v,
        Value::Null => Value::String(String::new()),
        Value::Array(a) => Value::String(
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(";"),
        ),
        other => Value::String(other.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct RevealQuery {
    #[serde(default)]
    reveal: bool,
}

async fn ledger_get(
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
    Query(q): Query<RevealQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&kind)?;
    let actor = state.actor(&headers);
    if q.reveal && !headers.contains_key("x-fanzha-actor") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "actor_required",
            "revealing personal data requires an X-Fanzha-Actor header (the reveal is audited)",
        ));
    }
    blocking(move || {
        let mut l = state.ledger.lock().unwrap_or_else(|p| p.into_inner());
        match l.get(kind, &key, q.reveal.then_some(&actor))? {
            Some(v) => Ok(Json(v)),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no {kind} record {key:?}"),
            )),
        }
    })
    .await
}

async fn ledger_history(
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&kind)?;
    blocking(move || {
        let mut l = state.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let events = l.history(kind, &key)?;
        if events.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no history for {kind} {key:?}"),
            ));
        }
        Ok(Json(
            json!({"kind": kind, "key": l.key(kind, &key), "events": events}),
        ))
    })
    .await
}

async fn number(
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let mut o = Map::new();
        o.insert("input".into(), json!(number));
        match fanzha_model::parse(&number) {
            Ok(n) => {
                numbers::number_details(&mut o, n);
                let mut l = state.ledger.lock().unwrap_or_else(|p| p.into_inner());
                let mut ledger = Map::new();
                for kind in [
                    Kind::Subscribers,
                    Kind::KeyServices,
                    Kind::Blocklist,
                    Kind::OfficialNumbers,
                    Kind::PortedOut,
                    Kind::IotProfiles,
                ] {
                    if let Some(v) = l.get(kind, &n.e164(), None)? {
                        ledger.insert(kind.as_str().into(), v["record"].clone());
                    }
                }
                o.insert("ledger".into(), Value::Object(ledger));
            }
            Err(e) => {
                o.insert("valid".into(), json!(false));
                o.insert("reason".into(), json!(e.to_string()));
            }
        }
        Ok(Json(Value::Object(o)))
    })
    .await
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "generation": state.engine.snapshot().generation}))
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn openapi() -> Json<Value> {
    Json(
        serde_json::from_str(include_str!("openapi.json"))
            .expect("embedded OpenAPI document is JSON"),
    )
}

#[cfg(test)]
mod tests;
