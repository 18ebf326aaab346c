//! The monitor as a service: call records arrive in batches (an HTTP body, a poll of Kafka
//! messages), go through the detector ([`fanzha_detect::monitor::Monitor`]), and alerts are
//! disposed of as ordinary, audited ledger commands (R15.3: block and suspend; R1: second
//! real-name verification), so the next screening snapshot blocks a disposed number.
//!
//! Knows record encodings and the disposal policy. Does not know HTTP, SIP or which store
//! backs the ledger; the Kafka consumer ([`kafka`]) is the only network code here.

#[cfg(feature = "kafka")]
pub mod kafka;

use fanzha_detect::monitor::{
    parse_json_record, read_csv_until, Alert, Cdr, Format, Layout, Monitor,
};
use fanzha_ledger::{Actor, Ledger, Store};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// One bad record: where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// Line in the body (header = 1 for CSV), or message offset for Kafka.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// What one batch did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    /// Records processed.
    pub records: u64,
    /// Records skipped.
    pub bad_records: u64,
    /// The first bad records (at most [`IngestReport::MAX_ERRORS`]).
    pub errors: Vec<BadRecord>,
    /// Alerts raised, in order.
    pub alerts: Vec<Alert>,
    /// Alerts whose disposal changed the ledger.
    pub disposals: u64,
    /// Alerts not executed automatically, waiting for a supervisor: the number is
    /// protected, or the auto-disposal policy leaves this level or rule to a person.
    pub held: Vec<Held>,
}

/// An alert left for a supervisor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Held {
    /// The number.
    pub number: String,
    /// The action the alert asked for.
    pub action: &'static str,
    /// Why it was not executed.
    pub reason: String,
}

/// Which alerts may block and suspend a number with no person deciding (`[monitor]
/// auto_dispose`): entries `LEVEL` (every rule of that level) or `LEVEL:RULE`. Other
/// `suspend_and_block` alerts are held for a supervisor; `reverify` and `watch`, which cut
/// no service, are not affected. Default: `critical` only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoDispose {
    entries: Vec<(String, Option<String>)>,
}

impl Default for AutoDispose {
    fn default() -> AutoDispose {
        AutoDispose {
            entries: vec![("critical".into(), None)],
        }
    }
}

impl AutoDispose {
    /// From `LEVEL` / `LEVEL:RULE` entries; levels are `warning` and `critical`.
    pub fn parse(entries: &[String]) -> Result<AutoDispose, String> {
        let mut out = Vec::new();
        for e in entries {
            let (level, rule) = match e.split_once(':') {
                Some((l, r)) => (l.trim(), Some(r.trim().to_string())),
                None => (e.trim(), None),
            };
            if !matches!(level, "warning" | "critical") {
                return Err(format!("{e:?}: the level is warning or critical"));
            }
            out.push((level.to_string(), rule));
        }
        Ok(AutoDispose { entries: out })
    }

    /// Whether `alert` may be executed automatically.
    pub fn allows(&self, alert: &Alert) -> bool {
        alert.action != "suspend_and_block"
            || self.entries.iter().any(|(level, rule)| {
                level == alert.level
                    && rule
                        .as_ref()
                        .is_none_or(|r| alert.rules.iter().any(|x| x == r))
            })
    }
}

impl IngestReport {
    /// Bad records listed in full; the rest are only counted.
    pub const MAX_ERRORS: usize = 20;

    fn bad(&mut self, line: u64, reason: String) {
        self.bad_records += 1;
        if self.errors.len() < Self::MAX_ERRORS {
            self.errors.push(BadRecord { line, reason });
        }
    }
}

/// A batch that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A CSV header without the format's required columns.
    #[error("{0}")]
    Header(String),
    /// The ledger failed while disposing (the batch's records were counted; retry is safe:
    /// disposal is idempotent).
    #[error("disposal failed: {0}")]
    Disposal(#[from] fanzha_ledger::StoreError),
}

/// What a disposal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The ledger changed.
    Changed,
    /// Nothing to change (already disposed of, or nothing to do).
    Unchanged,
    /// Not executed: the number is protected (why); the alert waits for a supervisor.
    Held(String),
}

/// Where alerts go.
pub trait Disposer {
    /// Executes the alert's action.
    fn dispose(&mut self, alert: &Alert) -> Result<Disposition, fanzha_ledger::StoreError>;
}

/// Alerts are reported, nothing is executed (`dispose = false`).
pub struct ReportOnly;

impl Disposer for ReportOnly {
    fn dispose(&mut self, _: &Alert) -> Result<Disposition, fanzha_ledger::StoreError> {
        Ok(Disposition::Unchanged)
    }
}

