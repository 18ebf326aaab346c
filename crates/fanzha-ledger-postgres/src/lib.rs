//! The ledger's backend at scale: PostgreSQL. Limits are race-free through transaction-level
//! advisory locks on the subject (one holder, one unit and type) taken before counting.
//! Round trips and the server's time are the cost here, so a transaction reads ahead what a
//! batch will need ([`Tx::prefetch`], which also draws the batch's event numbers; its
//! prepared statements go to the server at once and run back to back) and writes
//! behind: events stream to the server by binary `COPY` while the batch's rows are still
//! being applied, records go at commit (new ones by `COPY`, rewritten ones by one `unnest`
//! upsert). The client is tokio-postgres, its connection on a runtime of its own, so the
//! stream flows while the calling thread works; every other call blocks. Knows SQL; knows
//! nothing of the rules.

use bytes::Bytes;
use fanzha_ledger::store::{
    holder_tag, Change, Columns, CountQuery, Event, Field, Record, Store, StoreError, Tx,
};
use fanzha_ledger::Kind;
use futures_util::future::{try_join3, try_join4};
use futures_util::SinkExt;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde_json::Value;
use std::ops::Range;
use std::pin::Pin;
use std::str::FromStr;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, CopyInSink, GenericClient, NoTls, Row, Statement, Transaction};

mod access;
mod tls;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE records(
        kind TEXT NOT NULL, key TEXT NOT NULL,
        holder_hash TEXT, unit TEXT, subtype TEXT, state TEXT,
        body JSONB NOT NULL,
        PRIMARY KEY(kind, key));
     CREATE INDEX records_by_holder ON records(kind, holder_hash) WHERE holder_hash IS NOT NULL;
     CREATE INDEX records_by_unit ON records(kind, unit) WHERE unit IS NOT NULL;
     CREATE TABLE events(
        seq BIGSERIAL PRIMARY KEY,
        ts TEXT NOT NULL, actor TEXT NOT NULL, command TEXT NOT NULL,
        kind TEXT NOT NULL, key TEXT NOT NULL,
        before JSONB NOT NULL, after JSONB NOT NULL);
     CREATE INDEX events_by_record ON events(kind, key, seq);
     -- The history is append-only (R7.5).
     CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION 'the ledger history is append-only'; END $$;
     CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only();",
    ),
    (
        2,
        // As in SQLite: a record's body is the `after` of the event that wrote it, kept once
        // there (one JSONB parse per write instead of two); the record points at the event.
        // A v1 record whose body is no event's `after` gets a `migrate` event first.
        "INSERT INTO events(ts, actor, command, kind, key, before, after)
            SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                   'fanzha', 'migrate', r.kind, r.key, r.body, r.body
            FROM records r
            WHERE NOT EXISTS (SELECT 1 FROM events e
                              WHERE e.kind = r.kind AND e.key = r.key AND e.after = r.body)
            ORDER BY r.kind, r.key;
         ALTER TABLE records ADD COLUMN seq BIGINT;
         UPDATE records r SET seq = (SELECT max(e.seq) FROM events e
                                     WHERE e.kind = r.kind AND e.key = r.key AND e.after = r.body);
         ALTER TABLE records ALTER COLUMN seq SET NOT NULL;
         ALTER TABLE records DROP COLUMN body;
         -- History is written far more than it is searched: keep bodies as checked JSON
         -- text (json: validated, stored as sent) rather than parsed into jsonb on every
         -- write; a query that needs jsonb's operators casts.
         ALTER TABLE events ALTER COLUMN before TYPE json, ALTER COLUMN after TYPE json;
         -- Keys and hashes compare byte by byte (the C collation), as in SQLite: cheaper
         -- index comparisons than a locale's, and the same order from both backends.
         ALTER TABLE records ALTER COLUMN kind TYPE text COLLATE \"C\",
            ALTER COLUMN key TYPE text COLLATE \"C\",
            ALTER COLUMN holder_hash TYPE text COLLATE \"C\",
            ALTER COLUMN unit TYPE text COLLATE \"C\";
         ALTER TABLE events ALTER COLUMN kind TYPE text COLLATE \"C\",
            ALTER COLUMN key TYPE text COLLATE \"C\";",
    ),
    (
        3,
        // Indexes lead with the column that tells rows apart. With `kind` first, every
        // comparison in a bulk load of subscribers first found 'subscribers' equal, then
        // reached the next column at an uncached offset: index comparisons were a quarter of
        // the server's time. Scans of one kind use a partial index that holds no
        // subscriber, so bulk loads of subscribers never pay for it.
        "ALTER TABLE records DROP CONSTRAINT records_pkey, ADD PRIMARY KEY (key, kind);
         DROP INDEX records_by_holder;
         CREATE INDEX records_by_holder ON records(holder_hash, kind)
            WHERE holder_hash IS NOT NULL;
         DROP INDEX records_by_unit;
         CREATE INDEX records_by_unit ON records(unit, kind) WHERE unit IS NOT NULL;
         CREATE INDEX records_by_kind ON records(kind, key) WHERE kind <> 'subscribers';
         DROP INDEX events_by_record;
         CREATE INDEX events_by_record ON events(key, kind, seq);
         -- Bodies as the JSON text the ledger wrote (serde_json, checked before it is sent):
         -- the server's own check of every body was a tenth of a bulk import's cost. A query
         -- that needs JSON operators casts (`after::jsonb`).
         ALTER TABLE events ALTER COLUMN before TYPE text, ALTER COLUMN after TYPE text;",
    ),
    (
        4,
        // The ledger's version: the count of committed events, raised by each transaction
        // as it commits. The newest event's number will not do: a transaction draws its
        // numbers when it reads ahead, so one that draws first may commit last, after the
        // newest number was already seen, and its change would go unnoticed.
        "CREATE TABLE ledger_version(events BIGINT NOT NULL);
         INSERT INTO ledger_version SELECT count(*) FROM events;",
    ),
    (
        5,
        // The holder index keys a tag of each hash, its first eight bytes as a bigint
        // (`fanzha_ledger::store::holder_tag`, here in SQL for the hashes stored), instead
        // of the 64-character hash and the kind: a fifth of the size. Keyed hashes are
        // random, so a bulk load touches its pages all over; smaller, it stays in the
        // server's buffers and fewer of its pages are logged whole after each checkpoint.
        // Lookups match the tag through the index and the whole hash and kind in the row.
        "ALTER TABLE records ADD COLUMN holder_tag bigint;
         UPDATE records SET holder_tag = CASE
            WHEN holder_hash ~ '^([0-9a-f]{2})*$'
              THEN ('x' || rpad(substr(holder_hash, 1, 16), 16, '0'))::bit(64)::bigint
            ELSE ('x' || rpad(encode(substr(convert_to(holder_hash, 'UTF8'), 1, 8), 'hex'),
                              16, '0'))::bit(64)::bigint
            END
          WHERE holder_hash IS NOT NULL;
         DROP INDEX records_by_holder;
         CREATE INDEX records_by_holder ON records(holder_tag) WHERE holder_tag IS NOT NULL;",
    ),
    (
        6,
        // History is found through a record's number, not its key. Each record gets a
        // number, `id`, the number of an event of its own (for a new record, its first), so
        // unique; the events that write it carry it as `record`. A bulk load of new records
        // gives rising numbers, so the history index grows at its right edge, where the
        // server inserts without searching; on (key, kind, seq) its inserts searched text
        // all over, and dropping that index took a fifth of the server's time per imported
        // row. Events that write no record (`pii_revealed`) and those from before this
        // migration have no `record`; a partial index on the key finds them.
        "ALTER TABLE records ADD COLUMN id bigint;
         UPDATE records SET id = seq;
         ALTER TABLE records ALTER COLUMN id SET NOT NULL;
         ALTER TABLE events ADD COLUMN record bigint;
         DROP INDEX events_by_record;
         CREATE INDEX events_by_record ON events(record, seq) WHERE record IS NOT NULL;
         CREATE INDEX events_unlinked ON events(key, kind, seq) WHERE record IS NULL;",
    ),
    (
        7,
        // Principals, the audit trail (append-only like the history; chained by the
        // caller's MAC, see fanzha-auth; appends serialised by an advisory lock) and
        // settings (key check values). A principal's `version` grows with each change, so
        // their sum tells a cache to reload.
        "CREATE TABLE principals(
            name TEXT COLLATE \"C\" PRIMARY KEY,
            kind TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            revoked_at BIGINT,
            password_hash TEXT,
            totp_sealed TEXT,
            token_hash TEXT UNIQUE,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until BIGINT,
            created_by TEXT NOT NULL,
            version BIGINT NOT NULL DEFAULT 1);
         CREATE TABLE audit(
            seq BIGINT PRIMARY KEY,
            ts TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
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
         CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
         CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
           FOR EACH ROW EXECUTE FUNCTION audit_append_only();
         CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
           FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
         CREATE TABLE settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
];

