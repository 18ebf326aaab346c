//! Checking the chain, and retention (which drops whole segments and leaves a MAC'd
//! anchor so what remains still verifies).

use super::chain::{read_anchor, segments, split_mac, write_anchor, Anchor, Checkpoint, GENESIS};
use super::{LogError, LogKey};
use serde_json::Value;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The result of verifying the log.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Verification {
    /// Whether every record is intact and linked, and the log reaches the checkpoint.
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers present.
    pub first_seq: Option<u64>,
    /// Last.
    pub last_seq: Option<u64>,
    /// Segments the log has had (dropped ones included).
    pub segments: u64,
    /// Whether a checkpoint from outside the log was checked.
    pub checkpoint: bool,
    /// The newest segment ends in a line still being written (verified while the writer
    /// runs): left out, not an error.
    pub partial_tail: bool,
    /// The first bad place and why.
    pub error: Option<String>,
}

/// Verifies the log in `dir` under `key`, from its anchor (or the start) to its end, and,
/// given the newest checkpoint kept outside the log, that nothing was cut from the end.
pub fn verify(
    dir: &Path,
    key: &LogKey,
    checkpoint: Option<&Checkpoint>,
) -> Result<Verification, LogError> {
    let mut v = Verification {
        ok: true,
        records: 0,
        first_seq: None,
        last_seq: None,
        segments: 0,
        checkpoint: checkpoint.is_some(),
        partial_tail: false,
        error: None,
    };
    let fail = |v: &Verification, at: String| Verification {
        ok: false,
        error: Some(at),
        ..v.clone()
    };
    let (mut seq, mut prev) = (0u64, GENESIS.to_string());
    match read_anchor(dir) {
        Ok(None) => {}
        Ok(Some(a)) => {
            if key.anchor_mac(a.seq, &a.mac, a.segments_dropped) != a.anchor_mac {
                return Ok(fail(
                    &v,
                    "anchor.json: its MAC does not match: altered, or not this log's key".into(),
                ));
            }
            (seq, prev) = (a.seq, a.mac);
            v.segments = a.segments_dropped;
        }
        Err(e) => return Ok(fail(&v, format!("anchor.json: {e}"))),
    }
    let anchor_seq = seq;
    let segs = segments(dir)?;
    let mut checkpoint_seen = false;
    for (i, (first, path)) in segs.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        // A segment retention already covered (dropped after its anchor was written, then
        // interrupted before the file was removed).
        if segs
            .get(i + 1)
            .is_some_and(|(next, _)| *next <= anchor_seq + 1)
        {
            continue;
        }
        v.segments += 1;
        if *first != seq + 1 {
            return Ok(fail(
                &v,
                format!(
                    "{name}: starts at seq {first}, expected {}: segments removed or reordered",
                    seq + 1
                ),
            ));
        }
        let last_segment = i + 1 == segs.len();
        let mut f = BufReader::new(File::open(path)?);
        let mut raw = Vec::new();
        let mut n = 0usize;
        loop {
            raw.clear();
            if f.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            n += 1;
            if raw.last() != Some(&b'\n') && last_segment {
                // The writer is still writing this record (a live log): not a record yet.
                v.partial_tail = true;
                break;
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\n', '\r']).to_string();
            let at = format!("{name} line {n}");
            let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&line) else {
                return Ok(fail(&v, format!("{at}: not a JSON record")));
            };
            let Some((unmacced, stated)) = split_mac(&line) else {
                return Ok(fail(
                    &v,
                    format!(
                        "{at}: the record carries no MAC (not written by this version, or altered)"
                    ),
                ));
            };
            let this = body.get("seq").and_then(Value::as_u64).unwrap_or(0);
            if this != seq + 1 {
                return Ok(fail(
                    &v,
                    format!(
                        "{at}: sequence jumps from {seq} to {this}: records missing or reordered"
                    ),
                ));
            }
            if body.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
                return Ok(fail(
                    &v,
                    format!("{at}: record {this} does not link to its predecessor"),
                ));
            }
            if key.mac(&unmacced) != stated {
                return Ok(fail(
                    &v,
                    format!("{at}: record {this} was altered (MAC mismatch)"),
                ));
            }
            if let Some(c) = checkpoint {
                if c.last_seq == this {
                    if c.last_mac != stated {
                        return Ok(fail(&v, format!("{at}: record {this} differs from the checkpoint kept outside the log: rewritten")));
                    }
                    checkpoint_seen = true;
                }
            }
            v.first_seq.get_or_insert(this);
            v.last_seq = Some(this);
            v.records += 1;
            seq = this;
            prev = stated.to_string();
        }
    }
    if let Some(c) = checkpoint {
        if c.last_seq > seq {
            return Ok(fail(
                &v,
                format!("records {}..={} are missing from the end (the checkpoint kept outside the log names {}): cut off", seq + 1, c.last_seq, c.last_seq),
            ));
        }
        if v.segments < c.segments {
            return Ok(fail(
                &v,
                format!(
                    "{} segments are missing (the log has had {}, {} are accounted for)",
                    c.segments - v.segments,
                    c.segments,
                    v.segments
                ),
            ));
        }
        if !checkpoint_seen && c.last_seq > anchor_seq {
            return Ok(fail(
                &v,
                format!("record {} of the checkpoint is not in the log", c.last_seq),
            ));
        }
    }
    Ok(v)
}

/// What retention did.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Retained {
    /// Segments dropped now.
    pub dropped_segments: usize,
    /// The anchor left, if any segment was ever dropped.
    pub anchor: Option<Anchor>,
}

/// Drops whole segments whose newest call is older than `cutoff` (unix seconds), keeping the
/// newest segment always. The anchor moves to the last dropped record first (a MAC'd,
/// atomically replaced file), then the segment goes, so an interrupted drop still verifies.
pub fn apply_retention(dir: &Path, key: &LogKey, cutoff: i64) -> Result<Retained, LogError> {
    let segs = segments(dir)?;
    let mut anchor = read_anchor(dir)?;
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
        let seq = v["seq"].as_u64().unwrap_or(0);
        let mac = v["mac"].as_str().unwrap_or_default();
        let before = anchor.as_ref().map_or(0, |a| a.segments_dropped);
        let a = Anchor::new(key, seq, mac, before + 1);
        write_anchor(dir, &a)?;
        anchor = Some(a);
        fs::remove_file(path)?;
        dropped += 1;
    }
    Ok(Retained {
        dropped_segments: dropped,
        anchor,
    })
}
