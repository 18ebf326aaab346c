//! What the handlers share, and the two ways the screening snapshot follows the ledger.

use crate::auth::{Authenticator, Now};
use crate::metrics::Metrics;
use fanzha_ledger::{Ledger, Store};
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::DecisionLog;
use fanzha_screen::Engine;
use std::sync::{Arc, Mutex};

/// The clock as the binary gives it.
pub trait Clock: Send + Sync {
    /// Now, with the forms records are written in.
    fn now(&self) -> Now;
    /// Unix milliseconds: all a credential check needs, on every request.
    fn unix_ms(&self) -> i64;
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The screening engine.
    pub engine: Arc<Engine>,
    /// The ledger (blocking; used from `spawn_blocking`).
    pub ledger: Arc<Mutex<Ledger<Box<dyn Store>>>>,
    /// Principals, sessions and the audit trail.
    pub auth: Arc<Authenticator>,
    /// The decision log, if any.
    pub log: Option<Arc<DecisionLog>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The monitor's ingest (`POST /v1/cdr`), when enabled.
    pub monitor: Option<MonitorIngest>,
    /// How far a call's or call record's time may be ahead of the clock (seconds): counters
    /// and windows follow trusted time, never a client's future (`[screening]
    /// max_clock_skew_s`).
    pub max_clock_skew_s: i64,
    /// The most time a request may take before it is answered 503 `timeout`.
    pub request_timeout: std::time::Duration,
}

impl AppState {
    /// The ledger, locked (a poisoned lock is taken over: the ledger's own transactions
    /// keep it consistent).
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger<Box<dyn Store>>> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now.
    pub fn now(&self) -> Now {
        self.clock.now()
    }
}

/// The monitor as the API drives it.
#[derive(Clone)]
pub struct MonitorIngest {
    /// The detector (shared with the Kafka consumer).
    pub pipeline: Arc<Mutex<fanzha_monitor::Pipeline>>,
    /// Execute alerts' actions in the ledger (else only report them).
    pub dispose: bool,
}

/// Recompiles the snapshot when the ledger changed and installs it. Returns the generation.
pub fn refresh(
    ledger: &Mutex<Ledger<Box<dyn Store>>>,
    engine: &Engine,
    metrics: &Metrics,
) -> Result<u64, fanzha_ledger::StoreError> {
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let version = l.store().version()? as u64;
    if version == engine.snapshot().generation {
        return Ok(version);
    }
    let (snapshot, report) = compile(l.store().as_mut())?;
    drop(l);
    for s in &report.skipped {
        tracing::warn!(skipped = %s, "snapshot compile");
    }
    let generation = snapshot.generation;
    engine.swap(snapshot);
    metrics
        .generation
        .store(generation, std::sync::atomic::Ordering::Relaxed);
    metrics
        .rebuilds
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(generation)
}

/// Makes the monitor's `suspend_and_block` disposals effective in screening at once (a
/// patched copy of the live snapshot: blocklisted, and suspended where the number is our
/// card); the refresher's full recompile from the ledger follows. Alerts held for a
/// supervisor are not patched in. Returns how many numbers were.
pub fn block_disposed(engine: &Engine, report: &fanzha_monitor::IngestReport) -> usize {
    let numbers: Vec<fanzha_model::PhoneNumber> = report
        .alerts
        .iter()
        .filter(|a| a.action == "suspend_and_block")
        .filter(|a| !report.held.iter().any(|h| h.number == a.number))
        .filter_map(|a| fanzha_model::parse(&a.number).ok())
        .collect();
    if !numbers.is_empty() {
        engine.patch(|s| {
            for &n in &numbers {
                s.add_blocked(n, None);
                s.suspend_subscriber(n);
            }
        });
    }
    numbers.len()
}
