//! The ledger's embedded backend: one SQLite file in WAL mode. Write transactions are
//! `BEGIN IMMEDIATE`, so writers — threads or processes — are serial and the rules' counts
//! inside a transaction cannot be raced past. Knows SQL; knows nothing of the rules.

mod access;
mod holdings;

use fanzha_ledger::store::{
    holder_tag, is_hex_hash, Change, Columns, CountQuery, Event, Field, Record, Store, StoreError,
    Tx,
};
use fanzha_ledger::Kind;
use rusqlite::types::{FromSql, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

/// SQL for how a holder hash `$text` is stored: lower-case hex of even length as the bytes
/// it spells, anything else (and NULL) as it is: the rule of [`pack`], in SQL for the
/// migration that packs the values already stored.
macro_rules! packed {
    ($text:literal) => {
        concat!(
            "(CASE WHEN ",
            $text,
            " GLOB '*[^0-9a-f]*' OR length(",
            $text,
            ") % 2 = 1 THEN ",
            $text,
            " ELSE unhex(",
            $text,
            ") END)"
        )
    };
}

/// Versioned migrations, applied in order inside one transaction each.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE records(
        kind TEXT NOT NULL, key TEXT NOT NULL,
        holder_hash TEXT, unit TEXT, subtype TEXT, state TEXT,
        body TEXT NOT NULL);
     -- A rowid table: bodies are hundreds of bytes, too large for a WITHOUT ROWID b-tree.
     CREATE UNIQUE INDEX records_by_key ON records(kind, key);
     CREATE INDEX records_by_holder ON records(kind, holder_hash) WHERE holder_hash IS NOT NULL;
     CREATE INDEX records_by_unit ON records(kind, unit) WHERE unit IS NOT NULL;
     CREATE TABLE events(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL, actor TEXT NOT NULL, command TEXT NOT NULL,
        kind TEXT NOT NULL, key TEXT NOT NULL,
        before TEXT NOT NULL, after TEXT NOT NULL);
     CREATE INDEX events_by_record ON events(kind, key, seq);
     -- The history is append-only (R7.5): no statement may change or remove an event.
     CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the ledger history is append-only'); END;
     CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the ledger history is append-only'); END;",
    ),
    (
        2,
        // A record's body is the `after` of the event that wrote it (Tx::write): keep it
        // once, there, and let the record point at that event. Records are then small rows
        // keyed by (kind, key), stored as the key's b-tree itself. A v1 record whose body is
        // not its last event's `after` (none is written so) gets a `migrate` event first.
        // Events lose AUTOINCREMENT, which cost a write to sqlite_sequence per event: with
        // deletes impossible, the largest seq plus one is already new and increasing.
        "CREATE TABLE events_v2(
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL, actor TEXT NOT NULL, command TEXT NOT NULL,
            kind TEXT NOT NULL, key TEXT NOT NULL,
            before TEXT NOT NULL, after TEXT NOT NULL);
         INSERT INTO events_v2 SELECT seq, ts, actor, command, kind, key, before, after
            FROM events ORDER BY seq;
         DROP TABLE events;
         ALTER TABLE events_v2 RENAME TO events;
         CREATE INDEX events_by_record ON events(kind, key, seq);
         CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the ledger history is append-only'); END;
         CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the ledger history is append-only'); END;
         INSERT INTO events(ts, actor, command, kind, key, before, after)
            SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 'fanzha', 'migrate', r.kind, r.key,
                   r.body, r.body
            FROM records r
            WHERE NOT EXISTS (SELECT 1 FROM events e
                              WHERE e.kind = r.kind AND e.key = r.key AND e.after = r.body);
         CREATE TABLE records_v2(
            kind TEXT NOT NULL, key TEXT NOT NULL,
            holder_hash TEXT, unit TEXT, subtype TEXT, state TEXT,
            seq INTEGER NOT NULL,
            PRIMARY KEY(kind, key)) WITHOUT ROWID;
         INSERT INTO records_v2
            SELECT r.kind, r.key, r.holder_hash, r.unit, r.subtype, r.state,
                   (SELECT max(e.seq) FROM events e
                    WHERE e.kind = r.kind AND e.key = r.key AND e.after = r.body)
            FROM records r;
         DROP TABLE records;
         ALTER TABLE records_v2 RENAME TO records;
         CREATE INDEX records_by_holder ON records(kind, holder_hash) WHERE holder_hash IS NOT NULL;
         CREATE INDEX records_by_unit ON records(kind, unit) WHERE unit IS NOT NULL;",
    ),
    (
        3,
        // Holder hashes as the bytes their hex digits spell (`packed!`): 32 bytes instead
        // of 64 in every record and holder-index entry. The index takes an import's inserts
        // all over (keyed hashes are random), so each commit rewrites most of its pages;
        // halving its entries cut a 1 M-row import's writes by a fifth. A value that is not
        // lower-case hex stays text, so every value reads back exactly as written.
        concat!(
            "UPDATE records SET holder_hash = ",
            packed!("holder_hash"),
            " WHERE typeof(holder_hash) = 'text';"
        ),
    ),
    (
        4,
        // Records become a rowid table again, small rows appended in the order written,
        // with the key in an index of its own. As a WITHOUT ROWID table its whole rows were
        // the entries of the b-tree ordered by key, so the rows of an import whose keys come
        // in no order landed all over it, and each commit rewrote its pages in the WAL; now
        // only the key's short entry does, and the holder index's entries end with a rowid
        // instead of the key.
        //
        // Keys lead, not kinds. With `kind` first, every comparison in these b-trees met
        // 'subscribers' equal on both sides, and SQLite then leaves its fast comparison of
        // a leading text field for the general one, which decodes both entries afresh.
        // Scans of a kind other than subscribers use an index that holds no subscriber, so
        // imports of subscribers never pay for it. A record's events are in seq order within
        // its key in `events_by_record` without seq among its columns: the rowid that ends
        // every entry is the seq.
        "CREATE TABLE records_v4(
            kind TEXT NOT NULL, key TEXT NOT NULL,
            holder_hash TEXT, unit TEXT, subtype TEXT, state TEXT,
            seq INTEGER NOT NULL);
         INSERT INTO records_v4 SELECT kind, key, holder_hash, unit, subtype, state, seq
            FROM records ORDER BY seq;
         DROP TABLE records;
         ALTER TABLE records_v4 RENAME TO records;
         CREATE UNIQUE INDEX records_by_key ON records(key, kind);
         CREATE INDEX records_by_holder ON records(holder_hash, kind)
            WHERE holder_hash IS NOT NULL;
         CREATE INDEX records_by_unit ON records(unit, kind) WHERE unit IS NOT NULL;
         CREATE INDEX records_by_kind ON records(kind, key) WHERE kind <> 'subscribers';
         DROP INDEX events_by_record;
         CREATE INDEX events_by_record ON events(key, kind);",
    ),
    (
        5,
        // The holder index holds a tag of each holder hash (its first eight bytes as an
        // integer, see [`holder_tag`]) instead of the hash and the kind: a third of the
        // size. Keyed hashes are random, so an import's inserts land all over this index
        // and each commit rewrote most of its pages; it was the costliest part of an
        // import (without it, a million subscribers went in 30-60 % faster). Lookups
        // match the tag through the index and the whole hash (and kind) in the row, so a
        // shared tag can cost a row read, never a wrong answer.
        "ALTER TABLE records ADD COLUMN holder_tag INTEGER;
         UPDATE records SET holder_tag = holder_tag(holder_hash) WHERE holder_hash IS NOT NULL;
         DROP INDEX records_by_holder;
         CREATE INDEX records_by_holder ON records(holder_tag) WHERE holder_tag IS NOT NULL;",
    ),
    (
        6,
        // A record's history is a chain: the record knows its newest event (`head`), each
        // event its record's event before it (`prev`, 0 at the chain's start). Writers take
        // turns (`BEGIN IMMEDIATE`), so nothing can slip between reading a head and moving
        // it. Events of a new record then need no index: the (key, kind) index they had
        // cost a million-subscriber import 10-25 % of its time. Events outside any chain
        // (`prev` null: those from before this migration, and events about a key that has
        // no record) stay found by key, through a partial index that holds only them.
        "ALTER TABLE records ADD COLUMN head INTEGER;
         ALTER TABLE events ADD COLUMN prev INTEGER;
         DROP INDEX events_by_record;
         CREATE INDEX events_unchained ON events(key, kind) WHERE prev IS NULL;",
    ),
    (
        7,
        // Principals, the audit trail (append-only like the history; chained by the
        // caller's MAC, see fanzha-auth) and settings (key check values). A principal's
        // `version` grows with each change, so their sum tells a cache to reload.
        "CREATE TABLE principals(
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            revoked_at INTEGER,
            password_hash TEXT,
            totp_sealed TEXT,
            token_hash TEXT UNIQUE,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until INTEGER,
            created_by TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1);
         CREATE TABLE audit(
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            principal TEXT NOT NULL,
            role TEXT NOT NULL,
            client TEXT NOT NULL,
            action TEXT NOT NULL,
            object TEXT NOT NULL,
            purpose TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev TEXT NOT NULL,
            mac TEXT NOT NULL);
         CREATE INDEX audit_by_time ON audit(at_ms);
         CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
         CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
         CREATE TABLE settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
];

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A ledger in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    /// Declared after `conn`, so dropped after it: the checkpointer's connection is the
    /// last to close and leaves the WAL folded into the file.
    #[allow(dead_code)] // held for its Drop
    checkpointer: Option<Checkpointer>,
}

