//! Health, metrics and the API's description.

use super::{specs, RouteSpec};
use crate::state::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// `GET /healthz`.
#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    generation: u64,
    /// Why not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /healthz`: open to anyone; 200 `ok`, or 503 `degraded` with the reason when the
/// decision log cannot be written (the evidence R12.1 asks for is being lost).
pub async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    let generation = state.engine.snapshot().generation;
    let log = state.log.as_ref().map(|l| l.health());
    match log {
        Some(h) if !h.writing => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "degraded",
                generation,
                reason: Some(format!(
                    "decision log: {} ({} entries lost)",
                    h.reason.unwrap_or_default(),
                    h.lost
                )),
            }),
        )
            .into_response(),
        _ => Json(Health {
            status: "ok",
            generation,
            reason: None,
        })
        .into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(log) = &state.log {
        let h = log.health();
        use std::fmt::Write;
        let _ = write!(
            text,
            "# HELP fanzha_decision_log_writing 1 while the decision log writes, 0 while it fails.\n\
             # TYPE fanzha_decision_log_writing gauge\nfanzha_decision_log_writing {}\n\
             # HELP fanzha_decision_log_lost_total Decisions accepted but never written (a write failed).\n\
             # TYPE fanzha_decision_log_lost_total counter\nfanzha_decision_log_lost_total {}\n\
             # HELP fanzha_decision_log_dropped_total Decisions dropped because the backlog was full.\n\
             # TYPE fanzha_decision_log_dropped_total counter\nfanzha_decision_log_dropped_total {}\n",
            u8::from(h.writing),
            h.lost,
            h.dropped
        );
    }
    ([("content-type", "text/plain; version=0.0.4")], text)
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(|| document(&specs())).clone())
}

/// The description: schemas and bodies from the embedded document, and for every route of
/// the table its path, method, security and permission, and the 401 and 403 answers of a
/// guarded route, so the document lists exactly the routes the router serves.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut doc: Value = serde_json::from_str(include_str!("../openapi.json"))
        .expect("embedded OpenAPI document is JSON");
    doc["components"]["schemas"]["ErrorBody"] =
        doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"].clone();
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "A token from `fanzha auth add-token`"},
        "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                    "description": "A console session from POST /v1/session; state-changing requests also send X-CSRF-Token"}
    });
    doc["components"]["responses"]["Unauthenticated"] = json!({
        "description": "No credential, or one not accepted",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    doc["components"]["responses"]["Forbidden"] = json!({
        "description": "The role lacks the permission",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    doc["security"] = json!([{"bearer": []}, {"session": []}]);
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut out = serde_json::Map::new();
    for r in routes {
        let method = r.method.as_str().to_ascii_lowercase();
        let mut op = paths
            .get(r.path)
            .and_then(|p| p.get(&method))
            .cloned()
            .unwrap_or_else(|| json!({"responses": {"200": {"description": "OK"}}}));
        op["summary"] = json!(r.summary);
        op["x-fanzha-body-limit"] = json!(r.body_limit());
        match r.permission {
            None => op["security"] = json!([]),
            Some(p) => {
                op["x-fanzha-permission"] = json!(p.as_str());
                op["x-fanzha-roles"] = json!(fanzha_auth::Role::ALL
                    .iter()
                    .filter(|role| role.may(p))
                    .map(|role| role.as_str())
                    .collect::<Vec<_>>());
                op["responses"]["401"] = json!({"$ref": "#/components/responses/Unauthenticated"});
                op["responses"]["403"] = json!({"$ref": "#/components/responses/Forbidden"});
            }
        }
        out.entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(method, op);
    }
    doc["paths"] = Value::Object(out);
    doc
}