/// Disposal through the shared ledger, as the actor the clock names.
pub struct LedgerDisposer {
    /// The ledger.
    pub ledger: Arc<Mutex<Ledger<Box<dyn Store>>>>,
    /// Who is acting, now.
    pub actor: Arc<dyn Fn() -> Actor + Send + Sync>,
}

impl Disposer for LedgerDisposer {
    fn dispose(&mut self, alert: &Alert) -> Result<Disposition, fanzha_ledger::StoreError> {
        let actor = (self.actor)();
        let evidence = serde_json::to_value(alert).unwrap_or_default();
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let d = ledger.dispose(
            &alert.number,
            alert.action,
            &alert.rules.join(","),
            &evidence,
            &actor,
        )?;
        Ok(match d.held {
            Some(why) => Disposition::Held(why),
            None if d.blocklisted || d.suspended || d.reverify => Disposition::Changed,
            None => Disposition::Unchanged,
        })
    }
}

/// The detector with its running totals.
pub struct Pipeline {
    monitor: Monitor,
    /// Records processed since start.
    pub records: u64,
    /// Records skipped since start.
    pub bad_records: u64,
    /// Alerts since start.
    pub alerts: u64,
    /// Ledger-changing disposals since start.
    pub disposals: u64,
    /// Start of the latest record seen (unix seconds).
    pub latest: i64,
    raised: Vec<Alert>,
    /// Records starting after this are refused (the service's clock plus the skew it
    /// allows); `i64::MAX` for a file the operator chose.
    not_after: i64,
    /// Which alerts block and suspend with no person deciding.
    auto_dispose: AutoDispose,
}

impl Pipeline {
    /// Trust records' times no further than `not_after` (unix seconds): the caller sets
    /// it from its clock before each batch from the network. A record from the future
    /// would otherwise move every number's windows past their calls and stop eviction.
    pub fn set_not_after(&mut self, not_after: i64) {
        self.not_after = not_after;
    }

    /// Sets which alerts block and suspend automatically.
    pub fn set_auto_dispose(&mut self, policy: AutoDispose) {
        self.auto_dispose = policy;
    }

    /// A pipeline around `monitor`.
    pub fn new(monitor: Monitor) -> Pipeline {
        Pipeline {
            not_after: i64::MAX,
            auto_dispose: AutoDispose::default(),
            monitor,
            records: 0,
            bad_records: 0,
            alerts: 0,
            disposals: 0,
            latest: 0,
            raised: Vec::new(),
        }
    }