/// A thread with its own connection that folds the WAL into the database file every
/// quarter second (a PASSIVE checkpoint: it never blocks the writer or readers), so the
/// writer's commits do not stop to do it.
struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(250))
                {
                    // A busy or failed checkpoint is retried on the next tick; the writer's
                    // own autocheckpoint is the backstop.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::Database(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the ledger file and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        Self::init(conn, Some(path))
    }

    /// An in-memory ledger (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db)?, None)
    }

    fn init(mut conn: Connection, path: Option<&Path>) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(Duration::from_secs(60)).map_err(db)?;
        register_holder_tag(&conn).map_err(db)?;
        retry_busy(|| configure(&conn)).map_err(db)?;
        let (current, latest) = retry_busy(|| migrate(&mut conn)).map_err(db)?;
        if current > latest {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: latest,
            });
        }
        let checkpointer = match path {
            Some(p) => Some(Checkpointer::spawn(p)?),
            None => None,
        };
        Ok(SqliteStore { conn, checkpointer })
    }
}

/// Runs `f` again while SQLite answers SQLITE_BUSY without waiting through the busy handler,
/// as it does to a connection whose wait could deadlock: processes opening a new ledger file
/// at once (one sets its journal mode and migrates it, the others must wait their turn).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// The connection's settings.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // 8 KiB pages for a new file (an existing file keeps its own): fewer, larger pages
    // mean shallower b-trees and fewer page splits under bulk inserts.
    conn.pragma_update(None, "page_size", 8192)?;
    // WAL: readers never block the writer; NORMAL sync: a killed process loses no
    // committed transaction (only a power loss could lose the last ones).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Up to 256 MiB of page cache: an import touches the holder index at random, and a
    // page found in cache is a read saved.
    conn.pragma_update(None, "cache_size", -262144)?;
    // The checkpointer thread copies the WAL into the database file, off the writer's
    // thread; the writer checkpoints itself only if that falls far behind (1.6 GB of
    // WAL). A WAL file over 512 MiB shrinks back when the WAL restarts; below that it is
    // reused as it is, since growing it again (allocating and zeroing blocks) costs the
    // writer more than the disk space saved. (The WAL restarts only when a write begins
    // with every frame copied, so during a long import, whose next batch begins as soon as
    // the last commits, it keeps growing: 1.3 GB for a million subscribers.)
    conn.pragma_update(None, "wal_autocheckpoint", 200_000)?;
    conn.pragma_update(None, "journal_size_limit", 512i64 << 20)?;
    conn.pragma_update(None, "mmap_size", 268435456i64)
}

