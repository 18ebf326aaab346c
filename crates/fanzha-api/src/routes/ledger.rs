//! The ledger over HTTP: writes (system_admin), records and history (masked; a supervisor
//! reveals with a purpose). Every read is audited before the answer leaves.

use crate::auth::Caller;
use crate::error::{blocking, ApiError};
use crate::state::{refresh, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use fanzha_auth::{Action, Outcome, Permission};
use fanzha_ledger::{Actor, ImportError, Kind, RowRefusal};
use fanzha_screen::compile::{patch_record, patchable};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::atomic::Ordering;

/// The longest purpose a reveal may state.
const MAX_PURPOSE: usize = 500;

pub(crate) fn kind_of(s: &str) -> Result<Kind, ApiError> {
    Kind::from_str(s).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_kind",
            e.to_string(),
        )
    })
}

/// The actor of history events a caller causes.
pub(crate) fn actor(state: &AppState, caller: &Caller) -> Actor {
    let now = state.now();
    Actor {
        name: caller.name.clone(),
        now: now.rfc3339,
        today: now.today,
    }
}

/// Appends the caller's audit record; the request fails if it cannot be written.
pub(crate) fn audit(
    state: &AppState,
    caller: &Caller,
    action: Action,
    object: &str,
    purpose: &str,
    outcome: Outcome,
    detail: String,
) -> Result<(), ApiError> {
    let mut e = caller.entry(&state.now(), action, object, outcome);
    e.purpose = purpose.to_string();
    e.detail = detail;
    state
        .auth
        .audit(&e)
        .map(drop)
        .map_err(ApiError::audit_unavailable)
}

/// What a write did.
#[derive(Serialize)]
pub struct WriteResponse {
    kind: Kind,
    accepted: u64,
    refused: u64,
    refusals: Vec<RowRefusal>,
    generation: u64,
}

/// `POST /v1/ledger/{kind}`: CSV, or JSON rows with `Content-Type: application/json`.
pub async fn write(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WriteResponse>, ApiError> {
    let kind = kind_of(&kind)?;
    let actor = actor(&state, &caller);
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    blocking(move || {
        let rows = if is_json {
            Some(json_rows(&body)?)
        } else {
            None
        };
        let (report, patch) = {
            let mut l = state.ledger();
            let report = match &rows {
                Some(rows) => l.import_json_rows(kind, rows, &actor)?,
                None => l
                    .import_csv(kind, &body, &actor, &mut |_| {})
                    .map_err(|e| match e {
                        ImportError::Store(s) => ApiError::from(s),
                        ImportError::MissingColumn { .. } => {
                            ApiError::bad_request("missing_column", e.to_string())
                        }
                        _ => ApiError::bad_request("bad_csv", e.to_string()),
                    })?,
            };
            // A small write of a kind screening can take record by record is patched into
            // the live snapshot; anything else is compiled whole below.
            let keys = patchable(kind)
                .then(|| match &rows {
                    Some(rows) => l.row_keys_json(kind, rows, PATCH_ROWS),
                    None => l.row_keys_csv(kind, &body, PATCH_ROWS),
                })
                .flatten();
            let patch = match keys {
                None => None,
                Some(keys) => {
                    let mut records = Vec::with_capacity(keys.len());
                    for k in &keys {
                        records.extend(l.store().get(kind, k)?);
                    }
                    Some(records)
                }
            };
            (report, patch)
        };
        audit(
            &state,
            &caller,
            Action::LedgerWrite,
            kind.as_str(),
            "",
            Outcome::Success,
            format!("accepted {}, refused {}", report.accepted, report.refused),
        )?;
        state
            .metrics
            .ledger_accepted
            .fetch_add(report.accepted, Ordering::Relaxed);
        state
            .metrics
            .ledger_refused
            .fetch_add(report.refused, Ordering::Relaxed);
        // Visible to screening before the answer returns: patched in (milliseconds; the
        // refresher's full compile from the ledger follows), or compiled whole.
        let generation = match patch {
            Some(records) if report.accepted > 0 => {
                state.engine.patch(|s| {
                    for r in &records {
                        patch_record(s, r);
                    }
                });
                state.engine.snapshot().generation
            }
            Some(_) => state.engine.snapshot().generation,
            None => refresh(&state.ledger, &state.engine, &state.metrics)?,
        };
        Ok(Json(WriteResponse {
            kind,
            accepted: report.accepted,
            refused: report.refused,
            refusals: report.refusals,
            generation,
        }))
    })
    .await
}

/// Rows a write may have and still be patched into the live snapshot.
const PATCH_ROWS: usize = 10_000;

fn json_rows(body: &[u8]) -> Result<Vec<Map<String, Value>>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => a
            .into_iter()
            .map(|r| match r {
                Value::Object(m) => Ok(m.into_iter().map(|(k, v)| (k, stringify(v))).collect()),
                _ => Err(ApiError::bad_request(
                    "bad_json",
                    "rows must be JSON objects",
                )),
            })
            .collect(),
        Ok(_) => Err(ApiError::bad_request(
            "bad_json",
            "expected an array of rows",
        )),
        Err(e) => Err(ApiError::bad_request("bad_json", e.to_string())),
    }
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

