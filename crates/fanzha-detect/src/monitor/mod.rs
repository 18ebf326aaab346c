//! The bad-number monitor (R15.3, R9.1, R4.4): call records in, per-number sliding-window
//! features, threshold rules per number class and time of day, alerts out. Pure and
//! bounded: every active number keeps a fixed-size state (see [`NumberState`]); idle
//! numbers are evicted.
//!
//! Knows CDRs as text (native CSV, the Sichuan `train_voc` schema, JSON lines). Does not
//! know files, Kafka, HTTP or the ledger: disposal is the caller's (it maps alert levels to
//! ledger commands).

mod openings;
mod record;
mod state;
mod table;

pub use openings::{AgentAlert, Opening, OpeningMonitor, OpeningRule};
pub use record::{
    future_record, parse_json_record, read_csv, read_csv_until, Cdr, Direction, Format, Layout,
};
pub use state::{Feature, Features, NumberState};

use serde::{Deserialize, Serialize};
use state::{h64, EPOCH_2000};

/// Number classes with their own thresholds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NumberClass {
    /// Ordinary mobile.
    #[default]
    Mobile,
    /// A mobile card activated less than [`Monitor::new_card_days`] ago (activation from the
    /// ledger, see [`Monitor::note_activation`]); rules for `mobile` apply to it too.
    NewCard,
    /// IoT card (R4.4).
    Iot,
    /// 400 / key-service number.
    KeyService,
    /// Anything else.
    Other,
}

/// Class of a number by the numbering plan.
pub fn class_of(number: &str) -> NumberClass {
    use fanzha_model::number::NumberKind::*;
    match fanzha_model::parse(number).map(|n| n.classify().kind) {
        Ok(Mobile | Mvno | DataCard | Satellite) => NumberClass::Mobile,
        Ok(Iot) => NumberClass::Iot,
        Ok(SharedCost | TollFree) => NumberClass::KeyService,
        Ok(_) => NumberClass::Other,
        // Hashed ids (Sichuan) are ordinary mobile users.
        Err(_) => NumberClass::Mobile,
    }
}

/// The monitor's key of a number: its packed E.164 bits, or a hash of an opaque id.
pub fn number_key(number: &str) -> u64 {
    match fanzha_model::parse(number) {
        Ok(n) => n.to_bits(),
        Err(_) => h64(number) | 1 << 63,
    }
}

/// The number as alerts and disposal name it: E.164 when it parses, else as written.
pub fn display_number(number: &str) -> String {
    match fanzha_model::parse(number) {
        Ok(p) => p.e164(),
        Err(_) => number.trim().to_string(),
    }
}

/// One threshold rule: a feature at or above `warning` / `critical` for numbers of `class`
/// (or every class), once `min_calls` calls were seen, for records whose China-time hour
/// falls in `hours` (`[from, to)`, wrapping past midnight; absent = all day).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// Rule id in alerts.
    pub id: String,
    /// Feature name.
    pub feature: String,
    /// Class the rule applies to (`None` = all).
    #[serde(default)]
    pub class: Option<NumberClass>,
    /// Warning level.
    #[serde(default)]
    pub warning: Option<f64>,
    /// Critical level.
    #[serde(default)]
    pub critical: Option<f64>,
    /// Minimum calls before the rule speaks.
    #[serde(default)]
    pub min_calls: f64,
    /// Time-of-day window, China time hours `[from, to)`.
    #[serde(default)]
    pub hours: Option<[u8; 2]>,
}

