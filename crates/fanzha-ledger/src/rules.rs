//! The regulation's rules on every ledger write. Each kind's row is checked field by field
//! and against the ledger (inside the write transaction, so concurrent writers cannot race
//! past a limit), then turned into the record to store. A row that breaks several rules is
//! refused citing the first one found, in the order written here.

use crate::kind::Kind;
use crate::pii::PiiVault;
use crate::store::{Columns, CountQuery, Field, Record, StoreError, Tx};
use fanzha_model::imei::Imei;
use fanzha_model::imsi::Imsi;
use fanzha_model::mask::{echo, mask_id, mask_name};
use fanzha_model::number::{NationalPrefix, NumberKind};
use fanzha_model::resident_id;
use fanzha_model::time::parse_time;
use fanzha_model::uscc::Uscc;
use fanzha_model::{parse, Date, PhoneNumber};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Most non-terminated mobile cards one person may hold with the operator (一证五卡, R3.1).
pub const MAX_CARDS_PER_HOLDER: u64 = 5;
/// Most numbers of each key-service type one unit may hold (R7.4).
pub const MAX_KEY_SERVICES_PER_TYPE: u64 = 5;

/// A refused write: the reason in words and the requirement it enforces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// What is wrong, specifically.
    pub reason: String,
    /// The requirement ID (`R3.1`).
    pub requirement: &'static str,
}

/// Why a row was not applied: refused by a rule, or the store failed.
#[derive(Debug)]
pub enum Reject {
    /// A rule refused it.
    Refused(Refusal),
    /// The backend failed; the row is not decided.
    Store(StoreError),
}

impl From<StoreError> for Reject {
    fn from(e: StoreError) -> Reject {
        Reject::Store(e)
    }
}

type Checked<T> = Result<T, Reject>;

fn refuse<T>(requirement: &'static str, reason: impl Into<String>) -> Checked<T> {
    Err(Reject::Refused(Refusal {
        reason: reason.into(),
        requirement,
    }))
}

/// A row's fields by column name ("" for a column the file does not have).
pub trait RowFields {
    /// The trimmed value of `column`.
    fn get(&self, column: &str) -> &str;
}

/// What a rule check needs besides the row and the transaction.
pub struct Context<'a> {
    /// The PII vault (hash and seal personal data).
    pub vault: &'a PiiVault,
    /// Today, China time (birth dates after it are refused).
    pub today: Date,
    /// Now, RFC 3339 (defaults for missing times).
    pub now: &'a str,
}

/// The most characters a field of `kind` may hold: lists (numbers, patterns, windows,
/// addresses) 64 Ki, free text 1 Ki, everything else (identifiers, numbers, names, codes,
/// times) 256. A longer field refuses its row, naming the field.
pub fn field_limit(kind: Kind, column: &str) -> usize {
    match (kind, column) {
        (Kind::Trunks, "contracted_numbers")
        | (Kind::OutboundApprovals, "allowed_callers" | "windows")
        | (Kind::IotProfiles, "allowed_callees" | "allowed_ips") => 64 * 1024,
        (_, "reason" | "purpose" | "name" | "owner" | "holder") => 1024,
        _ => 256,
    }
}

/// Every field of the row within its limit ([`field_limit`]).
fn check_lengths(kind: Kind, row: &dyn RowFields) -> Checked<()> {
    for &col in kind.columns() {
        let max = field_limit(kind, col);
        let v = row.get(col);
        // Bytes bound characters from above: count characters only when it may matter.
        if v.len() > max {
            let n = v.chars().count();
            if n > max {
                return refuse(
                    kind.requirement(),
                    format!("{col} is {n} characters long; at most {max} are accepted"),
                );
            }
        }
    }
    Ok(())
}

/// Checks a row of `kind` and returns the record to store.
pub fn check_row(
    kind: Kind,
    row: &dyn RowFields,
    tx: &mut dyn Tx,
    cx: &Context<'_>,
) -> Result<Record, Reject> {
    check_lengths(kind, row)?;
    match kind {
        Kind::Units => unit(row, cx),
        Kind::Agents => agent(row, tx),
        Kind::Subscribers => subscriber(row, tx, cx),
        Kind::IotProfiles => iot_profile(row, tx),
        Kind::KeyServices => key_service(row, tx),
        Kind::Trunks => trunk(row, tx),
        Kind::OutboundApprovals => outbound_approval(row, tx),
        Kind::NumberBlocks => number_block(row),
        Kind::PortedOut => simple_number(row, Kind::PortedOut, "msisdn", &["recipient"]),
        Kind::OfficialNumbers => simple_number(row, Kind::OfficialNumbers, "number", &["owner"]),
        Kind::ProtectedNumbers => {
            simple_number(row, Kind::ProtectedNumbers, "number", &["owner", "reason"])
        }
        Kind::Blocklist => blocklist(row, cx),
        Kind::Blacklist => blacklist(row, cx),
    }
}

/// Normalises a key given on the command line to the stored key of `kind`.
pub fn normalise_key(kind: Kind, key: &str, vault: &PiiVault) -> String {
    let key = key.trim();
    match kind {
        Kind::Subscribers
        | Kind::IotProfiles
        | Kind::KeyServices
        | Kind::PortedOut
        | Kind::OfficialNumbers
        | Kind::ProtectedNumbers
        | Kind::Blocklist => parse(key)
            .map(|n| n.e164())
            .unwrap_or_else(|_| key.to_string()),
        Kind::OutboundApprovals => match parse(key) {
            Ok(n) if n.classify().valid => n.e164(),
            _ => key.to_string(),
        },
        Kind::Units => key.to_ascii_uppercase(),
        Kind::NumberBlocks => NationalPrefix::parse(key)
            .map(|p| p.to_string())
            .unwrap_or_else(|| key.to_string()),
        Kind::Blacklist => match key.split_once(':') {
            Some(("person", id)) if !id.starts_with("hash:") => {
                format!("person:{}", vault.hash(&normalise_person_id(id)))
            }
            Some(("unit", u)) => format!("unit:{}", u.trim().to_ascii_uppercase()),
            _ => key.to_string(),
        },
        Kind::Agents | Kind::Trunks => key.to_string(),
    }
}

