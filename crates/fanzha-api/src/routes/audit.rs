//! `GET /v1/audit` (audit_admin): the trail from a time on, paged by seq. Reading it is
//! itself on record.

use super::ledger::audit;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fanzha_auth::{Action, Outcome};
use serde::Deserialize;

/// Most records one answer holds.
pub const MAX_LIMIT: usize = 10_000;

/// `?since=T&after=SEQ&limit=N`.
#[derive(Deserialize)]
pub struct AuditQuery {
    /// RFC 3339 (China time without an offset).
    since: Option<String>,
    /// Records after this seq (paging).
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

/// The handler: a JSON array of records, oldest first; when more remain, the header
/// `X-Fanzha-Next-After` gives the `after` of the next page.
pub async fn records(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let since_ms = match q.since.as_deref() {
        None | Some("") => i64::MIN,
        Some(t) => fanzha_model::time::parse_time(t)
            .map_err(|e| ApiError::bad_request("bad_time", format!("since: {e}")))?
            .timestamp_millis(),
    };
    let limit = q.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    blocking(move || {
        let records = state.auth.records(q.after, since_ms, limit + 1)?;
        let more = records.len() > limit;
        let records = &records[..records.len().min(limit)];
        audit(
            &state,
            &caller,
            Action::AuditRead,
            "audit",
            "",
            Outcome::Success,
            format!("{} records", records.len()),
        )?;
        let mut r = Json(records).into_response();
        if more {
            if let Some(last) = records.last() {
                r.headers_mut().insert(
                    "x-fanzha-next-after",
                    HeaderValue::from_str(&last.seq.to_string()).map_err(ApiError::internal)?,
                );
            }
        }
        Ok(r)
    })
    .await
}
