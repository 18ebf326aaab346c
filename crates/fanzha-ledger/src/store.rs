//! The storage boundary. A backend stores records (one per kind and key, with the few
//! indexed columns the rules query) and an append-only event history, and gives write
//! transactions in which the rules' reads and the writes are atomic.
//!
//! Backends know SQL and their database; they know nothing of the regulation's rules.

use crate::kind::Kind;
use serde::Serialize;
use serde_json::Value;

/// A stored record. `body` holds every column of the row (personal data only masked and
/// sealed, see [`crate::pii`]); the other fields are the indexed columns rules look up by.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Kind.
    pub kind: Kind,
    /// Key within the kind (normalised: E.164 numbers, upper-case codes).
    pub key: String,
    /// Keyed hash of the holder's ID number (subscribers), the legal representative's
    /// (units) or the person's (blacklist).
    pub holder_hash: Option<String>,
    /// The owning unit's USCC (key services, trunks, IoT subscribers, agents).
    pub unit: Option<String>,
    /// Sub-type: subscriber kind, key-service type, trunk kind, blacklist subject kind.
    pub subtype: Option<String>,
    /// Life-cycle state (active, suspended, terminated, cancelled, …).
    pub state: Option<String>,
    /// All fields.
    pub body: Value,
}

impl Record {
    /// A string field of the body ("" when absent).
    pub fn field(&self, name: &str) -> &str {
        self.body.get(name).and_then(Value::as_str).unwrap_or("")
    }

    /// Its indexed columns.
    pub fn columns(&self) -> Columns<'_> {
        Columns {
            kind: self.kind,
            key: &self.key,
            holder_hash: self.holder_hash.as_deref(),
            unit: self.unit.as_deref(),
            subtype: self.subtype.as_deref(),
            state: self.state.as_deref(),
        }
    }
}

/// What a backend stores of a record beside its body, which it is given as JSON text (see
/// [`Tx::write`]): its identity and the columns rules look records up by. The fields mean
/// what [`Record`]'s do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Columns<'a> {
    /// Kind.
    pub kind: Kind,
    /// Key within the kind.
    pub key: &'a str,
    /// Keyed hash of the holder's ID number.
    pub holder_hash: Option<&'a str>,
    /// The owning unit's USCC.
    pub unit: Option<&'a str>,
    /// Sub-type.
    pub subtype: Option<&'a str>,
    /// Life-cycle state.
    pub state: Option<&'a str>,
}

/// One entry of a record's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Position in the ledger-wide history (increasing).
    pub seq: i64,
    /// When (RFC 3339).
    pub ts: String,
    /// Who.
    pub actor: String,
    /// What: `import`, `suspend`, `pii_revealed`, ….
    pub command: String,
    /// Which record.
    pub kind: Kind,
    /// Its key.
    pub key: String,
    /// Body before (null when created).
    pub before: Value,
    /// Body after (null when only read, as for `pii_revealed`).
    pub after: Value,
}

/// Who changed a record, when, how, and what it said before: a history event without its
/// `after`, which is the record written with it (see [`Tx::write`]).
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// When (RFC 3339).
    pub ts: &'a str,
    /// Who.
    pub actor: &'a str,
    /// What: `import`, `suspend`, ….
    pub command: &'a str,
    /// Body before (null when created).
    pub before: &'a Value,
}

/// A field rules count or search by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `holder_hash`.
    HolderHash,
    /// `unit`.
    Unit,
}

/// What to count: records of `kind` with `field = value`, optionally of one `subtype`, not
/// in state `exclude_state`, other than the record `exclude_key`.
#[derive(Clone, Debug)]
pub struct CountQuery<'a> {
    /// Kind counted.
    pub kind: Kind,
    /// Field matched.
    pub field: Field,
    /// Value it must equal.
    pub value: &'a str,
    /// Sub-type it must have, if any.
    pub subtype: Option<&'a str>,
    /// State not counted (e.g. `terminated`).
    pub exclude_state: &'a str,
    /// Key not counted (the record being rewritten).
    pub exclude_key: &'a str,
}

impl<'a> CountQuery<'a> {
    /// R3.1's count: the holder's mobile cards that are not terminated, other than the card
    /// `except_key` (the one being written).
    pub fn active_mobile_cards(holder_hash: &'a str, except_key: &'a str) -> CountQuery<'a> {
        CountQuery {
            kind: Kind::Subscribers,
            field: Field::HolderHash,
            value: holder_hash,
            subtype: Some("mobile"),
            exclude_state: "terminated",
            exclude_key: except_key,
        }
    }
}