/// Applies the pending migrations in one transaction; the schema version found and the
/// newest this program knows (a newer one found is left alone).
fn migrate(conn: &mut Connection) -> rusqlite::Result<(i64, i64)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Ok((current, latest));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version(version) VALUES (?1)", [version])?;
    }
    tx.commit()?;
    Ok((current, latest))
}

/// A holder hash as stored (schema 3, [`packed!`]): a hex hash ([`is_hex_hash`]) as the
/// bytes it spells (half the size), any other text as it is. A 64-digit hash, as the
/// vault makes them, is decoded into `buf` rather than a new allocation.
fn pack<'a>(hash: &'a str, buf: &'a mut [u8; 32]) -> ToSqlOutput<'a> {
    if !is_hex_hash(hash) {
        return ToSqlOutput::Borrowed(ValueRef::Text(hash.as_bytes()));
    }
    match hex::decode_to_slice(hash, buf) {
        Ok(()) => ToSqlOutput::Borrowed(ValueRef::Blob(buf)),
        Err(_) => ToSqlOutput::Owned(rusqlite::types::Value::Blob(
            hex::decode(hash).expect("checked: hex digits, even length"),
        )),
    }
}

/// The tag of a holder hash as stored (schema 5): the first eight bytes of its stored form
/// (the packed bytes, or the text's bytes), big-endian, zero-padded; for a hash as written,
/// [`holder_tag`], which stores it as [`pack`] does.
fn tag_of_stored(bytes: &[u8]) -> i64 {
    let mut tag = [0u8; 8];
    let n = bytes.len().min(8);
    tag[..n].copy_from_slice(&bytes[..n]);
    i64::from_be_bytes(tag)
}

/// [`tag_of_stored`] of a value as bound (the hash already packed: no second decoding).
fn stored_tag(v: &ToSqlOutput<'_>) -> i64 {
    match v {
        ToSqlOutput::Borrowed(ValueRef::Blob(b) | ValueRef::Text(b)) => tag_of_stored(b),
        ToSqlOutput::Owned(rusqlite::types::Value::Blob(b)) => tag_of_stored(b),
        ToSqlOutput::Owned(rusqlite::types::Value::Text(t)) => tag_of_stored(t.as_bytes()),
        _ => unreachable!("a holder hash is bound as text or bytes"),
    }
}

/// `holder_tag(value)` in SQL, for the migration that tags the hashes already stored.
fn register_holder_tag(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "holder_tag",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Blob(b) | ValueRef::Text(b) => Some(tag_of_stored(b)),
                _ => None,
            })
        },
    )
}

