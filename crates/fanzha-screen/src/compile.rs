//! Compiling the ledger into a policy snapshot. Reads every kind screening needs through the
//! [`Store`] trait (so both backends compile the same way) and turns the stored records into
//! the number-keyed tables of [`Snapshot`].

use fanzha_ledger::{Kind, Record, Store, StoreError};
use fanzha_model::number::NationalPrefix;
use fanzha_model::time::parse_time;
use fanzha_policy::{
    Approval, IotProfile, KeyServiceType, PatternSet, Snapshot, SubscriberFlags, Trunk, TrunkKind,
};
use serde_json::Value;

/// What compiling found worth telling an operator (records the snapshot had to skip).
#[derive(Debug, Default, Clone)]
pub struct CompileReport {
    /// Skipped records with the reason.
    pub skipped: Vec<String>,
}

fn number(r: &Record) -> Option<fanzha_model::PhoneNumber> {
    fanzha_model::parse(&r.key).ok()
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn patterns(r: &Record, field: &str, report: &mut CompileReport) -> PatternSet {
    let mut p = PatternSet::default();
    for s in strings(r.body.get(field)) {
        if !p.add_pattern(s) {
            report.skipped.push(format!(
                "{} {}: bad pattern {s:?} in {field}",
                r.kind, r.key
            ));
        }
    }
    p
}

fn unix(s: &str) -> Option<i64> {
    (!s.is_empty())
        .then(|| parse_time(s).ok().map(|t| t.timestamp()))
        .flatten()
}

/// The device key (first 14 digits) of an IMEI in any form.
pub fn imei_key(s: &str) -> Option<u64> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 14)
        .then(|| digits[..14].parse().ok())
        .flatten()
}

/// Compiles records (as a closure per kind, so callers can feed a store or memory).
pub fn compile_records(
    generation: u64,
    mut records: impl FnMut(Kind) -> Result<Vec<Record>, StoreError>,
) -> Result<(Snapshot, CompileReport), StoreError> {
    let mut s = Snapshot::new(generation);
    let mut report = CompileReport::default();

    for r in records(Kind::NumberBlocks)? {
        match NationalPrefix::parse(&r.key) {
            Some(p) => s.add_own_block(p),
            None => report
                .skipped
                .push(format!("number_blocks {}: not a prefix", r.key)),
        }
    }
    for r in records(Kind::Subscribers)? {
        let Some(n) = number(&r) else { continue };
        s.add_subscriber(n, subscriber_flags(&r));
    }
    for r in records(Kind::IotProfiles)? {
        let Some(n) = number(&r) else { continue };
        let profile = iot_profile(&r, &mut report);
        s.add_iot_profile(n, profile);
    }
    for r in records(Kind::PortedOut)? {
        if let Some(n) = number(&r) {
            s.add_ported_out(n);
        }
    }
    for r in records(Kind::OfficialNumbers)? {
        if let Some(n) = number(&r) {
            s.add_official(n);
        }
    }
    for r in records(Kind::Blocklist)? {
        if let Some(n) = number(&r) {
            s.add_blocked(n, unix(r.field("expires_at")));
        }
    }
    for r in records(Kind::KeyServices)? {
        if r.state.as_deref() == Some("terminated") {
            continue;
        }
        let Some(n) = number(&r) else { continue };
        let t = match r.subtype.as_deref() {
            Some("400") => KeyServiceType::N400,
            Some("yihaotong") => KeyServiceType::Yihaotong,
            Some("switchboard") => KeyServiceType::Switchboard,
            _ => continue,
        };
        s.add_key_service(n, t);
    }
    for r in records(Kind::Trunks)? {
        let Some(kind) = r.subtype.as_deref().and_then(TrunkKind::parse) else {
            report
                .skipped
                .push(format!("trunks {}: unknown kind", r.key));
            continue;
        };
        s.add_trunk(Trunk {
            id: r.key.as_str().into(),
            kind,
            contracted: patterns(&r, "contracted_numbers", &mut report),
            forwarding_approved: r
                .body
                .get("forwarding_approved")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            approvals: Vec::new(),
        });
    }
    for r in records(Kind::OutboundApprovals)? {
        let windows = strings(r.body.get("windows"))
            .filter_map(fanzha_ledger::rules::parse_window)
            .map(|(a, b)| (a as u32 * 60, b as u32 * 60))
            .collect();
        let limit = |f: &str| r.body.get(f).and_then(Value::as_u64).map(|v| v as u32);
        let approval = Approval {
            key: r.key.as_str().into(),
            callers: patterns(&r, "allowed_callers", &mut report),
            windows,
            max_per_hour: limit("max_per_hour"),
            max_per_day: limit("max_per_day"),
            valid_until: unix(r.field("valid_until")),
        };
        let service = if r.subtype.as_deref() == Some("voice_line") {
            None
        } else {
            number(&r)
        };
        if !s.add_approval(approval, service, &r.key) {
            report.skipped.push(format!(
                "outbound_approvals {}: trunk not in the ledger",
                r.key
            ));
        }
    }
    Ok((s, report))
}

/// Whether records of `kind` can be applied to a live snapshot one by one
/// ([`patch_record`]); the others (trunks, approvals, number blocks, key services) link to
/// each other and are compiled whole.
pub fn patchable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Subscribers
            | Kind::IotProfiles
            | Kind::PortedOut
            | Kind::OfficialNumbers
            | Kind::Blocklist
    )
}

/// Applies one record of a [`patchable`] kind to a snapshot, as [`compile_records`] would
/// have compiled it.
pub fn patch_record(s: &mut Snapshot, r: &Record) {
    let Some(n) = number(r) else { return };
    match r.kind {
        Kind::Subscribers => s.add_subscriber(n, subscriber_flags(r)),
        Kind::IotProfiles => {
            let mut report = CompileReport::default();
            s.add_iot_profile(n, iot_profile(r, &mut report));
        }
        Kind::PortedOut => s.add_ported_out(n),
        Kind::OfficialNumbers => s.add_official(n),
        Kind::Blocklist => s.add_blocked(n, unix(r.field("expires_at"))),
        _ => {}
    }
}

fn subscriber_flags(r: &Record) -> SubscriberFlags {
    let mut flags = 0u8;
    match r.state.as_deref() {
        Some("suspended") => flags |= SubscriberFlags::SUSPENDED,
        Some("terminated") => flags |= SubscriberFlags::TERMINATED,
        _ => {}
    }
    if r.subtype.as_deref() == Some("iot") {
        flags |= SubscriberFlags::IOT;
    }
    if !r.field("roaming").is_empty() {
        flags |= SubscriberFlags::ROAMING;
    }
    SubscriberFlags(flags)
}

fn iot_profile(r: &Record, report: &mut CompileReport) -> IotProfile {
    let flag = |f: &str| r.body.get(f).and_then(Value::as_bool).unwrap_or(false);
    IotProfile {
        voice: flag("voice"),
        sms: flag("sms"),
        bound_imei: imei_key(r.field("bound_imei")),
        allowed_callees: patterns(r, "allowed_callees", report),
    }
}

/// Compiles a snapshot from a ledger store; the generation is the ledger's version.
pub fn compile<S: Store + ?Sized>(store: &mut S) -> Result<(Snapshot, CompileReport), StoreError> {
    let generation = store.version()? as u64;
    compile_records(generation, |k| store.scan(k))
}
