//! The audit trail (R17.1): one record for every read of personal data, every ledger write,
//! every login attempt and every account change, written before the answer leaves.
//!
//! Records form a keyed chain: each record's `mac` is an HMAC-SHA256, under a key kept
//! outside the database, of its own fields and the `mac` of the record before it. Editing
//! a record breaks its MAC; removing or reordering records breaks the sequence and the
//! chain; cutting off the newest records is found against a checkpoint (the newest
//! record's seq and MAC at some time) that the audit admin holds outside the store.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A person logged in (or tried).
    Login,
    /// A person logged out.
    Logout,
    /// A request with a credential that was not accepted, or without one.
    Authenticate,
    /// A request refused for the principal's role.
    Authorize,
    /// A ledger record read (personal data masked).
    RecordRead,
    /// A ledger record's history read.
    HistoryRead,
    /// A number view (`/v1/numbers/{n}`).
    NumberView,
    /// Personal data revealed in clear, with a purpose.
    Reveal,
    /// Records exported.
    Export,
    /// A search over personal data.
    Search,
    /// A ledger write (API rows, import, disposal, appeal, backfill).
    LedgerWrite,
    /// An account created.
    AccountAdd,
    /// An account revoked.
    AccountRevoke,
    /// An account's role changed.
    AccountRole,
    /// The personal-data key rotated.
    KeyRotate,
    /// The audit trail read.
    AuditRead,
}

impl Action {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Logout => "logout",
            Action::Authenticate => "authenticate",
            Action::Authorize => "authorize",
            Action::RecordRead => "record_read",
            Action::HistoryRead => "history_read",
            Action::NumberView => "number_view",
            Action::Reveal => "reveal",
            Action::Export => "export",
            Action::Search => "search",
            Action::LedgerWrite => "ledger_write",
            Action::AccountAdd => "account_add",
            Action::AccountRevoke => "account_revoke",
            Action::AccountRole => "account_role",
            Action::KeyRotate => "key_rotate",
            Action::AuditRead => "audit_read",
        }
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Attempted and failed (bad password, unknown token, …).
    Failure,
    /// Refused for lack of permission.
    Denied,
}

impl Outcome {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// A record to append: everything but its place in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// When, RFC 3339.
    pub ts: String,
    /// When, Unix milliseconds (what `since` queries compare).
    pub at_ms: i64,
    /// Who: the authenticated principal, the OS user of a local command (`os:NAME`), or
    /// the name an unauthenticated attempt claimed (`?`when none).
    pub principal: String,
    /// Its role (empty when not authenticated).
    pub role: String,
    /// Where from: the client's address, or `local` for a command on the host.
    pub client: String,
    /// What.
    pub action: Action,
    /// On what: `subscribers/+8613800138000`, a principal's name, ….
    pub object: String,
    /// Why (the stated purpose of a reveal or export; empty otherwise).
    pub purpose: String,
    /// How it ended.
    pub outcome: Outcome,
    /// A short reason for a failure or denial, counts of a write.
    pub detail: String,
}

/// A stored record. Text fields are kept as stored so a tampered value is checked, not
/// parsed away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail, from 1, without gaps.
    pub seq: i64,
    /// When, RFC 3339.
    pub ts: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub principal: String,
    /// Its role.
    pub role: String,
    /// Where from.
    pub client: String,
    /// What.
    pub action: String,
    /// On what.
    pub object: String,
    /// Why.
    pub purpose: String,
    /// How it ended.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// The previous record's `mac` (empty for the first).
    pub prev: String,
    /// HMAC-SHA256 of this record's fields and `prev`, hex.
    pub mac: String,
}

impl AuditRecord {
    /// The record `entry` becomes at `seq` after the record whose MAC is `prev`.
    pub fn chain(entry: &AuditEntry, seq: i64, prev: &str, key: &AuditKey) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            ts: entry.ts.clone(),
            at_ms: entry.at_ms,
            principal: entry.principal.clone(),
            role: entry.role.clone(),
            client: entry.client.clone(),
            action: entry.action.as_str().to_string(),
            object: entry.object.clone(),
            purpose: entry.purpose.clone(),
            outcome: entry.outcome.as_str().to_string(),
            detail: entry.detail.clone(),
            prev: prev.to_string(),
            mac: String::new(),
        };
        r.mac = key.mac(&r);
        r
    }
}

