//! Per-number sliding-window state: fixed size whatever the traffic, updated in place by
//! each record, features read off on demand.

use super::record::{Cdr, Direction};
use serde::Serialize;
use std::sync::LazyLock;

/// 2000-01-01T00:00:00Z: the origin of the compact per-number times (the Sichuan data starts in 2019).
pub(crate) const EPOCH_2000: i64 = 946_684_800;

/// FNV-1a with a final mix: enough for sketches.
pub(crate) fn h64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h ^ (h >> 29)
}

/// The other party as a number value: its digits with a +86/0086/86 country prefix removed
/// from 13-digit forms, so `+8613900000001` and `13900000001` are the same callee. `None`
/// when it has fewer than 5 or more than 18 digits (not a dialable number).
pub(crate) fn callee_value(s: &str) -> Option<u64> {
    let mut v: u64 = 0;
    let mut n = 0u32;
    for b in s.bytes() {
        if b.is_ascii_digit() {
            n += 1;
            if n > 18 {
                return None;
            }
            v = v * 10 + (b - b'0') as u64;
        }
    }
    if n < 5 {
        return None;
    }
    // 86 + 11-digit mobile, or 0086 + 11 digits: the national number.
    if (n == 13 || n == 15) && v / 100_000_000_000 % 100 == 86 {
        v %= 100_000_000_000;
    }
    Some(v)
}

/// Day of the month (0-based) of a day number since 1970-01-01 (Hinnant's `civil_from_days`).
fn day_of_month(days: i64) -> u32 {
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    (doy - (153 * mp + 2) / 5) as u32
}

/// ln table of the linear-counting estimator: `-m ln(z/m)` for z zero bits out of m.
static LINEAR_COUNT_128: LazyLock<[f32; 129]> = LazyLock::new(|| {
    let mut t = [0f32; 129];
    for (z, e) in t.iter_mut().enumerate() {
        *e = if z == 0 {
            (128.0 * 128f64.ln()) as f32
        } else {
            (-128.0 * (z as f64 / 128.0).ln()) as f32
        };
    }
    t
});

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
        LINEAR_COUNT_128[zeros as usize] as f64
    }
}

/// A 64-bit sketch for small sets (devices, areas of one number).
#[derive(Clone, Copy, Debug, Default)]
struct Distinct64(u64);

impl Distinct64 {
    fn add(&mut self, h: u64) {
        self.0 |= 1 << (h % 64);
    }
    fn contains(&self, h: u64) -> bool {
        self.0 & (1 << (h % 64)) != 0
    }
    fn estimate(&self) -> f64 {
        let zeros = 64 - self.0.count_ones();
        if zeros == 0 {
            return 64.0 * (64f64).ln();
        }
        -64.0 * (zeros as f64 / 64.0).ln()
    }
}

/// Every feature the monitor computes, by the name rules and alerts use (the Sichuan
/// per-user table's column name where one corresponds).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Outgoing calls in the last minute (current + previous minute).
    Calls1m,
    /// Outgoing calls in the last hour.
    Calls1h,
    /// Outgoing calls in the last 24 hours.
    Calls24h,
    /// Distinct callees today.
    DistinctCallees24h,
    /// All calls since first seen (Sichuan `opposite_count`).
    OppositeCount,
    /// Distinct peers, both directions (Sichuan `opposite_unique`).
    OppositeUnique,
    /// Calls per distinct peer, both directions (Sichuan `phone2opposite_mean`).
    Phone2OppositeMean,
    /// Outgoing share (Sichuan `voc_calltype1`).
    VocCalltype1,
    /// Answered share of all calls.
    AnswerRatio,
    /// Share of calls under 10 s.
    ShortCallRatio,
    /// Mean call duration, unanswered calls counting 0 (Sichuan `call_dur_mean`).
    CallDurMean,
    /// Longest call (Sichuan `call_dur_max`).
    CallDurMax,
    /// Devices used (Sichuan `imeis`).
    Imeis,
    /// Changes today to a device this number had not used before (SIM-box rotation).
    ImeiChanges24h,
    /// Distinct areas (Sichuan `county_name_nunique`).
    CountyNameNunique,
    /// Share of calls between 23:00 and 07:00 China time.
    NightShare,
    /// Distinct hours of day active (Sichuan `voc_hour_nunique`).
    VocHourNunique,
    /// Distinct days of the month active (Sichuan `voc_day_nunique`).
    VocDayNunique,
    /// Longest run of arithmetically consecutive callees (号段扫描).
    SequentialRun,
    /// Most outgoing calls in one minute (bursts).
    MaxCallsPerMinute,
}