/// The default rules: bursts, scanning, SIM boxes, mass dialling, IoT misuse, stricter
/// limits for new cards and at night.
pub fn default_rules() -> Vec<ThresholdRule> {
    let r = |id: &str, feature: &str, class: Option<NumberClass>, w: f64, c: f64| ThresholdRule {
        id: id.into(),
        feature: feature.into(),
        class,
        warning: Some(w),
        critical: Some(c),
        min_calls: 0.0,
        hours: None,
    };
    use NumberClass::*;
    vec![
        r(
            "burst-dialling",
            "max_calls_per_minute",
            Some(Mobile),
            8.0,
            15.0,
        ),
        r("hourly-volume", "calls_1h", Some(Mobile), 60.0, 120.0),
        r(
            "mass-dialling",
            "distinct_callees_24h",
            Some(Mobile),
            60.0,
            120.0,
        ),
        r("sequential-scan", "sequential_run", None, 5.0, 9.0),
        r("sim-box-imei-swap", "imei_changes_24h", None, 3.0, 6.0),
        // IoT voice reaches the call records only where a profile allows it (screening blocks
        // the rest, R4.3): a machine calling its few service numbers is normal; calling many
        // people, or calling all day, is a card used as a phone (R4.4).
        r("iot-human-like", "opposite_unique", Some(Iot), 5.0, 10.0),
        r("iot-voice-volume", "calls_24h", Some(Iot), 30.0, 60.0),
        r(
            "key-service-volume",
            "calls_1h",
            Some(KeyService),
            200.0,
            400.0,
        ),
        // Fraud rings burn fresh cards: a new card dialling many strangers is suspect sooner.
        r(
            "new-card-mass-dialling",
            "distinct_callees_24h",
            Some(NewCard),
            30.0,
            60.0,
        ),
        ThresholdRule {
            hours: Some([0, 6]),
            ..r("night-volume", "calls_1h", Some(Mobile), 30.0, 60.0)
        },
    ]
}

/// Checks rules, all errors at once (rule number, id, what is wrong).
pub fn validate_rules(rules: &[ThresholdRule]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if rules.len() > 64 {
        errors.push(format!("{} rules: at most 64", rules.len()));
    }
    for (i, r) in rules.iter().enumerate() {
        let at = format!("rule {} ({})", i + 1, r.id);
        if r.id.trim().is_empty() {
            errors.push(format!("rule {}: id is empty", i + 1));
        } else if !seen.insert(r.id.as_str()) {
            errors.push(format!("{at}: id used twice"));
        }
        if Feature::from_name(&r.feature).is_none() {
            errors.push(format!("{at}: unknown feature {:?}", r.feature));
        }
        if r.warning.is_none() && r.critical.is_none() {
            errors.push(format!("{at}: needs warning or critical"));
        }
        for (name, v) in [("warning", r.warning), ("critical", r.critical)] {
            if v.is_some_and(|v| !v.is_finite()) {
                errors.push(format!("{at}: {name} is not a finite number"));
            }
        }
        if let (Some(w), Some(c)) = (r.warning, r.critical) {
            if c < w {
                errors.push(format!("{at}: critical {c} is below warning {w}"));
            }
        }
        if let Some([from, to]) = r.hours {
            if from > 23 || to > 24 || from == to {
                errors.push(format!(
                    "{at}: hours [{from}, {to}] must be two different hours in 0..=24"
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What disposal does about an alert (R15.3 block, R1 second real-name verification).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep watching; nothing changes in the ledger.
    Watch,
    /// Our subscriber goes to second real-name verification (R1).
    Reverify,
    /// Blocklist the number and suspend our card (R15.3).
    SuspendAndBlock,
}

impl Action {
    /// The name alerts and the ledger use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Watch => "watch",
            Action::Reverify => "reverify",
            Action::SuspendAndBlock => "suspend_and_block",
        }
    }
}

/// The disposal policy: an action per alert level, and for the model's alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisposalPolicy {
    /// Warning-level rule alerts.
    pub warning: Action,
    /// Critical-level rule alerts.
    pub critical: Action,
    /// The scoring model's alerts (a model's word alone should rarely block).
    pub model: Action,
}

impl Default for DisposalPolicy {
    fn default() -> Self {
        DisposalPolicy {
            warning: Action::Reverify,
            critical: Action::SuspendAndBlock,
            model: Action::Reverify,
        }
    }
}

impl DisposalPolicy {
    /// The action for a number of `class`: second real-name verification is for subscribers'
    /// cards, so other classes are watched instead.
    fn action(&self, chosen: Action, class: NumberClass) -> &'static str {
        match (chosen, class) {
            (Action::Reverify, NumberClass::Mobile | NumberClass::NewCard) => "reverify",
            (Action::Reverify, _) => "watch",
            (other, _) => other.as_str(),
        }
    }
}

/// A rules file: `[[rule]]` tables and an optional `[disposal]` policy.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The threshold rules.
    pub rule: Vec<ThresholdRule>,
    /// The disposal policy.
    #[serde(default)]
    pub disposal: DisposalPolicy,
}