/// What a row will read, for [`crate::store::Tx::prefetch`]: its stored key and, for a
/// mobile card, its holder's hash. Cheap and infallible: a malformed row hints nothing.
pub fn hint(kind: Kind, row: &dyn RowFields, vault: &PiiVault) -> (Option<String>, Option<String>) {
    let key_column = match kind {
        Kind::Units => "uscc",
        Kind::Agents => "agent_id",
        Kind::Subscribers | Kind::IotProfiles | Kind::PortedOut => "msisdn",
        Kind::KeyServices | Kind::OfficialNumbers | Kind::ProtectedNumbers | Kind::Blocklist => {
            "number"
        }
        Kind::Trunks => "trunk_id",
        Kind::OutboundApprovals => "service",
        Kind::NumberBlocks => "prefix",
        Kind::Blacklist => {
            let key = format!("{}:{}", row.get("subject_kind"), row.get("subject_id"));
            return (Some(normalise_key(kind, &key, vault)), None);
        }
    };
    let key = Some(normalise_key(kind, row.get(key_column), vault));
    let holder = (kind == Kind::Subscribers
        && row.get("kind") == "mobile"
        && !row.get("holder_id").is_empty())
    .then(|| vault.hash(&normalise_person_id(row.get("holder_id"))));
    (key, holder)
}

/// The form an ID number is hashed in: validated and normalised when possible (15→18
/// digits, upper-case X), else upper-cased as given.
fn normalise_person_id(id: &str) -> String {
    let far_future = Date {
        year: 9999,
        month: 12,
        day: 31,
    };
    resident_id::validate(id, far_future)
        .map(|f| f.number().to_string())
        .unwrap_or_else(|_| id.trim().to_ascii_uppercase())
}

// ---- field helpers -------------------------------------------------------------------------

fn required<'r>(row: &'r dyn RowFields, col: &str, req: &'static str) -> Checked<&'r str> {
    let v = row.get(col);
    if v.is_empty() {
        return refuse(req, format!("{col} is missing"));
    }
    Ok(v)
}

fn one_of(
    row: &dyn RowFields,
    col: &str,
    allowed: &[&'static str],
    default: Option<&'static str>,
    req: &'static str,
) -> Checked<&'static str> {
    let v = row.get(col);
    if v.is_empty() {
        if let Some(d) = default {
            return Ok(d);
        }
    }
    match allowed.iter().find(|a| a.eq_ignore_ascii_case(v)) {
        Some(a) => Ok(*a),
        None => refuse(
            req,
            format!("{col} {} is not one of {}", echo(v), allowed.join(", ")),
        ),
    }
}

fn boolean(row: &dyn RowFields, col: &str, req: &'static str) -> Checked<bool> {
    match row.get(col).to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "n" | "否" => Ok(false),
        "true" | "1" | "yes" | "y" | "是" => Ok(true),
        v => refuse(req, format!("{col} {} is not true or false", echo(v))),
    }
}

fn valid_number(v: &str, col: &str, req: &'static str) -> Checked<PhoneNumber> {
    let n = match parse(v) {
        Ok(n) => n,
        Err(e) => return refuse(req, format!("{col} {}: {e}", echo(v))),
    };
    let info = n.classify();
    if let Some(why) = info.invalidity {
        return refuse(
            req,
            format!("{col} {} is not a valid number: {why}", echo(v)),
        );
    }
    Ok(n)
}

fn valid_uscc(v: &str, col: &str, req: &'static str) -> Checked<String> {
    match Uscc::parse(v) {
        Ok(u) => Ok(u.code),
        Err(e) => refuse(req, format!("{col} {} is not a valid USCC: {e}", echo(v))),
    }
}

fn valid_person_id(v: &str, col: &str, req: &'static str, today: Date) -> Checked<String> {
    match resident_id::validate(v, today) {
        Ok(f) => Ok(f.number().to_string()),
        Err(e) => refuse(
            req,
            format!("{col} {} is not a valid ID number: {e}", mask_id(v)),
        ),
    }
}

fn optional_time(row: &dyn RowFields, col: &str, req: &'static str) -> Checked<String> {
    let v = row.get(col);
    if v.is_empty() {
        return Ok(String::new());
    }
    match parse_time(v) {
        Ok(t) => Ok(t.to_rfc3339()),
        Err(e) => refuse(req, format!("{col}: {e}")),
    }
}