    /// The detector.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// A body of records: CSV with a header (native or Sichuan), or JSON lines.
    pub fn ingest_body(
        &mut self,
        body: &[u8],
        format: Format,
        disposer: &mut dyn Disposer,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        match format {
            Format::Native | Format::Sichuan => {
                let (monitor, raised, latest) =
                    (&mut self.monitor, &mut self.raised, &mut self.latest);
                let mut bad = Vec::new();
                read_csv_until(
                    body,
                    format,
                    self.not_after,
                    |batch| {
                        report.records += batch.len() as u64;
                        *latest = batch.iter().fold(*latest, |t, c| t.max(c.start));
                        monitor.add_batch(batch, raised);
                    },
                    |line, why| bad.push((line, why)),
                )
                .map_err(IngestError::Header)?;
                for (line, why) in bad {
                    report.bad(line, why);
                }
            }
            Format::JsonLines => {
                for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                    self.message(line, i as u64 + 1, false, &mut report);
                }
            }
        }
        self.finish(report, disposer)
    }

    /// Kafka-style messages: each value holds records, one per line, each either a JSON
    /// object with the native fields or a native CSV row without header
    /// (`start,caller,callee,duration_s,trunk,imei,cell`). `ids` name the messages in errors
    /// (their offsets).
    pub fn ingest_messages<'m>(
        &mut self,
        messages: impl IntoIterator<Item = (u64, &'m [u8])>,
        disposer: &mut dyn Disposer,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        for (id, value) in messages {
            for line in value.split(|&b| b == b'\n') {
                self.message(line, id, true, &mut report);
            }
        }
        self.finish(report, disposer)
    }

    /// One record line of a message or a JSON-lines body (where only JSON is a record).
    fn message(&mut self, line: &[u8], id: u64, csv_rows: bool, report: &mut IngestReport) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let parsed = if line.first() == Some(&b'{') || !csv_rows {
            match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(v) => {
                    let mut scratch = Vec::new();
                    parse_json_record(&v, &mut scratch).and_then(|c| self.add(&c, report))
                }
                Err(e) => Err(format!("not a JSON record: {e}")),
            }
        } else {
            match std::str::from_utf8(line) {
                Ok(text) => {
                    let fields: Vec<&str> = text.split(',').collect();
                    Layout::canonical(Format::Native)
                        .parse(&fields)
                        .and_then(|c| self.add(&c, report))
                }
                Err(_) => Err("the record is not UTF-8".into()),
            }
        };
        if let Err(why) = parsed {
            report.bad(id, why);
        }
    }

    fn add(&mut self, c: &Cdr<'_>, report: &mut IngestReport) -> Result<(), String> {
        if c.start > self.not_after {
            return Err(fanzha_detect::monitor::future_record(
                c.start,
                self.not_after,
            ));
        }
        report.records += 1;
        self.latest = self.latest.max(c.start);
        self.monitor
            .add_batch(std::slice::from_ref(c), &mut self.raised);
        Ok(())
    }

    /// The end of a stream (a batch run's last record): the model's look at every number it
    /// has not judged yet, as of the latest record, and its alerts disposed of.
    pub fn end_of_stream(
        &mut self,
        disposer: &mut dyn Disposer,
    ) -> Result<IngestReport, IngestError> {
        let latest = self.latest;
        self.raised.extend(self.monitor.score_all(latest));
        self.finish(IngestReport::default(), disposer)
    }

    fn finish(
        &mut self,
        report: IngestReport,
        disposer: &mut dyn Disposer,
    ) -> Result<IngestReport, IngestError> {
        let mut report = self.detected(report);
        dispose_alerts(&self.auto_dispose, &mut report, disposer)?;
        self.disposals += report.disposals;
        Ok(report)
    }

    /// The batch's alerts gathered into its report and counted; nothing disposed of yet.
    fn detected(&mut self, mut report: IngestReport) -> IngestReport {
        report.alerts.append(&mut self.raised);
        report.alerts.append(&mut self.monitor.take_pending());
        self.records += report.records;
        self.bad_records += report.bad_records;
        self.alerts += report.alerts.len() as u64;
        report
    }

    /// [`Pipeline::ingest_messages`] without disposal: the alerts come back in the report
    /// for [`dispose_alerts`], which the caller runs without holding the pipeline (a
    /// ledger that is down then stalls disposal only, not detection on other threads), and
    /// then adds with [`Pipeline::count_disposals`].
    pub fn detect_messages<'m>(
        &mut self,
        messages: impl IntoIterator<Item = (u64, &'m [u8])>,
    ) -> IngestReport {
        let mut report = IngestReport::default();
        for (id, value) in messages {
            for line in value.split(|&b| b == b'\n') {
                self.message(line, id, true, &mut report);
            }
        }
        self.detected(report)
    }

    /// The auto-disposal policy in force.
    pub fn auto_dispose(&self) -> &AutoDispose {
        &self.auto_dispose
    }

    /// Adds disposals made outside the pipeline to its totals.
    pub fn count_disposals(&mut self, n: u64) {
        self.disposals += n;
    }
}

/// Executes a report's alerts under `policy`: those the policy leaves to a person, and
/// those the ledger holds (a protected number), go to `report.held`; the rest to the
/// disposer, counting the ones that changed the ledger.
pub fn dispose_alerts(
    policy: &AutoDispose,
    report: &mut IngestReport,
    disposer: &mut dyn Disposer,
) -> Result<(), IngestError> {
    for a in &report.alerts {
        if !policy.allows(a) {
            report.held.push(Held {
                number: a.number.clone(),
                action: a.action,
                reason: format!(
                    "[monitor] auto_dispose does not execute {} alerts of {} automatically",
                    a.level,
                    a.rules.join(",")
                ),
            });
            continue;
        }
        match disposer.dispose(a)? {
            Disposition::Changed => report.disposals += 1,
            Disposition::Unchanged => {}
            Disposition::Held(why) => report.held.push(Held {
                number: a.number.clone(),
                action: a.action,
                reason: format!("the number is {why}"),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod policy {
    use super::*;

    fn alert(level: &'static str, action: &'static str, rule: &str) -> Alert {
        Alert {
            number: "+8613500000001".into(),
            ts: 0,
            score: 1.0,
            level,
            rules: vec![rule.into()],
            features: Default::default(),
            action,
        }
    }

    #[test]
    fn by_default_only_critical_alerts_block_without_a_person() {
        let p = AutoDispose::default();
        assert!(p.allows(&alert("critical", "suspend_and_block", "burst")));
        assert!(!p.allows(&alert("warning", "suspend_and_block", "burst")));
        assert!(
            p.allows(&alert("warning", "reverify", "burst")),
            "cuts no service"
        );
        let p = AutoDispose::parse(&["warning:sim-box".into()]).unwrap();
        assert!(p.allows(&alert("warning", "suspend_and_block", "sim-box")));
        assert!(!p.allows(&alert("warning", "suspend_and_block", "burst")));
        assert!(!p.allows(&alert("critical", "suspend_and_block", "burst")));
        assert!(AutoDispose::parse(&["severe".into()]).is_err());
    }
}