impl Feature {
    /// All features, in output order.
    pub const ALL: [Feature; 20] = [
        Feature::Calls1m,
        Feature::Calls1h,
        Feature::Calls24h,
        Feature::DistinctCallees24h,
        Feature::OppositeCount,
        Feature::OppositeUnique,
        Feature::Phone2OppositeMean,
        Feature::VocCalltype1,
        Feature::AnswerRatio,
        Feature::ShortCallRatio,
        Feature::CallDurMean,
        Feature::CallDurMax,
        Feature::Imeis,
        Feature::ImeiChanges24h,
        Feature::CountyNameNunique,
        Feature::NightShare,
        Feature::VocHourNunique,
        Feature::VocDayNunique,
        Feature::SequentialRun,
        Feature::MaxCallsPerMinute,
    ];

    /// The name in rules files, alerts and feature tables.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Calls1m => "calls_1m",
            Feature::Calls1h => "calls_1h",
            Feature::Calls24h => "calls_24h",
            Feature::DistinctCallees24h => "distinct_callees_24h",
            Feature::OppositeCount => "opposite_count",
            Feature::OppositeUnique => "opposite_unique",
            Feature::Phone2OppositeMean => "phone2opposite_mean",
            Feature::VocCalltype1 => "voc_calltype1",
            Feature::AnswerRatio => "answer_ratio",
            Feature::ShortCallRatio => "short_call_ratio",
            Feature::CallDurMean => "call_dur_mean",
            Feature::CallDurMax => "call_dur_max",
            Feature::Imeis => "imeis",
            Feature::ImeiChanges24h => "imei_changes_24h",
            Feature::CountyNameNunique => "county_name_nunique",
            Feature::NightShare => "night_share",
            Feature::VocHourNunique => "voc_hour_nunique",
            Feature::VocDayNunique => "voc_day_nunique",
            Feature::SequentialRun => "sequential_run",
            Feature::MaxCallsPerMinute => "max_calls_per_minute",
        }
    }

    /// The feature called `name`.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Feature values of one number at one moment, as alerts show them.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Features(serde_json::Map<String, serde_json::Value>);

impl Features {
    /// A feature by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name)?.as_f64()
    }
}

/// Per-number state: fixed size, whatever the traffic.
#[derive(Clone, Debug, Default)]
pub struct NumberState {
    /// Seconds since 2000-01-01 (fits 136 years in 4 bytes).
    first_seen: u32,
    pub(crate) last_seen: u32,
    /// Activation (from the ledger), seconds since 2000-01-01; 0 = unknown.
    pub(crate) activated: u32,
    // 1-minute window: calls in the current and previous minute.
    minute: i32,
    calls_this_minute: u16,
    calls_prev_minute: u16,
    // 1-hour window: 12 buckets of 5 minutes (255 calls in 5 minutes saturate: far past
    // every threshold).
    hour_buckets: [u8; 12],
    hour_bucket_epoch: i32,
    // 24-hour window: 12 buckets of 2 hours.
    day_buckets: [u16; 12],
    day_bucket_epoch: i32,
    distinct_24h: Distinct,
    /// Day (since 2000-01-01) of `distinct_24h`.
    distinct_24h_epoch: u16,
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
    last_imei: u32,
    imei_changes_24h: u16,
    /// Day (since 2000-01-01) of `imei_changes_24h`.
    imei_epoch: u16,
    // Sequential dialling (号段扫描): callee numbers in an arithmetic run.
    last_callee: u64,
    last_step: i32,
    run: u16,
    max_run: u16,
    max_per_minute: u16,
    /// Levels already alerted (bit 0 warning, bit 1 critical), so each fires once.
    pub(crate) alerted: u8,
    /// The number's class by the numbering plan.
    pub(crate) class: super::NumberClass,
}