/// Limits are serialised by advisory locks on buckets of subjects, not on each subject: a
/// lock per holder would let one 20,000-row batch take thousands of the server's shared
/// lock slots (`max_locks_per_transaction` × connections, 6,400 by default) and fail.
/// Subjects sharing a bucket wait for each other; none can race past a limit.
const LOCK_CLASS: i32 = 71_756_065;
/// The bucket of the subject `s`, in SQL: one of 1,024 ([`lock_bucket`] computes the same).
const LOCK_BUCKET: &str = "(hashtext(s) & 1023)";

/// The bucket of the subject `scope`, as [`LOCK_BUCKET`] computes it on the server.
fn lock_bucket(scope: &str) -> u32 {
    hash_bytes(scope.as_bytes()) & 1023
}

/// PostgreSQL's `hash_bytes` (src/common/hashfn.c; Bob Jenkins' lookup3 with its own
/// start), on which `hashtext` is built for text in a deterministic collation. Words are
/// read little-endian, as on every platform this server runs on here; a test compares it
/// with the server's `hashtext`.
fn hash_bytes(mut k: &[u8]) -> u32 {
    // The state is [a, b, c]. Each step of lookup3's `mix`: (x, y, z, k) for
    // x -= y; x ^= rot(y, k); y += z. Each step of its `final`: (x, y, k) for
    // x ^= y; x -= rot(y, k).
    const MIX: [(usize, usize, usize, u32); 6] = [
        (0, 2, 1, 4),
        (1, 0, 2, 6),
        (2, 1, 0, 8),
        (0, 2, 1, 16),
        (1, 0, 2, 19),
        (2, 1, 0, 4),
    ];
    const FINAL: [(usize, usize, u32); 7] = [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ];
    fn mix(s: &mut [u32; 3]) {
        for (x, y, z, k) in MIX {
            s[x] = s[x].wrapping_sub(s[y]) ^ s[y].rotate_left(k);
            s[y] = s[y].wrapping_add(s[z]);
        }
    }
    fn finish(s: &mut [u32; 3]) {
        for (x, y, k) in FINAL {
            s[x] ^= s[y];
            s[x] = s[x].wrapping_sub(s[y].rotate_left(k));
        }
    }
    let word = |k: &[u8]| u32::from_le_bytes([k[0], k[1], k[2], k[3]]);
    let start = 0x9e37_79b9_u32
        .wrapping_add(k.len() as u32)
        .wrapping_add(3_923_095);
    let mut s = [start; 3];
    while k.len() >= 12 {
        for (i, v) in s.iter_mut().enumerate() {
            *v = v.wrapping_add(word(&k[4 * i..]));
        }
        mix(&mut s);
        k = &k[12..];
    }
    // The last 11 bytes at most, little-endian into a, b, then c from its second byte: the
    // lowest byte of c is left for the length.
    for (i, &byte) in k.iter().enumerate() {
        let (word, shift) = match i {
            0..=7 => (i / 4, 8 * (i % 4)),
            _ => (2, 8 * (i - 7)),
        };
        s[word] = s[word].wrapping_add(u32::from(byte) << shift);
    }
    finish(&mut s);
    s[2]
}

/// The lock (in [`LOCK_CLASS`], outside the buckets) under which blocks of event sequence
/// numbers are drawn.
const SEQ_LOCK: i32 = 1024;

/// The error as the operator needs it: the server's own message and SQLSTATE code (a
/// tokio-postgres error shows only "db error"), or the client's error and its cause.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    let message = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                m.push_str(": ");
                m.push_str(detail);
            }
            m
        }
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    };
    StoreError::Database(message)
}

/// A ledger in a PostgreSQL database (optionally in its own schema).
pub struct PgStore {
    client: Client,
    /// Where it connected, for a sibling connection ([`Store::sibling`]).
    url: String,
    schema: Option<String>,
    /// The runtime of the client's connection; None only in `drop`.
    rt: Option<Runtime>,
    /// After the server went away: when to try again, and the wait after that.
    retry: Option<(std::time::Instant, std::time::Duration)>,
}

impl Drop for PgStore {
    /// Stops the connection's runtime without waiting for it: waiting would block, which
    /// tokio forbids (it panics) on a thread that runs async code, where the service drops
    /// its ledger when it shuts down.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Connects to `url`: an async client whose connection runs on a runtime of its own with
/// one worker thread. So what a transaction streams to the server (its events, by COPY)
/// flows while the calling thread goes on applying rows; every other call blocks on it.
fn open(url: &str) -> Result<(Client, Runtime), StoreError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ledger-postgres")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Database(format!("cannot start a runtime: {e}")))?;
    let (url, tls) = tls::parse(url)?;
    let client = match tls {
        None => {
            let (client, connection) = rt
                .block_on(tokio_postgres::connect(&url, NoTls))
                .map_err(db_error)?;
            // A connection that fails ends here; the client's next call then reports it
            // closed.
            rt.spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Some(connector) => {
            let (client, connection) = rt
                .block_on(tokio_postgres::connect(&url, connector))
                .map_err(db_error)?;
            rt.spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    Ok((client, rt))
}

/// Blocking calls on a client or transaction, on the store's runtime.
struct Blocking<'a, C> {
    rt: &'a Runtime,
    c: &'a C,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<C: GenericClient + Sync> Blocking<'_, C> {
    fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.rt.block_on(self.c.query(sql, params))
    }

    fn query_one(&self, sql: &str, params: &Params<'_>) -> Result<Row, tokio_postgres::Error> {
        self.rt.block_on(self.c.query_one(sql, params))
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        self.rt.block_on(self.c.query_opt(sql, params))
    }

    fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64, tokio_postgres::Error> {
        self.rt.block_on(self.c.execute(sql, params))
    }

    fn batch_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.c.batch_execute(sql))
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies pending migrations.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_in_schema(url, None)
    }

