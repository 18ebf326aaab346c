//! `POST /v1/cdr`: call records for the monitor; alerts disposed of in the ledger and
//! patched into screening before the answer returns.

use super::ledger::audit;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};
use crate::state::{block_disposed, AppState};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use fanzha_auth::{Action, Outcome};
use fanzha_detect::monitor::{Alert, Format};
use fanzha_ledger::Actor;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `?format=native|sichuan|jsonl`.
#[derive(Deserialize)]
pub struct CdrQuery {
    format: Option<String>,
}

/// What the monitor made of a batch.
#[derive(Serialize)]
pub struct IngestResponse {
    records: u64,
    bad_records: u64,
    errors: Vec<fanzha_monitor::BadRecord>,
    alerts: Vec<Alert>,
    disposals: u64,
    /// Alerts left for a supervisor (a protected number, or the auto-disposal policy).
    held: Vec<fanzha_monitor::Held>,
    generation: u64,
}

/// A batch of call records: native CSV (default), Sichuan CSV, or JSON lines (`?format=`,
/// or `Content-Type: application/x-ndjson`). A disposed number is blocked by the time the
/// client reads the answer.
pub async fn ingest(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<CdrQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IngestResponse>, ApiError> {
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
            return Err(ApiError::bad_request(
                "unknown_format",
                format!("format {other:?} is not native, sichuan or jsonl"),
            ))
        }
    };
    blocking(move || {
        let report = {
            let mut pipeline = ingest.pipeline.lock().unwrap_or_else(|p| p.into_inner());
            pipeline.set_not_after(state.clock.unix_ms() / 1000 + state.max_clock_skew_s);
            let result = if ingest.dispose {
                let clock = state.clock.clone();
                let name = format!("fanzha-monitor ({})", caller.name);
                let mut disposer = fanzha_monitor::LedgerDisposer {
                    ledger: state.ledger.clone(),
                    actor: Arc::new(move || {
                        let now = clock.now();
                        Actor {
                            name: name.clone(),
                            now: now.rfc3339,
                            today: now.today,
                        }
                    }),
                };
                pipeline.ingest_body(&body, format, &mut disposer)
            } else {
                pipeline.ingest_body(&body, format, &mut fanzha_monitor::ReportOnly)
            };
            result.map_err(|e| match e {
                fanzha_monitor::IngestError::Header(m) => {
                    ApiError::bad_request("missing_column", m)
                }
                fanzha_monitor::IngestError::Disposal(s) => ApiError::from(s),
            })?
        };
        state.metrics.record_ingest(&report);
        if report.disposals > 0 {
            audit(
                &state,
                &caller,
                Action::LedgerWrite,
                "disposals",
                "",
                Outcome::Success,
                format!("{} disposals by the monitor", report.disposals),
            )?;
        }
        // Blocked in screening before the answer returns; the refresher recompiles from the
        // ledger (now one version ahead) in the background.
        if ingest.dispose {
            block_disposed(&state.engine, &report);
        }
        Ok(Json(IngestResponse {
            records: report.records,
            bad_records: report.bad_records,
            errors: report.errors,
            alerts: report.alerts,
            disposals: report.disposals,
            held: report.held,
            generation: state.engine.snapshot().generation,
        }))
    })
    .await
}
