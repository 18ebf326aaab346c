//! The bad-number monitor (R15.3, R9.1, R4.4): call records in, per-number sliding-window
//! features, threshold rules per number class, alerts out. Pure and bounded: every active
//! number keeps a fixed-size state (see [`NumberState`]); idle numbers are evicted.
//!
//! Knows CDRs as text (native CSV, the Sichuan `train_voc` schema, JSON lines). Does not
//! know files, Kafka, HTTP or the ledger: disposal is the caller's (it maps alert levels to
//! ledger commands).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Direction of a record relative to the monitored number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The number called.
    Out,
    /// The number was called.
    In,
    /// Forwarded.
    Forwarded,
}

/// One call record, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Cdr {
    /// Start, unix seconds.
    pub start: i64,
    /// The monitored number (E.164 when it parses, else the raw id, e.g. a Sichuan hash).
    pub number: String,
    /// The other party.
    pub other: String,
    /// Seconds; 0 = unanswered.
    pub duration_s: u32,
    /// Direction.
    pub direction: Direction,
    /// Device IMEI (device key), if known.
    pub imei: Option<String>,
    /// Cell / area, if known.
    pub cell: Option<String>,
    /// Trunk, if known.
    pub trunk: Option<String>,
}

/// Input formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `start,caller,callee,duration_s,trunk,imei,cell` (RFC 3339 start).
    Native,
    /// Sichuan `train_voc`: phone_no_m, opposite_no_m, calltype_id, start_datetime,
    /// call_dur, city_name, county_name, imei_m.
    Sichuan,
    /// JSON lines with the native fields.
    JsonLines,
}

fn norm(n: &str) -> String {
    match fanzha_model::parse(n) {
        Ok(p) => p.e164(),
        Err(_) => n.trim().to_string(),
    }
}

fn time(s: &str) -> Result<i64, String> {
    fanzha_model::time::parse_time(s).map(|t| t.timestamp())
}