/// `?reveal=true&purpose=TEXT`.
#[derive(Deserialize)]
pub struct RecordQuery {
    #[serde(default)]
    reveal: bool,
    #[serde(default)]
    purpose: Option<String>,
}

/// `GET /v1/ledger/{kind}/{key}`: masked for everyone; in clear for a supervisor who states
/// a purpose. The read (or reveal) is audited before the answer leaves.
pub async fn record(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((kind, key)): Path<(String, String)>,
    Query(q): Query<RecordQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&kind)?;
    let purpose = q.purpose.as_deref().unwrap_or("").trim().to_string();
    blocking(move || {
        let object = format!("{kind}/{}", state.ledger().key(kind, &key));
        if q.reveal {
            if !caller.role.may(Permission::Reveal) {
                audit(
                    &state,
                    &caller,
                    Action::Reveal,
                    &object,
                    &purpose,
                    Outcome::Denied,
                    "needs reveal".into(),
                )?;
                return Err(ApiError::forbidden(format!(
                    "the role {} may not reveal personal data (only a supervisor, with a purpose)",
                    caller.role
                )));
            }
            if purpose.is_empty() || purpose.chars().count() > MAX_PURPOSE {
                return Err(ApiError::bad_request(
                    "purpose_required",
                    format!("revealing personal data needs purpose=TEXT (1 to {MAX_PURPOSE} characters): why, for the audit trail"),
                ));
            }
        }
        let actor = actor(&state, &caller);
        let found = state.ledger().get(kind, &key, q.reveal.then_some(&actor))?;
        let action = if q.reveal {
            Action::Reveal
        } else {
            Action::RecordRead
        };
        let (outcome, detail) = match &found {
            Some(_) => (Outcome::Success, String::new()),
            None => (Outcome::Failure, "no such record".to_string()),
        };
        audit(&state, &caller, action, &object, &purpose, outcome, detail)?;
        found
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("no {kind} record {key:?}")))
    })
    .await
}

/// A record's history.
#[derive(Serialize)]
pub struct HistoryResponse {
    kind: Kind,
    key: String,
    events: Vec<Value>,
}

/// `GET /v1/ledger/{kind}/{key}/history`, masked, audited.
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let kind = kind_of(&kind)?;
    blocking(move || {
        let (events, stored) = {
            let mut l = state.ledger();
            (l.history(kind, &key)?, l.key(kind, &key))
        };
        let object = format!("{kind}/{stored}");
        let (outcome, detail) = match events.len() {
            0 => (Outcome::Failure, "no history".to_string()),
            n => (Outcome::Success, format!("{n} events")),
        };
        audit(
            &state,
            &caller,
            Action::HistoryRead,
            &object,
            "",
            outcome,
            detail,
        )?;
        if events.is_empty() {
            return Err(ApiError::not_found(format!(
                "no history for {kind} {key:?}"
            )));
        }
        Ok(Json(HistoryResponse {
            kind,
            key: stored,
            events,
        }))
    })
    .await
}