/// Whether a holder hash is lower-case hex of even length, as the vault writes them: such a
/// hash stands for the bytes its digits spell (in [`holder_tag`], and in a backend that
/// stores it as those bytes).
pub fn is_hex_hash(hash: &str) -> bool {
    hash.len().is_multiple_of(2) && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A holder hash's tag, for backends' holder indexes: its first eight bytes as an integer
/// (big-endian, zero-padded), where a hex hash ([`is_hex_hash`]) counts as the bytes its
/// digits spell, and any other text as its UTF-8 bytes. An index of 8-byte integers is a
/// fraction of one of 64-character hashes; hashes sharing a tag are told apart by comparing
/// the whole hash in the row.
pub fn holder_tag(hash: &str) -> i64 {
    let mut tag = [0u8; 8];
    if is_hex_hash(hash) {
        let digits = &hash[..hash.len().min(16)];
        hex::decode_to_slice(digits, &mut tag[..digits.len() / 2])
            .expect("checked: hex digits, even length");
    } else {
        let n = hash.len().min(8);
        tag[..n].copy_from_slice(&hash.as_bytes()[..n]);
    }
    i64::from_be_bytes(tag)
}

/// Errors of a backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no (connection, constraint, serialisation failure, …).
    #[error("database error: {0}")]
    Database(String),
    /// A stored body that is not JSON (corruption).
    #[error("corrupt record {kind}/{key}: {reason}")]
    Corrupt {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A schema newer than this program.
    #[error("the database schema is version {found}, newer than this program's {supported}")]
    SchemaTooNew {
        /// Found.
        found: i64,
        /// Supported.
        supported: i64,
    },
}

/// A write transaction. Reads see the transaction's own writes. Dropping it without
/// [`Tx::commit`] rolls back.
pub trait Tx {
    /// One record.
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError>;
    /// Records of `kind` whose `field` equals `value`.
    fn find(&mut self, kind: Kind, field: Field, value: &str) -> Result<Vec<Record>, StoreError>;
    /// How many records match.
    fn count(&mut self, q: &CountQuery<'_>) -> Result<u64, StoreError>;
    /// Serialises concurrent transactions that check a limit on the same subject (one holder,
    /// one unit) until this transaction ends. Backends whose write transactions are already
    /// serial may do nothing.
    /// The scope is given as format arguments (`format_args!("holder:{h}")`): a backend
    /// that needs no lock never pays for building its name, once per imported row.
    fn lock(&mut self, scope: std::fmt::Arguments<'_>) -> Result<(), StoreError>;
    /// A hint before a batch of rows: the records about to be read by key and the holders
    /// whose limits are about to be checked (their locks are taken now, in a fixed order, so
    /// concurrent batches cannot deadlock). Backends with costly round trips fetch them in
    /// one go; the default does nothing.
    fn prefetch(
        &mut self,
        _kind: Kind,
        _keys: &[&str],
        _holder_hashes: &[&str],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Inserts or replaces a record and appends the history event of the change, whose
    /// `after` is the record's body: a record never changes without its event, and a
    /// backend may keep the body once, in the event. `body_json` is the body serialised
    /// (`serde_json::to_string(&record.body)` for a [`Record`]); the caller makes it, an
    /// import away from the store's thread.
    fn write(
        &mut self,
        record: &Columns<'_>,
        body_json: &str,
        change: &Change<'_>,
    ) -> Result<(), StoreError>;
    /// [`Tx::write`] for a record whose key is new: writes the record and its event and
    /// returns true, or writes nothing and returns false when a record with this key exists.
    /// `change.before` is null. A backend may learn "new" from the insert itself instead of
    /// looking the key up first.
    fn write_new(
        &mut self,
        record: &Columns<'_>,
        body_json: &str,
        change: &Change<'_>,
    ) -> Result<bool, StoreError> {
        if self.get(record.kind, record.key)?.is_some() {
            return Ok(false);
        }
        self.write(record, body_json, change).map(|()| true)
    }
    /// Appends a history event that changes no record (`pii_revealed`); its `seq` is
    /// assigned by the store.
    fn append(&mut self, event: &Event) -> Result<(), StoreError>;
    /// Makes the transaction durable.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A ledger backend.
pub trait Store: Send {
    /// Starts a write transaction.
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, StoreError>;
    /// One record (outside any write transaction).
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError>;
    /// Every record of a kind, by key.
    fn scan(&mut self, kind: Kind) -> Result<Vec<Record>, StoreError>;
    /// History of one record, oldest first.
    fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Event>, StoreError>;
    /// The ledger's version. It grows with every committed change, so a changed number
    /// means something changed. SQLite, whose writers take turns: the newest event's `seq`.
    /// PostgreSQL, whose writers draw event numbers ahead and may commit out of their order:
    /// the count of committed events.
    fn version(&mut self) -> Result<i64, StoreError>;
    /// Name of the backend (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// Another connection to the same ledger, so that part of a large batch can be applied
    /// beside this one; none where writers take turns anyway (SQLite, the default).
    fn sibling(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        Ok(None)
    }
    /// The lock a subject scope (as given to [`Tx::lock`]) is taken under. Writers whose
    /// subjects are under different locks never wait for each other. The default: one lock.
    fn lock_of(&self, _scope: &str) -> u32 {
        0
    }
}

/// A boxed backend is a backend: the binary chooses SQLite or PostgreSQL at run time.
impl Store for Box<dyn Store> {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, StoreError> {
        (**self).begin()
    }
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        (**self).get(kind, key)
    }
    fn scan(&mut self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        (**self).scan(kind)
    }
    fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Event>, StoreError> {
        (**self).history(kind, key)
    }
    fn version(&mut self) -> Result<i64, StoreError> {
        (**self).version()
    }
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn sibling(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        (**self).sibling()
    }
    fn lock_of(&self, scope: &str) -> u32 {
        (**self).lock_of(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_tag_is_the_first_eight_bytes_of_the_hash() {
        let hex = "8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5";
        assert_eq!(holder_tag(hex), 0x8b23a1d4542600c2_u64 as i64);
        // Short hex is zero-padded; text that is not lower-case hex of even length counts
        // as its bytes.
        assert_eq!(holder_tag("ab"), 0xab00000000000000_u64 as i64);
        assert_eq!(holder_tag(""), 0);
        assert_eq!(holder_tag("abc"), i64::from_be_bytes(*b"abc\0\0\0\0\0"));
        assert_eq!(holder_tag("AB"), i64::from_be_bytes(*b"AB\0\0\0\0\0\0"));
        assert_eq!(holder_tag("holder-x-1"), holder_tag("holder-x-2"));
        assert_ne!(holder_tag(hex), holder_tag(&hex.to_uppercase()));
    }
}
