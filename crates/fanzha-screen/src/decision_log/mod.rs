//! The decision log (R12.1 authentication logs, R13.1 traceback): every verdict appended
//! with its call and snapshot generation, in a chain keyed by a MAC whose key is kept
//! outside the log directory (`chain.rs`), so an edited, inserted, removed or reordered
//! record is found by [`verify`]; the writer's [`Checkpoint`]s, kept by the caller in the
//! ledger's store, find records or segments cut from the end. Writing happens on a
//! background thread fed by queues, so logging never caps the verdict rate; a writer that
//! cannot write says so ([`DecisionLog::health`]) and counts what it loses.
//!
//! Layout: `DIR/seg-<first seq>.jsonl` segments (rotated by size and by China calendar day of
//! the calls), and `DIR/anchor.json`, the last record dropped by retention (MAC'd), from
//! which the remaining chain is verified.

mod chain;
mod verify;

pub use chain::{segments, Anchor, Checkpoint, GENESIS, SEGMENT_RECORDS};
pub use verify::{apply_retention, verify, Retained, Verification};

use chain::Chain;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One decision to log. `call` and `verdict` are JSON texts, rendered by the front end that
/// knows them (so the writer thread only frames, MACs and writes).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The call's time (unix seconds).
    pub ts: i64,
    /// Snapshot generation.
    pub generation: u64,
    /// The call as received (JSON text).
    pub call: String,
    /// The verdict as answered (JSON text).
    pub verdict: String,
}

impl Entry {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Entry>() + self.call.len() + self.verdict.len()
    }
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// File system.
    #[error("decision log I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Unparseable record.
    #[error("decision log record {0} is not JSON")]
    Corrupt(u64),
    /// An anchor that is not one, or not this key's.
    #[error("decision log anchor: {0}")]
    BadAnchor(String),
}

/// The chain's key (at least 32 bytes), kept outside the log directory.
#[derive(Clone)]
pub struct LogKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogKey(..)")
    }
}

/// Bytes of a new log key.
pub const LOG_KEY_LEN: usize = 32;

impl LogKey {
    /// A key over its bytes (at least [`LOG_KEY_LEN`]).
    pub fn new(key: &[u8]) -> Option<LogKey> {
        (key.len() >= LOG_KEY_LEN).then(|| LogKey {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any length"),
        })
    }

    /// A check value of the key, kept in the store so a wrong key is named as such.
    pub fn check_value(&self) -> String {
        self.mac("fanzha decision log key check")[..16].to_string()
    }

    fn mac(&self, text: &str) -> String {
        let mut m = self.mac.clone();
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    fn anchor_mac(&self, seq: u64, mac: &str, segments_dropped: u64) -> String {
        self.mac(&format!(
            "fanzha decision log anchor\0{seq}\0{mac}\0{segments_dropped}"
        ))
    }
}

/// What the front ends do with calls while the log cannot be written (`[decisions]
/// on_failure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Keep answering (the calls go unlogged and are counted lost; health and metrics
    /// raise the alarm). The default: a gateway that stops answering stops the network.
    #[default]
    Answer,
    /// Refuse calls (SIP 503, HTTP 503) until the log writes again: no unlogged verdict.
    Refuse,
}

/// Where the writer hands its checkpoints (called on its thread).
pub type CheckpointSink = Box<dyn FnMut(&Checkpoint) + Send>;

/// How the writer works.
pub struct LogConfig {
    /// The chain's key.
    pub key: LogKey,
    /// Most time between forcing written records to disk (`[decisions] fsync_ms`).
    pub fsync: Duration,
    /// Most bytes the overflow queue holds while the writer is behind; entries past it are
    /// dropped and counted (`[decisions] max_backlog_mb`).
    pub max_backlog_bytes: usize,
    /// Called on the writer's thread with where the log stands, at most about once a
    /// second while it writes, at every new segment and when it stops.
    pub on_checkpoint: Option<CheckpointSink>,
    /// Calls while the log cannot be written.
    pub on_failure: OnFailure,
}

impl LogConfig {
    /// Defaults: fsync every second, 64 MiB of backlog, no checkpoints.
    pub fn new(key: LogKey) -> LogConfig {
        LogConfig {
            key,
            fsync: Duration::from_secs(1),
            max_backlog_bytes: 64 << 20,
            on_checkpoint: None,
            on_failure: OnFailure::Answer,
        }
    }
}

