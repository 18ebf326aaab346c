//! `GET /v1/numbers/{number}`: the numbering plan's facts and the ledger's records about a
//! number, personal data masked; every view audited.

use super::ledger::audit;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use fanzha_auth::{Action, Outcome};
use fanzha_ledger::Kind;
use serde_json::{json, Map, Value};

/// The handler.
pub async fn view(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let mut o = Map::new();
        o.insert("input".into(), json!(number));
        let object = match fanzha_model::parse(&number) {
            Ok(n) => {
                crate::numbers::number_details(&mut o, n);
                let mut ledger = Map::new();
                let mut l = state.ledger();
                for kind in [
                    Kind::Subscribers,
                    Kind::KeyServices,
                    Kind::Blocklist,
                    Kind::OfficialNumbers,
                    Kind::PortedOut,
                    Kind::IotProfiles,
                ] {
                    if let Some(v) = l.get(kind, &n.e164(), None)? {
                        ledger.insert(kind.as_str().into(), v["record"].clone());
                    }
                }
                o.insert("ledger".into(), Value::Object(ledger));
                format!("numbers/{}", n.e164())
            }
            Err(e) => {
                o.insert("valid".into(), json!(false));
                o.insert("reason".into(), json!(e.to_string()));
                format!("numbers/{}", number.chars().take(64).collect::<String>())
            }
        };
        audit(
            &state,
            &caller,
            Action::NumberView,
            &object,
            "",
            Outcome::Success,
            String::new(),
        )?;
        Ok(Json(Value::Object(o)))
    })
    .await
}