fn list(v: &str) -> Vec<&str> {
    v.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A number pattern as in `contracted_numbers` / `allowed_callers` / `allowed_callees`:
/// a full number (normalised to E.164) or a national prefix ending in `*`.
fn number_pattern(entry: &str, col: &str, req: &'static str) -> Checked<String> {
    if let Some(prefix) = entry.strip_suffix('*') {
        return match NationalPrefix::parse(prefix) {
            Some(p) => Ok(format!("{p}*")),
            None => refuse(
                req,
                format!("{col} entry {} is not a number prefix", echo(entry)),
            ),
        };
    }
    match parse(entry) {
        Ok(n) => Ok(n.e164()),
        Err(e) => refuse(req, format!("{col} entry {}: {e}", echo(entry))),
    }
}

/// Whether `n` is covered by a normalised pattern (see [`number_pattern`]).
pub fn pattern_covers(pattern: &str, n: PhoneNumber) -> bool {
    match pattern.strip_suffix('*') {
        Some(p) => {
            n.is_chinese() && NationalPrefix::parse(p).is_some_and(|p| n.national_starts_with(p))
        }
        None => parse(pattern).is_ok_and(|m| m == n),
    }
}

/// Whether pattern `inner` (number or prefix) lies entirely inside pattern `outer`.
fn pattern_within(inner: &str, outer: &str) -> bool {
    match (inner.strip_suffix('*'), outer.strip_suffix('*')) {
        (Some(i), Some(o)) => i.starts_with(o),
        (None, Some(_)) => parse(inner).is_ok_and(|n| pattern_covers(outer, n)),
        (None, None) => inner == outer,
        (Some(_), None) => false,
    }
}

fn seal(
    cx: &Context<'_>,
    at: (Kind, &str),
    body: &mut Map<String, Value>,
    field: &str,
    value: &str,
    mask: fn(&str) -> String,
) -> Checked<()> {
    let (masked, sealed) = sealed(cx, at, field, value, mask)?;
    body.insert(field.into(), json!(masked));
    if let Some(sealed) = sealed {
        body.insert(format!("{field}_enc"), json!(sealed));
    }
    Ok(())
}

/// Personal data as a body keeps it: masked under `field`, sealed under `{field}_enc`
/// bound to the record `at` (kind, key) (nothing sealed when the value is empty).
fn sealed(
    cx: &Context<'_>,
    (kind, key): (Kind, &str),
    field: &str,
    value: &str,
    mask: fn(&str) -> String,
) -> Checked<(String, Option<String>)> {
    if value.is_empty() {
        return Ok((String::new(), None));
    }
    let sealed = cx
        .vault
        .seal(kind.as_str(), key, field, value)
        .map_err(|e| Reject::Store(StoreError::Database(e.to_string())))?;
    Ok((mask(value), Some(sealed)))
}

fn blacklisted_unit(tx: &mut dyn Tx, uscc: &str) -> Result<bool, StoreError> {
    Ok(tx.get(Kind::Blacklist, &format!("unit:{uscc}"))?.is_some())
}

fn blacklisted_person(tx: &mut dyn Tx, hash: &str) -> Result<bool, StoreError> {
    Ok(tx
        .get(Kind::Blacklist, &format!("person:{hash}"))?
        .is_some())
}

/// R25.1: refuses when the unit, or its legal representative, is on the blacklist.
fn not_blacklisted(tx: &mut dyn Tx, uscc: &str, unit: Option<&Record>, what: &str) -> Checked<()> {
    if blacklisted_unit(tx, uscc)? {
        return refuse(
            "R25.1",
            format!("unit {uscc} is blacklisted and may not {what}"),
        );
    }
    if let Some(rep) = unit.and_then(|u| u.holder_hash.clone()) {
        if blacklisted_person(tx, &rep)? {
            return refuse(
                "R25.1",
                format!("the legal representative of unit {uscc} is blacklisted; the unit may not {what}"),
            );
        }
    }
    Ok(())
}

fn record(kind: Kind, key: String, body: Map<String, Value>) -> Record {
    Record {
        kind,
        key,
        holder_hash: None,
        unit: None,
        subtype: None,
        state: None,
        body: Value::Object(body),
    }
}

// ---- kinds ----------------------------------------------------------------------------------

fn unit(row: &dyn RowFields, cx: &Context<'_>) -> Checked<Record> {
    let req = "R7.3";
    let uscc = valid_uscc(required(row, "uscc", req)?, "uscc", req)?;
    let name = required(row, "name", req)?;
    let kind = one_of(
        row,
        "kind",
        &["enterprise", "government", "institution", "social_org"],
        None,
        "R7.1",
    )?;
    let rep_id = valid_person_id(
        required(row, "legal_rep_id", req)?,
        "legal_rep_id",
        req,
        cx.today,
    )?;
    let mut b = Map::new();
    b.insert("uscc".into(), json!(uscc));
    b.insert("name".into(), json!(name));
    b.insert("kind".into(), json!(kind));
    seal(
        cx,
        (Kind::Units, &uscc),
        &mut b,
        "legal_rep_id",
        &rep_id,
        mask_id,
    )?;
    seal(
        cx,
        (Kind::Units, &uscc),
        &mut b,
        "legal_rep_name",
        row.get("legal_rep_name"),
        mask_name,
    )?;
    b.insert("province".into(), json!(row.get("province")));
    let mut r = record(Kind::Units, uscc.clone(), b);
    r.holder_hash = Some(cx.vault.hash(&rep_id));
    r.subtype = Some(kind.to_string());
    Ok(r)
}

fn agent(row: &dyn RowFields, tx: &mut dyn Tx) -> Checked<Record> {
    let req = "R5.1";
    let id = required(row, "agent_id", req)?;
    let parent = row.get("parent");
    if parent != "operator" {
        return refuse(
            req,
            format!(
                "an agent's parent must be the operator, not {}: sub-agents are forbidden",
                echo(parent)
            ),
        );
    }
    let uscc = valid_uscc(required(row, "uscc", req)?, "uscc", req)?;
    let state = one_of(
        row,
        "state",
        &["active", "suspended", "cancelled", "blacklisted"],
        Some("active"),
        req,
    )?;
    if state == "active" || state == "suspended" {
        let unit = tx.get(Kind::Units, &uscc)?;
        not_blacklisted(tx, &uscc, unit.as_ref(), "act as an agent")?;
    }
    let mut b = Map::new();
    b.insert("agent_id".into(), json!(id));
    b.insert("name".into(), json!(row.get("name")));
    b.insert("uscc".into(), json!(uscc));
    b.insert("parent".into(), json!(parent));
    b.insert("state".into(), json!(state));
    let mut r = record(Kind::Agents, id.to_string(), b);
    r.unit = Some(uscc);
    r.state = Some(state.to_string());
    Ok(r)
}

fn subscriber(row: &dyn RowFields, tx: &mut dyn Tx, cx: &Context<'_>) -> Checked<Record> {
    finish_subscriber(&prepare_subscriber(row, cx)?, tx).map(PreparedRecord::record)
}

/// A record made ready to store away from the ledger: its indexed columns, and its body as
/// JSON text only. Building a `serde_json::Value` body for every row of an import, and
/// dropping it, cost as much as all of the row's checks, and a new record never needs one:
/// [`PreparedRecord::record`] parses it when a stored record must be compared with it.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedRecord {
    /// Kind.
    pub kind: Kind,
    /// Key within the kind.
    pub key: String,
    /// As [`Record::holder_hash`].
    pub holder_hash: Option<String>,
    /// As [`Record::unit`].
    pub unit: Option<String>,
    /// As [`Record::subtype`].
    pub subtype: Option<&'static str>,
    /// As [`Record::state`].
    pub state: Option<&'static str>,
    /// The body, serialised.
    pub body_json: String,
}

