//! Accounts (security_admin): list, add, revoke, change a role. Every change audited.

use crate::auth::{AccountError, Caller};
use crate::error::{blocking, ApiError};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fanzha_auth::{PrincipalKind, PrincipalView, Role};
use serde::{Deserialize, Serialize};

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> ApiError {
        match e {
            AccountError::Store(s) => ApiError::from(s),
            AccountError::OwnRole => ApiError::forbidden(e.to_string()),
            AccountError::NoSuch(_) => ApiError::not_found(e.to_string()),
            AccountError::Seal(_) => ApiError::internal(e),
            AccountError::Credential(fanzha_auth::credential::CredentialError::WeakPassword(_)) => {
                ApiError::bad_request("weak_password", e.to_string())
            }
            AccountError::Credential(_) => ApiError::internal(e),
            AccountError::BadName(_) | AccountError::BadDays(_) => {
                ApiError::bad_request("bad_account", e.to_string())
            }
        }
    }
}

/// Every principal.
#[derive(Serialize)]
pub struct Principals {
    principals: Vec<PrincipalView>,
}

/// `GET /v1/principals`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Principals>, ApiError> {
    blocking(move || {
        Ok(Json(Principals {
            principals: state.auth.list()?,
        }))
    })
    .await
}

/// A new account.
#[derive(Deserialize)]
pub struct NewAccount {
    name: String,
    kind: PrincipalKind,
    role: Role,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    days: Option<i64>,
}

/// `POST /v1/principals`: a user (with `password`; the answer has the TOTP URI) or a token
/// (`days`, default 90; the answer has the token, shown this once).
pub async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(a): Json<NewAccount>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let now = state.now();
        Ok(match a.kind {
            PrincipalKind::User => {
                let password = a.password.ok_or_else(|| {
                    ApiError::bad_request("bad_account", "a user needs a password")
                })?;
                let u = state
                    .auth
                    .add_user(&a.name, a.role, &password, true, &caller, &now)?;
                (StatusCode::CREATED, Json(u)).into_response()
            }
            PrincipalKind::Token => {
                let t =
                    state
                        .auth
                        .add_token(&a.name, a.role, a.days.unwrap_or(90), &caller, &now)?;
                (StatusCode::CREATED, Json(t)).into_response()
            }
        })
    })
    .await
}

/// A revocation's result.
#[derive(Serialize)]
pub struct Revoked {
    name: String,
    revoked: bool,
}

/// `POST /v1/principals/{name}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    blocking(move || {
        let revoked = state.auth.revoke(&name, &caller, &state.now())?;
        Ok(Json(Revoked { name, revoked }))
    })
    .await
}

/// A role change.
#[derive(Deserialize, Serialize)]
pub struct RoleChange {
    role: Role,
}

/// `PUT /v1/principals/{name}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(change): Json<RoleChange>,
) -> Result<Json<RoleChange>, ApiError> {
    blocking(move || {
        state
            .auth
            .set_role(&name, change.role, &caller, &state.now())?;
        Ok(Json(change))
    })
    .await
}

/// Sessions ended.
#[derive(Serialize)]
pub struct SessionsEnded {
    name: String,
    ended: usize,
}

/// `DELETE /v1/principals/{name}/sessions`.
pub async fn end_sessions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<SessionsEnded>, ApiError> {
    blocking(move || {
        let ended = state.auth.end_sessions(&name, &caller, &state.now())?;
        Ok(Json(SessionsEnded { name, ended }))
    })
    .await
}
