//! `fanzha validate <id|uscc|imei|imsi|number> VALUE…`: the validators as a CLI contract.

use anyhow::Result;
use clap::ValueEnum;
use fanzha_model::imei::Imei;
use fanzha_model::imsi::Imsi;
use fanzha_model::mask::mask_id;
use fanzha_model::resident_id::ResidentId;
use fanzha_model::uscc::Uscc;
use fanzha_model::{parse, Date};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// What the values are.
    what: What,
    /// The values to check.
    #[arg(required = true, allow_hyphen_values = true)]
    values: Vec<String>,
    /// Show ID numbers unmasked (they print as 110102********0078 otherwise).
    #[arg(long)]
    reveal: bool,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum What {
    /// Resident ID number (GB 11643), 15 or 18 characters, or a foreigner's permanent-residence ID.
    Id,
    /// Unified Social Credit Code (GB 32100).
    Uscc,
    /// IMEI / IMEISV.
    Imei,
    /// IMSI.
    Imsi,
    /// Phone number in any form.
    Number,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let today = crate::today_in_china();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_valid = true;
    for v in &args.values {
        let obj = check(args.what, v, today, args.reveal);
        all_valid &= obj["valid"] == Value::Bool(true);
        serde_json::to_writer(&mut out, &obj)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The JSON verdict for one value (public for the end-to-end tests' oracle-free use).
pub fn check(what: What, input: &str, today: Date, reveal: bool) -> Value {
    let mut o = Map::new();
    match what {
        What::Id => {
            o.insert(
                "input".into(),
                json!(if reveal {
                    input.to_string()
                } else {
                    mask_id(input.trim())
                }),
            );
            match ResidentId::parse(input, today) {
                Ok(id) => {
                    o.insert("valid".into(), json!(true));
                    o.insert("kind".into(), json!(id.kind));
                    let shown = if reveal {
                        id.number.clone()
                    } else {
                        mask_id(&id.number)
                    };
                    o.insert("normalized".into(), json!(shown));
                    o.insert(
                        "region_code".into(),
                        json!(format!("{:06}", id.region_code)),
                    );
                    o.insert("region".into(), json!(id.region));
                    o.insert("birth_date".into(), json!(id.birth_date));
                    o.insert("sex".into(), json!(id.sex));
                    if let Some(n) = id.nationality {
                        o.insert("nationality".into(), json!(n));
                    }
                }
                Err(e) => invalid(&mut o, "resident_id", e.to_string()),
            }
        }
        What::Uscc => {
            o.insert("input".into(), json!(input));
            match Uscc::parse(input) {
                Ok(u) => {
                    o.insert("valid".into(), json!(true));
                    o.insert("kind".into(), json!("uscc"));
                    o.insert("normalized".into(), json!(u.code));
                    o.insert("authority".into(), json!(u.authority));
                    o.insert("region_code".into(), json!(u.region_code));
                    o.insert("organisation_code".into(), json!(u.organisation_code));
                }
                Err(e) => invalid(&mut o, "uscc", e.to_string()),
            }
        }
        What::Imei => {
            o.insert("input".into(), json!(input));
            match Imei::parse(input) {
                Ok(i) => {
                    o.insert("valid".into(), json!(true));
                    o.insert("kind".into(), json!(i.form));
                    o.insert("normalized".into(), json!(i.digits));
                    o.insert("tac".into(), json!(i.tac()));
                    o.insert("serial".into(), json!(i.serial()));
                }
                Err(e) => invalid(&mut o, "imei", e.to_string()),
            }
        }
        What::Imsi => {
            o.insert("input".into(), json!(input));
            match Imsi::parse(input) {
                Ok(i) => {
                    o.insert("valid".into(), json!(true));
                    o.insert("kind".into(), json!("imsi"));
                    o.insert("normalized".into(), json!(i.digits));
                    o.insert("mcc".into(), json!(i.mcc));
                    o.insert("mnc".into(), json!(i.mnc));
                    o.insert("operator".into(), json!(i.operator));
                }
                Err(e) => invalid(&mut o, "imsi", e.to_string()),
            }
        }
        What::Number => {
            o.insert("input".into(), json!(input));
            match parse(input) {
                Ok(n) => fanzha_api::numbers::number_details(&mut o, n),
                Err(e) => invalid(&mut o, "unknown", e.to_string()),
            }
        }
    }
    Value::Object(o)
}

fn invalid(o: &mut Map<String, Value>, kind: &str, reason: String) {
    o.insert("valid".into(), json!(false));
    o.insert("kind".into(), json!(kind));
    o.insert("reason".into(), json!(reason));
}