impl NumberState {
    /// A fresh state for a number of `class`.
    pub(crate) fn new(class: super::NumberClass) -> NumberState {
        NumberState {
            class,
            ..NumberState::default()
        }
    }

    fn roll<T: Copy + Default>(buckets: &mut [T; 12], epoch: &mut i32, now_slot: i32) {
        if now_slot == *epoch {
            return;
        }
        if *epoch == 0 || now_slot - *epoch >= 12 || now_slot < *epoch {
            if now_slot > *epoch {
                buckets.fill(T::default());
                *epoch = now_slot;
            }
            // An out-of-order record older than the window head lands in its own slot.
            return;
        }
        for s in (*epoch + 1)..=now_slot {
            buckets[s.rem_euclid(12) as usize] = T::default();
        }
        *epoch = now_slot;
    }

    /// Seconds since 2000-01-01 of the first record (or the activation, when known).
    pub(crate) fn age_origin(&self) -> u32 {
        if self.activated != 0 {
            self.activated
        } else {
            self.first_seen
        }
    }

    /// Seconds between the first record (or activation) and `now`.
    pub(crate) fn observed_s(&self, now: i64) -> i64 {
        now - EPOCH_2000 - self.age_origin() as i64
    }

    /// Adds one record.
    pub fn add(&mut self, c: &Cdr<'_>) {
        let t = c.start;
        let rel = (t - EPOCH_2000).clamp(1, u32::MAX as i64) as u32;
        if self.first_seen == 0 {
            self.first_seen = rel;
        }
        self.last_seen = self.last_seen.max(rel);
        let local = t + 8 * 3600;
        let hour_of_day = (local.rem_euclid(86_400) / 3600) as u32;
        self.hours_seen |= 1 << hour_of_day;
        // Day of the month, as the Sichuan table counts `voc_day_nunique` (at most 31).
        self.days_seen |= 1 << day_of_month(local.div_euclid(86_400));
        match (c.cell, c.area) {
            (Some(cell), Some(area)) => self.cells.add(h64(cell) ^ h64(area).rotate_left(17)),
            (Some(one), None) | (None, Some(one)) => self.cells.add(h64(one)),
            (None, None) => {}
        }
        let day = ((t - EPOCH_2000).div_euclid(86_400)).clamp(0, u16::MAX as i64) as u16;
        if let Some(imei) = c.imei {
            let h = h64(imei);
            if day != self.imei_epoch {
                self.imei_epoch = day;
                self.imei_changes_24h = 0;
            }
            let short = (h >> 32) as u32 | 1;
            // A change to a device the number has used before (a person with two phones
            // going back and forth) is not counted: SIM boxes rotate through new ones.
            if self.last_imei != 0 && self.last_imei != short && !self.imeis.contains(h) {
                self.imei_changes_24h = self.imei_changes_24h.saturating_add(1);
            }
            self.last_imei = short;
            self.imeis.add(h);
        }
        if c.duration_s > 0 {
            self.answered += 1;
        }
        self.duration_sum = self.duration_sum.saturating_add(c.duration_s);
        self.duration_max = self.duration_max.max(c.duration_s);
        let callee = callee_value(c.other);
        let oh = match callee {
            // A multiplicative mix spreads consecutive numbers over the sketch.
            Some(v) => v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7,
            None => h64(c.other),
        };
        // Peers in both directions, as the Sichuan `opposite_unique` counts them.
        self.distinct_all.add(oh);
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
        let five_min = t.div_euclid(300) as i32;
        Self::roll(
            &mut self.hour_buckets,
            &mut self.hour_bucket_epoch,
            five_min,
        );
        let slot = &mut self.hour_buckets[five_min.rem_euclid(12) as usize];
        *slot = slot.saturating_add(1);
        let two_hours = t.div_euclid(7200) as i32;
        Self::roll(&mut self.day_buckets, &mut self.day_bucket_epoch, two_hours);
        let slot = &mut self.day_buckets[two_hours.rem_euclid(12) as usize];
        *slot = slot.saturating_add(1);
        if day != self.distinct_24h_epoch {
            self.distinct_24h = Distinct::default();
            self.distinct_24h_epoch = day;
        }
        self.distinct_24h.add(oh);
        if let Some(v) = callee {
            let step = (v as i64 - self.last_callee as i64).clamp(-1_000_000, 1_000_000) as i32;
            let near = self.last_callee != 0 && step != 0 && step.abs() <= 10;
            self.run = match (near, step == self.last_step) {
                (true, true) => self.run.saturating_add(1),
                (true, false) => 1,
                (false, _) => 0,
            };
            self.last_step = step;
            self.last_callee = v;
            self.max_run = self.max_run.max(self.run);
        }
    }