    /// Ends the server sessions whose `application_name` is `app` (as an administrator or
    /// a restart would); how many. For fault-injection tests and the soak script.
    pub fn terminate_sessions_of(&mut self, app: &str) -> Result<u64, StoreError> {
        self.ensure_connected()?;
        let rows = self
            .db()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&app],
            )
            .map_err(db_error)?;
        Ok(rows.len() as u64)
    }

    /// Whether this connection is encrypted (TLS), as the server sees it.
    pub fn encrypted(&mut self) -> Result<bool, StoreError> {
        let row = self
            .db()
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    /// Drops `schema` and everything in it: the end of a ledger made by
    /// [`PgStore::connect_in_schema`] for a benchmark or a test.
    pub fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Database(format!("bad schema name {schema:?}")));
        }
        let (client, rt) = open(url)?;
        rt.block_on(client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
            .map_err(db_error)
    }

    /// As [`PgStore::connect`], with every table in `schema` (created if needed): how the
    /// tests give each case an empty ledger in one server.
    pub fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        if let Some(s) = schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Database(format!("bad schema name {s:?}")));
            }
        }
        let (mut client, rt) = session(url, None)?;
        let tx = rt.block_on(client.transaction()).map_err(db_error)?;
        let b = Blocking { rt: &rt, c: &tx };
        // Concurrent first starts must not both create the schema or migrate.
        b.execute("SELECT pg_advisory_xact_lock(7175606504)", &[])
            .map_err(db_error)?;
        if let Some(s) = schema {
            b.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}"
            ))
            .map_err(db_error)?;
        }
        b.batch_execute("CREATE TABLE IF NOT EXISTS schema_version(version BIGINT NOT NULL)")
            .map_err(db_error)?;
        let current: i64 = b
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .map_err(db_error)?
            .get(0);
        let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > latest {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: latest,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            b.batch_execute(sql).map_err(db_error)?;
            b.execute(
                "INSERT INTO schema_version(version) VALUES ($1)",
                &[version],
            )
            .map_err(db_error)?;
        }
        rt.block_on(tx.commit()).map_err(db_error)?;
        Ok(PgStore {
            client,
            url: url.to_string(),
            schema: schema.map(str::to_string),
            rt: Some(rt),
            retry: None,
        })
    }

    /// After the server went away (a restart, a failover): reconnects at the first call,
    /// then, while it stays away, every 1 s doubling to 30 s; calls in between fail at
    /// once, saying so, instead of each waiting on a dead connection.
    pub(crate) fn ensure_connected(&mut self) -> Result<(), StoreError> {
        if !self.client.is_closed() {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if let Some((at, _)) = self.retry {
            if now < at {
                return Err(StoreError::Database(format!(
                    "PostgreSQL is unreachable; the next attempt to reconnect is in {} ms",
                    (at - now).as_millis()
                )));
            }
        }
        match session(&self.url, self.schema.as_deref()) {
            Ok((client, rt)) => {
                if let Some(old) = self.rt.replace(rt) {
                    old.shutdown_background();
                }
                self.client = client;
                self.retry = None;
                Ok(())
            }
            Err(e) => {
                let wait = self
                    .retry
                    .map_or(std::time::Duration::from_secs(1), |(_, w)| {
                        (w * 2).min(std::time::Duration::from_secs(30))
                    });
                self.retry = Some((now + wait, wait));
                Err(StoreError::Database(format!(
                    "PostgreSQL is unreachable ({e}); trying again in {} s",
                    wait.as_secs()
                )))
            }
        }
    }
}

/// A session as the ledger uses it: connected, JIT off, in its schema if any.
fn session(url: &str, schema: Option<&str>) -> Result<(Client, Runtime), StoreError> {
    let (client, rt) = open(url)?;
    // The ledger's statements are many and short. The read-ahead of a large batch is
    // estimated dear enough for the server to compile it to machine code each time, a
    // tenth of the server's work in a bulk import, for queries that run in milliseconds.
    rt.block_on(client.batch_execute("SET jit = off"))
        .map_err(db_error)?;
    if let Some(s) = schema {
        rt.block_on(client.batch_execute(&format!("SET search_path TO {s}")))
            .map_err(db_error)?;
    }
    Ok((client, rt))
}

/// The statements of a batch's read-ahead and of drawing event numbers, prepared together
/// in one round trip by a transaction that needs them. Prepared, a statement goes to the
/// server in one message, so several can be sent at once and run back to back in the order
/// sent (tokio-postgres sends requests in the order their futures are first polled), while
/// this side works on the next. Per transaction, not per connection: a pooler that lends
/// the server's sessions by transaction (PgBouncer's transaction mode) keeps no prepared
/// statement from one to the next.
struct Statements {
    /// Takes the lock buckets of the subjects `$1` (text[]), in bucket order.
    lock_buckets: Statement,
    /// Records of kind `$1` with keys in the ranges `$2` (lows) … `$3` (highs).
    records_in_ranges: Statement,
    /// Subscribers' heads by holder: hashes `$1`, their tags `$2`.
    subscribers_of_holders: Statement,
    /// The lock under which event numbers are drawn, taken and given back.
    seq_lock: Statement,
    seq_unlock: Statement,
    /// Draws `$1` event numbers and answers the last.
    draw_seqs: Statement,
}

impl Statements {
    async fn prepare(c: &impl GenericClient) -> Result<Statements, tokio_postgres::Error> {
        let (lock_buckets, records_in_ranges, subscribers_of_holders) = try_join3(
            c.prepare(&format!(
                "SELECT pg_advisory_xact_lock({LOCK_CLASS}, b) FROM
                   (SELECT DISTINCT {LOCK_BUCKET} AS b FROM unnest($1::text[]) AS t(s)) u
                 ORDER BY b"
            )),
            c.prepare(&format!(
                "SELECT x.* FROM unnest($2::text[], $3::text[]) AS k(low, high)
                 CROSS JOIN LATERAL
                 ({SELECT} WHERE r.key >= k.low AND r.key <= k.high AND r.kind = $1 OFFSET 0) x"
            )),
            c.prepare(&format!(
                "SELECT x.* FROM unnest($1::text[], $2::bigint[]) AS h(hash, tag)
                 CROSS JOIN LATERAL
                 ({SELECT_HEAD} WHERE r.holder_tag = h.tag AND r.holder_hash = h.hash
                  AND r.kind = 'subscribers' OFFSET 0) x"
            )),
        )
        .await?;
        let (seq_lock, seq_unlock, draw_seqs) = try_join3(
            c.prepare(&format!(
                "SELECT pg_advisory_lock({LOCK_CLASS}, {SEQ_LOCK})"
            )),
            c.prepare(&format!(
                "SELECT pg_advisory_unlock({LOCK_CLASS}, {SEQ_LOCK})"
            )),
            c.prepare(
                "SELECT setval(pg_get_serial_sequence('events', 'seq'),
                               nextval(pg_get_serial_sequence('events', 'seq')) + $1 - 1)",
            ),
        )
        .await?;
        Ok(Statements {
            lock_buckets,
            records_in_ranges,
            subscribers_of_holders,
            seq_lock,
            seq_unlock,
            draw_seqs,
        })
    }

    /// Draws `n` event numbers: the lock, the draw and the unlock sent at once (so one
    /// round trip, and the draw still runs under the lock). Every allocation takes the same
    /// session lock, so none can interleave.
    async fn draw_seqs(
        &self,
        tx: &Transaction<'_>,
        n: i64,
    ) -> Result<Range<i64>, tokio_postgres::Error> {
        let (_, last, _) = try_join3(
            tx.execute(&self.seq_lock, &[]),
            tx.query_one(&self.draw_seqs, &[&n]),
            tx.execute(&self.seq_unlock, &[]),
        )
        .await?;
        let last: i64 = last.get(0);
        Ok(last - n + 1..last + 1)
    }
}

/// Records with their bodies (the `after` of the event each points at).
///
/// Lookups of many keys or holders at once run it once per value (`unnest` … `CROSS JOIN
/// LATERAL (… OFFSET 0)`) rather than with `= ANY($1)`: during a bulk load the table's
/// statistics lag far behind it, and the planner then answered `= ANY` by reading every
/// subscriber in the index and filtering, a cost that grew with the ledger for every batch.
const SELECT: &str =
    "SELECT r.kind, r.key, r.holder_hash, r.unit, r.subtype, r.state, e.after::text, r.id
    FROM records r JOIN events e ON e.seq = r.seq";

/// A record read with [`SELECT`] and its number (`records.id`), which its events carry.
fn to_stored(row: &Row) -> Result<(Record, i64), StoreError> {
    Ok((to_record(row)?, row.get(7)))
}

/// A record's columns without its body (the holder lists a batch reads ahead are counted,
/// not read).
const SELECT_HEAD: &str = "SELECT r.kind, r.key, r.holder_hash, r.unit, r.subtype, r.state
    FROM records r";

fn to_record(row: &Row) -> Result<Record, StoreError> {
    let mut record = to_head(row)?;
    let body: &str = row.get(6);
    record.body = serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        kind: record.kind.as_str().to_string(),
        key: record.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(record)
}

/// A record's columns from a row of [`SELECT_HEAD`] (or [`SELECT`]), its body null.
fn to_head(row: &Row) -> Result<Record, StoreError> {
    let kind: String = row.get(0);
    let key: String = row.get(1);
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: kind.clone(),
        key: key.clone(),
        reason,
    };
    let k = Kind::from_str(&kind).map_err(|e| corrupt(e.to_string()))?;
    Ok(Record {
        kind: k,
        key,
        holder_hash: row.get(2),
        unit: row.get(3),
        subtype: row.get(4),
        state: row.get(5),
        body: Value::Null,
    })
}

