//! The embeddable screening engine: a policy snapshot compiled from the ledger and swapped
//! atomically when the ledger changes, the quota counters that survive the swap, the
//! call/verdict JSON contract, and the hash-chained decision log.
//!
//! Knows the ledger's record shapes (to compile them) and the JSON contract. Does not know
//! SIP, HTTP, the CLI or which database backs the ledger.

pub mod compile;
pub mod decision_log;
pub mod wire;

use arc_swap::ArcSwap;
use fanzha_policy::{evaluate, CallAttempt, Counters, RuleConfig, Snapshot, Verdict};
use std::sync::{Arc, Mutex};

/// The live engine: the current snapshot behind an atomic pointer, and the counters.
pub struct Engine {
    snapshot: ArcSwap<Snapshot>,
    /// Counters and the generation of the snapshot they are shaped for.
    counters: Mutex<(u64, Counters)>,
    config: RuleConfig,
}

impl Engine {
    /// An engine over a first snapshot.
    pub fn new(snapshot: Snapshot, config: RuleConfig) -> Engine {
        let counters = (snapshot.generation, Counters::new(&snapshot));
        Engine {
            snapshot: ArcSwap::from_pointee(snapshot),
            counters: Mutex::new(counters),
            config,
        }
    }

    /// The current snapshot (cheap: a reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Installs a new snapshot; quota counters carry over approval by approval. Calls in
    /// flight finish on the snapshot they started with.
    pub fn swap(&self, next: Snapshot) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        let c = std::mem::take(&mut counters.1);
        *counters = (next.generation, c.rebind(&old, &next));
        self.snapshot.store(Arc::new(next));
    }

    /// Applies a small change to a copy of the current snapshot and installs it, keeping its
    /// generation: a disposal becomes visible in milliseconds, long before the full
    /// recompile (seconds at a million subscribers) that follows the ledger's new version.
    pub fn patch(&self, change: impl FnOnce(&mut Snapshot)) {
        // Under the counters' lock, like `swap`: two patches cannot lose each other's change.
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        let mut next = (*old).clone();
        change(&mut next);
        let c = std::mem::take(&mut counters.1);
        *counters = (next.generation, c.rebind(&old, &next));
        self.snapshot.store(Arc::new(next));
    }

    /// Decides one call resolved against `snapshot` (which must be [`Engine::snapshot`]'s
    /// value or the counters may not match; a stale snapshot is re-resolved by the caller).
    pub fn decide(&self, snapshot: &Snapshot, call: &CallAttempt) -> Verdict {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if counters.0 != snapshot.generation {
            // A swap happened between load and decide: this one call is decided on the
            // snapshot it was resolved against, with counters of that shape (it loses only
            // its own quota count, never a rule).
            let mut scratch = Counters::new(snapshot);
            return evaluate(snapshot, call, &mut scratch, &self.config);
        }
        evaluate(snapshot, call, &mut counters.1, &self.config)
    }

    /// The rule configuration.
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }
}