/// What the writer can say of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogHealth {
    /// Writing (false after a write failed, until one succeeds again).
    pub writing: bool,
    /// Why not.
    pub reason: Option<String>,
    /// Entries accepted but never written (a write failed).
    pub lost: u64,
    /// Entries dropped because the backlog was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Shared {
    failing: AtomicBool,
    reason: Mutex<Option<String>>,
    lost: AtomicU64,
    dropped: AtomicU64,
    spilled_bytes: AtomicUsize,
}

/// The writer yields the CPU to the threads answering calls: it runs as SCHED_IDLE (only
/// when nothing else wants the CPU), falling back to nice 19. The log may lag — its queue
/// absorbs bursts — an answer to a SIP INVITE may not.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: scheduling calls on the calling thread (pid 0 / its tid), with a valid param.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        }
    }
}

/// How often the writer looks for entries when it found none.
const POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Entries the writer may lag behind before senders wait.
const LOG_QUEUE: usize = 16_384;

/// Bytes a [`Deferred`] entry can carry.
pub const DEFERRED_BYTES: usize = 480;

/// An entry captured on the hot path without allocating: the front end packs what the entry
/// needs into `data` and names the function that renders it; the writer thread (idle
/// priority) renders and hashes it. Keeps JSON formatting and allocation off the call path.
pub struct Deferred {
    /// The call's time (unix seconds).
    pub ts: i64,
    /// Snapshot generation.
    pub generation: u64,
    /// The packed entry.
    pub data: [u8; DEFERRED_BYTES],
    /// Bytes of `data` in use.
    pub len: u16,
    /// Renders `data[..len]` as (call JSON, verdict JSON).
    pub render: fn(&[u8]) -> (String, String),
}

impl Deferred {
    fn into_entry(self) -> Entry {
        let (call, verdict) = (self.render)(&self.data[..self.len as usize]);
        Entry {
            ts: self.ts,
            generation: self.generation,
            call,
            verdict,
        }
    }
}

// Deliberately large: the bounded channel's preallocated slots hold `Deferred` by value.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Entry(Box<Entry>),
    // By value: the channel's blocks hold it, so the call path allocates nothing per entry.
    Deferred(Deferred),
    /// An entry that overflowed into the spill queue, with the bytes it holds there.
    Spilled(Entry, usize),
    Flush(mpsc::Sender<()>),
}

/// A handle to the background writer. Dropping it flushes and stops the writer.
pub struct DecisionLog {
    tx: Option<(mpsc::SyncSender<Msg>, mpsc::Sender<Msg>)>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    max_backlog_bytes: usize,
    on_failure: OnFailure,
}

/// Time between attempts to write again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Most time between checkpoints while writing.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

struct Writer {
    chain: Chain,
    shared: Arc<Shared>,
    fsync: Duration,
    synced: Instant,
    on_checkpoint: Option<CheckpointSink>,
    checkpointed: Instant,
    last_checkpoint: Checkpoint,
    /// Records appended since the last settle (a failing writer is healthy again only
    /// once one of them reached the file).
    appended: u64,
    /// Entries lost since the last outage record.
    lost_unrecorded: u64,
    /// The chain in memory may be ahead of the disk (a failed write not yet reconciled):
    /// nothing is appended until it is re-read from the files.
    stale: bool,
    /// The last attempt to write again while failing: at most one per [`RETRY`], however
    /// many entries arrive (each attempt re-reads the newest segment).
    probed: Instant,
}

impl Writer {
    /// While failing: tries to write an outage record (how many entries were lost, and
    /// why), so the gap is in the log itself; on success the writer is healthy again.
    fn probe(&mut self) {
        if !self.shared.failing.load(Ordering::Relaxed) || self.probed.elapsed() < RETRY {
            return;
        }
        self.probed = Instant::now();
        if self.stale {
            match self.chain.recover() {
                Ok(lost) => {
                    self.count_lost(lost);
                    self.stale = false;
                }
                // Still cannot even read and repair the files: keep failing.
                Err(_) => return,
            }
        }
        let reason = self
            .shared
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        let outage = Entry {
            ts: self.chain.last_ts,
            generation: 0,
            call: String::new(),
            verdict: serde_json::json!({"decision_log_outage": {"lost": self.lost_unrecorded, "reason": reason}})
                .to_string(),
        };
        if self.chain.append(outage).is_ok() {
            self.appended += 1;
            self.lost_unrecorded = 0;
            self.settle();
        } else {
            self.stale = true;
        }
    }

    fn count_lost(&mut self, n: u64) {
        self.shared.lost.fetch_add(n, Ordering::Relaxed);
        self.lost_unrecorded += n;
    }