/// A write transaction with read-ahead and write-behind.
pub struct PgTx<'c> {
    rt: &'c Runtime,
    tx: Transaction<'c>,
    /// Prepared when first needed (see [`Statements`]).
    statements: Option<Statements>,
    /// Records read from the database with their numbers (None = known absent).
    read: HashMap<(Kind, String), Option<(Record, i64)>>,
    /// Records written in this transaction, last write wins.
    written: HashMap<(Kind, String), Written>,
    /// Order of first writes (so the flush is deterministic).
    written_order: Vec<(Kind, String)>,
    events: Vec<PendingEvent>,
    /// Keys written here, by the (kind, field, value) they are found under.
    written_by: HashMap<(Kind, Field, String), HashSet<String>>,
    /// Database rows of (kind, field, value) lookups, as stored.
    lists: HashMap<(Kind, Field, String), List>,
    locked: HashSet<String>,
    /// Event numbers drawn ahead for this transaction's events, not yet given.
    seqs: Range<i64>,
    /// `events[..sent]` have their numbers and are in the server's hands.
    sent: usize,
    /// The COPY of events open while a batch is applied, if any. No other statement can run
    /// on the connection until it ends ([`PgTx::end_stream`]).
    stream: Option<BinaryCopy>,
}

/// Events that gather before they are streamed to the server while a batch is applied:
/// a couple of megabytes, a few milliseconds of the server's work.
const STREAM_EVENTS: usize = 4096;

/// Sends events into an open COPY.
const COPY_EVENTS: &str = "COPY events(seq, record, ts, actor, command, kind, key, before, \
    after) FROM STDIN (FORMAT binary)";

/// A record written in a transaction.
struct Written {
    /// Its columns, without the body (null here: the body is the `after` of `event`).
    head: Record,
    /// The index of the event that wrote it last.
    event: usize,
    /// Its number.
    id: RecordId,
}

/// A record's number (`records.id`), as a transaction knows it before its events have
/// numbers.
#[derive(Clone, Copy)]
enum RecordId {
    /// A stored record's.
    Stored(i64),
    /// A new record's: the number of its first event, at this index in the transaction.
    FirstEvent(usize),
}

/// The records a lookup found in the database.
struct List {
    records: Vec<Record>,
    /// False when read ahead for counting only: the bodies are null.
    bodies: bool,
}

impl<'c> PgTx<'c> {
    /// The transaction, for a statement: only with no COPY open on the connection.
    fn db(&self) -> Blocking<'_, Transaction<'c>> {
        debug_assert!(self.stream.is_none(), "a statement while events stream");
        Blocking {
            rt: self.rt,
            c: &self.tx,
        }
    }

    /// Draws `n` event numbers in one step however many (n `nextval` calls cost
    /// microseconds each).
    fn draw_seqs(&mut self, n: usize) -> Result<Range<i64>, StoreError> {
        self.end_stream()?;
        let n = i64::try_from(n)
            .map_err(|_| StoreError::Database("too many events in one transaction".into()))?;
        self.prepare_statements()?;
        let st = self.statements.as_ref().expect("prepared above");
        self.rt
            .block_on(st.draw_seqs(&self.tx, n))
            .map_err(db_error)
    }

    /// Prepares the batch statements unless done (no COPY may be open).
    fn prepare_statements(&mut self) -> Result<(), StoreError> {
        if self.statements.is_none() {
            let prepared = self
                .rt
                .block_on(Statements::prepare(&self.tx))
                .map_err(db_error)?;
            self.statements = Some(prepared);
        }
        Ok(())
    }

    /// Streams the events written since the last send once enough have gathered and
    /// numbers drawn ahead cover them: the server inserts them while this thread applies
    /// the rows after them.
    fn stream_events(&mut self) -> Result<(), StoreError> {
        let unsent = self.events.len() - self.sent;
        if unsent >= STREAM_EVENTS && self.seqs.end - self.seqs.start >= unsent as i64 {
            self.send_events()?;
        }
        Ok(())
    }

    /// Numbers every unsent event from the numbers in hand (enough of them: the caller
    /// checks) and hands them to the COPY of events, opening it if needed.
    fn send_events(&mut self) -> Result<(), StoreError> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self
                .stream
                .insert(BinaryCopy::start(self.rt, &self.tx, COPY_EVENTS)?),
        };
        for i in self.sent..self.events.len() {
            let seq = self.seqs.next().expect("numbers for every unsent event");
            self.events[i].seq = Some(seq);
            // A new record's first event is this one or one sent before: numbered.
            let record = self.events[i].record.map(|id| id_of(&self.events, id));
            stream.row(&self.events[i].copy_fields(seq, record));
        }
        self.sent = self.events.len();
        stream.send(self.rt)
    }

    /// Ends the COPY of events if one is open, so the connection can take a statement.
    fn end_stream(&mut self) -> Result<(), StoreError> {
        match self.stream.take() {
            Some(stream) => stream.finish(self.rt),
            None => Ok(()),
        }
    }

    /// Fetches the database's records of a (kind, field, value) lookup unless already here
    /// (with their bodies if `bodies`).
    fn fetch_list(
        &mut self,
        kind: Kind,
        field: Field,
        value: &str,
        bodies: bool,
    ) -> Result<(), StoreError> {
        let k = (kind, field, value.to_string());
        if self.lists.get(&k).is_none_or(|l| bodies && !l.bodies) {
            self.end_stream()?;
            let db = self.db();
            let rows = match field {
                Field::HolderHash => db.query(
                    &format!(
                        "{SELECT} WHERE r.holder_tag = $3 AND r.holder_hash = $2 AND r.kind = $1
                         ORDER BY r.key"
                    ),
                    &[&kind.as_str(), &value, &holder_tag(value)],
                ),
                Field::Unit => db.query(
                    &format!("{SELECT} WHERE r.kind = $1 AND r.unit = $2 ORDER BY r.key"),
                    &[&kind.as_str(), &value],
                ),
            }
            .map_err(db_error)?;
            let recs = rows.iter().map(to_record).collect::<Result<Vec<_>, _>>()?;
            self.lists.insert(
                k,
                List {
                    records: recs,
                    bodies: true,
                },
            );
        }
        Ok(())
    }

    /// The records a lookup finds now, bodies aside: database rows not rewritten here, plus
    /// rows written here that match now. Call [`PgTx::fetch_list`] first.
    fn listed<'s>(&'s self, kind: Kind, field: Field, value: &'s str) -> Vec<&'s Record> {
        let k = (kind, field, value.to_string());
        let mut out: Vec<&Record> = self.lists[&k]
            .records
            .iter()
            .filter(|r| !self.written.contains_key(&(r.kind, r.key.clone())))
            .collect();
        if let Some(keys) = self.written_by.get(&k) {
            for key in keys {
                let r = &self.written[&(kind, key.clone())].head;
                let still = match field {
                    Field::HolderHash => r.holder_hash.as_deref() == Some(value),
                    Field::Unit => r.unit.as_deref() == Some(value),
                };
                if still {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// A record written here, with its body (kept only as the event's JSON text).
    fn written_record(&self, k: &(Kind, String)) -> Option<Result<Record, StoreError>> {
        let Written { head, event, .. } = self.written.get(k)?;
        let body = &self.events[*event].after;
        Some(
            serde_json::from_str(body)
                .map(|body| Record {
                    body,
                    ..head.clone()
                })
                .map_err(|e| StoreError::Corrupt {
                    kind: k.0.as_str().to_string(),
                    key: k.1.clone(),
                    reason: e.to_string(),
                }),
        )
    }

    /// Sends what is still buffered: the events not yet streamed (numbered from the
    /// numbers drawn ahead, or from a block drawn now), then the records, which point at
    /// their events: new ones by COPY, the others by one `unnest` upsert.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let unsent = self.events.len() - self.sent;
        if unsent > 0 {
            if self.seqs.end - self.seqs.start < unsent as i64 {
                self.seqs = self.draw_seqs(unsent)?;
            }
            self.send_events()?;
        }
        self.end_stream()?;
        let seq_of = |event: usize| self.events[event].seq.expect("every event is numbered");
        // Records known absent when read in this transaction go by COPY; the others (and
        // any a concurrent writer added meanwhile, which fails the COPY and so the batch,
        // to be redone row by row) by an upsert.
        let (new, existing): (Vec<&RecordKey>, Vec<&RecordKey>) = self
            .written_order
            .iter()
            .partition(|k| matches!(self.read.get(*k), Some(None)));
        if !new.is_empty() {
            BinaryCopy::all(
                self.rt,
                &self.tx,
                "COPY records(kind, key, holder_hash, unit, subtype, state, seq, holder_tag, \
                              id) FROM STDIN (FORMAT binary)",
                new.into_iter().map(|k| {
                    let Written { head: r, event, id } = &self.written[k];
                    [
                        CopyField::Text(Some(r.kind.as_str())),
                        CopyField::Text(Some(&r.key)),
                        CopyField::Text(r.holder_hash.as_deref()),
                        CopyField::Text(r.unit.as_deref()),
                        CopyField::Text(r.subtype.as_deref()),
                        CopyField::Text(r.state.as_deref()),
                        CopyField::Int8(Some(seq_of(*event))),
                        CopyField::Int8(r.holder_hash.as_deref().map(holder_tag)),
                        CopyField::Int8(Some(id_of(&self.events, *id))),
                    ]
                }),
            )?;
        }
        if !existing.is_empty() {
            let mut cols: [Vec<Option<&str>>; 6] = Default::default();
            let mut seq_col: Vec<i64> = Vec::with_capacity(existing.len());
            let mut tag_col: Vec<Option<i64>> = Vec::with_capacity(existing.len());
            let mut id_col: Vec<i64> = Vec::with_capacity(existing.len());
            for k in existing {
                let Written { head: r, event, id } = &self.written[k];
                id_col.push(id_of(&self.events, *id));
                cols[0].push(Some(r.kind.as_str()));
                cols[1].push(Some(&r.key));
                cols[2].push(r.holder_hash.as_deref());
                cols[3].push(r.unit.as_deref());
                cols[4].push(r.subtype.as_deref());
                cols[5].push(r.state.as_deref());
                seq_col.push(seq_of(*event));
                tag_col.push(r.holder_hash.as_deref().map(holder_tag));
            }
            self.db()
                .execute(
                    "INSERT INTO records(kind, key, holder_hash, unit, subtype, state, seq,
                                         holder_tag, id)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::bigint[], $8::bigint[],
                                          $9::bigint[])
                     ON CONFLICT (key, kind) DO UPDATE SET holder_hash = excluded.holder_hash,
                       holder_tag = excluded.holder_tag,
                       unit = excluded.unit, subtype = excluded.subtype, state = excluded.state,
                       seq = excluded.seq",
                    &[
                        &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &seq_col,
                        &tag_col, &id_col,
                    ],
                )
                .map_err(db_error)?;
        }
        // Last, so that concurrent commits queue on this row for as short a time as can be.
        let count = i64::try_from(self.events.len()).expect("fewer than 2^63 events");
        self.db()
            .execute("UPDATE ledger_version SET events = events + $1", &[&count])
            .map_err(db_error)?;
        self.events.clear();
        self.sent = 0;
        self.written_order.clear();
        Ok(())
    }
}