impl Default for RulesFile {
    /// The built-in rules and disposal policy.
    fn default() -> Self {
        RulesFile {
            rule: default_rules(),
            disposal: DisposalPolicy::default(),
        }
    }
}

/// Parses a rules document (JSON `{"rule":[…], "disposal":{…}}`; the binary converts TOML to
/// JSON first), all errors at once.
pub fn parse_rules(json: &str) -> Result<RulesFile, Vec<String>> {
    let f: RulesFile = serde_json::from_str(json).map_err(|e| vec![e.to_string()])?;
    validate_rules(&f.rule)?;
    Ok(f)
}

/// An alert.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// The number (E.164 when it parses).
    pub number: String,
    /// When: the triggering record's start, unix seconds (serialised as RFC 3339 in China
    /// time, like the records).
    #[serde(serialize_with = "china_time")]
    pub ts: i64,
    /// Severity in 0..1 (how far past the thresholds).
    pub score: f64,
    /// warning | critical.
    pub level: &'static str,
    /// Rules that fired.
    pub rules: Vec<String>,
    /// The features at that moment.
    pub features: Features,
    /// What the disposal policy does: watch, reverify, suspend_and_block.
    pub action: &'static str,
}

/// The feature names a model may use online: the monitor's own features and ratios of two
/// of them (`a/b`, as [`crate::Table::with_ratios`] names them).
pub fn online_feature(name: &str) -> bool {
    match name.split_once('/') {
        Some((a, b)) => Feature::from_name(a).is_some() && Feature::from_name(b).is_some(),
        None => Feature::from_name(name).is_some(),
    }
}

/// Calls before the model speaks about a number: fewer say too little about behaviour.
const MODEL_MIN_CALLS: f64 = 32.0;

/// A scoring model bound to the monitor's features.
struct OnlineModel {
    model: crate::Model,
    /// Per model feature: the feature, or the two of a ratio; `None` = always missing.
    inputs: Vec<Option<(Feature, Option<Feature>)>>,
}

impl OnlineModel {
    fn new(model: crate::Model) -> OnlineModel {
        let inputs = model
            .features
            .iter()
            .map(|name| match name.split_once('/') {
                Some((a, b)) => Some((Feature::from_name(a)?, Some(Feature::from_name(b)?))),
                None => Some((Feature::from_name(name)?, None)),
            })
            .collect();
        OnlineModel { model, inputs }
    }

    fn score(&self, state: &NumberState, row: &mut Vec<f32>) -> f64 {
        row.clear();
        row.extend(self.inputs.iter().map(|input| match *input {
            None => f32::NAN,
            Some((f, None)) => state.feature(f) as f32,
            Some((a, Some(b))) => {
                let d = state.feature(b);
                if d == 0.0 {
                    f32::NAN
                } else {
                    (state.feature(a) / d) as f32
                }
            }
        }));
        self.model.predict(row)
    }
}

pub(crate) fn china_time<S: serde::Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
    match fanzha_model::time::format_china(*ts) {
        Some(t) => s.serialize_str(&t),
        None => s.serialize_i64(*ts),
    }
}

/// A rule resolved for the hot path.
#[derive(Clone, Debug)]
struct Compiled {
    index: usize,
    feature: Feature,
    warning: f64,
    critical: f64,
    min_calls: f64,
    /// Bit h set = applies to records in China-time hour h.
    hours: u32,
}

fn hour_mask(hours: Option<[u8; 2]>) -> u32 {
    match hours {
        None => (1 << 24) - 1,
        Some([from, to]) => (0..24u32)
            .filter(|&h| {
                let (f, t) = (from as u32, to as u32);
                if f < t {
                    (f..t).contains(&h)
                } else {
                    h >= f || h < t
                }
            })
            .fold(0, |m, h| m | 1 << h),
    }
}

const CLASSES: [NumberClass; 5] = [
    NumberClass::Mobile,
    NumberClass::NewCard,
    NumberClass::Iot,
    NumberClass::KeyService,
    NumberClass::Other,
];