/// The key of the chain (32 bytes or more), kept outside the database.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Bytes of a new audit key.
pub const AUDIT_KEY_LEN: usize = 32;

impl AuditKey {
    /// A key over its bytes (at least [`AUDIT_KEY_LEN`]).
    pub fn new(key: &[u8]) -> Option<AuditKey> {
        (key.len() >= AUDIT_KEY_LEN).then(|| AuditKey {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any length"),
        })
    }

    /// The record's MAC: every field but `mac`, each length-prefixed so no two records
    /// encode alike, then `prev`.
    pub fn mac(&self, r: &AuditRecord) -> String {
        let mut m = self.mac.clone();
        m.update(b"fanzha audit v1");
        m.update(&r.seq.to_be_bytes());
        m.update(&r.at_ms.to_be_bytes());
        for field in [
            &r.ts,
            &r.principal,
            &r.role,
            &r.client,
            &r.action,
            &r.object,
            &r.purpose,
            &r.outcome,
            &r.detail,
            &r.prev,
        ] {
            m.update(&(field.len() as u64).to_be_bytes());
            m.update(field.as_bytes());
        }
        hex::encode(m.finalize().into_bytes())
    }

    /// A check value of the key (stored with the trail, so a wrong key is named as such,
    /// not as a broken trail).
    pub fn check_value(&self) -> String {
        let mut m = self.mac.clone();
        m.update(b"fanzha audit key check");
        hex::encode(&m.finalize().into_bytes()[..8])
    }
}

/// The newest record's place at some time, kept by the audit admin outside the store: a
/// trail that no longer reaches it was cut off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The record's seq.
    pub seq: i64,
    /// Its MAC.
    pub mac: String,
}

/// Where and how the trail is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("audit record {seq}: {reason}")]
pub struct Broken {
    /// The first record found wrong (for a cut-off trail: the checkpoint's seq).
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// What verification found in an intact trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The newest record, as a checkpoint to keep.
    pub last: Option<Checkpoint>,
}

/// A verifier fed records in the order the store returns them (by seq).
#[derive(Debug)]
pub struct Verifier<'k> {
    key: &'k AuditKey,
    last: Option<Checkpoint>,
    records: u64,
    checkpoint: Option<Checkpoint>,
    checkpoint_seen: bool,
}