/// The number a key spells: its digits after an optional `+` (E.164 numbers, numbers of
/// key services), if it is one.
fn key_number(key: &str) -> Option<u64> {
    let digits = key.strip_prefix('+').unwrap_or(key);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Ranges `(low, high)` covering the sorted, distinct `keys` for the read-ahead: consecutive
/// keys join one range when they are consecutive numbers of the same length and form (`+`
/// or not), so a block of numbers is one range; any other key is a range of its own. Every
/// key lies in exactly one range, in byte order (the keys' collation, "C").
///
/// Consecutive only: a range then holds no other number of that length, which an earlier
/// batch may have stored. (Joining numbers up to 32 apart made a shuffled file of a number
/// block 50 % slower than a probe per key: its ranges read back earlier batches' records.)
fn key_ranges<'a>(keys: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut ranges = Vec::new();
    let Some((&first, rest)) = keys.split_first() else {
        return ranges;
    };
    let (mut low, mut high) = (first, first);
    for &key in rest {
        let near = key.len() == high.len()
            && key.starts_with('+') == high.starts_with('+')
            && matches!(
                (key_number(high), key_number(key)),
                (Some(a), Some(b)) if a.checked_add(1) == Some(b)
            );
        if !near {
            ranges.push((low, high));
            low = key;
        }
        high = key;
    }
    ranges.push((low, high));
    ranges
}

/// A record's identity: its kind and key.
type RecordKey = (Kind, String);

/// The number `id` stands for: a new record's is the number of its first event, which
/// must have been given.
fn id_of(events: &[PendingEvent], id: RecordId) -> i64 {
    match id {
        RecordId::Stored(n) => n,
        RecordId::FirstEvent(i) => events[i].seq.expect("a record's first event is numbered"),
    }
}

/// An event waiting for the flush, its JSON already text.
struct PendingEvent {
    /// Its number, once given.
    seq: Option<i64>,
    /// The record it writes, if any (`append`ed events write none).
    record: Option<RecordId>,
    ts: String,
    actor: String,
    command: String,
    kind: Kind,
    key: String,
    before: String,
    after: String,
}

/// A field of a row sent by a [`BinaryCopy`]: a `text` or a `bigint` column's value, or null.
enum CopyField<'a> {
    Text(Option<&'a str>),
    Int8(Option<i64>),
}

/// The start of COPY's binary format: its signature, no flags, no header extension.
const COPY_BINARY_HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A `COPY … FROM STDIN (FORMAT binary)` under way: rows gather in a buffer and go to the
/// server a chunk at a time, and the server works on one while the next is written.
///
/// The binary format, not text: the server reads each field's length instead of scanning
/// every byte for delimiters and escapes (its CPU per row in a bulk import fell by 14 %).
struct BinaryCopy {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    buf: Vec<u8>,
}

impl BinaryCopy {
    /// A chunk: about a MiB.
    const CHUNK: usize = 1 << 20;

    fn start(rt: &Runtime, tx: &Transaction<'_>, sql: &str) -> Result<BinaryCopy, StoreError> {
        let sink = rt.block_on(tx.copy_in(sql)).map_err(db_error)?;
        let mut buf = Vec::with_capacity(Self::CHUNK + (1 << 16));
        buf.extend_from_slice(COPY_BINARY_HEADER);
        Ok(BinaryCopy {
            sink: Box::pin(sink),
            buf,
        })
    }

    fn row(&mut self, fields: &[CopyField<'_>]) {
        copy_row(&mut self.buf, fields);
    }

    /// Hands the rows gathered so far to the connection.
    fn send(&mut self, rt: &Runtime) -> Result<(), StoreError> {
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        rt.block_on(self.sink.send(chunk)).map_err(db_error)
    }

    /// Sends the rest and the end of the data, and waits for the server to take it all.
    fn finish(mut self, rt: &Runtime) -> Result<(), StoreError> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let BinaryCopy { mut sink, buf } = self;
        rt.block_on(async {
            sink.send(Bytes::from(buf)).await?;
            sink.as_mut().finish().await
        })
        .map_err(db_error)?;
        Ok(())
    }

    /// Sends all of `rows` by `sql`.
    fn all<'a, const N: usize>(
        rt: &Runtime,
        tx: &Transaction<'_>,
        sql: &str,
        rows: impl Iterator<Item = [CopyField<'a>; N]>,
    ) -> Result<(), StoreError> {
        let mut copy = BinaryCopy::start(rt, tx, sql)?;
        for row in rows {
            copy.row(&row);
            if copy.buf.len() >= Self::CHUNK {
                copy.send(rt)?;
            }
        }
        copy.finish(rt)
    }
}

