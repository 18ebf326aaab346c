//! The call-attempt and verdict JSON of the public contract (DESIGN.md), shared by every
//! front end that speaks JSON (batch CLI, HTTP).

use crate::compile::imei_key;
use fanzha_model::time::parse_time;
use fanzha_policy::{Action, CallAttempt, Caller, RuleId, Service, Snapshot, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A call attempt as JSON. Missing optional fields default to empty / allowed / voice.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct CallWire {
    /// Echoed in the verdict.
    pub id: Value,
    /// RFC 3339 (China time without offset).
    pub ts: String,
    /// Ingress trunk id.
    pub trunk: String,
    /// Presented caller, any form.
    pub caller: String,
    /// allowed | restricted.
    pub presentation: String,
    /// Called number.
    pub callee: String,
    /// Generic number (通用号码).
    pub generic_number: String,
    /// Diversion number.
    pub diversion: String,
    /// voice | sms.
    pub service: String,
    /// IMSI of the calling card.
    pub imsi: String,
    /// IMEI of the calling device.
    pub imei: String,
}

/// A verdict as JSON: the contract's fields plus `generation` and, when any, `shadow`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerdictWire {
    /// The call's id.
    pub id: Value,
    /// allow | block.
    pub action: String,
    /// SIP status (302 on allow).
    pub code: u16,
    /// Every matched rule in order.
    pub rules: Vec<String>,
    /// Removed fields.
    pub strip: Vec<String>,
    /// Matched rules in shadow mode.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub shadow: Vec<String>,
    /// Snapshot generation.
    pub generation: u64,
}

impl VerdictWire {
    /// The wire form of a verdict for call `id`.
    pub fn new(id: Value, v: &Verdict) -> VerdictWire {
        VerdictWire {
            id,
            action: match v.action {
                Action::Allow => "allow",
                Action::Block => "block",
            }
            .to_string(),
            code: v.code,
            rules: v.rules.iter().map(|r| r.as_str().to_string()).collect(),
            strip: if v.strip_generic_number {
                vec!["generic_number".to_string()]
            } else {
                vec![]
            },
            shadow: v.shadow.iter().map(|r| r.as_str().to_string()).collect(),
            generation: v.generation,
        }
    }
}

/// Why a JSON call is not a call attempt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// Not JSON / wrong shape.
    #[error("not a call attempt: {0}")]
    Json(String),
    /// Missing or bad `ts`.
    #[error("ts: {0}")]
    Time(String),
    /// Trunk missing or unknown to the ledger.
    #[error("unknown trunk {0:?}")]
    Trunk(String),
    /// A field with a value outside its set.
    #[error("{field} {value:?} is not one of {allowed}")]
    Value {
        /// Field.
        field: &'static str,
        /// Value.
        value: String,
        /// Allowed values.
        allowed: &'static str,
    },
    /// An IMEI with fewer than 14 digits.
    #[error("imei {0:?} is not an IMEI")]
    Imei(String),
    /// A field longer than any value of it can be.
    #[error("{field} is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// Field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The most bytes a call attempt's text field may hold.
pub const MAX_CALL_FIELD: usize = 256;

impl CallWire {
    /// Parses one JSON line.
    pub fn from_json(line: &str) -> Result<CallWire, (Value, CallError)> {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| (Value::Null, CallError::Json(e.to_string())))?;
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| (id, CallError::Json(e.to_string())))
    }

    /// Normalises against a snapshot's trunks.
    pub fn resolve(&self, s: &Snapshot) -> Result<CallAttempt, CallError> {
        for (field, v) in [
            ("ts", &self.ts),
            ("trunk", &self.trunk),
            ("caller", &self.caller),
            ("presentation", &self.presentation),
            ("callee", &self.callee),
            ("generic_number", &self.generic_number),
            ("diversion", &self.diversion),
            ("service", &self.service),
            ("imsi", &self.imsi),
            ("imei", &self.imei),
        ] {
            if v.len() > MAX_CALL_FIELD {
                return Err(CallError::TooLong {
                    field,
                    len: v.len(),
                    max: MAX_CALL_FIELD,
                });
            }
        }
        if self.ts.trim().is_empty() {
            return Err(CallError::Time("missing".into()));
        }
        let ts = parse_time(&self.ts).map_err(CallError::Time)?.timestamp();
        let trunk = s
            .trunk(self.trunk.trim())
            .ok_or_else(|| CallError::Trunk(self.trunk.clone()))?;
        let restricted = match self.presentation.trim() {
            "" | "allowed" => false,
            "restricted" => true,
            other => {
                return Err(CallError::Value {
                    field: "presentation",
                    value: other.into(),
                    allowed: "allowed, restricted",
                })
            }
        };
        let service = match self.service.trim() {
            "" | "voice" => Service::Voice,
            "sms" => Service::Sms,
            other => {
                return Err(CallError::Value {
                    field: "service",
                    value: other.into(),
                    allowed: "voice, sms",
                })
            }
        };
        let imei = match self.imei.trim() {
            "" => None,
            s => Some(imei_key(s).ok_or_else(|| CallError::Imei(s.into()))?),
        };
        Ok(CallAttempt {
            ts,
            trunk,
            caller: Caller::from_presented(&self.caller),
            restricted,
            callee: fanzha_model::parse(&self.callee).ok(),
            has_generic_number: !self.generic_number.trim().is_empty(),
            has_diversion: !self.diversion.trim().is_empty(),
            service,
            imei,
        })
    }
}

/// Parses `shadow` configuration: rule IDs separated by commas.
pub fn parse_rule_list(s: &str) -> Result<fanzha_policy::RuleSet, String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| RuleId::parse(r).ok_or_else(|| format!("unknown rule {r:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_past_its_limit_is_an_error_naming_it() {
        let w = CallWire {
            ts: "2026-11-30T10:00:00+08:00".into(),
            trunk: "t".into(),
            caller: "1".repeat(MAX_CALL_FIELD + 1),
            ..CallWire::default()
        };
        let e = w.resolve(&Snapshot::new(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "caller is 257 bytes long; at most 256 are accepted"
        );
    }
}