impl<'k> Verifier<'k> {
    /// A verifier; with a checkpoint, the trail must still hold that record unchanged.
    pub fn new(key: &'k AuditKey, checkpoint: Option<Checkpoint>) -> Verifier<'k> {
        Verifier {
            key,
            last: None,
            records: 0,
            checkpoint,
            checkpoint_seen: false,
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let broken = |reason: String| Broken { seq: r.seq, reason };
        match &self.last {
            None if r.seq != 1 => {
                return Err(broken(format!(
                    "the trail starts at seq {} instead of 1: records before it were removed",
                    r.seq
                )))
            }
            None if !r.prev.is_empty() => {
                return Err(broken("the first record names a predecessor".into()))
            }
            Some(last) if r.seq != last.seq + 1 => {
                return Err(broken(if r.seq <= last.seq {
                    format!("out of order: follows seq {}", last.seq)
                } else {
                    format!(
                        "records {}..{} are missing (removed)",
                        last.seq + 1,
                        r.seq - 1
                    )
                }))
            }
            Some(last) if r.prev != last.mac => {
                return Err(broken(format!(
                    "does not follow record {}: the chain was cut or records reordered",
                    last.seq
                )))
            }
            _ => {}
        }
        if self.key.mac(r) != r.mac {
            return Err(broken(
                "its MAC does not match its contents: the record was edited (or the audit key is not this trail's)"
                    .into(),
            ));
        }
        if let Some(c) = &self.checkpoint {
            if c.seq == r.seq {
                if c.mac != r.mac {
                    return Err(broken(
                        "differs from the checkpoint held outside the store: the trail was rewritten from here"
                            .into(),
                    ));
                }
                self.checkpoint_seen = true;
            }
        }
        self.records += 1;
        self.last = Some(Checkpoint {
            seq: r.seq,
            mac: r.mac.clone(),
        });
        Ok(())
    }

    /// The end of the trail.
    pub fn finish(self) -> Result<Verified, Broken> {
        if let Some(c) = &self.checkpoint {
            if !self.checkpoint_seen {
                return Err(Broken {
                    seq: c.seq,
                    reason: format!(
                        "the checkpoint's record is gone: the trail ends at seq {}, the newest records were cut off",
                        self.last.as_ref().map_or(0, |l| l.seq)
                    ),
                });
            }
        }
        Ok(Verified {
            records: self.records,
            last: self.last,
        })
    }
}

/// Verifies a whole trail in seq order.
pub fn verify<'a>(
    key: &AuditKey,
    records: impl IntoIterator<Item = &'a AuditRecord>,
    checkpoint: Option<Checkpoint>,
) -> Result<Verified, Broken> {
    let mut v = Verifier::new(key, checkpoint);
    for r in records {
        v.push(r)?;
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(&[7u8; 32]).unwrap()
    }

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            ts: format!("2026-12-08T10:00:{n:02}+08:00"),
            at_ms: 1_796_000_000_000 + n,
            principal: "ana".into(),
            role: "supervisor".into(),
            client: "127.0.0.1:4000".into(),
            action: Action::Reveal,
            object: format!("subscribers/+86138000{n:05}"),
            purpose: "case 7".into(),
            outcome: Outcome::Success,
            detail: String::new(),
        }
    }

    fn trail(n: i64) -> Vec<AuditRecord> {
        let k = key();
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map(|r| r.mac.clone()).unwrap_or_default();
            out.push(AuditRecord::chain(&entry(i), i, &prev, &k));
        }
        out
    }

    #[test]
    fn an_intact_trail_verifies_and_names_its_end() {
        let t = trail(5);
        let v = verify(&key(), &t, None).unwrap();
        assert_eq!(v.records, 5);
        assert_eq!(v.last.as_ref().unwrap().seq, 5);
        assert_eq!(verify(&key(), &t, v.last.clone()).unwrap().records, 5);
        assert_eq!(verify(&key(), &[], None).unwrap().records, 0);
    }

    #[test]
    fn an_edited_record_is_found() {
        let mut t = trail(5);
        t[2].purpose = "curiosity".into();
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 3);
        let mut t = trail(5);
        t[3].outcome = "failure".into();
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 4);
    }

    #[test]
    fn an_edited_record_with_its_mac_recomputed_under_another_key_is_found() {
        let mut t = trail(5);
        let other = AuditKey::new(&[8u8; 32]).unwrap();
        t[2].principal = "nobody".into();
        t[2].mac = other.mac(&t[2]);
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 3);
    }

    #[test]
    fn a_removed_record_is_found() {
        let mut t = trail(5);
        t.remove(2);
        let e = verify(&key(), &t, None).unwrap_err();
        assert_eq!(e.seq, 4);
        assert!(e.reason.contains("missing"), "{e}");
        let mut t = trail(5);
        t.remove(0);
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 2);
    }

    #[test]
    fn reordered_records_are_found() {
        let mut t = trail(5);
        t.swap(1, 2);
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 3);
        // Renumbered to hide the swap: the chain no longer links.
        let mut t = trail(5);
        t.swap(1, 2);
        t[1].seq = 2;
        t[2].seq = 3;
        assert_eq!(verify(&key(), &t, None).unwrap_err().seq, 2);
    }

    #[test]
    fn a_cut_off_trail_is_found_against_a_checkpoint() {
        let t = trail(5);
        let checkpoint = verify(&key(), &t, None).unwrap().last;
        let e = verify(&key(), &t[..3], checkpoint.clone()).unwrap_err();
        assert_eq!(e.seq, 5);
        assert!(e.reason.contains("cut off"), "{e}");
        // The tail replaced by a validly chained record (as one holding the key could):
        // the checkpoint's record differs.
        let mut regrown = t.clone();
        regrown[4] = AuditRecord::chain(&entry(9), 5, &t[3].mac, &key());
        let e = verify(&key(), &regrown, checkpoint).unwrap_err();
        assert_eq!(e.seq, 5);
        assert!(e.reason.contains("checkpoint"), "{e}");
    }

    #[test]
    fn the_key_check_value_tells_keys_apart() {
        assert_eq!(key().check_value(), key().check_value());
        assert_ne!(
            key().check_value(),
            AuditKey::new(&[8u8; 32]).unwrap().check_value()
        );
        assert!(AuditKey::new(&[1u8; 31]).is_none());
    }
}