impl PendingEvent {
    /// The event as a row of [`COPY_EVENTS`], numbered `seq`, writing the record numbered
    /// `record` if any.
    fn copy_fields(&self, seq: i64, record: Option<i64>) -> [CopyField<'_>; 9] {
        [
            CopyField::Int8(Some(seq)),
            CopyField::Int8(record),
            CopyField::Text(Some(&self.ts)),
            CopyField::Text(Some(&self.actor)),
            CopyField::Text(Some(&self.command)),
            CopyField::Text(Some(self.kind.as_str())),
            CopyField::Text(Some(&self.key)),
            CopyField::Text(Some(&self.before)),
            CopyField::Text(Some(&self.after)),
        ]
    }
}

/// Appends one row in COPY's binary format: the field count, then each field's length in
/// bytes (-1 for null) and its bytes; a `bigint` is 8 bytes, big-endian.
fn copy_row(buf: &mut Vec<u8>, fields: &[CopyField<'_>]) {
    let count = i16::try_from(fields.len()).expect("a COPY row has few fields");
    buf.extend_from_slice(&count.to_be_bytes());
    for field in fields {
        match field {
            CopyField::Text(Some(text)) => {
                // A field longer than 2 GiB cannot be sent; no ledger value comes near.
                let len = i32::try_from(text.len()).expect("a field under 2 GiB");
                buf.extend_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(text.as_bytes());
            }
            CopyField::Text(None) | CopyField::Int8(None) => {
                buf.extend_from_slice(&(-1i32).to_be_bytes())
            }
            CopyField::Int8(Some(n)) => {
                buf.extend_from_slice(&8i32.to_be_bytes());
                buf.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
}

impl Tx for PgTx<'_> {
    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        let k = (kind, key.to_string());
        if let Some(r) = self.written_record(&k) {
            return r.map(Some);
        }
        if let Some(r) = self.read.get(&k) {
            return Ok(r.as_ref().map(|(r, _)| r.clone()));
        }
        self.end_stream()?;
        let row = self
            .db()
            .query_opt(
                &format!("{SELECT} WHERE r.kind = $1 AND r.key = $2"),
                &[&kind.as_str(), &key],
            )
            .map_err(db_error)?;
        let stored = row.as_ref().map(to_stored).transpose()?;
        let rec = stored.as_ref().map(|(r, _)| r.clone());
        self.read.insert(k, stored);
        Ok(rec)
    }

    fn find(&mut self, kind: Kind, field: Field, value: &str) -> Result<Vec<Record>, StoreError> {
        self.fetch_list(kind, field, value, true)?;
        let listed: Vec<Record> = self
            .listed(kind, field, value)
            .into_iter()
            .cloned()
            .collect();
        // Records written here are held without bodies: give them theirs.
        listed
            .into_iter()
            .map(|r| {
                self.written_record(&(r.kind, r.key.clone()))
                    .unwrap_or(Ok(r))
            })
            .collect()
    }

    fn count(&mut self, q: &CountQuery<'_>) -> Result<u64, StoreError> {
        self.fetch_list(q.kind, q.field, q.value, false)?;
        let n = self
            .listed(q.kind, q.field, q.value)
            .into_iter()
            .filter(|r| q.subtype.is_none() || r.subtype.as_deref() == q.subtype)
            .filter(|r| r.state.as_deref().unwrap_or("") != q.exclude_state)
            .filter(|r| r.key != q.exclude_key)
            .count();
        Ok(n as u64)
    }

    fn lock(&mut self, scope: std::fmt::Arguments<'_>) -> Result<(), StoreError> {
        let scope = scope.to_string();
        if self.locked.contains(&scope) {
            return Ok(());
        }
        self.end_stream()?;
        self.db().execute(
                &format!("SELECT pg_advisory_xact_lock({LOCK_CLASS}, {LOCK_BUCKET}) FROM (SELECT $1::text AS s) t"),
                &[&scope],
            )
            .map_err(db_error)?;
        // Anything read about this subject before the lock may be stale.
        self.lists
            .retain(|(_, _, v), _| !scope.contains(v.as_str()));
        self.locked.insert(scope);
        Ok(())
    }

    fn prefetch(
        &mut self,
        kind: Kind,
        keys: &[&str],
        holder_hashes: &[&str],
    ) -> Result<(), StoreError> {
        self.end_stream()?;
        let keys_hint = keys.len();
        // Distinct holders in order, once, for the locks and the reads.
        let mut hashes: Vec<&str> = holder_hashes.to_vec();
        hashes.sort_unstable();
        hashes.dedup();
        let scopes: Vec<String> = hashes
            .iter()
            .map(|h| format!("holder:{h}"))
            .filter(|s| !self.locked.contains(s))
            .collect();
        let mut keys: Vec<&str> = if self.read.is_empty() {
            keys.to_vec()
        } else {
            let read = &self.read;
            keys.iter()
                .copied()
                .filter(|k| !read.contains_key(&(kind, k.to_string())))
                .collect()
        };
        // One index range scan per run of consecutive numbers (see `key_ranges`), not one
        // probe per key: an import of a number block reads a handful of ranges.
        keys.sort_unstable();
        keys.dedup();
        let (low, high): (Vec<&str>, Vec<&str>) = key_ranges(&keys).into_iter().unzip();
        let tags: Vec<i64> = hashes.iter().map(|h| holder_tag(h)).collect();
        // Numbers for the batch's events, so they can stream to the server as the rows
        // are applied (a refused row leaves its number unused).
        let have = usize::try_from(self.seqs.end - self.seqs.start).unwrap_or(0);
        let draw = if have < keys_hint {
            Some(
                i64::try_from(keys_hint)
                    .map_err(|_| StoreError::Database("too many rows in one batch".into()))?,
            )
        } else {
            None
        };
        self.prepare_statements()?;
        let (st, tx) = (self.statements.as_ref().expect("prepared above"), &self.tx);
        // Sent at once and run in this order: the locks first (in bucket order, so
        // concurrent batches cannot deadlock), then the reads, which see every change
        // committed by those who held the locks before.
        let (_, key_rows, holder_rows, seqs) = self
            .rt
            .block_on(async {
                try_join4(
                    async {
                        if scopes.is_empty() {
                            return Ok(0);
                        }
                        tx.execute(&st.lock_buckets, &[&scopes]).await
                    },
                    async {
                        if keys.is_empty() {
                            return Ok(Vec::new());
                        }
                        tx.query(&st.records_in_ranges, &[&kind.as_str(), &low, &high])
                            .await
                    },
                    async {
                        if hashes.is_empty() {
                            return Ok(Vec::new());
                        }
                        tx.query(&st.subscribers_of_holders, &[&hashes, &tags])
                            .await
                    },
                    async {
                        match draw {
                            Some(n) => st.draw_seqs(tx, n).await.map(Some),
                            None => Ok(None),
                        }
                    },
                )
                .await
            })
            .map_err(db_error)?;
        self.locked.extend(scopes);
        if let Some(seqs) = seqs {
            self.seqs = seqs;
        }
        self.read.reserve(keys.len());
        for k in &keys {
            self.read.insert((kind, k.to_string()), None);
        }
        for row in &key_rows {
            // Only the keys asked for: a range may hold others, which are left alone.
            let key = row.get::<_, &str>(1);
            if let Some(slot) = self.read.get_mut(&(kind, key.to_string())) {
                *slot = Some(to_stored(row)?);
            }
        }
        self.lists.reserve(hashes.len());
        for h in &hashes {
            self.lists.insert(
                (Kind::Subscribers, Field::HolderHash, h.to_string()),
                List {
                    records: Vec::new(),
                    bodies: false,
                },
            );
        }
        for row in &holder_rows {
            let r = to_head(row)?;
            let h = r.holder_hash.clone().unwrap_or_default();
            if let Some(list) = self
                .lists
                .get_mut(&(Kind::Subscribers, Field::HolderHash, h))
            {
                list.records.push(r);
            }
        }
        Ok(())
    }

    fn write(
        &mut self,
        record: &Columns<'_>,
        body_json: &str,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let k = (record.kind, record.key.to_string());
        if !self.written.contains_key(&k) && !self.read.contains_key(&k) {
            // Whether the record is new decides its number and how it is stored.
            self.get(record.kind, record.key)?;
        }
        let event = self.events.len();
        let id = match (self.written.get(&k), &self.read[&k]) {
            (Some(w), _) => w.id,
            (None, Some((_, id))) => RecordId::Stored(*id),
            (None, None) => RecordId::FirstEvent(event),
        };
        for (field, value) in [
            (Field::HolderHash, record.holder_hash),
            (Field::Unit, record.unit),
        ] {
            if let Some(v) = value {
                self.written_by
                    .entry((record.kind, field, v.to_string()))
                    .or_default()
                    .insert(record.key.to_string());
            }
        }
        self.events.push(PendingEvent {
            seq: None,
            record: Some(id),
            ts: change.ts.to_string(),
            actor: change.actor.to_string(),
            command: change.command.to_string(),
            kind: record.kind,
            key: record.key.to_string(),
            before: serde_json::to_string(change.before).expect("a JSON value serialises"),
            after: body_json.to_string(),
        });
        let head = Record {
            kind: record.kind,
            key: record.key.to_string(),
            holder_hash: record.holder_hash.map(str::to_string),
            unit: record.unit.map(str::to_string),
            subtype: record.subtype.map(str::to_string),
            state: record.state.map(str::to_string),
            body: Value::Null,
        };
        if self
            .written
            .insert(k.clone(), Written { head, event, id })
            .is_none()
        {
            self.written_order.push(k);
        }
        self.stream_events()
    }

    fn append(&mut self, e: &Event) -> Result<(), StoreError> {
        self.events.push(PendingEvent {
            seq: None,
            record: None,
            ts: e.ts.clone(),
            actor: e.actor.clone(),
            command: e.command.clone(),
            kind: e.kind,
            key: e.key.clone(),
            before: e.before.to_string(),
            after: e.after.to_string(),
        });
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.flush()?;
        let PgTx { rt, tx, .. } = *self;
        rt.block_on(tx.commit()).map_err(db_error)
    }
}

impl PgStore {
    fn rt(&self) -> &Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives until the store is dropped")
    }

    fn db(&self) -> Blocking<'_, Client> {
        Blocking {
            rt: self.rt(),
            c: &self.client,
        }
    }
}

