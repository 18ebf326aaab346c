//! Outbound-approval quota counters (R8.1): a rolling 60-minute window and a calendar day in
//! China time, measured on the calls' own timestamps (replays are deterministic). Memory is
//! fixed per approval and counts never go negative; only allowed calls are counted.

use crate::snapshot::{Approval, Snapshot};
use rustc_hash::FxHashMap;

const HOUR: i64 = 3600;
const CHINA_OFFSET: i64 = 8 * 3600;
/// Largest hourly quota tracked call by call; larger quotas use per-minute buckets.
const EXACT_LIMIT: u32 = 4096;

/// The calendar day (China time) of unix seconds `ts`.
pub fn china_day(ts: i64) -> i64 {
    (ts + CHINA_OFFSET).div_euclid(86_400)
}

/// Seconds since midnight, China time.
pub fn china_second_of_day(ts: i64) -> u32 {
    (ts + CHINA_OFFSET).rem_euclid(86_400) as u32
}

#[derive(Clone, Debug)]
enum Recent {
    /// Timestamps of the last `cap` allowed calls (ring).
    Exact { ring: Vec<i64>, next: usize },
    /// Allowed calls per minute for the last 60 minutes.
    Minutes {
        minute: Box<[i64; 60]>,
        count: Box<[u32; 60]>,
    },
    /// No hourly quota.
    None,
}

/// Counters of one approval.
#[derive(Clone, Debug)]
pub struct ApprovalCounter {
    recent: Recent,
    day: i64,
    day_count: u32,
}

impl ApprovalCounter {
    fn new(a: &Approval) -> ApprovalCounter {
        let recent = match a.max_per_hour {
            None => Recent::None,
            Some(n) if n <= EXACT_LIMIT => Recent::Exact {
                ring: vec![i64::MIN; n as usize],
                next: 0,
            },
            Some(_) => Recent::Minutes {
                minute: Box::new([i64::MIN; 60]),
                count: Box::new([0; 60]),
            },
        };
        ApprovalCounter {
            recent,
            day: i64::MIN,
            day_count: 0,
        }
    }

    /// Allowed calls in the 60 minutes up to `ts` (a call exactly 60 minutes earlier is
    /// outside the window).
    pub fn in_last_hour(&self, ts: i64) -> u32 {
        match &self.recent {
            Recent::Exact { ring, .. } => {
                ring.iter().filter(|&&t| t > ts - HOUR && t <= ts).count() as u32
            }
            Recent::Minutes { minute, count } => {
                let now = ts.div_euclid(60);
                minute
                    .iter()
                    .zip(count.iter())
                    .filter(|(m, _)| **m > now - 60 && **m <= now)
                    .map(|(_, c)| *c)
                    .sum()
            }
            Recent::None => 0,
        }
    }

    /// Allowed calls on the China calendar day of `ts`.
    pub fn on_day(&self, ts: i64) -> u32 {
        if china_day(ts) == self.day {
            self.day_count
        } else {
            0
        }
    }

    /// Counts one allowed call at `ts`.
    pub fn record(&mut self, ts: i64) {
        match &mut self.recent {
            Recent::Exact { ring, next } => {
                if !ring.is_empty() {
                    ring[*next] = ts;
                    *next = (*next + 1) % ring.len();
                }
            }
            Recent::Minutes { minute, count } => {
                let m = ts.div_euclid(60);
                let slot = m.rem_euclid(60) as usize;
                if minute[slot] != m {
                    minute[slot] = m;
                    count[slot] = 0;
                }
                count[slot] = count[slot].saturating_add(1);
            }
            Recent::None => {}
        }
        let d = china_day(ts);
        if d > self.day {
            self.day = d;
            self.day_count = 0;
        }
        if d == self.day {
            self.day_count = self.day_count.saturating_add(1);
        }
    }
}

/// The counters of every approval of a snapshot, indexed like [`Snapshot::approvals`].
#[derive(Clone, Debug, Default)]
pub struct Counters {
    slots: Vec<ApprovalCounter>,
}

impl Counters {
    /// Fresh counters for `snapshot`.
    pub fn new(snapshot: &Snapshot) -> Counters {
        Counters {
            slots: snapshot
                .approvals()
                .iter()
                .map(ApprovalCounter::new)
                .collect(),
        }
    }

    /// Counters for a new snapshot that keep what this one counted, approval by approval
    /// (matched by ledger key), so a ledger change does not reset quotas.
    pub fn rebind(self, old: &Snapshot, new: &Snapshot) -> Counters {
        let mut by_key: FxHashMap<&str, ApprovalCounter> = FxHashMap::default();
        for (a, c) in old.approvals().iter().zip(self.slots) {
            by_key.insert(&a.key, c);
        }
        Counters {
            slots: new
                .approvals()
                .iter()
                .map(|a| match by_key.remove(&*a.key) {
                    Some(c) if same_shape(&c, a) => c,
                    _ => ApprovalCounter::new(a),
                })
                .collect(),
        }
    }

    /// The counter of approval `i`.
    pub fn get(&self, i: u32) -> &ApprovalCounter {
        &self.slots[i as usize]
    }

    pub(crate) fn get_mut(&mut self, i: u32) -> &mut ApprovalCounter {
        &mut self.slots[i as usize]
    }

    /// Whether these counters were made for a snapshot with `n` approvals.
    pub fn fits(&self, n: usize) -> bool {
        self.slots.len() == n
    }
}

fn same_shape(c: &ApprovalCounter, a: &Approval) -> bool {
    match (&c.recent, a.max_per_hour) {
        (Recent::Exact { ring, .. }, Some(n)) => ring.len() == n as usize,
        (Recent::Minutes { .. }, Some(n)) => n > EXACT_LIMIT,
        (Recent::None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PatternSet;

    fn approval(per_hour: Option<u32>) -> Approval {
        Approval {
            key: "x".into(),
            callers: PatternSet::default(),
            windows: vec![],
            max_per_hour: per_hour,
            max_per_day: Some(10),
            valid_until: None,
        }
    }

    #[test]
    fn rolling_hour_excludes_exactly_sixty_minutes_ago() {
        let mut c = ApprovalCounter::new(&approval(Some(2)));
        c.record(1000);
        c.record(1600);
        assert_eq!(c.in_last_hour(1700), 2);
        assert_eq!(c.in_last_hour(1000 + 3600), 1);
        assert_eq!(c.in_last_hour(1600 + 3600), 0);
    }

    #[test]
    fn minute_buckets_for_large_quotas_and_days_reset() {
        let mut c = ApprovalCounter::new(&approval(Some(10_000)));
        for i in 0..100 {
            c.record(i * 10);
        }
        assert_eq!(c.in_last_hour(999), 100);
        assert_eq!(c.in_last_hour(999 + 7200), 0);
        // Day boundary at 16:00 UTC (midnight China time).
        let midnight = 16 * 3600;
        assert_eq!(c.on_day(midnight - 1), 100);
        assert_eq!(c.on_day(midnight), 0);
    }
}