/// The monitor: per-number state, rules, and alerts as records arrive.
pub struct Monitor {
    rules: Vec<ThresholdRule>,
    /// Per class (index in [`CLASSES`]): the rules that apply to it.
    by_class: [Vec<Compiled>; 5],
    /// By [`number_key`].
    states: table::StateTable,
    /// Idle time after which a number's state is dropped.
    pub idle_evict_s: i64,
    /// Days after activation during which a mobile card counts as new.
    pub new_card_days: u32,
    last_evict: i64,
    /// Records seen.
    pub records: u64,
    /// What each alert level does.
    pub disposal: DisposalPolicy,
    /// The model scores a number only after watching it this long (seconds): it was trained
    /// on months of behaviour, and every number looks new — few days, few hours — at first.
    pub model_min_window_s: i64,
    model: Option<OnlineModel>,
    row: Vec<f32>,
    pending: Vec<Alert>,
    /// With a model: the ids of numbers that are not phone numbers (hashed ids), so
    /// [`Monitor::score_all`] can name them.
    opaque_ids: rustc_hash::FxHashMap<u64, String>,
}

impl Monitor {
    /// A monitor with `rules` (validate them first with [`validate_rules`]; a rule naming an
    /// unknown feature is ignored).
    pub fn new(rules: Vec<ThresholdRule>) -> Monitor {
        let mut by_class: [Vec<Compiled>; 5] = Default::default();
        for (index, r) in rules.iter().enumerate() {
            let Some(feature) = Feature::from_name(&r.feature) else {
                continue;
            };
            let compiled = Compiled {
                index,
                feature,
                warning: r.warning.unwrap_or(f64::INFINITY),
                critical: r.critical.unwrap_or(f64::INFINITY),
                min_calls: r.min_calls,
                hours: hour_mask(r.hours),
            };
            for (k, class) in CLASSES.iter().enumerate() {
                let applies = match r.class {
                    None => true,
                    // New cards are mobiles: the mobile rules bind them too.
                    Some(NumberClass::Mobile) => {
                        matches!(class, NumberClass::Mobile | NumberClass::NewCard)
                    }
                    Some(c) => c == *class,
                };
                if applies {
                    by_class[k].push(compiled.clone());
                }
            }
        }
        Monitor {
            rules,
            by_class,
            states: table::StateTable::default(),
            idle_evict_s: 3 * 86_400,
            new_card_days: 7,
            last_evict: 0,
            records: 0,
            model_min_window_s: 14 * 86_400,
            disposal: DisposalPolicy::default(),
            model: None,
            row: Vec::new(),
            pending: Vec::new(),
            opaque_ids: Default::default(),
        }
    }

    /// Scores numbers with `model` as their records arrive (at 32, 64, 128, … calls, once
    /// watched for [`Monitor::model_min_window_s`]) and in
    /// [`Monitor::score_all`]; a score at or above the model's threshold raises a warning
    /// with rule `model`. Model features the monitor does not compute are missing. Errs
    /// when the model uses none of the monitor's features.
    pub fn set_model(&mut self, model: crate::Model) -> Result<(), String> {
        model.validate()?;
        let online = OnlineModel::new(model);
        if online.inputs.iter().all(Option::is_none) {
            return Err(format!(
                "the model uses none of the monitor's features (it has {}; train it with --online)",
                online.model.features.join(", ")
            ));
        }
        self.model = Some(online);
        Ok(())
    }

    /// Scores every active number with the model (end of a batch run, or periodically in a
    /// service); alerts for those at or above its threshold that have not been alerted yet.
    pub fn score_all(&mut self, now: i64) -> Vec<Alert> {
        self.score_numbers(now, u32::MAX, self.model_min_window_s)
    }

