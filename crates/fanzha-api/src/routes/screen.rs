//! `POST /v1/screen`: verdicts for call attempts, each in the decision log.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use fanzha_screen::decision_log::Entry;
use fanzha_screen::wire::{CallWire, VerdictWire};
use serde::Serialize;
use serde_json::Value;

/// A verdict, or why the call could not be screened.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Screened {
    /// The verdict.
    Verdict(VerdictWire),
    /// Not a call attempt.
    Error {
        /// The call's id, as sent.
        id: Value,
        /// Why.
        error: String,
    },
}

/// One verdict or an array of them, as the request was.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ScreenResponse {
    /// For one call.
    One(Screened),
    /// For an array, in order.
    Many(Vec<Screened>),
}

fn screen_one(state: &AppState, v: Value) -> Screened {
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let wire: CallWire = match serde_json::from_value(v) {
        Ok(w) => w,
        Err(e) => {
            return Screened::Error {
                id,
                error: format!("not a call attempt: {e}"),
            }
        }
    };
    let snapshot = state.engine.snapshot();
    let started = std::time::Instant::now();
    match wire.resolve(&snapshot) {
        // Quotas count on the calls' own times; a time ahead of the clock would switch
        // today's off (R8.1), so it is an error, not a verdict.
        Ok(call) if call.ts > state.clock.unix_ms() / 1000 + state.max_clock_skew_s => Screened::Error {
            id: wire.id,
            error: format!(
                "ts {} is ahead of the service's clock by more than the {} s allowed: counters follow trusted time",
                wire.ts, state.max_clock_skew_s
            ),
        },
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
            Screened::Verdict(out)
        }
        Err(e) => Screened::Error {
            id: wire.id,
            error: e.to_string(),
        },
    }
}

/// Calls of a batch screened on the async worker itself (about a microsecond each).
const INLINE_CALLS: usize = 16;

/// The handler.
pub async fn screen(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ScreenResponse>, ApiError> {
    if state.log.as_ref().is_some_and(|l| l.refusing()) {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "decision_log_unavailable",
            "the decision log cannot be written and [decisions] on_failure = \"refuse\": no unlogged verdicts",
        ));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_json", e.to_string()))?;
    Ok(Json(match v {
        // A large batch runs on the blocking pool: the async workers keep accepting and
        // answering other requests meanwhile. A few calls are cheaper answered in place.
        Value::Array(calls) if calls.len() > INLINE_CALLS => {
            let s = state.clone();
            crate::error::blocking(move || {
                Ok(ScreenResponse::Many(
                    calls.into_iter().map(|c| screen_one(&s, c)).collect(),
                ))
            })
            .await?
        }
        Value::Array(calls) => {
            ScreenResponse::Many(calls.into_iter().map(|c| screen_one(&state, c)).collect())
        }
        one @ Value::Object(_) => ScreenResponse::One(screen_one(&state, one)),
        _ => {
            return Err(ApiError::bad_request(
                "bad_json",
                "expected a call object or an array of them",
            ))
        }
    }))
}