/// Parses one record of `format`; `get` returns a field by column name (borrowed from the
/// record, so parsing allocates only the normalised strings it keeps).
pub fn parse_record<'a>(
    format: Format,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<Cdr, String> {
    let req = |k: &str| {
        get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{k} is missing"))
    };
    let opt = |k: &str| {
        get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match format {
        Format::Native | Format::JsonLines => {
            let caller = req("caller")?;
            let duration_s = req("duration_s")?
                .trim()
                .parse::<f64>()
                .map_err(|_| "duration_s is not a number".to_string())?;
            Ok(Cdr {
                start: time(req("start")?)?,
                number: norm(caller),
                other: norm(&opt("callee").unwrap_or_default()),
                duration_s: duration_s.max(0.0) as u32,
                direction: Direction::Out,
                imei: opt("imei"),
                cell: opt("cell"),
                trunk: opt("trunk"),
            })
        }
        Format::Sichuan => {
            let direction = match req("calltype_id")? {
                "1" => Direction::Out,
                "2" => Direction::In,
                "3" => Direction::Forwarded,
                other => return Err(format!("calltype_id {other:?} is not 1, 2 or 3")),
            };
            let dur = req("call_dur")?
                .trim()
                .parse::<f64>()
                .map_err(|_| "call_dur is not a number".to_string())?;
            let cell = match (opt("city_name"), opt("county_name")) {
                (Some(a), Some(b)) => Some(format!("{a}/{b}")),
                (a, b) => a.or(b),
            };
            Ok(Cdr {
                start: time(req("start_datetime")?)?,
                number: req("phone_no_m")?.to_string(),
                other: opt("opposite_no_m").unwrap_or_default(),
                duration_s: dur.max(0.0) as u32,
                direction,
                imei: opt("imei_m"),
                cell,
                trunk: None,
            })
        }
    }
}

/// 2020-01-01T00:00:00Z: the origin of the compact per-number times.
const EPOCH_2020: i64 = 1_577_836_800;

fn h64(s: &str) -> u64 {
    // FNV-1a, enough for sketches.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h ^ (h >> 29)
}

/// A 128-bit linear-counting sketch of distinct values (accurate to a few percent up to
/// ~200 distinct values, saturating beyond: enough to tell a dialer from a person).
#[derive(Clone, Copy, Debug, Default)]
struct Distinct([u64; 2]);

impl Distinct {
    fn add(&mut self, h: u64) {
        let b = (h % 128) as usize;
        self.0[b / 64] |= 1 << (b % 64);
    }
    fn estimate(&self) -> f64 {
        let zeros = 128 - (self.0[0].count_ones() + self.0[1].count_ones());
        if zeros == 0 {
            return 128.0 * (128f64).ln();
        }
        -128.0 * (zeros as f64 / 128.0).ln()
    }
}

/// A 64-bit sketch for small sets (devices, areas of one number).
#[derive(Clone, Copy, Debug, Default)]
struct Distinct64(u64);

impl Distinct64 {
    fn add(&mut self, h: u64) {
        self.0 |= 1 << (h % 64);
    }
    fn estimate(&self) -> f64 {
        let zeros = 64 - self.0.count_ones();
        if zeros == 0 {
            return 64.0 * (64f64).ln();
        }
        -64.0 * (zeros as f64 / 64.0).ln()
    }
}

/// Per-number state: fixed size (~200 bytes), whatever the traffic.
#[derive(Clone, Debug, Default)]
pub struct NumberState {
    /// Seconds since 2020-01-01 (fits 136 years in 4 bytes).
    first_seen: u32,
    last_seen: u32,
    // 1-minute window: calls in the current and previous minute.
    minute: i32,
    calls_this_minute: u16,
    calls_prev_minute: u16,
    // 1-hour window: 12 buckets of 5 minutes.
    hour_buckets: [u16; 12],
    hour_bucket_epoch: i32,
    // 24-hour window: 12 buckets of 2 hours.
    day_buckets: [u16; 12],
    day_bucket_epoch: i32,
    distinct_24h: Distinct,
    distinct_24h_epoch: i32,
    // Since activation.
    calls_out: u32,
    calls_in: u32,
    answered: u32,
    short_calls: u32,
    night_calls: u32,
    duration_sum: u32,
    duration_max: u32,
    distinct_all: Distinct,
    cells: Distinct64,
    hours_seen: u32,
    days_seen: u32,
    imeis: Distinct64,
    last_imei: u64,
    imei_changes_24h: u16,
    imei_epoch: i32,
    // Sequential dialling (号段扫描): callee numbers in an arithmetic run.
    last_callee: u64,
    last_step: i32,
    run: u16,
    max_run: u16,
    max_per_minute: u16,
    /// Levels already alerted (bit 0 warning, bit 1 critical), so each fires once.
    alerted: u8,
}

fn digits_value(s: &str) -> Option<u64> {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    (d.len() >= 5 && d.len() <= 18)
        .then(|| d.parse().ok())
        .flatten()
}

impl NumberState {
    fn roll(buckets: &mut [u16], epoch: &mut i32, now_slot: i32) {
        let n = buckets.len() as i32;
        if *epoch == 0 || now_slot - *epoch >= n {
            buckets.fill(0);
        } else {
            for s in (*epoch + 1)..=now_slot {
                buckets[s.rem_euclid(n) as usize] = 0;
            }
        }
        *epoch = now_slot.max(*epoch);
    }

    /// Adds one record.
    pub fn add(&mut self, c: &Cdr) {
        let t = c.start;
        let rel = (t - EPOCH_2020).clamp(1, u32::MAX as i64) as u32;
        if self.first_seen == 0 {
            self.first_seen = rel;
        }
        self.last_seen = self.last_seen.max(rel);
        let first_seen = self.first_seen as i64 + EPOCH_2020;
        let local = t + 8 * 3600;
        let hour_of_day = (local.rem_euclid(86_400) / 3600) as u32;
        self.hours_seen |= 1 << hour_of_day;
        let day_index =
            (local.div_euclid(86_400) - (first_seen + 8 * 3600).div_euclid(86_400)).clamp(0, 31);
        self.days_seen |= 1 << day_index;
        if let Some(cell) = &c.cell {
            self.cells.add(h64(cell));
        }
        if let Some(imei) = &c.imei {
            let h = h64(imei);
            if (t / 86_400) as i32 != self.imei_epoch {
                self.imei_epoch = (t / 86_400) as i32;
                self.imei_changes_24h = 0;
            }
            if self.last_imei != 0 && self.last_imei != h {
                self.imei_changes_24h = self.imei_changes_24h.saturating_add(1);
            }
            self.last_imei = h;
            self.imeis.add(h);
        }
        if c.duration_s > 0 {
            self.answered += 1;
            self.duration_sum = self.duration_sum.saturating_add(c.duration_s);
            self.duration_max = self.duration_max.max(c.duration_s);
        }
        if c.duration_s < 10 {
            self.short_calls += 1;
        }
        if !(7..23).contains(&hour_of_day) {
            self.night_calls += 1;
        }
        if c.direction != Direction::Out {
            self.calls_in += 1;
            return;
        }
        self.calls_out += 1;
        // Windows of outgoing calls.
        let minute = t.div_euclid(60) as i32;
        if minute != self.minute {
            self.calls_prev_minute = if minute == self.minute + 1 {
                self.calls_this_minute
            } else {
                0
            };
            self.calls_this_minute = 0;
            self.minute = minute;
        }
        self.calls_this_minute = self.calls_this_minute.saturating_add(1);
        self.max_per_minute = self.max_per_minute.max(self.calls_this_minute);
        Self::roll(
            &mut self.hour_buckets,
            &mut self.hour_bucket_epoch,
            t.div_euclid(300) as i32,
        );
        self.hour_buckets[t.div_euclid(300).rem_euclid(12) as usize] =
            self.hour_buckets[t.div_euclid(300).rem_euclid(12) as usize].saturating_add(1);
        Self::roll(
            &mut self.day_buckets,
            &mut self.day_bucket_epoch,
            t.div_euclid(7200) as i32,
        );
        self.day_buckets[t.div_euclid(7200).rem_euclid(12) as usize] =
            self.day_buckets[t.div_euclid(7200).rem_euclid(12) as usize].saturating_add(1);
        let oh = h64(&c.other);
        if t.div_euclid(86_400) as i32 != self.distinct_24h_epoch {
            self.distinct_24h = Distinct::default();
            self.distinct_24h_epoch = t.div_euclid(86_400) as i32;
        }
        self.distinct_24h.add(oh);
        self.distinct_all.add(oh);
        if let Some(v) = digits_value(&c.other) {
            let step = (v as i64 - self.last_callee as i64).clamp(-1_000_000, 1_000_000) as i32;
            if self.last_callee != 0 && step != 0 && step.abs() <= 10 && step == self.last_step {
                self.run = self.run.saturating_add(1);
            } else if self.last_callee != 0 && step != 0 && step.abs() <= 10 {
                self.run = 1;
            } else {
                self.run = 0;
            }
            self.last_step = step;
            self.last_callee = v;
            self.max_run = self.max_run.max(self.run);
        }
    }

    /// The current feature values (names follow the Sichuan table where one exists).
    pub fn features(&self) -> Features {
        let calls = self.calls_out + self.calls_in;
        let distinct = self.distinct_all.estimate();
        Features {
            calls_1m: (self.calls_this_minute as u32 + self.calls_prev_minute as u32) as f64,
            calls_1h: self.hour_buckets.iter().map(|&c| c as u32).sum::<u32>() as f64,
            calls_24h: self.day_buckets.iter().map(|&c| c as u32).sum::<u32>() as f64,
            distinct_callees_24h: self.distinct_24h.estimate(),
            opposite_count: calls as f64,
            opposite_unique: distinct,
            phone2opposite_mean: if distinct > 0.0 {
                self.calls_out as f64 / distinct
            } else {
                0.0
            },
            voc_calltype1: if calls > 0 {
                self.calls_out as f64 / calls as f64
            } else {
                0.0
            },
            answer_ratio: if self.calls_out > 0 {
                self.answered as f64 / calls.max(1) as f64
            } else {
                0.0
            },
            short_call_ratio: if calls > 0 {
                self.short_calls as f64 / calls as f64
            } else {
                0.0
            },
            call_dur_mean: if self.answered > 0 {
                self.duration_sum as f64 / self.answered as f64
            } else {
                0.0
            },
            call_dur_max: self.duration_max as f64,
            imeis: self.imeis.estimate().round(),
            imei_changes_24h: self.imei_changes_24h as f64,
            county_name_nunique: self.cells.estimate().round(),
            night_share: if calls > 0 {
                self.night_calls as f64 / calls as f64
            } else {
                0.0
            },
            voc_hour_nunique: self.hours_seen.count_ones() as f64,
            voc_day_nunique: self.days_seen.count_ones() as f64,
            sequential_run: self.max_run as f64,
            max_calls_per_minute: self.max_per_minute as f64,
        }
    }
}

/// Feature values of one number.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Features {
    /// Outgoing calls in the last minute (current + previous minute).
    pub calls_1m: f64,
    /// Outgoing calls in the last hour.
    pub calls_1h: f64,
    /// Outgoing calls in the last 24 hours.
    pub calls_24h: f64,
    /// Distinct callees today.
    pub distinct_callees_24h: f64,
    /// All calls since first seen (Sichuan `opposite_count`).
    pub opposite_count: f64,
    /// Distinct peers (Sichuan `opposite_unique`).
    pub opposite_unique: f64,
    /// Calls per distinct peer (Sichuan `phone2opposite_mean`).
    pub phone2opposite_mean: f64,
    /// Outgoing share (Sichuan `voc_calltype1`).
    pub voc_calltype1: f64,
    /// Answered share.
    pub answer_ratio: f64,
    /// Calls under 10 s.
    pub short_call_ratio: f64,
    /// Mean answered duration (Sichuan `call_dur_mean`).
    pub call_dur_mean: f64,
    /// Longest call (Sichuan `call_dur_max`).
    pub call_dur_max: f64,
    /// Devices used (Sichuan `imeis`).
    pub imeis: f64,
    /// Device changes today.
    pub imei_changes_24h: f64,
    /// Distinct areas (Sichuan `county_name_nunique`).
    pub county_name_nunique: f64,
    /// Calls between 23:00 and 07:00.
    pub night_share: f64,
    /// Distinct hours of day active (Sichuan `voc_hour_nunique`).
    pub voc_hour_nunique: f64,
    /// Distinct days active (Sichuan `voc_day_nunique`).
    pub voc_day_nunique: f64,
    /// Longest run of arithmetically consecutive callees (号段扫描).
    pub sequential_run: f64,
    /// Most outgoing calls in one minute (bursts).
    pub max_calls_per_minute: f64,
}