    /// Model alerts for the numbers last seen before `seen_before` (2000-based seconds) and
    /// watched for at least `min_window` seconds.
    fn score_numbers(&mut self, now: i64, seen_before: u32, min_window: i64) -> Vec<Alert> {
        let Some(model) = &self.model else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let threshold = model.model.threshold;
        let (states, row, ids, policy) = (
            &mut self.states,
            &mut self.row,
            &self.opaque_ids,
            &self.disposal,
        );
        states.for_each_mut(|key, state| {
            if state.alerted != 0
                || state.last_seen >= seen_before
                || state.observed_s(now) < min_window
                || state.feature(Feature::OppositeCount) < MODEL_MIN_CALLS
            {
                return;
            }
            let p = model.score(state, row);
            if p >= threshold {
                state.alerted |= 1;
                let mut alert = model_alert(now, p, state, policy);
                alert.number = match ids.get(&key) {
                    Some(id) => id.clone(),
                    None => fanzha_model::PhoneNumber::from_bits(key).e164(),
                };
                out.push(alert);
            }
        });
        out
    }

    /// Alerts raised outside a record's own processing (the model's last look at numbers
    /// being evicted); [`Monitor::add_batch`] hands them out with its own.
    pub fn take_pending(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.pending)
    }

    /// A monitor with a rules file's rules and disposal policy.
    pub fn from_rules(file: RulesFile) -> Monitor {
        let mut m = Monitor::new(file.rule);
        m.disposal = file.disposal;
        m
    }

    /// Numbers with state.
    pub fn active_numbers(&self) -> usize {
        self.states.len()
    }

    /// Bytes of state per active number: slab and index as allocated, divided by the
    /// numbers they hold.
    pub fn bytes_per_number(&self) -> usize {
        self.states.bytes() / self.states.len().max(1)
    }

    fn slot_of(&mut self, number: &str) -> usize {
        let key = number_key(number);
        self.remember_opaque(key, number);
        self.states
            .find_or_insert(key, table::hash(key), || NumberState::new(class_of(number)))
    }

    /// Tells the monitor when a card was activated (from the ledger's `activated_at`), so
    /// new-card rules apply to it. Only worth calling for recent activations.
    pub fn note_activation(&mut self, number: &str, activated_unix: i64) {
        let slot = self.slot_of(number);
        let state = &mut self.states.entry_mut(slot).state;
        state.activated = (activated_unix - EPOCH_2000).clamp(1, u32::MAX as i64) as u32;
        state.last_seen = state.last_seen.max(state.activated);
    }

    /// The state of a number, if it has one.
    pub fn state(&mut self, number: &str) -> Option<&NumberState> {
        let key = number_key(number);
        let slot = self.states.find(key, table::hash(key))?;
        Some(&self.states.entry_mut(slot).state)
    }

    fn remember_opaque(&mut self, key: u64, number: &str) {
        if self.model.is_some() && key >> 63 == 1 && !self.opaque_ids.contains_key(&key) {
            self.opaque_ids.insert(key, number.trim().to_string());
        }
    }

    fn evict_idle(&mut self, now: i64) {
        if now - self.last_evict > 3600 {
            let cutoff = (now - self.idle_evict_s - EPOCH_2000).max(0) as u32;
            // The model's last look before a number is forgotten: a fraud card used for a
            // few days and dropped is idle long before it has been watched long enough — but
            // its life is complete, so the model, trained on whole lives, may judge it.
            let last_look = self.score_numbers(now, cutoff, 0);
            self.pending.extend(last_look);
            self.states.retain(|e| e.state.last_seen >= cutoff);
            if !self.opaque_ids.is_empty() {
                let states = &self.states;
                self.opaque_ids
                    .retain(|&k, _| states.find(k, table::hash(k)).is_some());
            }
            self.last_evict = now;
        }
    }

    /// Adds a record; returns an alert when the number reaches a new level.
    pub fn add(&mut self, c: &Cdr<'_>) -> Option<Alert> {
        self.evict_idle(c.start);
        let slot = self.slot_of(c.number);
        self.apply(slot, c)
    }

    /// Adds records in order, pushing alerts to `alerts`. Same result as [`Monitor::add`] on
    /// each, faster: the state of every number in the batch is loaded before it is needed.
    pub fn add_batch(&mut self, records: &[Cdr<'_>], alerts: &mut Vec<Alert>) {
        const CHUNK: usize = 32;
        let mut keys = [(0u64, 0u64); CHUNK];
        let mut slots = [0usize; CHUNK];
        for chunk in records.chunks(CHUNK) {
            self.evict_idle(chunk[0].start);
            alerts.append(&mut self.pending);
            for (k, c) in keys.iter_mut().zip(chunk) {
                let key = number_key(c.number);
                self.remember_opaque(key, c.number);
                let h = table::hash(key);
                self.states.prefetch_index(h);
                *k = (key, h);
            }
            for (i, c) in chunk.iter().enumerate() {
                let (key, h) = keys[i];
                slots[i] = self
                    .states
                    .find_or_insert(key, h, || NumberState::new(class_of(c.number)));
                self.states.prefetch_entry(slots[i]);
            }
            for (i, c) in chunk.iter().enumerate() {
                alerts.extend(self.apply(slots[i], c));
            }
        }
    }

    fn apply(&mut self, slot: usize, c: &Cdr<'_>) -> Option<Alert> {
        self.records += 1;
        let new_card_s = self.new_card_days * 86_400;
        let state = &mut self.states.entry_mut(slot).state;
        state.add(c);
        if state.alerted & 2 != 0 {
            // Critical already raised: nothing further to say about this number.
            return None;
        }
        let class = match state.class {
            NumberClass::Mobile
                if state.activated != 0
                    && state.last_seen.saturating_sub(state.age_origin()) < new_card_s =>
            {
                NumberClass::NewCard
            }
            other => other,
        };
        if let Some(model) = &self.model {
            let calls = state.feature(Feature::OppositeCount) as u32;
            if state.alerted == 0
                && calls >= MODEL_MIN_CALLS as u32
                && calls.is_power_of_two()
                && state.observed_s(c.start) >= self.model_min_window_s
            {
                let p = model.score(state, &mut self.row);
                if p >= model.model.threshold {
                    state.alerted |= 1;
                    let mut alert = model_alert(c.start, p, state, &self.disposal);
                    alert.number = display_number(c.number);
                    return Some(alert);
                }
            }
        }
        let class_index = CLASSES.iter().position(|k| *k == class).unwrap_or(0);
        let hour = ((c.start + 8 * 3600).rem_euclid(86_400) / 3600) as u32;
        let mut level = 0u8;
        let mut score: f64 = 0.0;
        let mut fired: u64 = 0;
        let mut calls = None;
        for r in &self.by_class[class_index] {
            if r.hours & (1 << hour) == 0 {
                continue;
            }
            if r.min_calls > 0.0
                && *calls.get_or_insert_with(|| state.feature(Feature::OppositeCount)) < r.min_calls
            {
                continue;
            }
            let v = state.feature(r.feature);
            if v >= r.critical {
                level = 2;
                score = score.max((0.8 + 0.2 * (v / r.critical - 1.0).min(1.0)).min(1.0));
            } else if v >= r.warning {
                level = level.max(1);
                let span = if r.critical.is_finite() {
                    r.critical - r.warning
                } else {
                    r.warning
                };
                score = score.max(0.5 + 0.3 * ((v - r.warning) / span.max(1e-9)).min(1.0));
            } else {
                continue;
            }
            fired |= 1 << r.index.min(63);
        }
        if level == 0 || state.alerted & level != 0 {
            return None;
        }
        state.alerted |= level;
        let (level, action) = if level == 2 {
            (
                "critical",
                self.disposal.action(self.disposal.critical, class),
            )
        } else {
            (
                "warning",
                self.disposal.action(self.disposal.warning, class),
            )
        };
        let rules = (0..self.rules.len().min(64))
            .filter(|i| fired & (1 << i) != 0)
            .map(|i| self.rules[i].id.clone())
            .collect();
        Some(Alert {
            number: display_number(c.number),
            ts: c.start,
            score: (score * 1000.0).round() / 1000.0,
            level,
            rules,
            features: state.features(),
            action,
        })
    }
}

fn model_alert(ts: i64, p: f64, state: &NumberState, policy: &DisposalPolicy) -> Alert {
    Alert {
        number: String::new(),
        ts,
        score: (p * 1000.0).round() / 1000.0,
        level: "warning",
        rules: vec!["model".into()],
        features: state.features(),
        action: policy.action(policy.model, state.class),
    }
}

#[cfg(test)]
mod tests;