impl Store for PgStore {
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, StoreError> {
        self.ensure_connected()?;
        let rt = self
            .rt
            .as_ref()
            .expect("the runtime lives until the store is dropped");
        let tx = rt.block_on(self.client.transaction()).map_err(db_error)?;
        Ok(Box::new(PgTx {
            rt,
            tx,
            statements: None,
            read: HashMap::default(),
            written: HashMap::default(),
            written_order: Vec::new(),
            events: Vec::new(),
            written_by: HashMap::default(),
            lists: HashMap::default(),
            locked: HashSet::default(),
            seqs: 0..0,
            sent: 0,
            stream: None,
        }))
    }

    fn get(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        self.ensure_connected()?;
        let row = self
            .db()
            .query_opt(
                &format!("{SELECT} WHERE r.kind = $1 AND r.key = $2"),
                &[&kind.as_str(), &key],
            )
            .map_err(db_error)?;
        row.as_ref().map(to_record).transpose()
    }

    fn scan(&mut self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.ensure_connected()?;
        let rows = self
            .db()
            .query(
                // The kind as a literal, so that the planner can match the partial index of
                // the kinds other than subscribers.
                &format!("{SELECT} WHERE r.kind = '{}' ORDER BY r.key", kind.as_str()),
                &[],
            )
            .map_err(db_error)?;
        rows.iter().map(to_record).collect()
    }

    fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Event>, StoreError> {
        self.ensure_connected()?;
        let rows = self
            .db()
            .query(
                "SELECT seq, ts, actor, command, before::text, after::text FROM events
                 WHERE record = (SELECT id FROM records WHERE key = $2 AND kind = $1)
                 UNION ALL
                 SELECT seq, ts, actor, command, before::text, after::text FROM events
                 WHERE record IS NULL AND key = $2 AND kind = $1
                 ORDER BY seq",
                &[&kind.as_str(), &key],
            )
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| Event {
                seq: r.get(0),
                ts: r.get(1),
                actor: r.get(2),
                command: r.get(3),
                kind,
                key: key.to_string(),
                before: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(Value::Null),
                after: serde_json::from_str(r.get::<_, &str>(5)).unwrap_or(Value::Null),
            })
            .collect())
    }

    fn version(&mut self) -> Result<i64, StoreError> {
        self.ensure_connected()?;
        Ok(self
            .db()
            .query_one("SELECT events FROM ledger_version", &[])
            .map_err(db_error)?
            .get(0))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn sibling(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        let store = PgStore::connect_in_schema(&self.url, self.schema.as_deref())?;
        Ok(Some(Box::new(store)))
    }

    fn lock_of(&self, scope: &str) -> u32 {
        lock_bucket(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test server's URL (`scripts/test.sh` starts it).
    fn test_server() -> String {
        std::env::var("FANZHA_TEST_DATABASE_URL")
            .expect("FANZHA_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh")
    }

    /// A block of numbers is read as one range; a gap, another length or a key that is not
    /// a number starts a range of its own.
    #[test]
    fn number_blocks_are_read_ahead_as_ranges() {
        let mut keys: Vec<String> = (0..100)
            .flat_map(|i| ["138", "139", "150"].map(|seg| format!("+86{seg}{i:08}")))
            .collect();
        keys.extend([
            "+8613800000200".into(),
            "+8613800000202".into(),
            "+861380000020".into(),
            "91110000600037341L".into(),
        ]);
        keys.sort();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(
            key_ranges(&keys),
            [
                ("+8613800000000", "+8613800000099"),
                // Shorter, so between them in byte order.
                ("+861380000020", "+861380000020"),
                ("+8613800000200", "+8613800000200"),
                ("+8613800000202", "+8613800000202"),
                ("+8613900000000", "+8613900000099"),
                ("+8615000000000", "+8615000000099"),
                ("91110000600037341L", "91110000600037341L"),
            ]
        );
        assert!(key_ranges(&[]).is_empty());
    }

    proptest::proptest! {
        /// Every key of the batch lies in exactly one range, in byte order, and ranges start
        /// and end on keys of the batch.
        #[test]
        fn key_ranges_cover_each_key_once(
            mut keys in proptest::collection::vec("[+]?[0-9]{1,4}|[+]?[0-9a-c]{1,3}", 0..60)
        ) {
            keys.sort();
            keys.dedup();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let ranges = key_ranges(&keys);
            for (low, high) in &ranges {
                proptest::prop_assert!(low <= high);
                proptest::prop_assert!(keys.contains(low) && keys.contains(high));
            }
            for pair in ranges.windows(2) {
                proptest::prop_assert!(pair[0].1 < pair[1].0);
            }
            for key in &keys {
                let holding = ranges.iter().filter(|(l, h)| l <= key && key <= h).count();
                proptest::prop_assert_eq!(holding, 1, "{}", key);
            }
        }
    }

    #[test]
    fn copy_rows_are_length_prefixed_fields_in_copy_binary_format() {
        let mut buf = Vec::new();
        copy_row(
            &mut buf,
            &[
                CopyField::Text(Some("a\tb")),
                CopyField::Text(None),
                CopyField::Int8(Some(258)),
                CopyField::Int8(None),
            ],
        );
        assert_eq!(
            buf,
            [
                &[0, 4][..],
                &[0, 0, 0, 3],
                b"a\tb",
                &[0xff, 0xff, 0xff, 0xff],
                &[0, 0, 0, 8],
                &[0, 0, 0, 0, 0, 0, 1, 2],
                &[0xff, 0xff, 0xff, 0xff],
            ]
            .concat()
        );
    }

    /// A store can be dropped on a thread that runs async code (the service drops its ledger
    /// there when it stops): dropping the connection's runtime must not block there.
    #[test]
    fn a_store_dropped_in_async_code_does_not_panic() {
        let url = test_server();
        let mut store = PgStore::connect(&url).unwrap();
        store.version().unwrap();
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        outer.block_on(async move { drop(store) });
    }

    /// Two writers whose event numbers commit out of order: each commit still moves the
    /// version, which the screening snapshot follows to see that the ledger changed.
    /// The client computes a subject's lock bucket as the server does (`hashtext`), for
    /// every tail length and for text that is not ASCII.
    #[test]
    fn lock_buckets_match_the_servers_hashtext() {
        let (client, rt) = open(&test_server()).unwrap();
        let mut scopes: Vec<String> = (0..40).map(|n| "x".repeat(n)).collect();
        scopes.extend((0..200).map(|n| format!("holder:{:064x}", n * 7919)));
        scopes.extend([
            "holder:身份-holder".to_string(),
            "unit:91110000600037341L:400".into(),
        ]);
        let rows = rt
            .block_on(client.query(
                "SELECT s, hashtext(s) FROM unnest($1::text[]) AS t(s)",
                &[&scopes],
            ))
            .unwrap();
        assert_eq!(rows.len(), scopes.len());
        for row in rows {
            let (scope, server): (&str, i32) = (row.get(0), row.get(1));
            assert_eq!(hash_bytes(scope.as_bytes()) as i32, server, "{scope:?}");
            assert_eq!(lock_bucket(scope), (server & 1023) as u32, "{scope:?}");
        }
    }

    /// A database error names what the server said, not only "db error".
    #[test]
    fn errors_carry_the_servers_message() {
        let (client, rt) = open(&test_server()).unwrap();
        let e = rt
            .block_on(client.batch_execute("SELECT * FROM no_such_table_here"))
            .unwrap_err();
        let StoreError::Database(message) = db_error(e) else {
            panic!("not a database error");
        };
        assert!(message.contains("no_such_table_here"), "{message}");
        assert!(message.contains("SQLSTATE 42P01"), "{message}");
    }

    /// A pooler that lends server sessions by transaction may give the next batch a
    /// session without the last one's prepared statements; `DEALLOCATE ALL` between
    /// batches stands in for it. Each batch prepares its own.
    #[test]
    fn each_batch_prepares_its_own_statements() {
        let url = test_server();
        let schema = format!("prepared_{}", std::process::id());
        PgStore::drop_schema(&url, &schema).unwrap();
        let mut store = PgStore::connect_in_schema(&url, Some(&schema)).unwrap();
        for n in 0..2 {
            let key = format!("+861380000000{n}");
            let mut tx = store.begin().unwrap();
            tx.prefetch(Kind::Subscribers, &[&key], &["h1"]).unwrap();
            let columns = Columns {
                kind: Kind::Subscribers,
                key: &key,
                holder_hash: Some("h1"),
                unit: None,
                subtype: Some("mobile"),
                state: Some("active"),
            };
            let change = Change {
                ts: "2026-11-30T10:00:00+08:00",
                actor: "test",
                command: "import",
                before: &Value::Null,
            };
            tx.write(&columns, "{}", &change).unwrap();
            tx.commit().unwrap();
            store.db().batch_execute("DEALLOCATE ALL").unwrap();
        }
        let mut tx = store.begin().unwrap();
        let cards = tx
            .count(&CountQuery::active_mobile_cards("h1", ""))
            .unwrap();
        assert_eq!(cards, 2);
        drop(tx);
        drop(store);
        PgStore::drop_schema(&url, &schema).unwrap();
    }

    #[test]
    fn the_version_moves_with_every_commit_whatever_its_event_numbers() {
        let url = test_server();
        let schema = format!("version_{}", std::process::id());
        PgStore::drop_schema(&url, &schema).unwrap();
        let mut first = PgStore::connect_in_schema(&url, Some(&schema)).unwrap();
        let mut second = PgStore::connect_in_schema(&url, Some(&schema)).unwrap();
        let write = |tx: &mut dyn Tx, key: &str| {
            // The read-ahead draws this transaction's event numbers.
            tx.prefetch(Kind::Blocklist, &[key], &[]).unwrap();
            let columns = Columns {
                kind: Kind::Blocklist,
                key,
                holder_hash: None,
                unit: None,
                subtype: None,
                state: None,
            };
            let change = Change {
                ts: "2026-11-30T10:00:00+08:00",
                actor: "test",
                command: "import",
                before: &Value::Null,
            };
            tx.write(&columns, r#"{"number":"1"}"#, &change).unwrap();
        };
        let start = first.version().unwrap();
        let mut early = first.begin().unwrap();
        write(early.as_mut(), "+8613800000001");
        let mut late = second.begin().unwrap();
        write(late.as_mut(), "+8613800000002");
        late.commit().unwrap();
        let after_late = second.version().unwrap();
        assert!(after_late > start);
        early.commit().unwrap();
        assert!(second.version().unwrap() > after_late);
        drop((first, second));
        PgStore::drop_schema(&url, &schema).unwrap();
    }

    /// A ledger written by schema 1 (bodies in the records table) opens under schema 2 with
    /// every record and its history as they were. Needs the test server (`scripts/test.sh`).
    #[test]
    fn schema_1_ledger_migrates_keeping_records_and_history() {
        let url = test_server();
        let schema = format!("migrate_{}", std::process::id());
        {
            let (client, rt) = open(&url).unwrap();
            let c = Blocking {
                rt: &rt,
                c: &client,
            };
            c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                 SET search_path TO {schema};
                 CREATE TABLE schema_version(version BIGINT NOT NULL);
                 INSERT INTO schema_version VALUES (1);"
            ))
            .unwrap();
            c.batch_execute(MIGRATIONS[0].1).unwrap();
            c.batch_execute(
                r#"INSERT INTO records VALUES ('subscribers', '+8613800138000', 'h1', NULL,
                      'mobile', 'active', '{"state":"active"}');
                   INSERT INTO events(ts, actor, command, kind, key, before, after) VALUES
                      ('2026-01-01T00:00:00+08:00', 'ops', 'import', 'subscribers',
                       '+8613800138000', 'null', '{"state":"suspended"}'),
                      ('2026-01-02T00:00:00+08:00', 'ops', 'import', 'subscribers',
                       '+8613800138000', '{"state":"suspended"}', '{"state":"active"}'),
                      ('2026-01-03T00:00:00+08:00', 'ops', 'pii_revealed', 'subscribers',
                       '+8613800138000', 'null', 'null');
                   INSERT INTO records VALUES ('units', '91110000600037341L', 'h2', NULL,
                      'enterprise', NULL, '{"name":"x"}');
                   INSERT INTO records VALUES ('subscribers', '+8613800138001',
                      '8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5', NULL,
                      'mobile', 'active', '{}'),
                      ('subscribers', '+8613800138002', 'ab', NULL, 'mobile', 'active', '{}'),
                      ('subscribers', '+8613800138003', '身份-holder', NULL, 'mobile',
                       'active', '{}');"#,
            )
            .unwrap();
        }
        let mut store = PgStore::connect_in_schema(&url, Some(&schema)).unwrap();
        let card = store
            .get(Kind::Subscribers, "+8613800138000")
            .unwrap()
            .unwrap();
        assert_eq!(card.body, serde_json::json!({"state": "active"}));
        assert_eq!(card.holder_hash.as_deref(), Some("h1"));
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
        assert!(history[0].ts.ends_with('Z'), "{}", history[0].ts);
        // Schema 4 counts the events the ledger had: three, and the migration's (one per
        // record without a matching event).
        assert_eq!(store.version().unwrap(), 7);
        // Schema 5 tags the stored hashes as the ledger does (hex, short hex, other text),
        // so they are found by holder.
        let hex = "8b23a1d4542600c27db8b261f8cebb7c9a2d6b2e60b2bf9d6ecaf304769ddbe5";
        let mut tx = store.begin().unwrap();
        for holder in ["h1", hex, "ab", "身份-holder"] {
            let n = tx
                .count(&CountQuery::active_mobile_cards(holder, ""))
                .unwrap();
            assert_eq!(n, 1, "{holder}");
        }
        drop(tx);
        // Schema 6: a record stored before it gets events found by its number; its history
        // is those found by key (from before) and those (after), in order.
        fanzha_ledger::conformance::history_spans_an_upgrade(&mut store);
        drop(store);
        PgStore::drop_schema(&url, &schema).unwrap();
    }
}