    /// One feature's current value.
    pub fn feature(&self, f: Feature) -> f64 {
        let calls = self.calls_out + self.calls_in;
        let share = |part: u32| {
            if calls > 0 {
                part as f64 / calls as f64
            } else {
                0.0
            }
        };
        match f {
            Feature::Calls1m => {
                (self.calls_this_minute as u32 + self.calls_prev_minute as u32) as f64
            }
            Feature::Calls1h => self.hour_buckets.iter().map(|&c| c as u32).sum::<u32>() as f64,
            Feature::Calls24h => self.day_buckets.iter().map(|&c| c as u32).sum::<u32>() as f64,
            Feature::DistinctCallees24h => self.distinct_24h.estimate(),
            Feature::OppositeCount => calls as f64,
            Feature::OppositeUnique => self.distinct_all.estimate(),
            Feature::Phone2OppositeMean => {
                let distinct = self.distinct_all.estimate();
                if distinct > 0.0 {
                    calls as f64 / distinct
                } else {
                    0.0
                }
            }
            Feature::VocCalltype1 => share(self.calls_out),
            Feature::AnswerRatio => share(self.answered),
            Feature::ShortCallRatio => share(self.short_calls),
            Feature::CallDurMean => {
                if calls > 0 {
                    self.duration_sum as f64 / calls as f64
                } else {
                    0.0
                }
            }
            Feature::CallDurMax => self.duration_max as f64,
            Feature::Imeis => self.imeis.estimate().round(),
            Feature::ImeiChanges24h => self.imei_changes_24h as f64,
            Feature::CountyNameNunique => self.cells.estimate().round(),
            Feature::NightShare => share(self.night_calls),
            Feature::VocHourNunique => self.hours_seen.count_ones() as f64,
            Feature::VocDayNunique => self.days_seen.count_ones() as f64,
            Feature::SequentialRun => self.max_run as f64,
            Feature::MaxCallsPerMinute => self.max_per_minute as f64,
        }
    }

    /// All features (for alerts and feature tables).
    pub fn features(&self) -> Features {
        Features(
            Feature::ALL
                .iter()
                .map(|&f| {
                    let v = (self.feature(f) * 1e4).round() / 1e4;
                    (f.name().to_string(), serde_json::json!(v))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_of_month_matches_the_calendar() {
        // 2026-11-29 is day 20_786 since 1970-01-01; 2024-02-29 is 19_782; 2000-03-01 is 11_017.
        assert_eq!(super::day_of_month(20_786), 28);
        assert_eq!(super::day_of_month(19_782), 28);
        assert_eq!(super::day_of_month(19_783), 0);
        assert_eq!(super::day_of_month(11_017), 0);
    }
}
