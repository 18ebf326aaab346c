//! fanzha's HTTP API: `fn app(state) -> Router`, tested without a socket.
//!
//! - [`routes`]: every route with the permission it needs, and their handlers (screening,
//!   ledger, number views, call records, sessions, accounts, the audit trail, operations).
//! - [`guard`]: the one place a request is authenticated (bearer token or console session)
//!   and authorised (the role's permission, the session's CSRF token).
//! - [`auth`]: principals, sessions, logins and the audit trail ([`auth::Authenticator`]).
//! - [`state`], [`error`]: what handlers share; errors as JSON with stable codes.
//!
//! Knows HTTP and the JSON contract. Does not know SIP, which database backs the ledger,
//! or the clock (the state carries one).

pub mod auth;
pub mod error;
pub mod guard;
pub mod listener;
pub mod metrics;
pub mod numbers;
pub mod routes;
pub mod state;

pub use error::ApiError;
pub use routes::app;
pub use state::{block_disposed, refresh, AppState, Clock, MonitorIngest};

#[cfg(test)]
mod tests;
