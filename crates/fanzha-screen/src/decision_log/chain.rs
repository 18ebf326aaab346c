//! The log's files: segments of records chained by an HMAC under a key kept outside the
//! directory, and the anchor retention leaves behind.
//!
//! A record is one line: `{"seq","prev","ts","generation","call","verdict","mac"}`, where
//! `mac` is the HMAC-SHA256 of the line as written up to `,"mac"` (closed with `}`), and
//! `prev` the previous record's `mac`. Without the key no record can be edited, inserted or
//! re-chained; what can still be done without it — removing the newest records or whole
//! segments — is found against the checkpoints the writer hands out ([`Checkpoint`]).

use super::{LogError, LogKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Records per segment before rotating.
pub const SEGMENT_RECORDS: u64 = 1_000_000;
/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub(super) const MAC_MEMBER: &str = ",\"mac\":\"";

/// Where the log stood, as the writer reports it after writing: kept by the caller
/// somewhere the log's own files cannot rewrite (the ledger's store), so that records or
/// segments removed from the end are found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Segments the log has had (those dropped by retention included).
    pub segments: u64,
    /// The newest record's seq.
    pub last_seq: u64,
    /// Its MAC.
    pub last_mac: String,
}

/// What retention left: the last record it dropped, and how many segments, MAC'd so that
/// dropping more without the key shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The newest dropped record's seq.
    pub seq: u64,
    /// Its MAC.
    pub mac: String,
    /// Segments dropped so far.
    pub segments_dropped: u64,
    /// The anchor's own MAC.
    pub anchor_mac: String,
}

impl Anchor {
    pub(super) fn new(key: &LogKey, seq: u64, mac: &str, segments_dropped: u64) -> Anchor {
        Anchor {
            seq,
            mac: mac.to_string(),
            segments_dropped,
            anchor_mac: key.anchor_mac(seq, mac, segments_dropped),
        }
    }
}

pub(super) fn read_anchor(dir: &Path) -> Result<Option<Anchor>, LogError> {
    let p = dir.join("anchor.json");
    match fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|_| LogError::BadAnchor("anchor.json is not an anchor".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn write_anchor(dir: &Path, a: &Anchor) -> Result<(), LogError> {
    replace_file(
        &dir.join("anchor.json"),
        serde_json::to_string(a).expect("serialises").as_bytes(),
    )
}

/// Writes a file whole or not at all: a temporary file, synced, renamed over it.
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The segments, by first seq.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
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

pub(super) fn china_day(ts: i64) -> i64 {
    (ts + 8 * 3600).div_euclid(86_400)
}

/// Splits a written line into (the text that was MAC'd, the stated MAC).
pub(super) fn split_mac(line: &str) -> Option<(String, &str)> {
    let at = line.rfind(MAC_MEMBER)?;
    let stated = line[at + MAC_MEMBER.len()..].strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..at]), stated))
}

/// The writer's end of the chain.
pub(super) struct Chain {
    dir: PathBuf,
    key: LogKey,
    pub(super) seq: u64,
    pub(super) prev: String,
    out: Option<BufWriter<File>>,
    seg_records: u64,
    seg_day: i64,
    /// Segments the log has had, dropped ones included.
    pub(super) segments: u64,
    /// Written since the last fsync.
    unsynced: bool,
    /// The newest record's call time.
    pub(super) last_ts: i64,
}

