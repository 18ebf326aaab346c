//! The decision log (R12.1 authentication logs, R13.1 traceback): every verdict appended
//! with its call and snapshot generation, hash-chained so a deleted or altered record is
//! detectable. Writing happens on a background thread fed by a channel, so logging never
//! caps the verdict rate.
//!
//! Layout: `DIR/seg-<first seq>.jsonl` segments (rotated by size and by China calendar day of
//! the calls), and `DIR/anchor.json` = the last record dropped by retention, from which the
//! remaining chain is verified.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Records per segment before rotating.
pub const SEGMENT_RECORDS: u64 = 1_000_000;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One decision to log. `call` and `verdict` are JSON texts, rendered by the front end that
/// knows them (so the writer thread only frames, hashes and writes).
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

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// File system.
    #[error("decision log I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Unparseable record.
    #[error("decision log record {0} is not JSON")]
    Corrupt(u64),
}

/// The hash of a record: SHA-256 over its line exactly as written, without the final
/// `,"hash":"…"` member (which the writer appends last). Byte-exact, so any edit shows.
fn hash_line(unhashed: &str) -> String {
    hex::encode(Sha256::digest(unhashed.as_bytes()))
}

const HASH_MEMBER: &str = ",\"hash\":\"";

/// Splits a written line into (the text that was hashed, the stated hash).
fn split_hash(line: &str) -> Option<(String, &str)> {
    let at = line.rfind(HASH_MEMBER)?;
    let stated = line[at + HASH_MEMBER.len()..].strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..at]), stated))
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut v = Vec::new();
    if !dir.exists() {
        return Ok(v);
    }
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(seq) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            if let Ok(seq) = seq.parse() {
                v.push((seq, p));
            }
        }
    }
    v.sort();
    Ok(v)
}

fn china_day(ts: i64) -> i64 {
    (ts + 8 * 3600).div_euclid(86_400)
}

struct Chain {
    dir: PathBuf,
    seq: u64,
    prev: String,
    out: Option<BufWriter<File>>,
    seg_records: u64,
    seg_day: i64,
}

impl Chain {
    /// Opens the chain where it ended; a torn last line (killed writer) is cut off.
    fn open(dir: &Path) -> Result<Chain, LogError> {
        fs::create_dir_all(dir)?;
        let mut chain = Chain {
            dir: dir.to_path_buf(),
            seq: 0,
            prev: GENESIS.into(),
            out: None,
            seg_records: 0,
            seg_day: i64::MIN,
        };
        if let Some(a) = read_anchor(dir)? {
            chain.seq = a.0;
            chain.prev = a.1;
        }
        if let Some((_, last)) = segments(dir)?.pop() {
            let text = fs::read_to_string(&last)?;
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            if complete.len() != text.len() {
                fs::write(&last, complete)?;
            }
            let mut records = 0;
            for line in complete.lines() {
                let v: Value =
                    serde_json::from_str(line).map_err(|_| LogError::Corrupt(chain.seq + 1))?;
                chain.seq = v["seq"].as_u64().unwrap_or(chain.seq);
                chain.prev = v["hash"].as_str().unwrap_or(GENESIS).to_string();
                chain.seg_day = v["ts"].as_i64().map(china_day).unwrap_or(i64::MIN);
                records += 1;
            }
            chain.seg_records = records;
            chain.out = Some(BufWriter::new(OpenOptions::new().append(true).open(&last)?));
        }
        Ok(chain)
    }

    fn append(&mut self, e: Entry) -> Result<(), LogError> {
        let day = china_day(e.ts);
        if self.out.is_none()
            || self.seg_records >= SEGMENT_RECORDS
            || (day != self.seg_day && self.seg_records > 0)
        {
            if let Some(mut o) = self.out.take() {
                o.flush()?;
            }
            let path = self.dir.join(format!("seg-{:012}.jsonl", self.seq + 1));
            self.out = Some(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            ));
            self.seg_records = 0;
        }
        self.seg_day = day;
        self.seq += 1;
        let call = if e.call.is_empty() {
            "null"
        } else {
            e.call.as_str()
        };
        let verdict = if e.verdict.is_empty() {
            "null"
        } else {
            e.verdict.as_str()
        };
        let mut line = format!(
            "{{\"seq\":{},\"prev\":\"{}\",\"ts\":{},\"generation\":{},\"call\":{call},\"verdict\":{verdict}}}",
            self.seq, self.prev, e.ts, e.generation
        );
        let hash = hash_line(&line);
        line.pop();
        let out = self.out.as_mut().expect("open segment");
        writeln!(out, "{line}{HASH_MEMBER}{hash}\"}}")?;
        self.prev = hash;
        self.seg_records += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if let Some(o) = self.out.as_mut() {
            o.flush()?;
        }
        Ok(())
    }
}

