//! Prometheus metrics: verdicts by rule and by code, decision latency histogram, snapshot
//! generation. Plain atomics rendered in the text exposition format.

use fanzha_policy::{RuleId, Verdict};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const CODES: [u16; 6] = [302, 403, 433, 603, 608, 0];
/// Latency bucket upper bounds in nanoseconds.
const BUCKETS_NS: [u64; 12] = [
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
    2_000_000,
];

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    by_rule: [AtomicU64; 20],
    by_code: [AtomicU64; 6],
    buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    /// Current snapshot generation.
    pub generation: AtomicU64,
    /// Snapshot rebuilds.
    pub rebuilds: AtomicU64,
    /// HTTP ledger rows accepted / refused.
    pub ledger_accepted: AtomicU64,
    /// Rows refused.
    pub ledger_refused: AtomicU64,
    /// Call records the monitor processed (HTTP and Kafka).
    pub cdr_records: AtomicU64,
    /// Call records skipped as bad.
    pub cdr_bad: AtomicU64,
    /// Monitor alerts.
    pub cdr_alerts: AtomicU64,
    /// Alerts whose disposal changed the ledger.
    pub cdr_disposals: AtomicU64,
}

impl Metrics {
    /// Counts what one batch of call records did in the monitor (HTTP or Kafka).
    pub fn record_ingest(&self, r: &fanzha_monitor::IngestReport) {
        self.cdr_records.fetch_add(r.records, Ordering::Relaxed);
        self.cdr_bad.fetch_add(r.bad_records, Ordering::Relaxed);
        self.cdr_alerts
            .fetch_add(r.alerts.len() as u64, Ordering::Relaxed);
        self.cdr_disposals.fetch_add(r.disposals, Ordering::Relaxed);
    }

    /// Counts one verdict that took `nanos` to decide.
    pub fn record(&self, v: &Verdict, nanos: u64) {
        for r in v.rules.iter() {
            self.by_rule[r as usize].fetch_add(1, Ordering::Relaxed);
        }
        let i = CODES
            .iter()
            .position(|&c| c == v.code)
            .unwrap_or(CODES.len() - 1);
        self.by_code[i].fetch_add(1, Ordering::Relaxed);
        for (b, bound) in self.buckets.iter().zip(BUCKETS_NS) {
            if nanos <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP fanzha_verdict_rules_total Rule matches in verdicts.\n# TYPE fanzha_verdict_rules_total counter");
        for r in RuleId::ALL {
            let _ = writeln!(
                s,
                "fanzha_verdict_rules_total{{rule=\"{}\",requirement=\"{}\"}} {}",
                r.as_str(),
                r.requirement(),
                self.by_rule[r as usize].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP fanzha_verdicts_total Verdicts by SIP code.\n# TYPE fanzha_verdicts_total counter");
        for (i, c) in CODES.iter().enumerate() {
            let label = if *c == 0 {
                "other".to_string()
            } else {
                c.to_string()
            };
            let _ = writeln!(
                s,
                "fanzha_verdicts_total{{code=\"{label}\"}} {}",
                self.by_code[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP fanzha_decision_seconds Time to decide one call.\n# TYPE fanzha_decision_seconds histogram");
        for (b, bound) in self.buckets.iter().zip(BUCKETS_NS) {
            let _ = writeln!(
                s,
                "fanzha_decision_seconds_bucket{{le=\"{}\"}} {}",
                bound as f64 / 1e9,
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "fanzha_decision_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "fanzha_decision_seconds_sum {}",
            self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(s, "fanzha_decision_seconds_count {count}");
        let _ = writeln!(s, "# HELP fanzha_snapshot_generation Ledger generation of the live policy snapshot.\n# TYPE fanzha_snapshot_generation gauge");
        let _ = writeln!(
            s,
            "fanzha_snapshot_generation {}",
            self.generation.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE fanzha_snapshot_rebuilds_total counter\nfanzha_snapshot_rebuilds_total {}",
            self.rebuilds.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE fanzha_ledger_rows_total counter");
        let _ = writeln!(
            s,
            "fanzha_ledger_rows_total{{outcome=\"accepted\"}} {}",
            self.ledger_accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "fanzha_ledger_rows_total{{outcome=\"refused\"}} {}",
            self.ledger_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP fanzha_monitor_records_total Call records seen by the monitor.\n# TYPE fanzha_monitor_records_total counter");
        for (outcome, v) in [("processed", &self.cdr_records), ("bad", &self.cdr_bad)] {
            let _ = writeln!(
                s,
                "fanzha_monitor_records_total{{outcome=\"{outcome}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# TYPE fanzha_monitor_alerts_total counter\nfanzha_monitor_alerts_total {}",
            self.cdr_alerts.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE fanzha_monitor_disposals_total counter\nfanzha_monitor_disposals_total {}",
            self.cdr_disposals.load(Ordering::Relaxed)
        );
        s
    }
}

impl fanzha_sip::Observer for Metrics {
    fn verdict(&self, v: &Verdict, nanos: u64) {
        self.record(v, nanos);
    }
}
