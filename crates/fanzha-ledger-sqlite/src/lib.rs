//! The ledger's embedded backend: one SQLite file in WAL mode. Write transactions are
//! `BEGIN IMMEDIATE`, so writers — threads or processes — are serial and the rules' counts
//! inside a transaction cannot be raced past. Knows SQL; knows nothing of the rules.

use fanzha_ledger::store::{CountQuery, Event, Field, Record, Store, StoreError, Tx};
use fanzha_ledger::Kind;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Versioned migrations, applied in order inside one transaction each.
const MIGRATIONS: &[(i64, &str)] = &[(
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
)];

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A ledger in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the ledger file and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        Self::init(conn)
    }

    /// An in-memory ledger (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(Duration::from_secs(60)).map_err(db)?;
        // WAL: readers never block the writer; NORMAL sync: a killed process loses no
        // committed transaction (only a power loss could lose the last ones).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.pragma_update(None, "cache_size", -65536).map_err(db)?;
        // Checkpoint less often than the default 1000 pages: bulk imports write tens of
        // thousands of pages and each checkpoint costs an fsync.
        conn.pragma_update(None, "wal_autocheckpoint", 20000)
            .map_err(db)?;
        conn.pragma_update(None, "mmap_size", 268435456i64)
            .map_err(db)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)")
            .map_err(db)?;
        let current: i64 = tx
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > latest {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: latest,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.execute_batch(sql).map_err(db)?;
            tx.execute("INSERT INTO schema_version(version) VALUES (?1)", [version])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(SqliteStore { conn })
    }
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
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

const SELECT: &str = "SELECT kind, key, holder_hash, unit, subtype, state, body FROM records";

fn get(conn: &Connection, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "{SELECT} INDEXED BY records_by_key WHERE kind = ?1 AND key = ?2"
        ))
        .map_err(db)?;
    let raw = st
        .query_row(params![kind.as_str(), key], row_to_record)
        .optional()
        .map_err(db)?;
    raw.map(to_record).transpose()
}

/// The column a field is stored in and the index that serves it.
fn indexed(field: Field) -> (&'static str, &'static str) {
    match field {
        Field::HolderHash => ("holder_hash", "records_by_holder"),
        Field::Unit => ("unit", "records_by_unit"),
    }
}

/// A write transaction.
pub struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
}

impl Tx for SqliteTx<'_> {
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        get(&self.tx, kind, key)
    }

    fn find(&mut self, kind: Kind, field: Field, value: &str) -> Result<Vec<Record>, StoreError> {
        let column = match field {
            Field::HolderHash => "holder_hash",
            Field::Unit => "unit",
        };
        let mut st = self
            .tx
            .prepare_cached(&format!(
                "{SELECT} WHERE kind = ?1 AND {column} = ?2 ORDER BY key"
            ))
            .map_err(db)?;
        let rows = st
            .query_map(params![kind.as_str(), value], row_to_record)
            .map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(to_record)).collect()
    }

    fn count(&mut self, q: &CountQuery<'_>) -> Result<u64, StoreError> {
        let (column, index) = indexed(q.field);
        // INDEXED BY: without it the planner may walk the whole kind through the primary
        // key (`key <> ?5`), which made every count O(records).
        let mut st = self
            .tx
            .prepare_cached(&format!(
                "SELECT count(*) FROM records INDEXED BY {index} WHERE kind = ?1 AND {column} = ?2
                 AND (?3 IS NULL OR subtype = ?3) AND coalesce(state, '') <> ?4 AND key <> ?5"
            ))
            .map_err(db)?;
        let n: i64 = st
            .query_row(
                params![
                    q.kind.as_str(),
                    q.value,
                    q.subtype,
                    q.exclude_state,
                    q.exclude_key
                ],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(n as u64)
    }

    fn lock(&mut self, _scope: &str) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds SQLite's single write lock for the transaction.
        Ok(())
    }

    fn put(&mut self, r: &Record) -> Result<(), StoreError> {
        let mut st = self
            .tx
            .prepare_cached(
                "INSERT INTO records(kind, key, holder_hash, unit, subtype, state, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(kind, key) DO UPDATE SET holder_hash = excluded.holder_hash,
                   unit = excluded.unit, subtype = excluded.subtype, state = excluded.state,
                   body = excluded.body",
            )
            .map_err(db)?;
        st.execute(params![
            r.kind.as_str(),
            r.key,
            r.holder_hash,
            r.unit,
            r.subtype,
            r.state,
            serde_json::to_string(&r.body).expect("json")
        ])
        .map_err(db)?;
        Ok(())
    }

    fn append(&mut self, e: &Event) -> Result<(), StoreError> {
        let mut st = self
            .tx
            .prepare_cached(
                "INSERT INTO events(ts, actor, command, kind, key, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(db)?;
        st.execute(params![
            e.ts,
            e.actor,
            e.command,
            e.kind.as_str(),
            e.key,
            serde_json::to_string(&e.before).expect("json"),
            serde_json::to_string(&e.after).expect("json")
        ])
        .map_err(db)?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().map_err(db)
    }
}

impl Store for SqliteStore {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        get(&self.conn, kind, key)
    }

    fn scan(&mut self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("{SELECT} WHERE kind = ?1 ORDER BY key"))
            .map_err(db)?;
        let rows = st.query_map([kind.as_str()], row_to_record).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(to_record)).collect()
    }

    fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Event>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, ts, actor, command, before, after FROM events
                 WHERE kind = ?1 AND key = ?2 ORDER BY seq",
            )
            .map_err(db)?;
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