    fn write(&mut self, e: Entry) {
        self.probe();
        if self.shared.failing.load(Ordering::Relaxed) {
            self.count_lost(1);
            return;
        }
        let segments = self.chain.segments;
        if let Err(err) = self.chain.append(e) {
            self.fail(&err, 1);
        } else {
            self.appended += 1;
            if self.chain.segments != segments {
                self.checkpoint(true);
            }
        }
    }

    /// A write failed: the entry (and any buffered ones that did not reach the disk) are
    /// lost and counted; the chain is re-read from disk so the next record links right.
    fn fail(&mut self, err: &LogError, entries: u64) {
        let was = self.shared.failing.swap(true, Ordering::Relaxed);
        *self.shared.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
        self.count_lost(entries);
        match self.chain.recover() {
            Ok(unflushed) => {
                self.count_lost(unflushed);
                self.stale = false;
            }
            Err(_) => self.stale = true,
        }
        if !was {
            eprintln!("fanzha: decision log: {err}; entries are lost until it can write again");
        }
    }

    /// After a drain: to the operating system at once, to disk at most every `fsync`.
    fn settle(&mut self) {
        let r = self.chain.flush().and_then(|()| {
            if self.synced.elapsed() >= self.fsync {
                self.synced = Instant::now();
                self.chain.sync()
            } else {
                Ok(())
            }
        });
        let appended = std::mem::take(&mut self.appended);
        match r {
            Err(err) => self.fail(&err, 0),
            Ok(()) if appended == 0 => {}
            Ok(()) => {
                if self.shared.failing.swap(false, Ordering::Relaxed) {
                    *self.shared.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    eprintln!("fanzha: decision log writing again");
                }
                self.checkpoint(false);
            }
        }
    }

    fn checkpoint(&mut self, now: bool) {
        if self.shared.failing.load(Ordering::Relaxed) {
            return;
        }
        if !now && self.checkpointed.elapsed() < CHECKPOINT_EVERY {
            return;
        }
        let c = self.chain.checkpoint();
        if c == self.last_checkpoint {
            return;
        }
        // A checkpoint names only records on disk.
        if self.chain.sync().is_err() {
            return;
        }
        if let Some(f) = self.on_checkpoint.as_mut() {
            f(&c);
        }
        self.checkpointed = Instant::now();
        self.last_checkpoint = c;
    }

    fn handle(&mut self, msg: Msg, spill: Option<&mpsc::Receiver<Msg>>) {
        match msg {
            Msg::Entry(e) => self.write(*e),
            Msg::Deferred(d) => self.write(d.into_entry()),
            Msg::Spilled(e, bytes) => {
                self.shared
                    .spilled_bytes
                    .fetch_sub(bytes, Ordering::Relaxed);
                self.write(e)
            }
            Msg::Flush(done) => {
                // Everything queued before the flush, spilled entries too.
                if let Some(spill) = spill {
                    while let Ok(m) = spill.try_recv() {
                        self.handle(m, None);
                    }
                }
                self.settle();
                let _ = self.chain.sync();
                self.checkpoint(true);
                let _ = done.send(());
            }
        }
    }
}

impl DecisionLog {
    /// Opens (or continues) the log in `dir` with the default settings.
    pub fn open(dir: &Path, key: LogKey) -> Result<DecisionLog, LogError> {
        DecisionLog::open_with(dir, LogConfig::new(key))
    }

