//! Every route, with the permission it needs: [`table`] is the router's only source, so a
//! route cannot be added without naming one (`None` is for `GET /healthz` and the login
//! itself), and the OpenAPI document and the tests walk the same table.

pub mod accounts;
pub mod audit;
pub mod cdr;
pub mod ledger;
pub mod numbers;
pub mod ops;
pub mod screen;
pub mod session;

use crate::error::ApiError;
use crate::guard::guard;
use crate::state::AppState;
use axum::http::Method;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use fanzha_auth::Permission as P;

/// One route of the API.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Method.
    pub method: Method,
    /// Path, with `{param}`s.
    pub path: &'static str,
    /// The permission it needs; None: open to anyone (health, login).
    pub permission: Option<P>,
    /// One line for the API's description.
    pub summary: &'static str,
}

fn spec(
    method: Method,
    path: &'static str,
    permission: Option<P>,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        permission,
        summary,
    }
}

/// Every route and its handler.
pub fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    vec![
        (
            spec(
                Method::POST,
                "/v1/screen",
                Some(P::Screen),
                "Screen one call attempt or an array of them",
            ),
            post(screen::screen),
        ),
        (
            spec(
                Method::POST,
                "/v1/ledger/{kind}",
                Some(P::LedgerWrite),
                "Write ledger rows (CSV or JSON), checked by the rules",
            ),
            post(ledger::write),
        ),
        (
            spec(
                Method::GET,
                "/v1/ledger/{kind}/{key}",
                Some(P::LedgerRead),
                "One record, masked; ?reveal=true&purpose=TEXT for a supervisor",
            ),
            get(ledger::record),
        ),
        (
            spec(
                Method::GET,
                "/v1/ledger/{kind}/{key}/history",
                Some(P::LedgerHistory),
                "A record's history, masked",
            ),
            get(ledger::history),
        ),
        (
            spec(
                Method::GET,
                "/v1/numbers/{number}",
                Some(P::NumberView),
                "What the numbering plan and the ledger say about a number, masked",
            ),
            get(numbers::view),
        ),
        (
            spec(
                Method::POST,
                "/v1/cdr",
                Some(P::Ingest),
                "Call records for the monitor",
            ),
            post(cdr::ingest),
        ),
        (
            spec(
                Method::POST,
                "/v1/session",
                None,
                "Log in (name, password, TOTP code): sets the session cookie",
            ),
            post(session::login),
        ),
        (
            spec(
                Method::GET,
                "/v1/session",
                Some(P::Basic),
                "Who the caller is and what it may do",
            ),
            get(session::whoami),
        ),
        (
            spec(Method::DELETE, "/v1/session", Some(P::Basic), "Log out"),
            delete(session::logout),
        ),
        (
            spec(
                Method::GET,
                "/v1/principals",
                Some(P::Accounts),
                "Users and tokens, never a secret",
            ),
            get(accounts::list),
        ),
        (
            spec(
                Method::POST,
                "/v1/principals",
                Some(P::Accounts),
                "Add a user or a token",
            ),
            post(accounts::add),
        ),
        (
            spec(
                Method::POST,
                "/v1/principals/{name}/revoke",
                Some(P::Accounts),
                "Revoke a user or token at once",
            ),
            post(accounts::revoke),
        ),
        (
            spec(
                Method::PUT,
                "/v1/principals/{name}/role",
                Some(P::Accounts),
                "Change a principal's role (never one's own)",
            ),
            put(accounts::set_role),
        ),
        (
            spec(
                Method::DELETE,
                "/v1/principals/{name}/sessions",
                Some(P::Accounts),
                "End a person's console sessions (the account stays)",
            ),
            delete(accounts::end_sessions),
        ),
        (
            spec(
                Method::GET,
                "/v1/audit",
                Some(P::AuditRead),
                "The audit trail from ?since=T (RFC 3339)",
            ),
            get(audit::records),
        ),
        (
            spec(
                Method::GET,
                "/openapi.json",
                Some(P::Basic),
                "This description",
            ),
            get(ops::openapi),
        ),
        (
            spec(
                Method::GET,
                "/healthz",
                None,
                "Liveness and the snapshot generation",
            ),
            get(ops::healthz),
        ),
        (
            spec(
                Method::GET,
                "/metrics",
                Some(P::Metrics),
                "Prometheus metrics",
            ),
            get(ops::metrics),
        ),
    ]
}

impl RouteSpec {
    /// The most bytes a request body may have on this route: bulk ledger writes and call
    /// record batches are large, a batch of calls smaller, everything else small. Larger
    /// bodies are refused with 413 before they are read.
    pub fn body_limit(&self) -> usize {
        match (self.method.as_str(), self.path) {
            ("POST", "/v1/ledger/{kind}") => 256 << 20,
            ("POST", "/v1/cdr") => 64 << 20,
            ("POST", "/v1/screen") => 4 << 20,
            _ => 64 << 10,
        }
    }
}

/// The routes without their handlers.
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

/// The router: every route of [`table`] behind [`guard`] with its permission.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table() {
        let handler = handler.layer(axum::extract::DefaultBodyLimit::max(spec.body_limit()));
        let handler = match spec.permission {
            Some(p) => handler.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                move |s, req, next| guard(s, p, req, next),
            )),
            None => handler,
        };
        router = router.route(spec.path, handler);
    }
    let timeout = state.request_timeout;
    router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn(move |req, next| {
            within(timeout, req, next)
        }))
        .with_state(state)
}

/// Answers 503 `timeout` when a request takes longer than `limit` (blocking work it started
/// finishes on its own; the client is not kept waiting).
async fn within(
    limit: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}