impl Chain {
    /// Opens the chain where it ended. A torn last line (a writer killed mid-record, or a
    /// write cut short by a full disk) is cut off by truncating the segment to its last
    /// whole record.
    pub(super) fn open(dir: &Path, key: LogKey) -> Result<Chain, LogError> {
        fs::create_dir_all(dir)?;
        let mut chain = Chain {
            dir: dir.to_path_buf(),
            key,
            seq: 0,
            prev: GENESIS.into(),
            out: None,
            seg_records: 0,
            seg_day: i64::MIN,
            segments: 0,
            unsynced: false,
            last_ts: 0,
        };
        if let Some(a) = read_anchor(dir)? {
            chain.seq = a.seq;
            chain.prev = a.mac;
            chain.segments = a.segments_dropped;
        }
        let segs = segments(dir)?;
        chain.segments += segs.len() as u64;
        if let Some((_, last)) = segs.last() {
            let text = fs::read_to_string(last)?;
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            if complete.len() != text.len() {
                // One truncate, in place: atomic, and it needs no free space (a rewrite of
                // a large segment could not be made on the full disk it is recovering from).
                let f = OpenOptions::new().write(true).open(last)?;
                f.set_len(complete.len() as u64)?;
                f.sync_all()?;
            }
            let mut records = 0;
            for line in complete.lines() {
                let v: Value =
                    serde_json::from_str(line).map_err(|_| LogError::Corrupt(chain.seq + 1))?;
                chain.seq = v["seq"].as_u64().unwrap_or(chain.seq);
                chain.prev = v["mac"].as_str().unwrap_or(GENESIS).to_string();
                chain.seg_day = v["ts"].as_i64().map(china_day).unwrap_or(i64::MIN);
                chain.last_ts = v["ts"].as_i64().unwrap_or(chain.last_ts);
                records += 1;
            }
            chain.seg_records = records;
            chain.out = Some(BufWriter::new(OpenOptions::new().append(true).open(last)?));
        }
        Ok(chain)
    }

    /// Appends one record; rotates by size and by China calendar day of the calls.
    pub(super) fn append(&mut self, e: super::Entry) -> Result<(), LogError> {
        let day = china_day(e.ts);
        if self.out.is_none()
            || self.seg_records >= SEGMENT_RECORDS
            || (day != self.seg_day && self.seg_records > 0)
        {
            if let Some(mut o) = self.out.take() {
                o.flush()?;
                o.get_ref().sync_data()?;
            }
            let path = self.dir.join(format!("seg-{:012}.jsonl", self.seq + 1));
            self.out = Some(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            ));
            self.seg_records = 0;
            self.segments += 1;
        }
        self.seg_day = day;
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
        let seq = self.seq + 1;
        let mut line = format!(
            "{{\"seq\":{seq},\"prev\":\"{}\",\"ts\":{},\"generation\":{},\"call\":{call},\"verdict\":{verdict}}}",
            self.prev, e.ts, e.generation
        );
        let mac = self.key.mac(&line);
        line.pop();
        let out = self.out.as_mut().expect("open segment");
        writeln!(out, "{line}{MAC_MEMBER}{mac}\"}}")?;
        // Counted only once written to the buffer: a failed write leaves the chain where it
        // was, so the next record links to the last one written.
        self.seq = seq;
        self.prev = mac;
        self.last_ts = e.ts;
        self.seg_records += 1;
        self.unsynced = true;
        Ok(())
    }

    /// Hands what is buffered to the operating system (survives a killed process).
    pub(super) fn flush(&mut self) -> Result<(), LogError> {
        if let Some(o) = self.out.as_mut() {
            o.flush()?;
        }
        Ok(())
    }

    /// Flushes and forces it to disk (survives a power loss).
    pub(super) fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        if self.unsynced {
            if let Some(o) = self.out.as_ref() {
                o.get_ref().sync_data()?;
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// After a failed write: the chain as the disk has it (a torn last line cut off), so
    /// the next record links to the last one that reached the file. Returns how many
    /// records were accepted but did not reach it.
    pub(super) fn recover(&mut self) -> Result<u64, LogError> {
        self.out = None;
        let had = self.seq;
        let again = Chain::open(&self.dir, self.key.clone())?;
        *self = again;
        Ok(had.saturating_sub(self.seq))
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            segments: self.segments,
            last_seq: self.seq,
            last_mac: self.prev.clone(),
        }
    }
}
