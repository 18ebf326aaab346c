//! The one place access is checked. Every route is declared in [`crate::routes`] with the
//! permission it needs (or none: `GET /healthz` and the login itself); [`guard`] runs before
//! its handler: who is calling (a bearer token, or a console session), whether the role
//! may, and for a session's state-changing request the CSRF token. Failures are audited and
//! answered 401/403 as the contract says; the handler gets the [`Caller`] as an extension.

use crate::auth::{AuthFailure, Caller, CSRF_HEADER, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fanzha_auth::credential::constant_time_eq;
use fanzha_auth::{Action, AuditEntry, Outcome, Permission};
use std::net::SocketAddr;

/// The client's address as the connection gives it (never a header: nothing a client
/// sends can set it).
pub fn client_of(req_ext: &axum::http::Extensions) -> String {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

enum Credential<'h> {
    Bearer(&'h str),
    Session(&'h str),
    None,
}

fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("");
        return match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Credential::Bearer(token.trim())
            }
            _ => Credential::Bearer(""),
        };
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(id) => Credential::Session(id),
        None => Credential::None,
    }
}

/// Who is calling, or why nobody is.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: &str,
) -> Result<Caller, AuthFailure> {
    let now = state.now();
    match credential(headers) {
        Credential::Bearer(t) => state.auth.bearer(t, client, now.unix_s()),
        Credential::Session(id) => state.auth.session(id, client, now.unix_ms),
        Credential::None => Err(AuthFailure::Missing),
    }
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Audits a refused request off the async workers; the refusal is answered either way
/// (nothing was read).
async fn audit_refusal(state: &AppState, entry: AuditEntry) {
    let auth = state.auth.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = auth.audit(&entry) {
            tracing::error!(%e, "cannot audit a refused request");
        }
    })
    .await;
}

/// The middleware of every guarded route.
pub async fn guard(
    State(state): State<AppState>,
    permission: Permission,
    mut req: Request,
    next: Next,
) -> Response {
    let client = client_of(req.extensions());
    // What a refusal's audit record names; owned (cheap clones) so no borrow of the request
    // lives across an await, formatted only if needed.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let object = || format!("{method} {}", uri.path());
    let caller = match authenticate(&state, req.headers(), &client) {
        Ok(c) => c,
        Err(why) => {
            let now = state.now();
            audit_refusal(
                &state,
                AuditEntry {
                    ts: now.rfc3339,
                    at_ms: now.unix_ms,
                    principal: "?".into(),
                    role: String::new(),
                    client,
                    action: Action::Authenticate,
                    object: object(),
                    purpose: String::new(),
                    outcome: Outcome::Failure,
                    detail: why.to_string(),
                },
            )
            .await;
            return ApiError::unauthenticated(why.public_message()).into_response();
        }
    };
    if !caller.role.may(permission) {
        let mut e = caller.entry(&state.now(), Action::Authorize, &object(), Outcome::Denied);
        e.detail = format!("needs {}", permission.as_str());
        audit_refusal(&state, e).await;
        return ApiError::forbidden(format!(
            "the role {} may not do this (it needs the permission {})",
            caller.role,
            permission.as_str()
        ))
        .into_response();
    }
    if let Some(s) = &caller.session {
        if !safe(req.method()) {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or(b"");
            if !constant_time_eq(sent, s.csrf.as_bytes()) {
                let mut e =
                    caller.entry(&state.now(), Action::Authorize, &object(), Outcome::Denied);
                e.detail = "CSRF token missing or wrong".into();
                audit_refusal(&state, e).await;
                return ApiError::forbidden(format!(
                    "a state-changing request made with a session needs the session's CSRF token in {CSRF_HEADER}"
                ))
                .into_response();
            }
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