impl PreparedRecord {
    /// Its indexed columns.
    pub fn columns(&self) -> Columns<'_> {
        Columns {
            kind: self.kind,
            key: &self.key,
            holder_hash: self.holder_hash.as_deref(),
            unit: self.unit.as_deref(),
            subtype: self.subtype,
            state: self.state,
        }
    }

    /// The whole record, its body parsed.
    pub fn record(&self) -> Record {
        Record {
            kind: self.kind,
            key: self.key.clone(),
            holder_hash: self.holder_hash.clone(),
            unit: self.unit.clone(),
            subtype: self.subtype.map(str::to_string),
            state: self.state.map(str::to_string),
            body: serde_json::from_str(&self.body_json)
                .expect("a body serde_json wrote parses back"),
        }
    }
}

/// A subscriber record's body. The fields are in alphabetical order, as a `serde_json::Map`
/// (sorted) writes them, so a body has the same text however it was made.
#[derive(Serialize)]
struct SubscriberBody<'a> {
    activated_at: &'a str,
    agent_id: &'a str,
    channel: &'a str,
    holder_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder_id_enc: Option<&'a str>,
    holder_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder_name_enc: Option<&'a str>,
    holder_uscc: &'a str,
    imei: &'a str,
    imsi: &'a str,
    kind: &'a str,
    msisdn: &'a str,
    province: &'a str,
    real_name: &'a str,
    roaming: &'a str,
    state: &'a str,
    verification: &'a str,
}

/// A subscriber row checked as far as it can be without the ledger. The checks that need
/// the ledger sit between the pure ones (the agent after the holder, the card limit last),
/// so the plan keeps each part's outcome and [`finish_subscriber`] runs them in the rules'
/// order: a row that breaks several rules still cites the first.
#[derive(Debug)]
pub enum SubscriberPlan {
    /// Refused before anything in the ledger matters.
    Refused(Refusal),
    /// Passed the checks before the agent lookup.
    Checked {
        /// The agent to look up (channel `agent`).
        agent: Option<String>,
        /// The checks after it and the record to store.
        tail: Result<PreparedRecord, Refusal>,
        /// The holder whose card limit applies (R3.1).
        holder_limit: Option<String>,
    },
}

fn refusal_of(r: Reject) -> Result<Refusal, StoreError> {
    match r {
        Reject::Refused(f) => Ok(f),
        Reject::Store(e) => Err(e),
    }
}

/// Everything about a subscriber row that needs no store: fields, holder, hashing,
/// sealing. Pure, so an import runs it for the next rows while the store applies these.
pub fn prepare_subscriber(
    row: &dyn RowFields,
    cx: &Context<'_>,
) -> Result<SubscriberPlan, StoreError> {
    let head = match subscriber_head(row, cx) {
        Ok(h) => h,
        Err(r) => return Ok(SubscriberPlan::Refused(refusal_of(r)?)),
    };
    let agent = (head.channel == "agent").then(|| head.agent_id.clone());
    let (tail, holder_limit) = match subscriber_tail(row, cx, head) {
        Ok((record, limit)) => (Ok(record), limit),
        Err(r) => (Err(refusal_of(r)?), None),
    };
    Ok(SubscriberPlan::Checked {
        agent,
        tail,
        holder_limit,
    })
}

