//! What the numbering plan says about a number, as JSON (shared by `fanzha validate number`
//! and `GET /v1/numbers/{number}`).

use fanzha_model::number::{area_name, mobile_home_city};
use serde_json::{json, Map, Value};

/// Everything the numbering plan says about a parsed number (also used by the HTTP API).
pub fn number_details(o: &mut Map<String, Value>, n: fanzha_model::PhoneNumber) {
    let info = n.classify();
    o.insert("valid".into(), json!(info.valid));
    o.insert("kind".into(), json!(info.kind));
    o.insert("e164".into(), json!(n.e164()));
    o.insert("national".into(), json!(n.national_string()));
    o.insert("country_code".into(), json!(n.country_code()));
    o.insert("region".into(), json!(info.region));
    o.insert("type".into(), json!(info.line_type));
    if let Some(c) = info.carrier {
        o.insert("carrier".into(), json!(c.zh));
        o.insert("carrier_en".into(), json!(c.en));
    }
    if let Some(city) = mobile_home_city(n) {
        o.insert("home".into(), json!(city));
    }
    if let Some(a) = info.area_code {
        o.insert("area_code".into(), json!(format!("0{a}")));
        if let Some(place) = area_name(a) {
            o.insert("place".into(), json!(place));
        }
    }
    if info.emergency {
        o.insert("emergency".into(), json!(true));
    }
    if let Some(why) = info.invalidity {
        o.insert("reason".into(), json!(why.to_string()));
    }
}