/// A value of an indexed field as stored.
fn stored<'a>(field: Field, value: &'a str, buf: &'a mut [u8; 32]) -> ToSqlOutput<'a> {
    match field {
        Field::HolderHash => pack(value, buf),
        Field::Unit => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
    }
}

/// A stored holder hash, read back as the text it was written as.
struct StoredHolder(Option<String>);

impl FromSql for StoredHolder {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<StoredHolder> {
        match v {
            ValueRef::Null => Ok(StoredHolder(None)),
            ValueRef::Blob(bytes) => Ok(StoredHolder(Some(hex::encode(bytes)))),
            text => String::column_result(text).map(|t| StoredHolder(Some(t))),
        }
    }
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get::<_, StoredHolder>(2)?.0,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

type RawRecord = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn to_record(raw: RawRecord) -> Result<Record, StoreError> {
    let (kind, key, holder_hash, unit, subtype, state, body) = raw;
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: kind.clone(),
        key: key.clone(),
        reason,
    };
    let k = Kind::from_str(&kind).map_err(|e| corrupt(e.to_string()))?;
    let body: Value = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
    Ok(Record {
        kind: k,
        key,
        holder_hash,
        unit,
        subtype,
        state,
        body,
    })
}

/// Records with their bodies (the `after` of the event each points at): `$tail` is the rest
/// of the statement after `FROM records r`, as literals, so each statement's text is built
/// once, at compile time.
macro_rules! select_records {
    ($($tail:tt)*) => {
        concat!(
            "SELECT r.kind, r.key, r.holder_hash, r.unit, r.subtype, r.state, e.after
             FROM records r ",
            $($tail)*
        )
    };
}

fn get(conn: &Connection, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
    let mut st = conn
        .prepare_cached(select_records!(
            "JOIN events e ON e.seq = r.seq WHERE r.kind = ?1 AND r.key = ?2"
        ))
        .map_err(db)?;
    let raw = st
        .query_row(params![kind.as_str(), key], row_to_record)
        .optional()
        .map_err(db)?;
    raw.map(to_record).transpose()
}

/// The count of records by an indexed field, as the rules ask it ([`CountQuery`]). Constant
/// text per field: an import counts once per row, and the statement cache is keyed by it.
// INDEXED BY: without it the planner may walk the whole kind through the primary key
// (`key <> ?5`), which made every count O(records).
fn count_sql(field: Field) -> &'static str {
    match field {
        Field::HolderHash => {
            "SELECT count(*) FROM records INDEXED BY records_by_holder
             WHERE holder_tag = ?6 AND holder_hash = ?2 AND kind = ?1
             AND (?3 IS NULL OR subtype = ?3) AND coalesce(state, '') <> ?4 AND key <> ?5"
        }
        Field::Unit => {
            "SELECT count(*) FROM records INDEXED BY records_by_unit
             WHERE kind = ?1 AND unit = ?2
             AND (?3 IS NULL OR subtype = ?3) AND coalesce(state, '') <> ?4 AND key <> ?5"
        }
    }
}

/// Records of a kind by an indexed field, with their bodies, by key. The holder's takes
/// its tag as ?3.
fn find_sql(field: Field) -> &'static str {
    match field {
        Field::HolderHash => select_records!(
            "INDEXED BY records_by_holder JOIN events e ON e.seq = r.seq
             WHERE r.holder_tag = ?3 AND r.holder_hash = ?2 AND r.kind = ?1 ORDER BY r.key"
        ),
        Field::Unit => select_records!(
            "INDEXED BY records_by_unit JOIN events e ON e.seq = r.seq
             WHERE r.kind = ?1 AND r.unit = ?2 ORDER BY r.key"
        ),
    }
}

/// The records of one kind, with their bodies, by key. Subscribers are most of the table:
/// they are read through the primary key, in key order. Any other kind is read through the
/// partial index that holds no subscriber (INDEXED BY: the primary key's order tempts the
/// planner into a scan of the whole table), with that index's condition repeated: SQLite
/// uses a partial index only for a query that states its condition.
fn scan_sql(kind: Kind) -> String {
    let (index, condition) = match kind {
        Kind::Subscribers => ("", ""),
        _ => ("INDEXED BY records_by_kind", "AND r.kind <> 'subscribers'"),
    };
    format!(
        select_records!("{} JOIN events e ON e.seq = r.seq WHERE r.kind = ?1 {} ORDER BY r.key"),
        index, condition
    )
}

/// A record's events, oldest first: its chain, walked back from its head, and the events
/// outside any chain found by its key.
const HISTORY: &str = "WITH RECURSIVE chain(seq) AS (
        SELECT head FROM records WHERE key = ?2 AND kind = ?1 AND head IS NOT NULL
        UNION ALL
        SELECT e.prev FROM events e JOIN chain c ON e.seq = c.seq WHERE e.prev > 0)
    SELECT seq, ts, actor, command, before, after FROM events
    WHERE seq IN (SELECT seq FROM chain)
    UNION ALL
    SELECT seq, ts, actor, command, before, after FROM events
    WHERE prev IS NULL AND key = ?2 AND kind = ?1
    ORDER BY seq";