fn read_anchor(dir: &Path) -> Result<Option<(u64, String)>, LogError> {
    let p = dir.join("anchor.json");
    if !p.exists() {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_str(&fs::read_to_string(p)?).map_err(|_| LogError::Corrupt(0))?;
    Ok(Some((
        v["seq"].as_u64().unwrap_or(0),
        v["hash"].as_str().unwrap_or(GENESIS).to_string(),
    )))
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
    Flush(mpsc::Sender<()>),
}

/// A handle to the background writer. Dropping it flushes and stops the writer.
pub struct DecisionLog {
    tx: Option<(mpsc::SyncSender<Msg>, mpsc::Sender<Msg>)>,
    worker: Option<JoinHandle<Result<(), LogError>>>,
}

impl DecisionLog {
    /// Opens (or continues) the log in `dir` and starts its writer.
    pub fn open(dir: &Path) -> Result<DecisionLog, LogError> {
        let mut chain = Chain::open(dir)?;
        // Two queues. The bounded one's slots are allocated once: the call path neither
        // allocates nor frees memory the idle-priority writer allocated (glibc's arena lock
        // would then tie an answer to a thread that may not run for milliseconds). When it
        // is full — the writer starved of CPU, 16 k entries behind — entries spill to an
        // unbounded queue instead of making the call wait: never a stall, never a lost
        // record (spilled entries may be written after later ones; each keeps its `ts`).
        let (tx, rx) = mpsc::sync_channel::<Msg>(LOG_QUEUE);
        let (spill_tx, spill_rx) = mpsc::channel::<Msg>();
        let worker = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || {
                lower_priority();
                // Drains a queue; `Ok(false)` once its senders are gone and it is empty.
                let drain = |chain: &mut Chain,
                             rx: &mpsc::Receiver<Msg>,
                             spill: Option<&mpsc::Receiver<Msg>>|
                 -> Result<(bool, bool), LogError> {
                    let mut wrote = false;
                    loop {
                        let msg = match rx.try_recv() {
                            Ok(msg) => msg,
                            Err(mpsc::TryRecvError::Empty) => return Ok((true, wrote)),
                            Err(mpsc::TryRecvError::Disconnected) => return Ok((false, wrote)),
                        };
                        wrote = true;
                        match msg {
                            Msg::Entry(e) => chain.append(*e)?,
                            Msg::Deferred(d) => chain.append(d.into_entry())?,
                            Msg::Flush(done) => {
                                // Everything queued before the flush, spilled entries too.
                                if let Some(spill) = spill {
                                    while let Ok(m) = spill.try_recv() {
                                        match m {
                                            Msg::Entry(e) => chain.append(*e)?,
                                            Msg::Deferred(d) => chain.append(d.into_entry())?,
                                            Msg::Flush(d) => drop(d.send(())),
                                        }
                                    }
                                }
                                chain.flush()?;
                                let _ = done.send(());
                            }
                        }
                    }
                };
                // Poll rather than block in recv(): a sender then never has to wake the
                // writer (a futex call and a context switch on the call path); the writer
                // drains in batches every few milliseconds instead.
                loop {
                    let (open, a) = drain(&mut chain, &rx, Some(&spill_rx))?;
                    let (spill_open, b) = drain(&mut chain, &spill_rx, None)?;
                    if a || b {
                        chain.flush()?;
                    }
                    if !open && !spill_open {
                        return chain.flush();
                    }
                    std::thread::sleep(POLL);
                }
            })?;
        Ok(DecisionLog {
            tx: Some((tx, spill_tx)),
            worker: Some(worker),
        })
    }

    /// Queues a decision (never blocks on disk).
    pub fn log(&self, e: Entry) {
        self.queue(Msg::Entry(Box::new(e)));
    }

    fn queue(&self, msg: Msg) {
        if let Some((tx, spill)) = &self.tx {
            if let Err(mpsc::TrySendError::Full(msg)) = tx.try_send(msg) {
                let _ = spill.send(msg);
            }
        }
    }

    /// Queues a decision to be rendered by the writer (see [`Deferred`]).
    pub fn log_deferred(&self, d: Deferred) {
        self.queue(Msg::Deferred(d));
    }

    /// Waits until everything queued so far is written.
    pub fn flush(&self) {
        if let Some((tx, _)) = &self.tx {
            let (done, wait) = mpsc::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Stops the writer, returning its error if it failed.
    pub fn close(mut self) -> Result<(), LogError> {
        self.tx.take();
        match self.worker.take() {
            Some(w) => w.join().unwrap_or(Ok(())),
            None => Ok(()),
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

/// The result of verifying the chain.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Verification {
    /// Whether every record is intact and linked.
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers present.
    pub first_seq: Option<u64>,
    /// Last.
    pub last_seq: Option<u64>,
    /// Where and why it broke.
    pub error: Option<String>,
}

/// Verifies the chain in `dir` from its anchor (or genesis) to the end.
pub fn verify(dir: &Path) -> Result<Verification, LogError> {
    let (mut seq, mut prev) = read_anchor(dir)?.unwrap_or((0, GENESIS.to_string()));
    let mut v = Verification {
        ok: true,
        records: 0,
        first_seq: None,
        last_seq: None,
        error: None,
    };
    for (_, path) in segments(dir)? {
        let f = BufReader::new(File::open(&path)?);
        for (i, line) in f.lines().enumerate() {
            let line = line?;
            let fail = |why: String| Verification {
                ok: false,
                error: Some(format!(
                    "{} line {}: {why}",
                    path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                    i + 1
                )),
                ..v.clone()
            };
            let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&line) else {
                return Ok(fail("not a JSON record".into()));
            };
            let Some((unhashed, stated)) = split_hash(&line) else {
                return Ok(fail("record carries no hash".into()));
            };
            let stated = stated.to_string();
            let this_seq = body.get("seq").and_then(Value::as_u64).unwrap_or(0);
            if this_seq != seq + 1 {
                return Ok(fail(format!(
                    "sequence jumps from {seq} to {this_seq}: records missing"
                )));
            }
            if body.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
                return Ok(fail(format!(
                    "record {this_seq} does not link to its predecessor"
                )));
            }
            if hash_line(&unhashed) != stated {
                return Ok(fail(format!(
                    "record {this_seq} was altered (hash mismatch)"
                )));
            }
            v.first_seq.get_or_insert(this_seq);
            v.last_seq = Some(this_seq);
            v.records += 1;
            seq = this_seq;
            prev = stated;
        }
    }
    Ok(v)
}

/// Drops whole segments whose newest call is older than `cutoff` (unix seconds), keeping the
/// newest segment always; the anchor moves to the last dropped record so the rest still
/// verifies. Returns the number of segments dropped.
pub fn apply_retention(dir: &Path, cutoff: i64) -> Result<usize, LogError> {
    let segs = segments(dir)?;
    let mut dropped = 0;
    for (_, path) in segs.iter().take(segs.len().saturating_sub(1)) {
        let text = fs::read_to_string(path)?;
        let Some(last) = text.lines().last() else {
            continue;
        };
        let v: Value = serde_json::from_str(last).map_err(|_| LogError::Corrupt(0))?;
        if v["ts"].as_i64().unwrap_or(i64::MAX) >= cutoff {
            break;
        }
        let anchor = json!({"seq": v["seq"], "hash": v["hash"]});
        let tmp = dir.join("anchor.json.tmp");
        fs::write(&tmp, anchor.to_string())?;
        fs::rename(&tmp, dir.join("anchor.json"))?;
        fs::remove_file(path)?;
        dropped += 1;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, n: u64) -> Entry {
        Entry {
            ts,
            generation: 1,
            call: json!({"id": n}).to_string(),
            verdict: json!({"id": n, "action": "allow"}).to_string(),
        }
    }

    #[test]
    fn a_burst_beyond_the_queue_spills_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path()).unwrap();
        let n = LOG_QUEUE as u64 * 3;
        for i in 0..n {
            log.log(entry(1_764_460_800 + (i / 1000) as i64, i));
        }
        log.flush();
        let v = verify(dir.path()).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records, n);
        log.close().unwrap();
    }

    #[test]
    fn chain_verifies_detects_tampering_and_survives_retention() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path()).unwrap();
        // Three China days: segments rotate per day.
        for i in 0..30 {
            log.log(entry(
                1_764_460_800 + (i / 10) as i64 * 86_400 + i as i64,
                i,
            ));
        }
        log.close().unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 3);
        let v = verify(dir.path()).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records, 30);
        // Reopen and continue the chain.
        let log = DecisionLog::open(dir.path()).unwrap();
        log.log(entry(1_764_460_800 + 2 * 86_400 + 100, 30));
        log.close().unwrap();
        assert_eq!(verify(dir.path()).unwrap().records, 31);
        // Retention drops the first day; the rest still verifies from the anchor.
        assert_eq!(
            apply_retention(dir.path(), 1_764_460_800 + 86_400).unwrap(),
            1
        );
        let v = verify(dir.path()).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.first_seq, v.records), (Some(11), 21));
        // Alter one record: detected.
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let text = fs::read_to_string(&path)
            .unwrap()
            .replacen("\"allow\"", "\"block\"", 1);
        fs::write(&path, text).unwrap();
        let v = verify(dir.path()).unwrap();
        assert!(!v.ok);
        assert!(v.error.unwrap().contains("altered"));
    }

    #[test]
    fn deleted_record_is_detected_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path()).unwrap();
        for i in 0..5 {
            log.log(entry(1_764_460_800 + i, i as u64));
        }
        log.close().unwrap();
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        fs::write(
            &path,
            format!(
                "{}\n{}\n{}\n{}\n{{\"seq\":",
                lines[0], lines[1], lines[3], lines[4]
            ),
        )
        .unwrap();
        let v = verify(dir.path()).unwrap();
        assert!(!v.ok);
        assert!(v.error.unwrap().contains("records missing"));
        // Reopening cuts the torn line (a writer killed mid-record).
        drop(DecisionLog::open(dir.path()).unwrap());
        assert!(fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }
}
