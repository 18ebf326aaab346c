//! People's sessions: log in with name, password and TOTP code; the session cookie is
//! HttpOnly and SameSite=Strict (Secure over TLS); state-changing requests made with it
//! carry its CSRF token.

use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{blocking, ApiError};
use crate::guard::client_of;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fanzha_auth::{Action, Outcome, Permission, PrincipalKind, Role};
use serde::{Deserialize, Serialize};

/// The login form.
#[derive(Deserialize)]
pub struct Login {
    name: String,
    password: String,
    /// The authenticator app's 6-digit code (`code` is accepted too).
    #[serde(default, alias = "code")]
    totp: String,
}

/// A started session.
#[derive(Serialize)]
pub struct SessionStarted {
    name: String,
    role: Role,
    /// Send it back in `X-CSRF-Token` with every state-changing request.
    csrf_token: String,
    idle_timeout_s: i64,
}

/// Most bytes a login form may have.
const MAX_LOGIN_BODY: usize = 4096;

/// `POST /v1/session`.
pub async fn login(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let client = client_of(req.extensions());
    let body = axum::body::to_bytes(req.into_body(), MAX_LOGIN_BODY)
        .await
        .map_err(|_| ApiError::bad_request("bad_json", "a login form is at most 4 KiB"))?;
    let form: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{name, password, totp}}: {e}"),
        )
    })?;
    let auth = state.auth.clone();
    let now = state.now();
    let started = blocking(move || {
        auth.login(&form.name, &form.password, &form.totp, &client, &now)
            .map_err(|e| ApiError::unauthenticated(e.public_message()))
    })
    .await?;
    let mut cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        started.id
    );
    if state.auth.config().secure_cookie {
        cookie.push_str("; Secure");
    }
    let mut r = Json(SessionStarted {
        name: started.name,
        role: started.role,
        csrf_token: started.csrf,
        idle_timeout_s: state.auth.config().idle_timeout_s,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// Who is calling.
#[derive(Serialize)]
pub struct WhoAmI {
    name: String,
    role: Role,
    kind: PrincipalKind,
    session: bool,
    permissions: &'static [Permission],
}

/// `GET /v1/session`.
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.name,
        role: caller.role,
        kind: caller.kind,
        session: caller.session.is_some(),
        permissions: caller.role.permissions(),
    })
}

/// The end of a session.
#[derive(Serialize)]
pub struct LoggedOut {
    ended: bool,
}

/// `DELETE /v1/session`.
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let Some(session) = caller.session.clone() else {
        return Ok(Json(LoggedOut { ended: false }).into_response());
    };
    state.auth.logout(&session);
    let st = state.clone();
    blocking(move || {
        super::ledger::audit(
            &st,
            &caller,
            Action::Logout,
            &caller.name,
            "",
            Outcome::Success,
            String::new(),
        )
    })
    .await?;
    let mut r = Json(LoggedOut { ended: true }).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fanzha_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}