/// Writes a record, replacing one with its key; its event ?7 is its body and its head.
const UPSERT_RECORD: &str =
    "INSERT INTO records(kind, key, holder_hash, unit, subtype, state, seq, holder_tag, head)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)
    ON CONFLICT(key, kind) DO UPDATE SET holder_hash = excluded.holder_hash,
      holder_tag = excluded.holder_tag,
      unit = excluded.unit, subtype = excluded.subtype, state = excluded.state,
      seq = excluded.seq, head = excluded.head";
/// The subscriber cards under the holder tags in ?1, a JSON array: those of the holders
/// asked for, and of any holder sharing a tag with one, which the caller leaves aside.
const HOLDINGS_OF: &str =
    "SELECT holder_hash, key, subtype, state FROM records INDEXED BY records_by_holder
    WHERE holder_tag IN (SELECT value FROM json_each(?1)) AND kind = 'subscribers'";
/// Appends the first event of a new record's chain.
const INSERT_EVENT: &str =
    "INSERT INTO events(seq, ts, actor, command, kind, key, before, after, prev)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)";
/// Appends an event to its record's chain: its `prev` is the record's head, 0 when the
/// record has no chain yet (new, or stored before schema 6), null when there is no record.
const CHAIN_EVENT: &str =
    "INSERT INTO events(seq, ts, actor, command, kind, key, before, after, prev)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
            (SELECT coalesce(head, 0) FROM records WHERE key = ?6 AND kind = ?5))";
/// Moves a record's head to event ?3.
const MOVE_HEAD: &str = "UPDATE records SET head = ?3 WHERE key = ?2 AND kind = ?1";
/// Writes a record only if its key is new; its event ?7 is its body and its head.
const INSERT_NEW_RECORD: &str =
    "INSERT INTO records(kind, key, holder_hash, unit, subtype, state, seq, holder_tag, head)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7) ON CONFLICT(key, kind) DO NOTHING";

/// A write transaction.
pub struct SqliteTx<'c> {
    /// The statements an import runs for every row, prepared once per transaction: taken
    /// from the statement cache on each use, their text was hashed every time. Declared
    /// before `tx`, so they are back in the cache before it ends.
    hot: HotStatements<'c>,
    tx: rusqlite::Transaction<'c>,
    /// The connection `tx` runs on, which the hot statements borrow.
    conn: &'c Connection,
    /// The next event's seq, read once per transaction: writers are serial (`BEGIN
    /// IMMEDIATE`) and events are never deleted, so numbering here is numbering everywhere,
    /// and a record can be written pointing at its event before the event row.
    next_seq: Option<i64>,
    /// The holders' cards read ahead for a batch, counted from here.
    holdings: holdings::Holdings,
}

/// Where an event goes in its record's history.
#[derive(Clone, Copy)]
enum Link {
    /// First of a new record's chain.
    Start,
    /// Next in the chain of the record with its key; outside any chain if there is none.
    Chain,
}

/// Statements prepared on first use in a transaction (see [`SqliteTx::hot`]).
#[derive(Default)]
struct HotStatements<'c> {
    upsert_record: Option<CachedStatement<'c>>,
    insert_new_record: Option<CachedStatement<'c>>,
    insert_event: Option<CachedStatement<'c>>,
    chain_event: Option<CachedStatement<'c>>,
    count_by_holder: Option<CachedStatement<'c>>,
    count_by_unit: Option<CachedStatement<'c>>,
    holdings_of: Option<CachedStatement<'c>>,
}

/// The statement in `slot`, prepared from `sql` the first time.
fn hot<'s, 'c>(
    conn: &'c Connection,
    slot: &'s mut Option<CachedStatement<'c>>,
    sql: &'static str,
) -> Result<&'s mut CachedStatement<'c>, StoreError> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql).map_err(db)?);
    }
    Ok(slot.as_mut().expect("prepared above"))
}