impl Features {
    /// A feature by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "calls_1m" => self.calls_1m,
            "calls_1h" => self.calls_1h,
            "calls_24h" => self.calls_24h,
            "distinct_callees_24h" => self.distinct_callees_24h,
            "opposite_count" => self.opposite_count,
            "opposite_unique" => self.opposite_unique,
            "phone2opposite_mean" => self.phone2opposite_mean,
            "voc_calltype1" => self.voc_calltype1,
            "answer_ratio" => self.answer_ratio,
            "short_call_ratio" => self.short_call_ratio,
            "call_dur_mean" => self.call_dur_mean,
            "call_dur_max" => self.call_dur_max,
            "imeis" => self.imeis,
            "imei_changes_24h" => self.imei_changes_24h,
            "county_name_nunique" => self.county_name_nunique,
            "night_share" => self.night_share,
            "voc_hour_nunique" => self.voc_hour_nunique,
            "voc_day_nunique" => self.voc_day_nunique,
            "sequential_run" => self.sequential_run,
            "max_calls_per_minute" => self.max_calls_per_minute,
            _ => return None,
        })
    }
}

/// Number classes with their own thresholds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NumberClass {
    /// Ordinary mobile.
    Mobile,
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

/// One threshold rule: a feature at or above `warning` / `critical` for numbers of `class`
/// (or every class), once `min_calls` calls were seen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThresholdRule {
    /// Rule id in alerts.
    pub id: String,
    /// Feature name.
    pub feature: String,
    /// Class the rule applies to (`None` = all).
    #[serde(default)]
    pub class: Option<NumberClass>,
    /// Warning level.
    pub warning: Option<f64>,
    /// Critical level.
    pub critical: Option<f64>,
    /// Minimum calls before the rule speaks.
    #[serde(default)]
    pub min_calls: f64,
}