    /// Opens (or continues) the log in `dir` and starts its writer.
    pub fn open_with(dir: &Path, config: LogConfig) -> Result<DecisionLog, LogError> {
        let on_failure = config.on_failure;
        let max_backlog_bytes = config.max_backlog_bytes;
        let chain = Chain::open(dir, config.key.clone())?;
        let shared = Arc::new(Shared::default());
        let mut writer = Writer {
            last_checkpoint: chain.checkpoint(),
            chain,
            shared: shared.clone(),
            fsync: config.fsync,
            synced: Instant::now(),
            on_checkpoint: config.on_checkpoint,
            checkpointed: Instant::now(),
            appended: 0,
            lost_unrecorded: 0,
            stale: false,
            probed: Instant::now(),
        };
        // Two queues. The bounded one's slots are allocated once: the call path neither
        // allocates nor frees memory the idle-priority writer allocated. When it is full —
        // the writer starved of CPU, 16 k entries behind — entries spill to a second queue
        // bounded in bytes instead of making the call wait; past that they are dropped and
        // counted, never unbounded memory. (Spilled entries may be written after later
        // ones; each keeps its `ts`.)
        let (tx, rx) = mpsc::sync_channel::<Msg>(LOG_QUEUE);
        let (spill_tx, spill_rx) = mpsc::channel::<Msg>();
        let worker = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || {
                lower_priority();
                // Poll rather than block in recv(): a sender then never has to wake the
                // writer (a futex call and a context switch on the call path); the writer
                // drains in batches every few milliseconds instead.
                loop {
                    let mut wrote = false;
                    let mut open = true;
                    for (q, other) in [(&rx, Some(&spill_rx)), (&spill_rx, None)] {
                        loop {
                            match q.try_recv() {
                                Ok(msg) => {
                                    wrote = true;
                                    writer.handle(msg, other);
                                }
                                Err(mpsc::TryRecvError::Empty) => break,
                                Err(mpsc::TryRecvError::Disconnected) => {
                                    // The handle is gone; the spill queue is drained next.
                                    if other.is_some() {
                                        open = false;
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    if wrote {
                        writer.settle();
                    }
                    if !open {
                        writer.settle();
                        let _ = writer.chain.sync();
                        writer.checkpoint(true);
                        return;
                    }
                    if writer.shared.failing.load(Ordering::Relaxed) {
                        std::thread::sleep(RETRY);
                        writer.probe();
                    } else {
                        std::thread::sleep(POLL);
                    }
                }
            })?;
        Ok(DecisionLog {
            tx: Some((tx, spill_tx)),
            worker: Some(worker),
            shared,
            max_backlog_bytes,
            on_failure,
        })
    }

    /// Queues a decision (never blocks on disk).
    pub fn log(&self, e: Entry) {
        self.queue(Msg::Entry(Box::new(e)));
    }

    fn queue(&self, msg: Msg) {
        let Some((tx, spill)) = &self.tx else { return };
        let Err(mpsc::TrySendError::Full(msg)) = tx.try_send(msg) else {
            return;
        };
        let e = match msg {
            Msg::Entry(e) => *e,
            Msg::Deferred(d) => d.into_entry(),
            other => {
                let _ = spill.send(other);
                return;
            }
        };
        let bytes = e.bytes();
        let held = self
            .shared
            .spilled_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if held + bytes > self.max_backlog_bytes {
            self.shared
                .spilled_bytes
                .fetch_sub(bytes, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = spill.send(Msg::Spilled(e, bytes));
    }

    /// Queues a decision to be rendered by the writer (see [`Deferred`]).
    pub fn log_deferred(&self, d: Deferred) {
        self.queue(Msg::Deferred(d));
    }

    /// Whether calls are to be refused now: the log cannot be written and the policy is
    /// [`OnFailure::Refuse`]. One atomic load (the call path asks on every call).
    pub fn refusing(&self) -> bool {
        self.on_failure == OnFailure::Refuse && self.shared.failing.load(Ordering::Relaxed)
    }

    /// Whether the writer is writing, and what it lost.
    pub fn health(&self) -> LogHealth {
        let failing = self.shared.failing.load(Ordering::Relaxed);
        LogHealth {
            writing: !failing,
            reason: failing
                .then(|| {
                    self.shared
                        .reason
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                })
                .flatten(),
            lost: self.shared.lost.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Waits until everything queued so far is written and on disk.
    pub fn flush(&self) {
        if let Some((tx, _)) = &self.tx {
            let (done, wait) = mpsc::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Stops the writer after it wrote everything queued; the error of its last write, if
    /// it was failing.
    pub fn close(mut self) -> Result<(), LogError> {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let h = self.health();
        match h.reason {
            Some(r) if !h.writing => Err(LogError::Io(std::io::Error::other(r))),
            _ => Ok(()),
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::fs;

    fn key() -> LogKey {
        LogKey::new(&[5u8; 32]).unwrap()
    }

    fn entry(ts: i64, n: u64) -> Entry {
        Entry {
            ts,
            generation: 1,
            call: json!({"id": n}).to_string(),
            verdict: json!({"id": n, "action": "allow"}).to_string(),
        }
    }

    const DAY0: i64 = 1_764_460_800;

    /// A log over three China days (three segments), closed; its last checkpoint.
    fn three_days(dir: &Path) -> Checkpoint {
        let last = Arc::new(Mutex::new(Checkpoint::default()));
        let l = last.clone();
        let mut config = LogConfig::new(key());
        config.on_checkpoint = Some(Box::new(move |c| *l.lock().unwrap() = c.clone()));
        let log = DecisionLog::open_with(dir, config).unwrap();
        for i in 0..30 {
            log.log(entry(DAY0 + (i / 10) as i64 * 86_400 + i as i64, i));
        }
        log.close().unwrap();
        let c = last.lock().unwrap().clone();
        c
    }

    #[test]
    fn a_burst_beyond_the_queue_spills_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        let n = LOG_QUEUE as u64 * 3;
        for i in 0..n {
            log.log(entry(DAY0 + (i / 1000) as i64, i));
        }
        log.flush();
        let v = verify(dir.path(), &key(), None).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records, n);
        assert_eq!(
            log.health(),
            LogHealth {
                writing: true,
                ..LogHealth::default()
            }
        );
        log.close().unwrap();
    }

    #[test]
    fn the_chain_verifies_continues_and_survives_retention() {
        let dir = tempfile::tempdir().unwrap();
        let c = three_days(dir.path());
        assert_eq!((c.segments, c.last_seq), (3, 30));
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.records, v.segments), (30, 3));
        // Reopen and continue the chain.
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        log.log(entry(DAY0 + 2 * 86_400 + 100, 30));
        log.close().unwrap();
        assert_eq!(verify(dir.path(), &key(), Some(&c)).unwrap().records, 31);
        // Retention drops the first day; the rest verifies from the MAC'd anchor, and the
        // dropped range is accounted for (the checkpoint's segment count still holds).
        let r = apply_retention(dir.path(), &key(), DAY0 + 86_400).unwrap();
        assert_eq!(r.dropped_segments, 1);
        assert_eq!(
            r.anchor.as_ref().map(|a| (a.seq, a.segments_dropped)),
            Some((10, 1))
        );
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.first_seq, v.records, v.segments), (Some(11), 21, 3));
        // Under another key nothing verifies.
        let other = LogKey::new(&[6u8; 32]).unwrap();
        assert!(!verify(dir.path(), &other, None).unwrap().ok);
    }

    fn last_segment(dir: &Path) -> std::path::PathBuf {
        segments(dir).unwrap().pop().unwrap().1
    }

    #[test]
    fn an_edited_record_is_found_even_with_its_hash_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let c = three_days(dir.path());
        let path = last_segment(dir.path());
        let text = fs::read_to_string(&path)
            .unwrap()
            .replacen("\"allow\"", "\"block\"", 1);
        fs::write(&path, &text).unwrap();
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(!v.ok);
        let e = v.error.unwrap();
        assert!(
            e.contains("altered") && e.contains("seg-000000000021.jsonl line 1"),
            "{e}"
        );
        // Recomputing the MAC needs the key: one recomputed under a guessed key fails too.
        let guess = LogKey::new(&[0u8; 32]).unwrap();
        let line = text.lines().next().unwrap();
        let (unmacced, _) = chain::split_mac(line).unwrap();
        let forged = format!(
            "{}{}{}\"}}",
            &unmacced[..unmacced.len() - 1],
            chain::MAC_MEMBER,
            guess.mac(&unmacced)
        );
        fs::write(&path, text.replacen(line, &forged, 1)).unwrap();
        assert!(verify(dir.path(), &key(), None)
            .unwrap()
            .error
            .unwrap()
            .contains("altered"));
    }

    #[test]
    fn removed_records_and_segments_are_found_against_the_checkpoint() {
        // A record from the middle.
        let dir = tempfile::tempdir().unwrap();
        let c = three_days(dir.path());
        let path = last_segment(dir.path());
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let without_second: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| *l)
            .collect();
        fs::write(&path, without_second.join("\n") + "\n").unwrap();
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(v.error.unwrap().contains("records missing"));
        // The newest records cut off: whole without the checkpoint, found with it.
        fs::write(&path, lines[..5].join("\n") + "\n").unwrap();
        assert!(verify(dir.path(), &key(), None).unwrap().ok);
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(v.error.unwrap().contains("missing from the end"), "cut off");
        // The newest segment deleted.
        fs::remove_file(&path).unwrap();
        assert!(verify(dir.path(), &key(), None).unwrap().ok);
        let v = verify(dir.path(), &key(), Some(&c)).unwrap();
        assert!(!v.ok, "{v:?}");
        // A segment from the middle.
        let dir = tempfile::tempdir().unwrap();
        let c = three_days(dir.path());
        let middle = segments(dir.path()).unwrap()[1].1.clone();
        fs::remove_file(middle).unwrap();
        let e = verify(dir.path(), &key(), Some(&c)).unwrap().error.unwrap();
        assert!(e.contains("segments removed or reordered"), "{e}");
    }

    #[test]
    fn old_segments_dropped_behind_a_forged_anchor_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let c = three_days(dir.path());
        let segs = segments(dir.path()).unwrap();
        let text = fs::read_to_string(&segs[1].1).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        for (_, p) in &segs[..2] {
            fs::remove_file(p).unwrap();
        }
        // An anchor as an older version wrote it (unkeyed), and one MAC'd with a guess.
        let unkeyed = json!({"seq": last["seq"], "mac": last["mac"], "segments_dropped": 2, "anchor_mac": "00"});
        fs::write(dir.path().join("anchor.json"), unkeyed.to_string()).unwrap();
        let e = verify(dir.path(), &key(), Some(&c)).unwrap().error.unwrap();
        assert!(e.contains("anchor.json"), "{e}");
    }

    /// Verified while the writer runs, the newest segment may end in a record half written:
    /// that is not yet a record, not a broken chain.
    #[test]
    fn a_line_still_being_written_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        for i in 0..3 {
            log.log(entry(DAY0 + i, i as u64));
        }
        log.close().unwrap();
        let path = last_segment(dir.path());
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"seq\":4,\"prev\":\"");
        fs::write(&path, &text).unwrap();
        let v = verify(dir.path(), &key(), None).unwrap();
        assert!(v.ok && v.partial_tail && v.records == 3, "{v:?}");
    }

    #[test]
    fn a_torn_tail_is_cut_whole_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        for i in 0..5 {
            log.log(entry(DAY0 + i, i as u64));
        }
        log.close().unwrap();
        let path = last_segment(dir.path());
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"seq\":6,\"prev");
        fs::write(&path, &text).unwrap();
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        assert!(
            fs::read_to_string(&path).unwrap().ends_with("}\n"),
            "cut to whole records"
        );
        log.log(entry(DAY0 + 9, 9));
        log.close().unwrap();
        let v = verify(dir.path(), &key(), None).unwrap();
        assert!(v.ok && v.records == 6, "{v:?}");
    }

    /// A writer that cannot write says so and counts what it loses; when it can write again
    /// the chain goes on from the last record on disk, still whole.
    #[test]
    fn a_failing_writer_reports_counts_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), key()).unwrap();
        log.log(entry(DAY0, 1));
        log.flush();
        // The next day's segment cannot be created: a directory stands in its place.
        let blocker = dir.path().join("seg-000000000002.jsonl");
        fs::create_dir(&blocker).unwrap();
        log.log(entry(DAY0 + 86_400, 2));
        log.log(entry(DAY0 + 86_400 + 1, 3));
        log.flush();
        let h = log.health();
        assert!(!h.writing, "{h:?}");
        assert!(h.reason.as_deref().unwrap_or("").contains("I/O"), "{h:?}");
        assert_eq!(h.lost, 2);
        fs::remove_dir(&blocker).unwrap();
        log.log(entry(DAY0 + 86_400 + 2, 4));
        log.flush();
        let h = log.health();
        assert!(h.writing, "{h:?}");
        assert_eq!(h.lost, 2);
        log.close().unwrap();
        // The two lost entries are on record where they were lost.
        let v = verify(dir.path(), &key(), None).unwrap();
        assert!(v.ok && v.records == 3, "{v:?}");
        let all: String = segments(dir.path())
            .unwrap()
            .iter()
            .map(|(_, p)| fs::read_to_string(p).unwrap())
            .collect();
        assert!(all.contains("\"decision_log_outage\":{\"lost\":2"), "{all}");
    }

    /// While failing and idle, the writer tries again by itself (so a policy that refuses
    /// calls, which then stop coming, still sees it recover).
    #[test]
    fn a_failing_writer_recovers_without_new_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LogConfig::new(key());
        config.on_failure = OnFailure::Refuse;
        let log = DecisionLog::open_with(dir.path(), config).unwrap();
        log.log(entry(DAY0, 1));
        log.flush();
        let blocker = dir.path().join("seg-000000000002.jsonl");
        fs::create_dir(&blocker).unwrap();
        log.log(entry(DAY0 + 86_400, 2));
        log.flush();
        assert!(log.refusing());
        fs::remove_dir(&blocker).unwrap();
        let t = Instant::now();
        while log.refusing() {
            assert!(t.elapsed() < Duration::from_secs(5), "no recovery");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(log.health().lost, 1);
        log.close().unwrap();
    }
}