impl SqliteTx<'_> {
    fn next_seq(&mut self) -> Result<i64, StoreError> {
        let next = match self.next_seq {
            Some(n) => n,
            None => self
                .tx
                .query_row("SELECT coalesce(max(seq), 0) + 1 FROM events", [], |r| {
                    r.get(0)
                })
                .map_err(db)?,
        };
        self.next_seq = Some(next + 1);
        Ok(next)
    }

    /// Writes the record `r` pointing at event `seq`, replacing one with its key (`upsert`)
    /// or only if its key is new; the number of rows written.
    fn insert_record(
        &mut self,
        upsert: bool,
        r: &Columns<'_>,
        seq: i64,
    ) -> Result<usize, StoreError> {
        let (slot, sql) = if upsert {
            (&mut self.hot.upsert_record, UPSERT_RECORD)
        } else {
            (&mut self.hot.insert_new_record, INSERT_NEW_RECORD)
        };
        let mut buf = [0; 32];
        let holder = r.holder_hash.map(|h| pack(h, &mut buf));
        let tag = holder.as_ref().map(stored_tag);
        hot(self.conn, slot, sql)?
            .execute(params![
                r.kind.as_str(),
                r.key,
                holder,
                r.unit,
                r.subtype,
                r.state,
                seq,
                tag
            ])
            .map_err(db)
    }

    /// Appends event `seq`: the first of a new record's chain (`Link::Start`), or next in
    /// the chain of the record with its key, if any (`Link::Chain`).
    fn insert_event(
        &mut self,
        seq: i64,
        link: Link,
        change: &Change<'_>,
        kind: Kind,
        key: &str,
        after_json: &str,
    ) -> Result<(), StoreError> {
        let before = match change.before {
            Value::Null => std::borrow::Cow::Borrowed("null"),
            v => std::borrow::Cow::Owned(serde_json::to_string(v).expect("json")),
        };
        let (slot, sql) = match link {
            Link::Start => (&mut self.hot.insert_event, INSERT_EVENT),
            Link::Chain => (&mut self.hot.chain_event, CHAIN_EVENT),
        };
        hot(self.conn, slot, sql)?
            .execute(params![
                seq,
                change.ts,
                change.actor,
                change.command,
                kind.as_str(),
                key,
                before,
                after_json
            ])
            .map_err(db)?;
        Ok(())
    }
}

impl Tx for SqliteTx<'_> {
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        get(&self.tx, kind, key)
    }

    fn find(&mut self, kind: Kind, field: Field, value: &str) -> Result<Vec<Record>, StoreError> {
        let mut st = self.tx.prepare_cached(find_sql(field)).map_err(db)?;
        let mut buf = [0; 32];
        let value_stored = stored(field, value, &mut buf);
        let rows = match field {
            Field::HolderHash => {
                let tag = stored_tag(&value_stored);
                st.query_map(params![kind.as_str(), value_stored, tag], row_to_record)
            }
            Field::Unit => st.query_map(params![kind.as_str(), value_stored], row_to_record),
        }
        .map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(to_record)).collect()
    }

    fn count(&mut self, q: &CountQuery<'_>) -> Result<u64, StoreError> {
        if let Some(n) = self.holdings.count(q) {
            return Ok(n);
        }
        let slot = match q.field {
            Field::HolderHash => &mut self.hot.count_by_holder,
            Field::Unit => &mut self.hot.count_by_unit,
        };
        let st = hot(self.conn, slot, count_sql(q.field))?;
        let mut buf = [0; 32];
        let (kind, value) = (q.kind.as_str(), stored(q.field, q.value, &mut buf));
        let (subtype, state, key) = (q.subtype, q.exclude_state, q.exclude_key);
        let n: i64 = match q.field {
            Field::HolderHash => {
                let tag = stored_tag(&value);
                st.query_row(params![kind, value, subtype, state, key, tag], |r| r.get(0))
            }
            Field::Unit => st.query_row(params![kind, value, subtype, state, key], |r| r.get(0)),
        }
        .map_err(db)?;
        Ok(n as u64)
    }

    fn lock(&mut self, _scope: std::fmt::Arguments<'_>) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds SQLite's single write lock for the transaction.
        Ok(())
    }

    /// Reads the cards of the batch's holders in one statement, so the rules' per-row
    /// counts are answered from memory (see [`holdings`]). Records by key are not read
    /// ahead: a lookup by key costs no more than its share of a batched one.
    fn prefetch(
        &mut self,
        _kind: Kind,
        _keys: &[&str],
        holder_hashes: &[&str],
    ) -> Result<(), StoreError> {
        let mut wanted: Vec<&str> = holder_hashes
            .iter()
            .copied()
            .filter(|h| !self.holdings.knows(Kind::Subscribers, Field::HolderHash, h))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut found: rustc_hash::FxHashMap<String, Vec<_>> = Default::default();
        let mut tags: Vec<i64> = wanted.iter().map(|h| holder_tag(h)).collect();
        // In tag order, the index's: each seek starts near the last.
        tags.sort_unstable();
        tags.dedup();
        let tags = serde_json::to_string(&tags).expect("integers serialise");
        let mut rows = hot(self.conn, &mut self.hot.holdings_of, HOLDINGS_OF)?
            .query([tags])
            .map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let holder = row.get::<_, StoredHolder>(0).map_err(db)?.0;
            found.entry(holder.unwrap_or_default()).or_default().push((
                row.get(1).map_err(db)?,
                row.get(2).map_err(db)?,
                row.get(3).map_err(db)?,
            ));
        }
        drop(rows);
        for holder in wanted {
            let records = found.remove(holder).unwrap_or_default();
            self.holdings
                .learn(Kind::Subscribers, Field::HolderHash, holder, records);
        }
        Ok(())
    }

    fn write(
        &mut self,
        r: &Columns<'_>,
        body_json: &str,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let seq = self.next_seq()?;
        if !self.holdings.is_empty() {
            // The lists the record leaves: those of its values before this write.
            let before = get(&self.tx, r.kind, r.key)?;
            self.holdings
                .wrote(r, before.as_ref().map(Record::columns).as_ref());
        }
        // The event first: it links to the record's head before the record moves it.
        self.insert_event(seq, Link::Chain, change, r.kind, r.key, body_json)?;
        self.insert_record(true, r, seq)?;
        Ok(())
    }

    fn write_new(
        &mut self,
        r: &Columns<'_>,
        body_json: &str,
        change: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let seq = self.next_seq()?;
        // The insert's own key lookup says whether the record is new.
        let inserted = self.insert_record(false, r, seq)?;
        if inserted == 0 {
            // Unused: the next event takes it, so numbers stay without gaps.
            self.next_seq = Some(seq);
            return Ok(false);
        }
        self.holdings.wrote(r, None);
        self.insert_event(seq, Link::Start, change, r.kind, r.key, body_json)?;
        Ok(true)
    }

    fn append(&mut self, e: &Event) -> Result<(), StoreError> {
        let seq = self.next_seq()?;
        let after = serde_json::to_string(&e.after).expect("json");
        let change = Change {
            ts: &e.ts,
            actor: &e.actor,
            command: &e.command,
            before: &e.before,
        };
        self.insert_event(seq, Link::Chain, &change, e.kind, &e.key, &after)?;
        self.tx
            .prepare_cached(MOVE_HEAD)
            .and_then(|mut st| st.execute(params![e.kind.as_str(), e.key, seq]))
            .map_err(db)?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().map_err(db)
    }
}