/// The default rules: bursts, scanning, SIM boxes, mass dialling, IoT misuse.
pub fn default_rules() -> Vec<ThresholdRule> {
    let r =
        |id: &str, feature: &str, class: Option<NumberClass>, w: f64, c: f64, min_calls: f64| {
            ThresholdRule {
                id: id.into(),
                feature: feature.into(),
                class,
                warning: Some(w),
                critical: Some(c),
                min_calls,
            }
        };
    vec![
        r(
            "burst-dialling",
            "max_calls_per_minute",
            Some(NumberClass::Mobile),
            8.0,
            15.0,
            0.0,
        ),
        r(
            "hourly-volume",
            "calls_1h",
            Some(NumberClass::Mobile),
            60.0,
            120.0,
            0.0,
        ),
        r(
            "mass-dialling",
            "distinct_callees_24h",
            Some(NumberClass::Mobile),
            60.0,
            120.0,
            0.0,
        ),
        r("sequential-scan", "sequential_run", None, 5.0, 9.0, 0.0),
        r("sim-box-imei-swap", "imei_changes_24h", None, 3.0, 6.0, 0.0),
        r(
            "iot-voice-use",
            "opposite_count",
            Some(NumberClass::Iot),
            1.0,
            20.0,
            0.0,
        ),
        r(
            "iot-human-like",
            "opposite_unique",
            Some(NumberClass::Iot),
            5.0,
            10.0,
            0.0,
        ),
        r(
            "key-service-volume",
            "calls_1h",
            Some(NumberClass::KeyService),
            200.0,
            400.0,
            0.0,
        ),
    ]
}