/// The ledger's part of a subscriber check, in the rules' order.
pub fn finish_subscriber<'p>(
    plan: &'p SubscriberPlan,
    tx: &mut dyn Tx,
) -> Checked<&'p PreparedRecord> {
    let (agent, tail, holder_limit) = match plan {
        SubscriberPlan::Refused(r) => return Err(Reject::Refused(r.clone())),
        SubscriberPlan::Checked {
            agent,
            tail,
            holder_limit,
        } => (agent, tail, holder_limit),
    };
    if let Some(agent_id) = agent {
        match tx.get(Kind::Agents, agent_id)? {
            None => return refuse("R5.1", format!("agent {agent_id} is not in the ledger")),
            Some(a) if matches!(a.state.as_deref(), Some("cancelled") | Some("blacklisted")) => {
                return refuse(
                    "R5.1",
                    format!(
                        "agent {agent_id} is {}: it may not open subscribers",
                        a.state.unwrap_or_default()
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let record = tail.as_ref().map_err(|r| Reject::Refused(r.clone()))?;
    // R3.1 一证五卡: counted inside the transaction, under a lock on the holder.
    if let Some(h) = holder_limit {
        tx.lock(format_args!("holder:{h}"))?;
        let held = tx.count(&CountQuery::active_mobile_cards(h, &record.key))?;
        if held >= MAX_CARDS_PER_HOLDER {
            return refuse("R3.1", format!("holder already has {held} active cards"));
        }
    }
    Ok(record)
}

/// A subscriber row's fields as checked before the agent lookup.
struct SubscriberHead {
    msisdn: PhoneNumber,
    kind: &'static str,
    channel: &'static str,
    verification: &'static str,
    real_name: &'static str,
    state: &'static str,
    holder_id: String,
    holder_uscc: String,
    agent_id: String,
}

/// The checks before the agent lookup; the agent to look up.
fn subscriber_head(row: &dyn RowFields, cx: &Context<'_>) -> Checked<SubscriberHead> {
    check_lengths(Kind::Subscribers, row)?;
    let req = "R2.2";
    let msisdn = valid_number(required(row, "msisdn", req)?, "msisdn", req)?;
    let kind = one_of(row, "kind", &["mobile", "iot"], None, req)?;
    let number_kind = msisdn.classify().kind;
    let mobile_like = matches!(
        number_kind,
        NumberKind::Mobile | NumberKind::Mvno | NumberKind::DataCard | NumberKind::Satellite
    );
    if kind == "mobile" && !mobile_like {
        return refuse(
            req,
            format!(
                "msisdn {msisdn} is a {} number, not a mobile number",
                number_kind.as_str()
            ),
        );
    }
    if kind == "iot" && !(mobile_like || number_kind == NumberKind::Iot) {
        return refuse(
            "R4.3",
            format!(
                "msisdn {msisdn} is a {} number: IoT cards use the 13-digit IoT segments",
                number_kind.as_str()
            ),
        );
    }
    let channel = one_of(
        row,
        "channel",
        &["own_store", "agent", "online"],
        Some(""),
        req,
    )?;
    let verification = one_of(
        row,
        "verification",
        &["id_reader", "online_check", "video_liveness", "none"],
        Some("none"),
        "R2.1",
    )?;
    let real_name = one_of(
        row,
        "real_name",
        &["verified", "unverified", "pending"],
        None,
        "R1.1",
    )?;
    let state = one_of(
        row,
        "state",
        &["active", "suspended", "terminated"],
        None,
        req,
    )?;
    let verified = real_name == "verified";
    if verified && verification == "none" {
        return refuse(
            "R2.1",
            "a verified subscriber needs a verification method other than none",
        );
    }
    if verified && channel.is_empty() {
        return refuse(
            "R2.1",
            "a verified registration records its channel (own_store, agent or online)",
        );
    }
    if verified && channel == "online" && verification != "video_liveness" {
        return refuse(
            "R2.1",
            format!(
                "online registration needs a video_liveness identity check, not {verification}"
            ),
        );
    }
    // The holder: a person's ID for mobile cards, a unit's USCC for IoT cards.
    let raw_id = row.get("holder_id");
    let holder_id = if kind == "mobile" && verified {
        valid_person_id(required(row, "holder_id", req)?, "holder_id", req, cx.today)?
    } else if !raw_id.is_empty() {
        match resident_id::validate(raw_id, cx.today) {
            Ok(f) => f.number().to_string(),
            Err(_) if !verified => raw_id.to_ascii_uppercase(), // legacy record, kept for backfill
            Err(e) => {
                return refuse(
                    req,
                    format!(
                        "holder_id {} is not a valid ID number: {e}",
                        mask_id(raw_id)
                    ),
                )
            }
        }
    } else {
        String::new()
    };
    let holder_uscc = match (kind, row.get("holder_uscc")) {
        ("iot", "") if verified => {
            return refuse("R4.2", "IoT cards belong to units: holder_uscc is missing")
        }
        (_, "") => String::new(),
        (_, u) => match Uscc::parse(u) {
            Ok(u) => u.code,
            Err(e) if kind == "iot" => {
                return refuse(
                    "R4.2",
                    format!("holder_uscc {} is not a valid USCC: {e}", echo(u)),
                )
            }
            Err(e) => {
                return refuse(
                    req,
                    format!("holder_uscc {} is not a valid USCC: {e}", echo(u)),
                )
            }
        },
    };
    let agent_id = row.get("agent_id");
    if channel == "agent" && agent_id.is_empty() {
        return refuse("R5.1", "channel agent needs an agent_id");
    }
    Ok(SubscriberHead {
        msisdn,
        kind,
        channel,
        verification,
        real_name,
        state,
        holder_id,
        holder_uscc,
        agent_id: agent_id.to_string(),
    })
}

/// The checks after the agent lookup, and the record (hashed and sealed); the holder whose
/// card limit applies.
fn subscriber_tail(
    row: &dyn RowFields,
    cx: &Context<'_>,
    head: SubscriberHead,
) -> Checked<(PreparedRecord, Option<String>)> {
    let req = "R2.2";
    let SubscriberHead {
        msisdn,
        kind,
        channel,
        verification,
        real_name,
        state,
        holder_id,
        holder_uscc,
        agent_id,
    } = head;
    let imsi = match row.get("imsi") {
        "" => String::new(),
        v => Imsi::parse(v)
            .map(|i| i.digits)
            .or_else(|e| refuse(req, format!("imsi {}: {e}", echo(v))))?,
    };
    let imei = match row.get("imei") {
        "" => String::new(),
        v => Imei::parse(v)
            .map(|i| i.digits)
            .or_else(|e| refuse(req, format!("imei {}: {e}", echo(v))))?,
    };
    let activated_at = optional_time(row, "activated_at", req)?;
    let roaming = row.get("roaming").to_ascii_uppercase();
    let iso_code = roaming.len() == 2 && roaming.bytes().all(|b| b.is_ascii_uppercase());
    if !roaming.is_empty() && !iso_code {
        return refuse(
            req,
            format!("roaming {} is not an ISO 3166 country code", echo(&roaming)),
        );
    }
    let key = msisdn.e164();
    let holder_hash = (!holder_id.is_empty()).then(|| cx.vault.hash(&holder_id));
    let holder_limit = match (&holder_hash, kind, state) {
        (Some(h), "mobile", "active" | "suspended") => Some(h.clone()),
        _ => None,
    };
    let at = (Kind::Subscribers, key.as_str());
    let (holder_id_masked, holder_id_enc) = sealed(cx, at, "holder_id", &holder_id, mask_id)?;
    let (holder_name, holder_name_enc) =
        sealed(cx, at, "holder_name", row.get("holder_name"), mask_name)?;
    let body = SubscriberBody {
        activated_at: &activated_at,
        agent_id: &agent_id,
        channel,
        holder_id: &holder_id_masked,
        holder_id_enc: holder_id_enc.as_deref(),
        holder_name: &holder_name,
        holder_name_enc: holder_name_enc.as_deref(),
        holder_uscc: &holder_uscc,
        imei: &imei,
        imsi: &imsi,
        kind,
        msisdn: &key,
        province: row.get("province"),
        real_name,
        roaming: &roaming,
        state,
        verification,
    };
    // Sized for a typical body at once (serde_json would start at 128 bytes and regrow).
    let mut body_json = Vec::with_capacity(768);
    serde_json::to_writer(&mut body_json, &body).expect("a subscriber body serialises");
    let body_json = String::from_utf8(body_json).expect("serde_json writes UTF-8");
    let prepared = PreparedRecord {
        kind: Kind::Subscribers,
        key,
        holder_hash,
        unit: (!holder_uscc.is_empty()).then_some(holder_uscc),
        subtype: Some(kind),
        state: Some(state),
        body_json,
    };
    Ok((prepared, holder_limit))
}

fn iot_profile(row: &dyn RowFields, tx: &mut dyn Tx) -> Checked<Record> {
    let req = "R4.2";
    let msisdn = valid_number(required(row, "msisdn", req)?, "msisdn", req)?;
    let key = msisdn.e164();
    let Some(card) = tx.get(Kind::Subscribers, &key)? else {
        return refuse(req, format!("{key} is not a subscriber in the ledger"));
    };
    if card.subtype.as_deref() != Some("iot") {
        return refuse(req, format!("{key} is not an IoT card"));
    }
    let voice = boolean(row, "voice", req)?;
    let sms = boolean(row, "sms", req)?;
    if voice && msisdn.national_len() == 11 {
        // R4.3: an 11-digit industry card with voice is registered like a public user.
        let person_verified = card.field("real_name") == "verified" && card.holder_hash.is_some();
        if !person_verified {
            return refuse("R4.3", format!("11-digit IoT card {key} with voice enabled needs a verified person holder like a public mobile user"));
        }
    }
    let bound_imei = match row.get("bound_imei") {
        "" => String::new(),
        v => Imei::parse(v)
            .map(|i| i.digits)
            .or_else(|e| refuse(req, format!("bound_imei {}: {e}", echo(v))))?,
    };
    let mut callees = Vec::new();
    for e in list(row.get("allowed_callees")) {
        callees.push(number_pattern(e, "allowed_callees", req)?);
    }
    let mut ips = Vec::new();
    for e in list(row.get("allowed_ips")) {
        let addr = e.split('/').next().unwrap_or("");
        let prefix_ok = e
            .split('/')
            .nth(1)
            .is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= 128));
        if addr.parse::<std::net::IpAddr>().is_err() || !prefix_ok {
            return refuse(
                req,
                format!("allowed_ips entry {} is not an IP address or CIDR", echo(e)),
            );
        }
        ips.push(e.to_string());
    }
    let mut b = Map::new();
    b.insert("msisdn".into(), json!(key));
    b.insert("voice".into(), json!(voice));
    b.insert("sms".into(), json!(sms));
    b.insert("bound_imei".into(), json!(bound_imei));
    b.insert("allowed_callees".into(), json!(callees));
    b.insert("allowed_ips".into(), json!(ips));
    let mut r = record(Kind::IotProfiles, key, b);
    r.unit = card.unit;
    Ok(r)
}

/// The unit a key service or voice line is opened for, checked for R7.1, R7.3 and R25.1.
fn owner_unit(tx: &mut dyn Tx, raw: &str, col: &str, what: &str) -> Checked<(String, Record)> {
    if raw.is_empty() {
        return refuse("R7.1", format!("{col} is missing: {what} only for units"));
    }
    let far_future = Date {
        year: 9999,
        month: 12,
        day: 31,
    };
    if resident_id::validate(raw, far_future).is_ok() {
        return refuse(
            "R7.1",
            format!("{what} only for units, never for persons ({col} is an ID number)"),
        );
    }
    let uscc = valid_uscc(raw, col, "R7.3")?;
    let Some(unit) = tx.get(Kind::Units, &uscc)? else {
        return refuse(
            "R7.1",
            format!("unit {uscc} is not in the ledger: {what} only for registered units"),
        );
    };
    Ok((uscc, unit))
}

fn key_service(row: &dyn RowFields, tx: &mut dyn Tx) -> Checked<Record> {
    let req = "R7.3";
    let number = valid_number(required(row, "number", req)?, "number", req)?;
    let ty = one_of(row, "type", &["400", "yihaotong", "switchboard"], None, req)?;
    if ty == "400" && !(number.is_chinese() && number.national_string().starts_with("400")) {
        return refuse(req, format!("type 400 needs a 400 number, not {number}"));
    }
    let (uscc, unit) = owner_unit(tx, row.get("unit_uscc"), "unit_uscc", "key services are")?;
    let channel = row.get("channel");
    if channel != "own_store" {
        return refuse("R7.2", format!("key services are opened only through the operator's own stores (own_store), not {}", echo(channel)));
    }
    if unit.field("legal_rep_id").is_empty() {
        return refuse(
            req,
            format!("unit {uscc} has no valid legal representative ID on record"),
        );
    }
    let state = one_of(
        row,
        "state",
        &["active", "suspended", "terminated"],
        Some("active"),
        req,
    )?;
    if state != "terminated" {
        not_blacklisted(tx, &uscc, Some(&unit), "hold key services")?;
    }
    let key = number.e164();
    if state != "terminated" {
        tx.lock(format_args!("unit:{uscc}:{ty}"))?;
        let held = tx.count(&CountQuery {
            kind: Kind::KeyServices,
            field: Field::Unit,
            value: &uscc,
            subtype: Some(ty),
            exclude_state: "terminated",
            exclude_key: &key,
        })?;
        if held >= MAX_KEY_SERVICES_PER_TYPE {
            return refuse(
                "R7.4",
                format!("unit {uscc} already holds {held} {ty} numbers"),
            );
        }
    }
    let mut b = Map::new();
    b.insert("number".into(), json!(key));
    b.insert("type".into(), json!(ty));
    b.insert("unit_uscc".into(), json!(uscc));
    b.insert("channel".into(), json!(channel));
    b.insert("purpose".into(), json!(row.get("purpose")));
    b.insert("state".into(), json!(state));
    let mut r = record(Kind::KeyServices, key, b);
    r.unit = Some(uscc);
    r.subtype = Some(ty.to_string());
    r.state = Some(state.to_string());
    Ok(r)
}

fn trunk(row: &dyn RowFields, tx: &mut dyn Tx) -> Checked<Record> {
    let req = "R12.1";
    let id = required(row, "trunk_id", req)?;
    let kind = one_of(
        row,
        "kind",
        &["international", "interconnect", "voice_line", "access"],
        None,
        req,
    )?;
    let state = one_of(
        row,
        "state",
        &["active", "suspended", "terminated"],
        Some("active"),
        req,
    )?;
    let forwarding = boolean(row, "forwarding_approved", "R11.4")?;
    let mut contracted = Vec::new();
    for e in list(row.get("contracted_numbers")) {
        contracted.push(number_pattern(e, "contracted_numbers", req)?);
    }
    let mut owner = String::new();
    if kind == "voice_line" {
        let raw = row.get("owner_uscc");
        if raw.is_empty() {
            return refuse(req, "a voice line needs an owner unit (owner_uscc)");
        }
        let (uscc, unit) = owner_unit(tx, raw, "owner_uscc", "voice lines are")?;
        if contracted.is_empty() {
            return refuse(req, "a voice line needs contracted numbers");
        }
        if state != "terminated" {
            not_blacklisted(tx, &uscc, Some(&unit), "hold a voice line")?;
        }
        owner = uscc;
    } else if !row.get("owner_uscc").is_empty() {
        owner = valid_uscc(row.get("owner_uscc"), "owner_uscc", req)?;
    }
    let mut b = Map::new();
    b.insert("trunk_id".into(), json!(id));
    b.insert("kind".into(), json!(kind));
    b.insert("owner_uscc".into(), json!(owner));
    b.insert("peer".into(), json!(row.get("peer")));
    b.insert("contracted_numbers".into(), json!(contracted));
    b.insert("forwarding_approved".into(), json!(forwarding));
    b.insert("state".into(), json!(state));
    let mut r = record(Kind::Trunks, id.to_string(), b);
    r.unit = (!owner.is_empty()).then_some(owner);
    r.subtype = Some(kind.to_string());
    r.state = Some(state.to_string());
    Ok(r)
}

/// Parses `HH:MM-HH:MM` windows (China time); returns them normalised.
pub fn parse_window(w: &str) -> Option<(u16, u16)> {
    let (a, b) = w.split_once('-')?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    Some((minutes(a)?, minutes(b)?))
}

fn outbound_approval(row: &dyn RowFields, tx: &mut dyn Tx) -> Checked<Record> {
    let req = "R8.1";
    let service = required(row, "service", req)?;
    // The service: a 400 / switchboard number, or a voice-line trunk.
    let as_number = parse(service).ok().filter(|n| n.classify().valid);
    let ks = match as_number {
        Some(n) => tx.get(Kind::KeyServices, &n.e164())?,
        None => None,
    };
    let (key, unit, service_kind) = if let Some(ks) = ks {
        let ty = ks.subtype.clone().unwrap_or_default();
        if ty == "yihaotong" {
            return refuse(req, format!("一号通 number {} may not call out", ks.key));
        }
        (ks.key.clone(), ks.unit.clone().unwrap_or_default(), ty)
    } else if let Some(t) = tx.get(Kind::Trunks, service)? {
        if t.subtype.as_deref() != Some("voice_line") {
            return refuse(req, format!("trunk {service} is not a voice line: outbound approvals are for 400 / switchboard numbers and voice lines"));
        }
        (
            t.key.clone(),
            t.unit.clone().unwrap_or_default(),
            "voice_line".to_string(),
        )
    } else {
        return refuse(
            req,
            format!(
                "service {} is neither a key-service number nor a trunk in the ledger",
                echo(service)
            ),
        );
    };
    // What the unit owns: its key-service numbers and its voice lines' contracted numbers.
    let mut owned: Vec<String> = Vec::new();
    for k in tx.find(Kind::KeyServices, Field::Unit, &unit)? {
        if k.state.as_deref() != Some("terminated") && k.subtype.as_deref() != Some("yihaotong") {
            owned.push(k.key.clone());
        }
    }
    for t in tx.find(Kind::Trunks, Field::Unit, &unit)? {
        if t.subtype.as_deref() == Some("voice_line") {
            if let Some(list) = t.body.get("contracted_numbers").and_then(Value::as_array) {
                owned.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
    }
    let mut callers = Vec::new();
    let raw_callers = list(row.get("allowed_callers"));
    if raw_callers.is_empty() {
        return refuse(
            req,
            "allowed_callers is missing: the approval names the numbers that may call out",
        );
    }
    for e in raw_callers {
        let p = number_pattern(e, "allowed_callers", req)?;
        if !owned.iter().any(|o| pattern_within(&p, o)) {
            return refuse(
                req,
                format!("allowed caller {e} does not belong to unit {unit}"),
            );
        }
        callers.push(p);
    }
    let mut windows = Vec::new();
    for w in list(row.get("windows")) {
        if parse_window(w).is_none() {
            return refuse(req, format!("window {} is not HH:MM-HH:MM", echo(w)));
        }
        windows.push(w.to_string());
    }
    let limit = |col: &str| -> Checked<Value> {
        match row.get(col) {
            "" => Ok(Value::Null),
            v => v
                .parse::<u32>()
                .map(|n| json!(n))
                .or_else(|_| refuse(req, format!("{col} {} is not a whole number", echo(v)))),
        }
    };
    let mut b = Map::new();
    b.insert("service".into(), json!(key));
    b.insert("service_kind".into(), json!(service_kind));
    b.insert("allowed_callers".into(), json!(callers));
    b.insert("purpose".into(), json!(row.get("purpose")));
    b.insert("windows".into(), json!(windows));
    b.insert("max_per_hour".into(), limit("max_per_hour")?);
    b.insert("max_per_day".into(), limit("max_per_day")?);
    b.insert(
        "valid_until".into(),
        json!(optional_time(row, "valid_until", req)?),
    );
    let mut r = record(Kind::OutboundApprovals, key, b);
    r.unit = Some(unit);
    r.subtype = Some(service_kind);
    Ok(r)
}

fn number_block(row: &dyn RowFields) -> Checked<Record> {
    let req = "R8.2";
    let raw = required(row, "prefix", req)?;
    let Some(p) = NationalPrefix::parse(raw.trim_end_matches('*')) else {
        return refuse(
            req,
            format!("prefix {} is not a national number prefix", echo(raw)),
        );
    };
    let mut b = Map::new();
    b.insert("prefix".into(), json!(p.to_string()));
    b.insert("holder".into(), json!(row.get("holder")));
    Ok(record(Kind::NumberBlocks, p.to_string(), b))
}

fn simple_number(row: &dyn RowFields, kind: Kind, col: &str, extra: &[&str]) -> Checked<Record> {
    let req = kind.requirement();
    let raw = required(row, col, req)?;
    let n = match parse(raw) {
        Ok(n) => n,
        Err(e) => return refuse(req, format!("{col} {}: {e}", echo(raw))),
    };
    let mut b = Map::new();
    b.insert(col.into(), json!(n.e164()));
    for c in extra {
        b.insert((*c).into(), json!(row.get(c)));
    }
    Ok(record(kind, n.e164(), b))
}

fn blocklist(row: &dyn RowFields, cx: &Context<'_>) -> Checked<Record> {
    let req = "R15.3";
    let mut r = simple_number(row, Kind::Blocklist, "number", &["reason"])?;
    let source = one_of(
        row,
        "source",
        &["police_notice", "detection", "complaint", "manual"],
        None,
        req,
    )?;
    let added = optional_time(row, "added_at", req)?;
    let expires = optional_time(row, "expires_at", req)?;
    let b = r.body.as_object_mut().expect("object");
    b.insert("source".into(), json!(source));
    b.insert(
        "added_at".into(),
        json!(if added.is_empty() {
            cx.now.to_string()
        } else {
            added
        }),
    );
    b.insert("expires_at".into(), json!(expires));
    r.subtype = Some(source.to_string());
    Ok(r)
}

fn blacklist(row: &dyn RowFields, cx: &Context<'_>) -> Checked<Record> {
    let req = "R25.1";
    let subject_kind = one_of(row, "subject_kind", &["unit", "person"], None, req)?;
    let raw = required(row, "subject_id", req)?;
    let mut b = Map::new();
    b.insert("subject_kind".into(), json!(subject_kind));
    let (key, hash) = if subject_kind == "unit" {
        let uscc = valid_uscc(raw, "subject_id", req)?;
        b.insert("subject_id".into(), json!(uscc));
        b.insert("name".into(), json!(row.get("name")));
        (format!("unit:{uscc}"), None)
    } else {
        let id = valid_person_id(raw, "subject_id", req, cx.today)?;
        let h = cx.vault.hash(&id);
        let key = format!("person:{h}");
        let at = (Kind::Blacklist, key.as_str());
        seal(cx, at, &mut b, "subject_id", &id, mask_id)?;
        seal(cx, at, &mut b, "name", row.get("name"), mask_name)?;
        (key, Some(h))
    };
    for c in ["category", "reason", "source"] {
        b.insert(c.into(), json!(row.get(c)));
    }
    b.insert(
        "listed_at".into(),
        json!(optional_time(row, "listed_at", req)?),
    );
    let mut r = record(Kind::Blacklist, key, b);
    r.holder_hash = hash;
    r.subtype = Some(subject_kind.to_string());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber body written from its struct has the text the same body has as a
    /// `serde_json::Value` (keys sorted), so bodies compare and diff the same however made.
    #[test]
    fn subscriber_body_text_is_its_values_text() {
        let body = SubscriberBody {
            activated_at: "2024-05-01T10:00:00+08:00",
            agent_id: "",
            channel: "own_store",
            holder_id: "110105********002X",
            holder_id_enc: Some("00ff"),
            holder_name: "测***",
            holder_name_enc: None,
            holder_uscc: "",
            imei: "",
            imsi: "460000000000001",
            kind: "mobile",
            msisdn: "+8613800000001",
            province: "北京 \"quoted\"",
            real_name: "verified",
            roaming: "",
            state: "active",
            verification: "id_reader",
        };
        let text = serde_json::to_string(&body).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
        assert!(value.get("holder_name_enc").is_none());
        assert_eq!(value["holder_id_enc"], "00ff");
    }

    /// A field past its limit refuses the row and names the field (a 50 MB unit name was
    /// accepted before).
    #[test]
    fn fields_have_maximum_lengths() {
        let big = "名".repeat(1025);
        let row: Map<String, Value> = [
            ("uscc", "91110000100000000X"),
            ("name", big.as_str()),
            ("kind", "enterprise"),
            ("legal_rep_id", "110102199101010078"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        let Err(Reject::Refused(r)) = check_lengths(Kind::Units, &row) else {
            panic!("a 1025-character name is refused");
        };
        assert_eq!(
            r.reason,
            "name is 1025 characters long; at most 1024 are accepted"
        );
        assert_eq!(field_limit(Kind::Trunks, "contracted_numbers"), 65536);
        assert_eq!(field_limit(Kind::Subscribers, "msisdn"), 256);
    }

    /// A refusal never repeats an ID number in clear, whatever column it was put in: here
    /// a person's ID given as a unit's USCC.
    #[test]
    fn refusals_mask_id_numbers_in_any_column() {
        let vault = PiiVault::new(&[1u8; 64]).unwrap();
        let cx = Context {
            vault: &vault,
            today: Date {
                year: 2026,
                month: 12,
                day: 8,
            },
            now: "2026-12-08T10:00:00+08:00",
        };
        let row: Map<String, Value> = [
            ("subject_kind", "unit"),
            ("subject_id", "110102199101010078"),
            ("category", "fraud"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        let Err(Reject::Refused(r)) = blacklist(&row, &cx) else {
            panic!("a person's ID is no USCC");
        };
        assert!(!r.reason.contains("110102199101010078"), "{}", r.reason);
        assert!(r.reason.contains("110102********0078"), "{}", r.reason);
    }
}