impl Store for SqliteStore {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, StoreError> {
        let conn = &self.conn;
        // `&mut self` keeps every other use of the connection out until the transaction
        // ends, as `Connection::transaction` would.
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(db)?;
        Ok(Box::new(SqliteTx {
            hot: HotStatements::default(),
            tx,
            conn,
            next_seq: None,
            holdings: holdings::Holdings::default(),
        }))
    }

    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        get(&self.conn, kind, key)
    }

    fn scan(&mut self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        let mut st = self.conn.prepare_cached(&scan_sql(kind)).map_err(db)?;
        let rows = st.query_map([kind.as_str()], row_to_record).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(to_record)).collect()
    }

    fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Event>, StoreError> {
        let mut st = self.conn.prepare_cached(HISTORY).map_err(db)?;
        let rows = st
            .query_map(params![kind.as_str(), key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(db)?;
        rows.map(|r| {
            let (seq, ts, actor, command, before, after) = r.map_err(db)?;
            Ok(Event {
                seq,
                ts,
                actor,
                command,
                kind,
                key: key.to_string(),
                before: serde_json::from_str(&before).unwrap_or(Value::Null),
                after: serde_json::from_str(&after).unwrap_or(Value::Null),
            })
        })
        .collect()
    }

    fn version(&mut self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(db)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the record `key`'s holder hash is stored: `blob` when packed.
    fn holder_hash_type(store: &SqliteStore, key: &str) -> String {
        store
            .conn
            .query_row(
                "SELECT typeof(holder_hash) FROM records WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// The five-card rule's count (R3.1) for `holder`.
    fn active_mobile_cards(holder: &str) -> CountQuery<'_> {
        CountQuery::active_mobile_cards(holder, "")
    }

    /// Lookups by holder and by unit seek their index on both columns (a scan of the kind
    /// would pass unnoticed by results, only by time).
    #[test]
    fn lookups_by_holder_and_unit_seek_their_index() {
        let store = SqliteStore::in_memory().unwrap();
        let plan = |sql: &str| -> String {
            let mut st = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            // Parameters left unbound (NULL): the plan does not depend on their values.
            let mut rows = st.raw_query();
            let mut steps = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get::<_, String>(3).unwrap());
            }
            steps.join("; ")
        };
        for sql in [
            count_sql(Field::HolderHash),
            find_sql(Field::HolderHash),
            HOLDINGS_OF,
        ] {
            let p = plan(sql);
            assert!(p.contains("records_by_holder (holder_tag=?)"), "{p}\n{sql}");
        }
        for sql in [count_sql(Field::Unit), find_sql(Field::Unit)] {
            let p = plan(sql);
            assert!(p.contains("records_by_unit (unit=? AND kind=?)"), "{p}");
        }
        // A record's history: its chain from its head, each step by seq, merged with the
        // events outside any chain from their partial index, unsorted.
        let p = plan(HISTORY);
        assert!(p.contains("records_by_key (key=? AND kind=?)"), "{p}");
        assert!(
            p.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"),
            "{p}"
        );
        assert!(p.contains("events_unchained (key=? AND kind=?)"), "{p}");
        assert!(p.contains("MERGE"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        // A scan of a small kind reads that kind's part of one index, in key order.
        let p = plan(&scan_sql(Kind::Units));
        assert!(p.contains("records_by_kind (kind=?)"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    /// Holder hashes are stored packed and read back exactly as written, hex or not.
    #[test]
    fn holder_hashes_read_back_as_written() {
        let mut store = SqliteStore::in_memory().unwrap();
        let hex = "8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5";
        let odd = ["h1", "ABCD", "abc", ""];
        let mut tx = store.begin().unwrap();
        let change = Change {
            ts: "2026-01-01T00:00:00+08:00",
            actor: "t",
            command: "import",
            before: &Value::Null,
        };
        for (i, h) in std::iter::once(hex).chain(odd).enumerate() {
            let key = format!("+861380000000{i}");
            let c = Columns {
                kind: Kind::Subscribers,
                key: &key,
                holder_hash: Some(h),
                unit: None,
                subtype: Some("mobile"),
                state: Some("active"),
            };
            assert!(tx.write_new(&c, "{}", &change).unwrap());
            assert_eq!(
                tx.find(Kind::Subscribers, Field::HolderHash, h).unwrap()[0].key,
                key
            );
            let r = tx.get(Kind::Subscribers, &key).unwrap().unwrap();
            assert_eq!(r.holder_hash.as_deref(), Some(h));
        }
        tx.commit().unwrap();
        // Read ahead in one query (packed and unpacked alike), then counted from memory.
        let mut tx = store.begin().unwrap();
        let all: Vec<&str> = std::iter::once(hex).chain(odd).chain(["absent"]).collect();
        tx.prefetch(Kind::Subscribers, &[], &all).unwrap();
        for h in &all {
            let n = tx.count(&active_mobile_cards(h)).unwrap();
            assert_eq!(n, u64::from(*h != "absent"), "{h}");
        }
        drop(tx);
        assert_eq!(holder_hash_type(&store, "+8613800000000"), "blob");
    }

    /// A ledger written by schema 1 (bodies in the records table) opens under the latest
    /// schema with every record and its history as they were.
    #[test]
    fn schema_1_ledger_migrates_keeping_records_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].1).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version(version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO records VALUES ('subscribers', '+8613800138000', 'h1', NULL,
                    'mobile', 'active', '{\"state\":\"active\"}');
                 INSERT INTO events(ts, actor, command, kind, key, before, after) VALUES
                    ('2026-01-01T00:00:00+08:00', 'ops', 'import', 'subscribers',
                     '+8613800138000', 'null', '{\"state\":\"suspended\"}'),
                    ('2026-01-02T00:00:00+08:00', 'ops', 'import', 'subscribers',
                     '+8613800138000', '{\"state\":\"suspended\"}', '{\"state\":\"active\"}'),
                    ('2026-01-03T00:00:00+08:00', 'ops', 'pii_revealed', 'subscribers',
                     '+8613800138000', 'null', 'null');
                 INSERT INTO records VALUES ('subscribers', '+8613800138001',
                    '8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5', NULL,
                    'mobile', 'active', '{}');
                 INSERT INTO events(ts, actor, command, kind, key, before, after) VALUES
                    ('2026-01-01T00:00:00+08:00', 'ops', 'import', 'subscribers',
                     '+8613800138001', 'null', '{}');
                 -- A record without a matching event (written outside the ledger's rules).
                 INSERT INTO records VALUES ('units', '91110000600037341L', 'h2', NULL,
                    'enterprise', NULL, '{\"name\":\"x\"}');",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let card = store
            .get(Kind::Subscribers, "+8613800138000")
            .unwrap()
            .unwrap();
        assert_eq!(card.body, serde_json::json!({"state": "active"}));
        assert_eq!(card.holder_hash.as_deref(), Some("h1"));
        // A hex holder hash is packed by schema 3 and reads back the same.
        let hex = "8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5";
        assert_eq!(holder_hash_type(&store, "+8613800138001"), "blob");
        let other = store
            .get(Kind::Subscribers, "+8613800138001")
            .unwrap()
            .unwrap();
        assert_eq!(other.holder_hash.as_deref(), Some(hex));
        let commands: Vec<String> = store
            .history(Kind::Subscribers, "+8613800138000")
            .unwrap()
            .into_iter()
            .map(|e| e.command)
            .collect();
        assert_eq!(commands, ["import", "import", "pii_revealed"]);
        let unit = store
            .get(Kind::Units, "91110000600037341L")
            .unwrap()
            .unwrap();
        assert_eq!(unit.body, serde_json::json!({"name": "x"}));
        let history = store.history(Kind::Units, "91110000600037341L").unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].command, "migrate");
        // Counting by holder still works on the rebuilt table.
        let mut tx = store.begin().unwrap();
        for holder in ["h1", hex] {
            assert_eq!(
                tx.count(&active_mobile_cards(holder)).unwrap(),
                1,
                "{holder}"
            );
        }
        drop(tx);
        // Writes after the upgrade add to the history of a record stored before it.
        fanzha_ledger::conformance::history_spans_an_upgrade(&mut store);
    }
}