/// Errors of a rules file, all of them.
pub fn parse_rules(text: &str) -> Result<Vec<ThresholdRule>, Vec<String>> {
    #[derive(Deserialize)]
    struct File {
        rule: Vec<ThresholdRule>,
    }
    let f: File = toml_like(text).map_err(|e| vec![e])?;
    let known = Features::default();
    let mut errors = Vec::new();
    for (i, r) in f.rule.iter().enumerate() {
        if known.get(&r.feature).is_none() {
            errors.push(format!(
                "rule {} ({}): unknown feature {:?}",
                i + 1,
                r.id,
                r.feature
            ));
        }
        if r.warning.is_none() && r.critical.is_none() {
            errors.push(format!(
                "rule {} ({}): needs warning or critical",
                i + 1,
                r.id
            ));
        }
        if let (Some(w), Some(c)) = (r.warning, r.critical) {
            if c < w {
                errors.push(format!(
                    "rule {} ({}): critical {c} is below warning {w}",
                    i + 1,
                    r.id
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(f.rule)
    } else {
        Err(errors)
    }
}

/// Rules files are JSON (`{"rule":[…]}`) — the binary converts TOML to JSON first.
fn toml_like<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// An alert.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// The number.
    pub number: String,
    /// When (unix seconds of the triggering record).
    pub ts: i64,
    /// Severity in 0..1 (how far past the thresholds).
    pub score: f64,
    /// warning | critical.
    pub level: &'static str,
    /// Rules that fired.
    pub rules: Vec<String>,
    /// The features at that moment.
    pub features: Value,
    /// What the disposal policy does: watch, reverify, suspend_and_block.
    pub action: &'static str,
}

/// The monitor: per-number state, rules, and alerts as records arrive.
pub struct Monitor {
    rules: Vec<ThresholdRule>,
    /// By number key: packed E.164 bits, or a hash of an opaque id (Sichuan).
    states: rustc_hash::FxHashMap<u64, (NumberState, NumberClass)>,
    /// Idle time after which a number's state is dropped.
    pub idle_evict_s: i64,
    last_evict: i64,
    /// Records seen.
    pub records: u64,
}

impl Monitor {
    /// A monitor with `rules`.
    pub fn new(rules: Vec<ThresholdRule>) -> Monitor {
        Monitor {
            rules,
            states: rustc_hash::FxHashMap::default(),
            idle_evict_s: 3 * 86_400,
            last_evict: 0,
            records: 0,
        }
    }

    /// Numbers with state.
    pub fn active_numbers(&self) -> usize {
        self.states.len()
    }

    /// Bytes per active number: the fixed state, its class and the map slot (u64 key and
    /// control byte, at hashbrown's 7/8 load).
    pub fn bytes_per_number() -> usize {
        let slot = std::mem::size_of::<(u64, (NumberState, NumberClass))>() + 1;
        slot * 8 / 7
    }

    /// Adds a record; returns an alert when the number reaches a new level.
    pub fn add(&mut self, c: &Cdr) -> Option<Alert> {
        self.records += 1;
        if c.start - self.last_evict > 3600 {
            let cutoff = (c.start - self.idle_evict_s - EPOCH_2020).max(0) as u32;
            self.states.retain(|_, (s, _)| s.last_seen >= cutoff);
            self.last_evict = c.start;
        }
        let key = match fanzha_model::parse(&c.number) {
            Ok(n) => n.to_bits(),
            Err(_) => h64(&c.number) | 1 << 63,
        };
        let (state, class) = self
            .states
            .entry(key)
            .or_insert_with(|| (NumberState::default(), class_of(&c.number)));
        state.add(c);
        let f = state.features();
        let mut fired = Vec::new();
        let mut level = 0u8;
        let mut score: f64 = 0.0;
        for r in &self.rules {
            if r.class.is_some_and(|k| k != *class) || f.opposite_count < r.min_calls {
                continue;
            }
            let Some(v) = f.get(&r.feature) else { continue };
            if let Some(cth) = r.critical.filter(|t| v >= *t) {
                level = level.max(2);
                fired.push(r.id.clone());
                score = score.max((0.8 + 0.2 * (v / cth - 1.0).min(1.0)).min(1.0));
            } else if let Some(w) = r.warning.filter(|t| v >= *t) {
                level = level.max(1);
                fired.push(r.id.clone());
                score = score.max(
                    0.5 + 0.3 * ((v - w) / (r.critical.unwrap_or(w * 2.0) - w).max(1e-9)).min(1.0),
                );
            }
        }
        let bit = match level {
            2 => 2,
            1 => 1,
            _ => return None,
        };
        if state.alerted & bit != 0 || (bit == 1 && state.alerted & 2 != 0) {
            return None;
        }
        state.alerted |= bit;
        let (level, action) = if bit == 2 {
            ("critical", "suspend_and_block")
        } else if *class == NumberClass::Mobile {
            ("warning", "reverify")
        } else {
            ("warning", "watch")
        };
        Some(Alert {
            number: c.number.clone(),
            ts: c.start,
            score: (score * 1000.0).round() / 1000.0,
            level,
            rules: fired,
            features: json!(f),
            action,
        })
    }
}
