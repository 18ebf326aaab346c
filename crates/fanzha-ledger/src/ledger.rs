//! The ledger service over any [`Store`]: CSV import with per-row refusals, reads with
//! masking and audited reveal, history, the compliance audit and the backfill deadline run.

use crate::kind::Kind;
use crate::pii::PiiVault;
use crate::rules::{
    check_row, finish_subscriber, hint, normalise_key, prepare_subscriber, Context, Refusal,
    Reject, RowFields, SubscriberPlan,
};
use crate::store::{Change, Columns, Event, Record, Store, StoreError, Tx};
use fanzha_model::Date;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Rows applied per transaction on import (at most). Large on purpose: keyed hashes put a
/// batch's holder-index entries all over the index, so every commit rewrites most of its
/// pages, and the fewer the commits, the less is written. A 1 M-row import wrote 5.3 GB
/// with 20 000-row batches, 2.8 GB with 100 000 (and took 30 % less time). A batch in
/// flight costs about 1 KB of memory per row.
pub const BATCH_ROWS: usize = 100_000;

/// Rows in an import's first batch; each next batch doubles up to [`BATCH_ROWS`], so the
/// store starts on the first rows while the rest are still being prepared.
const FIRST_BATCH_ROWS: usize = 5_000;

/// Who acts and when: every write is recorded with both.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Name of the person or system.
    pub name: String,
    /// Now, RFC 3339 with offset.
    pub now: String,
    /// Today in China time.
    pub today: Date,
}

/// One refused row of an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowRefusal {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
    /// Requirement enforced.
    pub requirement: &'static str,
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    /// Rows applied (including rows identical to what the ledger already had).
    pub accepted: u64,
    /// Rows refused.
    pub refused: u64,
    /// The refusals, in line order.
    pub refusals: Vec<RowRefusal>,
}

impl ImportReport {
    /// Counts one row: applied (no refusal) or refused.
    fn tally(&mut self, outcome: Option<RowRefusal>) {
        match outcome {
            None => self.accepted += 1,
            Some(r) => {
                self.refused += 1;
                self.refusals.push(r);
            }
        }
    }

    /// Adds the report of rows after these (their refusals come after these).
    fn add(&mut self, later: ImportReport) {
        self.accepted += later.accepted;
        self.refused += later.refused;
        self.refusals.extend(later.refusals);
    }
}

/// A file that cannot be processed at all (nothing is applied), or a failed store.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Header lacks a required column.
    #[error("missing required column {column:?} for kind {kind}")]
    MissingColumn {
        /// Kind.
        kind: Kind,
        /// Column.
        column: &'static str,
    },
    /// No header row.
    #[error("the file is empty: a header row is required")]
    Empty,
    /// The CSV header could not be read.
    #[error("unreadable CSV header: {0}")]
    Header(String),
    /// The backend failed (rows already committed stay committed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct CsvRow<'a> {
    columns: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl RowFields for CsvRow<'_> {
    fn get(&self, column: &str) -> &str {
        self.columns
            .get(column)
            .and_then(|&i| self.record.get(i))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// A JSON object as a row (the HTTP API's JSON rows).
impl RowFields for Map<String, Value> {
    fn get(&self, column: &str) -> &str {
        self.get(column)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    }
}

/// The ledger over a store.
pub struct Ledger<S: Store> {
    store: S,
    vault: PiiVault,
}

/// Fields that never leave the ledger (sealed values and keyed hashes).
fn is_secret_field(name: &str) -> bool {
    name.ends_with("_enc")
}

/// Whether two bodies say the same (sealed fields differ by nonce; masks and hashes do not).
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !is_secret_field(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    strip(a) == strip(b)
}

fn event(
    actor: &Actor,
    command: &str,
    kind: Kind,
    key: &str,
    before: Value,
    after: Value,
) -> Event {
    Event {
        seq: 0,
        ts: actor.now.clone(),
        actor: actor.name.clone(),
        command: command.to_string(),
        kind,
        key: key.to_string(),
        before,
        after,
    }
}

/// Suspends a subscriber card in place, recording why (the caller writes it with `apply`).
fn suspend(card: &mut Record, reason: String) {
    card.state = Some("suspended".into());
    if let Some(b) = card.body.as_object_mut() {
        b.insert("state".into(), json!("suspended"));
        b.insert("suspended_reason".into(), json!(reason));
    }
}

/// Applies one checked record: writes it and its history event unless nothing changed.
fn apply(tx: &mut dyn Tx, record: &Record, actor: &Actor, command: &str) -> Result<(), StoreError> {
    let body_json = serde_json::to_string(&record.body).expect("a JSON value serialises");
    write_record(
        tx,
        &record.columns(),
        &body_json,
        Some(&record.body),
        actor,
        command,
    )
}

/// Writes a record given as its columns and body text (`body` is that text parsed, when the
/// caller has it; otherwise it is parsed here if a stored record must be compared), with its
/// history event, unless the ledger holds it unchanged already.
fn write_record(
    tx: &mut dyn Tx,
    columns: &Columns<'_>,
    body_json: &str,
    body: Option<&Value>,
    actor: &Actor,
    command: &str,
) -> Result<(), StoreError> {
    let mut change = Change {
        ts: &actor.now,
        actor: &actor.name,
        command,
        before: &Value::Null,
    };
    // Most imported rows are new: try that first, and look the record up only if it exists.
    if tx.write_new(columns, body_json, &change)? {
        return Ok(());
    }
    let before = tx.get(columns.kind, columns.key)?;
    if let Some(b) = &before {
        let parsed;
        let body = match body {
            Some(v) => v,
            None => {
                parsed = serde_json::from_str(body_json).expect("a body serde_json wrote parses");
                &parsed
            }
        };
        if same_content(&b.body, body) && b.holder_hash.as_deref() == columns.holder_hash {
            return Ok(());
        }
    }
    let before = before.map(|b| b.body).unwrap_or(Value::Null);
    change.before = &before;
    tx.write(columns, body_json, &change)
}

/// A CSV row made ready away from the store: subscriber rows (the bulk of any import) are
/// checked, hashed and sealed as far as the ledger is not needed; other kinds are checked
/// whole in the transaction.
// Nearly every row of a large import is a subscriber: boxing the large variant would cost an
// allocation per row and save nothing.
#[allow(clippy::large_enum_variant)]
enum PreparedRow {
    /// Not CSV at all (bad UTF-8, broken quoting): refused with this reason.
    Unreadable(String),
    /// A subscriber row's plan.
    Subscriber(SubscriberPlan),
    /// A row of another kind.
    Row(csv::StringRecord),
    /// Preparing failed outside the rules (the random source): the batch fails.
    Failed(String),
}

/// A batch of prepared rows with their line numbers.
type PreparedBatch = Vec<(u64, PreparedRow)>;

fn prepare_row(
    kind: Kind,
    rec: Result<csv::StringRecord, String>,
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
) -> PreparedRow {
    let rec = match rec {
        Ok(r) => r,
        Err(reason) => return PreparedRow::Unreadable(reason),
    };
    if kind != Kind::Subscribers {
        return PreparedRow::Row(rec);
    }
    let row = CsvRow {
        columns,
        record: &rec,
    };
    match prepare_subscriber(&row, cx) {
        Ok(plan) => PreparedRow::Subscriber(plan),
        Err(e) => PreparedRow::Failed(e.to_string()),
    }
}

/// Checks and applies one prepared row in `tx`: `None` when applied, the refusal otherwise.
fn process_row(
    tx: &mut dyn Tx,
    kind: Kind,
    line: u64,
    prepared: &PreparedRow,
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
    actor: &Actor,
) -> Result<Option<RowRefusal>, StoreError> {
    let applied = match prepared {
        PreparedRow::Unreadable(reason) => {
            return Ok(Some(RowRefusal {
                line,
                reason: reason.clone(),
                requirement: kind.requirement(),
            }))
        }
        PreparedRow::Failed(e) => return Err(StoreError::Database(e.clone())),
        PreparedRow::Subscriber(plan) => finish_subscriber(plan, tx).and_then(|r| {
            write_record(tx, &r.columns(), &r.body_json, None, actor, "import")
                .map_err(Reject::Store)
        }),
        PreparedRow::Row(rec) => {
            let row = CsvRow {
                columns,
                record: rec,
            };
            check_row(kind, &row, tx, cx)
                .and_then(|r| apply(tx, &r, actor, "import").map_err(Reject::Store))
        }
    };
    match applied {
        Ok(()) => Ok(None),
        Err(reject) => refused_row(reject, line),
    }
}

/// A rule's refusal as the refused row at `line`; a store failure stays one.
fn refused_row(reject: Reject, line: u64) -> Result<Option<RowRefusal>, StoreError> {
    match reject {
        Reject::Refused(Refusal {
            reason,
            requirement,
        }) => Ok(Some(RowRefusal {
            line,
            reason,
            requirement,
        })),
        Reject::Store(e) => Err(e),
    }
}

/// What a prepared row will read, for [`Tx::prefetch`].
fn prepared_hint<'p>(
    kind: Kind,
    prepared: &'p PreparedRow,
    columns: &HashMap<String, usize>,
    vault: &PiiVault,
) -> (Option<Cow<'p, str>>, Option<Cow<'p, str>>) {
    match prepared {
        PreparedRow::Subscriber(SubscriberPlan::Checked {
            tail: Ok(record),
            holder_limit,
            ..
        }) => (
            Some(Cow::Borrowed(&record.key)),
            holder_limit.as_deref().map(Cow::Borrowed),
        ),
        PreparedRow::Row(rec) => {
            let (k, h) = hint(
                kind,
                &CsvRow {
                    columns,
                    record: rec,
                },
                vault,
            );
            (k.map(Cow::Owned), h.map(Cow::Owned))
        }
        _ => (None, None),
    }
}

/// Reads the CSV rows after the header and prepares them in batches growing from
/// [`FIRST_BATCH_ROWS`] to [`BATCH_ROWS`], sending each batch on and freeing those that come
/// back applied; stops when the receiver is gone.
fn read_and_prepare(
    reader: &mut csv::Reader<&[u8]>,
    kind: Kind,
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
    send: std::sync::mpsc::SyncSender<PreparedBatch>,
    applied: std::sync::mpsc::Receiver<PreparedBatch>,
) {
    let mut target = FIRST_BATCH_ROWS;
    let mut batch: PreparedBatch = Vec::with_capacity(target);
    let mut raw = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() + 1;
        let (line, rec, stop) = match reader.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {
                let line = raw.position().map(|p| p.line()).unwrap_or(line);
                if raw.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    continue; // blank line
                }
                let rec = csv::StringRecord::from_byte_record(raw.clone())
                    .map_err(|_| "the row is not valid UTF-8".to_string());
                (line, rec, false)
            }
            // Rows that are not even CSV are refused by line; after a broken quote nothing
            // further can be trusted to be a row.
            Err(e) => {
                let stop = !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                );
                (line, Err(format!("unreadable CSV row: {e}")), stop)
            }
        };
        batch.push((line, prepare_row(kind, rec, columns, cx)));
        if batch.len() == target {
            while applied.try_recv().is_ok() {}
            target = (target * 2).min(BATCH_ROWS);
            let full = std::mem::replace(&mut batch, Vec::with_capacity(target));
            if send.send(full).is_err() {
                return;
            }
        }
        if stop {
            break;
        }
    }
    if !batch.is_empty() {
        let _ = send.send(batch);
    }
    // The end of the rows for the applying side; then free the last batches here too, as
    // they come back, until it is done.
    drop(send);
    for applied_batch in applied {
        drop(applied_batch);
    }
}

/// Rows in a batch worth splitting between two connections
/// ([`Ledger::import_split_batch`]); smaller ones are not worth a second transaction.
const SPLIT_MIN_ROWS: usize = 10_000;

/// The rows (indexes into `batch`) of each half of a split batch of subscribers, by the
/// half of the lock (`lock_of`) their holder is counted under, or of their key if they have
/// no holder; None if the batch cannot be split so (see [`Ledger::import_split_batch`]).
fn split_by_lock(
    batch: &[(u64, PreparedRow)],
    lock_of: impl Fn(&str) -> u32,
) -> Option<[Vec<usize>; 2]> {
    let mut halves: [Vec<usize>; 2] = Default::default();
    let mut half_of_key: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    for (i, (_, prepared)) in batch.iter().enumerate() {
        let half = match prepared {
            PreparedRow::Subscriber(SubscriberPlan::Checked {
                tail: Ok(record),
                holder_limit,
                ..
            }) => {
                if holder_limit.is_some() && holder_limit != &record.holder_hash {
                    return None;
                }
                let subject = match &record.holder_hash {
                    Some(h) => format!("holder:{h}"),
                    None => format!("key:{}", record.key),
                };
                let half = (lock_of(&subject) & 1) as usize;
                if *half_of_key.entry(&record.key).or_insert(half) != half {
                    return None;
                }
                half
            }
            // Refused before the ledger is read: nothing to keep together.
            PreparedRow::Subscriber(_) | PreparedRow::Unreadable(_) => 0,
            PreparedRow::Row(_) | PreparedRow::Failed(_) => return None,
        };
        halves[half].push(i);
    }
    halves.iter().all(|h| !h.is_empty()).then_some(halves)
}

/// How one half of a split batch ended.
enum HalfOutcome {
    /// Committed.
    Applied(ImportReport),
    /// Not applied: this half or the other could not go on; the batch is to be applied
    /// whole.
    Aborted,
    /// Not applied: the store failed while applying; the rows are to be redone one by one.
    Failed,
}

/// Where the two halves of a split batch tell each other whether they can go on: each
/// sends its word and waits for the other's. A half that is gone (a panic) has dropped its
/// sender, which reads as "no", so the other never waits forever.
struct Rendezvous {
    tell: std::sync::mpsc::Sender<bool>,
    hear: std::sync::mpsc::Receiver<bool>,
}

impl Rendezvous {
    /// Tells the other half whether this one can go on; whether both can.
    fn both(self, this_can: bool) -> bool {
        let _ = self.tell.send(this_can);
        drop(self.tell);
        this_can && self.hear.recv().unwrap_or(false)
    }
}

/// The two ends of a [`Rendezvous`].
fn rendezvous() -> (Rendezvous, Rendezvous) {
    let (tell_b, hear_a) = std::sync::mpsc::channel();
    let (tell_a, hear_b) = std::sync::mpsc::channel();
    (
        Rendezvous {
            tell: tell_a,
            hear: hear_a,
        },
        Rendezvous {
            tell: tell_b,
            hear: hear_b,
        },
    )
}

/// One half of a split batch ([`Ledger::import_split_batch`]): `rows` of `batch`, in one
/// transaction on `store`. Reads ahead, then hears from the other half: both go on only if
/// both can (no store failure, no card changing holder).
#[allow(clippy::too_many_arguments)]
fn apply_half(
    store: &mut dyn Store,
    kind: Kind,
    batch: &[(u64, PreparedRow)],
    rows: &[usize],
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
    actor: &Actor,
    other_half: Rendezvous,
) -> HalfOutcome {
    let mut tx = store.begin().ok();
    let these = || rows.iter().map(|&i| &batch[i]);
    let splittable = tx.as_mut().is_some_and(|tx| {
        read_ahead(tx.as_mut(), kind, these(), columns, cx.vault).is_ok()
            && these().all(|(_, prepared)| keeps_its_holder(tx.as_mut(), kind, prepared))
    });
    let Some(mut tx) = tx.filter(|_| other_half.both(splittable)) else {
        return HalfOutcome::Aborted;
    };
    match apply_rows(tx.as_mut(), kind, these(), columns, cx, actor) {
        Ok(report) if tx.commit().is_ok() => HalfOutcome::Applied(report),
        _ => HalfOutcome::Failed,
    }
}

/// Reads ahead in `tx` what `rows` will read ([`Tx::prefetch`]).
fn read_ahead<'r>(
    tx: &mut dyn Tx,
    kind: Kind,
    rows: impl Iterator<Item = &'r (u64, PreparedRow)>,
    columns: &HashMap<String, usize>,
    vault: &PiiVault,
) -> Result<(), StoreError> {
    let hints: Vec<_> = rows
        .map(|(_, prepared)| prepared_hint(kind, prepared, columns, vault))
        .collect();
    let keys: Vec<&str> = hints.iter().filter_map(|(k, _)| k.as_deref()).collect();
    let holders: Vec<&str> = hints.iter().filter_map(|(_, h)| h.as_deref()).collect();
    tx.prefetch(kind, &keys, &holders)
}

/// Applies `rows` in order in `tx`, which the caller commits.
fn apply_rows<'r>(
    tx: &mut dyn Tx,
    kind: Kind,
    rows: impl Iterator<Item = &'r (u64, PreparedRow)>,
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
    actor: &Actor,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for (line, prepared) in rows {
        report.tally(process_row(tx, kind, *line, prepared, columns, cx, actor)?);
    }
    Ok(report)
}

/// Whether a subscriber row leaves its card with the holder it had (or the card is new):
/// a card changing holder changes the old holder's count, which the other half of a
/// split batch may be reading.
fn keeps_its_holder(tx: &mut dyn Tx, kind: Kind, prepared: &PreparedRow) -> bool {
    match prepared {
        PreparedRow::Subscriber(SubscriberPlan::Checked {
            tail: Ok(record), ..
        }) => match tx.get(kind, &record.key) {
            Ok(None) => true,
            Ok(Some(stored)) => stored.holder_hash == record.holder_hash,
            Err(_) => false,
        },
        _ => true,
    }
}

/// Applies `rows` one per transaction (each retried up to three times), so that no row can
/// take another down with it.
fn apply_one_by_one<'r>(
    store: &mut dyn Store,
    kind: Kind,
    rows: impl Iterator<Item = &'r (u64, PreparedRow)>,
    columns: &HashMap<String, usize>,
    cx: &Context<'_>,
    actor: &Actor,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for (line, prepared) in rows {
        let mut attempts = 0;
        loop {
            let mut tx = store.begin()?;
            let result = process_row(tx.as_mut(), kind, *line, prepared, columns, cx, actor)
                .and_then(|outcome| tx.commit().map(|()| outcome));
            match result {
                Ok(outcome) => {
                    report.tally(outcome);
                    break;
                }
                Err(_) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

impl<S: Store> Ledger<S> {
    /// A ledger over `store`, sealing personal data with `vault`.
    pub fn new(store: S, vault: PiiVault) -> Ledger<S> {
        Ledger { store, vault }
    }

    /// The backend.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// The PII vault.
    pub fn vault(&self) -> &PiiVault {
        &self.vault
    }

    /// Imports a CSV file of `kind`. Each row is checked and applied atomically; valid rows
    /// are committed in batches of up to [`BATCH_ROWS`]. `progress` is called with the rows done.
    pub fn import_csv(
        &mut self,
        kind: Kind,
        data: &[u8],
        actor: &Actor,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(data);
        let headers = reader
            .headers()
            .map_err(|e| ImportError::Header(e.to_string()))?
            .clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].trim().is_empty()) {
            return Err(ImportError::Empty);
        }
        let columns: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                (
                    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase(),
                    i,
                )
            })
            .collect();
        for c in kind.required_columns() {
            if !columns.contains_key(*c) {
                return Err(ImportError::MissingColumn { kind, column: c });
            }
        }
        // Two stages: a thread reads and prepares the rows (the pure, costly part: parsing,
        // validation, hashing, sealing) one batch ahead while this one applies the batch
        // before in the store.
        let vault = self.vault.clone();
        let cx = Context {
            vault: &vault,
            today: actor.today,
            now: &actor.now,
        };
        let mut report = ImportReport::default();
        let mut done = 0u64;
        // A second connection for splitting large batches of subscribers, opened with the
        // first such batch, where the backend has one; without it (or if it cannot be had)
        // batches are applied whole.
        let mut sibling: Option<Option<Box<dyn Store>>> = None;
        std::thread::scope(|scope| -> Result<(), ImportError> {
            let (send, batches) = std::sync::mpsc::sync_channel::<PreparedBatch>(2);
            // Applied batches go back to be freed where they were allocated: freeing another
            // thread's allocations contends for its allocator arena.
            let (recycle, applied) = std::sync::mpsc::channel::<PreparedBatch>();
            let (reader, columns, cx) = (&mut reader, &columns, &cx);
            std::thread::Builder::new()
                .name("import-prepare".into())
                .spawn_scoped(scope, move || {
                    read_and_prepare(reader, kind, columns, cx, send, applied)
                })
                .map_err(|e| ImportError::Store(StoreError::Database(e.to_string())))?;
            for batch in batches {
                let splittable = kind == Kind::Subscribers && batch.len() >= SPLIT_MIN_ROWS;
                let other = if splittable {
                    sibling.get_or_insert_with(|| self.store.sibling().ok().flatten())
                } else {
                    &mut None
                };
                let split = match other {
                    Some(other) => {
                        self.import_split_batch(other.as_mut(), kind, &batch, columns, actor)?
                    }
                    None => None,
                };
                let outcome = match split {
                    Some(o) => o,
                    None => match self.import_batch(kind, &batch, columns, actor, false) {
                        Ok(o) => o,
                        // A store failure inside a batch (deadlock, serialisation failure):
                        // redo the batch one row per transaction so one row cannot take
                        // others down.
                        Err(_) => self.import_batch(kind, &batch, columns, actor, true)?,
                    },
                };
                report.add(outcome);
                done += batch.len() as u64;
                progress(done);
                let _ = recycle.send(batch);
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Applies a batch of subscribers as two halves at once, each in its own transaction on
    /// its own connection (this store's and `other`), so that two server backends share the
    /// work. None when the batch cannot be split so: then nothing of it is applied.
    ///
    /// The halves must not see each other's rows, so a split keeps together what the rules
    /// relate: rows of one holder (their lock's half: the two halves never wait on each
    /// other's locks), and rows of one key. A batch with a key in both halves, a row whose
    /// counted holder is not the card's holder, or a card that changes holder (the old
    /// holder's count would be seen by the other half) is applied whole instead; a bulk
    /// load of new cards splits. Each half reads ahead, then both decide together whether
    /// to go on; a half that fails later is redone one row per transaction, as a whole
    /// batch would be.
    fn import_split_batch(
        &mut self,
        other: &mut dyn Store,
        kind: Kind,
        batch: &[(u64, PreparedRow)],
        columns: &HashMap<String, usize>,
        actor: &Actor,
    ) -> Result<Option<ImportReport>, StoreError> {
        let Some(halves) = split_by_lock(batch, |scope| self.store.lock_of(scope)) else {
            return Ok(None);
        };
        let cx = Context {
            vault: &self.vault,
            today: actor.today,
            now: &actor.now,
        };
        let store: &mut dyn Store = &mut self.store;
        let go = |store: &mut dyn Store, rows: &[usize], other_half: Rendezvous| {
            apply_half(store, kind, batch, rows, columns, &cx, actor, other_half)
        };
        let (mine_meets, theirs_meet) = rendezvous();
        let outcomes = std::thread::scope(|scope| {
            // No thread for the other half: the batch is applied whole.
            let theirs = std::thread::Builder::new()
                .name("import-half".into())
                .spawn_scoped(scope, || go(other, &halves[1], theirs_meet))
                .ok()?;
            let mine = go(&mut *store, &halves[0], mine_meets);
            let theirs = theirs
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Some((mine, theirs))
        });
        let Some((mine, theirs)) = outcomes else {
            return Ok(None);
        };
        let mut report = ImportReport::default();
        for (outcome, store, rows) in [(mine, &mut *store, &halves[0]), (theirs, other, &halves[1])]
        {
            let half = match outcome {
                HalfOutcome::Aborted => return Ok(None),
                HalfOutcome::Applied(half) => half,
                HalfOutcome::Failed => apply_one_by_one(
                    store,
                    kind,
                    rows.iter().map(|&i| &batch[i]),
                    columns,
                    &cx,
                    actor,
                )?,
            };
            report.add(half);
        }
        report.refusals.sort_by_key(|r| r.line);
        Ok(Some(report))
    }

    fn import_batch(
        &mut self,
        kind: Kind,
        batch: &[(u64, PreparedRow)],
        columns: &HashMap<String, usize>,
        actor: &Actor,
        row_by_row: bool,
    ) -> Result<ImportReport, StoreError> {
        let cx = Context {
            vault: &self.vault,
            today: actor.today,
            now: &actor.now,
        };
        if row_by_row {
            return apply_one_by_one(&mut self.store, kind, batch.iter(), columns, &cx, actor);
        }
        let mut tx = self.store.begin()?;
        read_ahead(tx.as_mut(), kind, batch.iter(), columns, &self.vault)?;
        let report = apply_rows(tx.as_mut(), kind, batch.iter(), columns, &cx, actor)?;
        tx.commit()?;
        Ok(report)
    }

    /// Applies JSON rows (the HTTP API's form) exactly as CSV rows: line numbers count the
    /// rows from 1.
    pub fn import_json_rows(
        &mut self,
        kind: Kind,
        rows: &[Map<String, Value>],
        actor: &Actor,
    ) -> Result<ImportReport, StoreError> {
        let cx = Context {
            vault: &self.vault,
            today: actor.today,
            now: &actor.now,
        };
        let mut report = ImportReport::default();
        let mut tx = self.store.begin()?;
        for (i, row) in rows.iter().enumerate() {
            match check_row(kind, row, tx.as_mut(), &cx) {
                Ok(r) => {
                    apply(tx.as_mut(), &r, actor, "import")?;
                    report.accepted += 1;
                }
                Err(Reject::Refused(Refusal {
                    reason,
                    requirement,
                })) => {
                    report.refused += 1;
                    report.refusals.push(RowRefusal {
                        line: i as u64 + 1,
                        reason,
                        requirement,
                    });
                }
                Err(Reject::Store(e)) => return Err(e),
            }
        }
        tx.commit()?;
        Ok(report)
    }

    /// The stored keys the rows of a CSV body write, in order (refused rows included: the
    /// caller reads each record back), or None past `max` rows or for a body that is not
    /// CSV: for patching a screening snapshot after a small write instead of recompiling.
    pub fn row_keys_csv(&self, kind: Kind, data: &[u8], max: usize) -> Option<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(data);
        let columns: HashMap<String, usize> = reader
            .headers()
            .ok()?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                (
                    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase(),
                    i,
                )
            })
            .collect();
        let mut keys = Vec::new();
        for record in reader.records() {
            let record = record.ok()?;
            if keys.len() == max {
                return None;
            }
            let row = CsvRow {
                columns: &columns,
                record: &record,
            };
            keys.extend(hint(kind, &row, &self.vault).0);
        }
        Some(keys)
    }

    /// [`Ledger::row_keys_csv`] for JSON rows.
    pub fn row_keys_json(
        &self,
        kind: Kind,
        rows: &[Map<String, Value>],
        max: usize,
    ) -> Option<Vec<String>> {
        if rows.len() > max {
            return None;
        }
        Some(
            rows.iter()
                .filter_map(|r| hint(kind, r, &self.vault).0)
                .collect(),
        )
    }

    /// The stored key for a key as a user writes it (any number form, an ID for persons).
    pub fn key(&self, kind: Kind, key: &str) -> String {
        normalise_key(kind, key, &self.vault)
    }

    /// One record, raw (sealed fields included: for the engine, not for output).
    pub fn record(&mut self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        let k = self.key(kind, key);
        self.store.get(kind, &k)
    }

    /// One record for output: personal data masked, or revealed (and the reveal recorded as
    /// a `pii_revealed` event with the actor) when `reveal` is set.
    pub fn get(
        &mut self,
        kind: Kind,
        key: &str,
        reveal: Option<&Actor>,
    ) -> Result<Option<Value>, StoreError> {
        let Some(r) = self.record(kind, key)? else {
            return Ok(None);
        };
        let body = self.present_record(&r, reveal.is_some());
        if let Some(actor) = reveal {
            if body != self.present(&r.body) {
                let mut tx = self.store.begin()?;
                tx.append(&event(
                    actor,
                    "pii_revealed",
                    kind,
                    &r.key,
                    Value::Null,
                    Value::Null,
                ))?;
                tx.commit()?;
            }
        }
        Ok(Some(json!({"kind": kind, "key": r.key, "record": body})))
    }

    /// A record's history for output, oldest first, personal data masked.
    pub fn history(&mut self, kind: Kind, key: &str) -> Result<Vec<Value>, StoreError> {
        let k = self.key(kind, key);
        let events = self.store.history(kind, &k)?;
        Ok(events
            .into_iter()
            .map(|e| {
                json!({
                    "seq": e.seq, "ts": e.ts, "actor": e.actor, "command": e.command,
                    "kind": e.kind, "key": e.key,
                    "before": self.present(&e.before),
                    "after": self.present(&e.after),
                })
            })
            .collect())
    }

    /// A body for output, masked: sealed fields dropped.
    pub fn present(&self, body: &Value) -> Value {
        self.present_at(None, body)
    }

    /// A record's body for output: sealed fields dropped, or on reveal opened into their
    /// field, each only if it was sealed for this record (a value moved from another record
    /// shows as an error, never as that record's person).
    pub fn present_record(&self, r: &Record, reveal: bool) -> Value {
        self.present_at(reveal.then_some((r.kind, r.key.as_str())), &r.body)
    }

    fn present_at(&self, reveal_at: Option<(Kind, &str)>, body: &Value) -> Value {
        let Value::Object(m) = body else {
            return body.clone();
        };
        let mut out = Map::new();
        for (k, v) in m {
            if is_secret_field(k) {
                continue;
            }
            let sealed = m.get(&format!("{k}_enc")).and_then(Value::as_str);
            match (reveal_at, sealed) {
                (Some((kind, key)), Some(s)) => {
                    let clear = self
                        .vault
                        .open(kind.as_str(), key, k, s)
                        .unwrap_or_else(|e| format!("<{e}>"));
                    out.insert(k.clone(), json!(clear));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    }

    /// The compliance audit (R1.1, R1.2, R3.2, R6.1, R12.1, R25.1) as JSON.
    pub fn audit(&mut self, mvno_prefixes: &[&str]) -> Result<Value, StoreError> {
        let subscribers = self.store.scan(Kind::Subscribers)?;
        let units: HashMap<String, Record> = self
            .store
            .scan(Kind::Units)?
            .into_iter()
            .map(|u| (u.key.clone(), u))
            .collect();
        let blacklist = self.store.scan(Kind::Blacklist)?;
        let black_units: std::collections::HashSet<String> = blacklist
            .iter()
            .filter(|b| b.subtype.as_deref() == Some("unit"))
            .map(|b| b.field("subject_id").to_string())
            .collect();
        let black_persons: std::collections::HashSet<String> = blacklist
            .iter()
            .filter_map(|b| b.holder_hash.clone())
            .collect();

        // R1.1: unverified, not terminated, by province and segment.
        let mut unverified: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut mvno: Vec<String> = Vec::new();
        let mut per_holder: HashMap<String, Vec<&Record>> = HashMap::new();
        let mut total_active = 0u64;
        for s in &subscribers {
            if s.state.as_deref() == Some("terminated") {
                continue;
            }
            total_active += 1;
            let national = s.key.trim_start_matches("+86");
            if s.field("real_name") != "verified" {
                let seg = national.get(..3).unwrap_or(national).to_string();
                *unverified
                    .entry((s.field("province").to_string(), seg))
                    .or_default() += 1;
            }
            if mvno_prefixes.iter().any(|p| national.starts_with(p)) {
                mvno.push(s.key.clone());
            }
            if let (Some(h), Some("mobile")) = (&s.holder_hash, s.subtype.as_deref()) {
                per_holder.entry(h.clone()).or_default().push(s);
            }
        }
        let r1_1: Vec<Value> = unverified
            .iter()
            .map(|((p, seg), n)| json!({"province": p, "segment": seg, "unverified": n}))
            .collect();
        let unverified_total: u64 = unverified.values().sum();
        let mut r3_2: Vec<Value> = per_holder
            .values()
            .filter(|cards| cards.len() as u64 >= crate::rules::MAX_CARDS_PER_HOLDER)
            .map(|cards| {
                json!({
                    "holder_id": cards[0].field("holder_id"),
                    "cards": cards.len(),
                    "msisdns": cards.iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        r3_2.sort_by(|a, b| a["holder_id"].as_str().cmp(&b["holder_id"].as_str()));

        // R6.1: key-service records with missing / invalid subject information or purpose.
        let mut r6_1 = Vec::new();
        for k in self.store.scan(Kind::KeyServices)? {
            if k.state.as_deref() == Some("terminated") {
                continue;
            }
            let unit = k.unit.clone().unwrap_or_default();
            let mut problems = Vec::new();
            match units.get(&unit) {
                None => problems.push(format!("unit {unit} is not in the ledger")),
                Some(u) => {
                    if u.field("legal_rep_id").is_empty() {
                        problems.push("legal representative ID missing".to_string());
                    }
                    if u.field("legal_rep_name").is_empty() {
                        problems.push("legal representative name missing".to_string());
                    }
                }
            }
            if k.field("purpose").is_empty() {
                problems.push("purpose missing".to_string());
            }
            if !problems.is_empty() {
                r6_1.push(
                    json!({"number": k.key, "type": k.subtype, "unit": unit, "problems": problems}),
                );
            }
        }
        // R12.1: voice lines without contracted numbers.
        let trunks = self.store.scan(Kind::Trunks)?;
        let r12_1: Vec<Value> = trunks
            .iter()
            .filter(|t| {
                t.subtype.as_deref() == Some("voice_line")
                    && t.state.as_deref() != Some("terminated")
            })
            .filter(|t| {
                t.body
                    .get("contracted_numbers")
                    .and_then(Value::as_array)
                    .is_none_or(|a| a.is_empty())
            })
            .map(|t| json!({"trunk_id": t.key, "owner_uscc": t.unit}))
            .collect();
        // R25.1: live records touching blacklisted subjects.
        let mut r25_1 = Vec::new();
        let touches = |unit: Option<&String>| -> Option<&'static str> {
            let unit = unit?;
            if black_units.contains(unit) {
                return Some("unit blacklisted");
            }
            let rep = units.get(unit)?.holder_hash.as_ref()?;
            black_persons
                .contains(rep)
                .then_some("legal representative blacklisted")
        };
        for kind in [Kind::KeyServices, Kind::Trunks, Kind::Agents] {
            for r in self.store.scan(kind)? {
                if matches!(
                    r.state.as_deref(),
                    Some("terminated") | Some("cancelled") | Some("blacklisted")
                ) {
                    continue;
                }
                if let Some(why) = touches(r.unit.as_ref()) {
                    r25_1.push(json!({"kind": kind, "key": r.key, "unit": r.unit, "why": why}));
                }
            }
        }
        for s in &subscribers {
            if s.state.as_deref() == Some("terminated") {
                continue;
            }
            if s.holder_hash
                .as_ref()
                .is_some_and(|h| black_persons.contains(h))
            {
                r25_1.push(
                    json!({"kind": Kind::Subscribers, "key": s.key, "why": "holder blacklisted"}),
                );
            }
        }
        Ok(json!({
            "subscribers": total_active,
            "R1.1": {"unverified": unverified_total, "by_province_segment": r1_1,
                     "verified_rate": if total_active == 0 { 1.0 } else { 1.0 - unverified_total as f64 / total_active as f64 }},
            "R1.2": {"prefixes": mvno_prefixes, "to_reverify": mvno.len(), "msisdns": mvno},
            "R3.2": {"holders_at_limit": r3_2.len(), "holders": r3_2},
            "R6.1": {"deficient": r6_1.len(), "records": r6_1},
            "R12.1": {"without_contracted_numbers": r12_1.len(), "trunks": r12_1},
            "R25.1": {"touching_blacklist": r25_1.len(), "records": r25_1},
        }))
    }

    /// R1.1 deadline run: suspends every active subscriber still not verified, each
    /// suspension an audited event. Returns the suspended numbers.
    pub fn enforce_backfill(
        &mut self,
        deadline: &str,
        actor: &Actor,
    ) -> Result<Vec<String>, StoreError> {
        let candidates: Vec<Record> = self
            .store
            .scan(Kind::Subscribers)?
            .into_iter()
            .filter(|s| s.state.as_deref() == Some("active") && s.field("real_name") != "verified")
            .collect();
        let mut suspended = Vec::new();
        for chunk in candidates.chunks(BATCH_ROWS) {
            let mut tx = self.store.begin()?;
            for s in chunk {
                // Re-read inside the transaction: it may have been verified meanwhile.
                let Some(mut cur) = tx.get(Kind::Subscribers, &s.key)? else {
                    continue;
                };
                if cur.state.as_deref() != Some("active") || cur.field("real_name") == "verified" {
                    continue;
                }
                suspend(
                    &mut cur,
                    format!("R1.1 real-name backfill deadline {deadline} passed"),
                );
                apply(tx.as_mut(), &cur, actor, "suspend_backfill_deadline")?;
                suspended.push(cur.key.clone());
            }
            tx.commit()?;
        }
        Ok(suspended)
    }

    /// Writes a record produced by an operator command other than import (disposal,
    /// appeal), with its history event.
    pub fn write(
        &mut self,
        record: &Record,
        actor: &Actor,
        command: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.begin()?;
        apply(tx.as_mut(), record, actor, command)?;
        tx.commit()
    }
}

/// What a re-seal did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Resealed {
    /// Records rewritten.
    pub records: u64,
    /// Sealed values re-sealed.
    pub values: u64,
}

/// Why a re-seal changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// The new key hashes differently: holder hashes and blacklist keys would no longer
    /// match, so it cannot take over this ledger.
    #[error("the new key's first half (its hashing key) differs from the ledger's: holder hashes and blacklist keys would stop matching; a new key must keep the first 32 bytes and replace the last 32")]
    HashingKeyChanged,
    /// A stored value that does not open under the current key.
    #[error("{kind}/{key}: {field} does not open under the current key ({reason}); nothing was re-sealed")]
    Unreadable {
        /// Kind.
        kind: Kind,
        /// Key.
        key: String,
        /// Field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The store failed; the transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store> Ledger<S> {
    /// Re-seals the personal data of every current record under `to` (a key rotation) or
    /// under this vault (an older ledger's values, bound to the field only, bound to their
    /// record), in one transaction: all or nothing. Each rewritten record gets an event
    /// (`command`: `rotate_key` or `reseal`). Values in earlier history events stay as they
    /// were sealed: history shows them masked, never opened. After a rotation the ledger
    /// seals and opens with `to`.
    pub fn reseal(&mut self, to: Option<PiiVault>, actor: &Actor) -> Result<Resealed, ResealError> {
        let rotating = to.is_some();
        let target = to.unwrap_or_else(|| self.vault.clone());
        if !self.vault.hashes_like(&target) {
            return Err(ResealError::HashingKeyChanged);
        }
        let command = if rotating { "rotate_key" } else { "reseal" };
        let mut rewritten = Vec::new();
        let mut report = Resealed::default();
        for kind in Kind::ALL {
            for r in self.store.scan(kind)? {
                let Value::Object(m) = &r.body else { continue };
                let mut body = m.clone();
                let mut changed = false;
                for (name, v) in m {
                    let (Some(field), Some(sealed)) = (name.strip_suffix("_enc"), v.as_str())
                    else {
                        continue;
                    };
                    let bound = PiiVault::is_bound(sealed);
                    if bound && !rotating {
                        continue;
                    }
                    let clear = if bound {
                        self.vault.open(kind.as_str(), &r.key, field, sealed)
                    } else {
                        self.vault.open_unbound(field, sealed)
                    }
                    .map_err(|e| ResealError::Unreadable {
                        kind,
                        key: r.key.clone(),
                        field: field.to_string(),
                        reason: e.to_string(),
                    })?;
                    let resealed = target
                        .seal(kind.as_str(), &r.key, field, &clear)
                        .map_err(|e| StoreError::Database(e.to_string()))?;
                    body.insert(name.clone(), Value::String(resealed));
                    report.values += 1;
                    changed = true;
                }
                if changed {
                    rewritten.push((r, Value::Object(body)));
                }
            }
        }
        let mut tx = self.store.begin()?;
        for (r, body) in &rewritten {
            let text = serde_json::to_string(body).expect("a JSON value serialises");
            tx.write(
                &r.columns(),
                &text,
                &Change {
                    ts: &actor.now,
                    actor: &actor.name,
                    command,
                    before: &r.body,
                },
            )?;
        }
        tx.commit()?;
        report.records = rewritten.len() as u64;
        self.vault = target;
        Ok(report)
    }
}

/// Why a number is never disposed of automatically, if it is one of those (R15.3): an
/// emergency or short number, an official (police or government) number, a key-service
/// number of a registered unit, or a number on the protected list.
fn protection(tx: &mut dyn Tx, key: &str) -> Result<Option<String>, StoreError> {
    if let Ok(n) = fanzha_model::parse(key) {
        let info = n.classify();
        if info.emergency {
            return Ok(Some("an emergency number".into()));
        }
        if info.kind == fanzha_model::number::NumberKind::Short {
            return Ok(Some("a short number".into()));
        }
    }
    if let Some(r) = tx.get(Kind::OfficialNumbers, key)? {
        return Ok(Some(format!("an official number ({})", r.field("owner"))));
    }
    if let Some(r) = tx.get(Kind::KeyServices, key)? {
        if let Some(unit) = r.unit.as_deref().filter(|u| !u.is_empty()) {
            return Ok(Some(format!("a key-service number of unit {unit}")));
        }
    }
    if let Some(r) = tx.get(Kind::ProtectedNumbers, key)? {
        return Ok(Some(format!(
            "on the protected list ({})",
            r.field("owner")
        )));
    }
    Ok(None)
}

/// What a disposal did (R15.3, R1).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Disposal {
    /// The number disposed of (E.164).
    pub number: String,
    /// Added to the blocklist.
    pub blocklisted: bool,
    /// Our subscriber card suspended.
    pub suspended: bool,
    /// Our subscriber marked for second real-name verification.
    pub reverify: bool,
    /// Not disposed of: the number is protected (why), and the alert waits for a supervisor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl<S: Store> Ledger<S> {
    /// Executes a monitor alert's action as ordinary, audited ledger writes:
    /// `suspend_and_block` → blocklist entry (source `detection`) and, for our card, suspension;
    /// `reverify` → our card's real-name status set to `pending` (second verification, R1);
    /// `watch` → nothing. Idempotent: repeating a disposal writes nothing new. `evidence`
    /// (the alert) is kept with the blocklist entry and the card. A protected number (see
    /// `protection`) is not touched: a `dispose_held` event records the alert instead.
    pub fn dispose(
        &mut self,
        number: &str,
        action: &str,
        reason: &str,
        evidence: &Value,
        actor: &Actor,
    ) -> Result<Disposal, StoreError> {
        let key = normalise_key(Kind::Subscribers, number, &self.vault);
        let mut out = Disposal {
            number: key.clone(),
            ..Disposal::default()
        };
        let mut tx = self.store.begin()?;
        // R15.3: some numbers are never disposed of by a machine; the alert waits for a
        // supervisor, on record.
        if let Some(why) = protection(tx.as_mut(), &key)? {
            tx.append(&event(
                actor,
                "dispose_held",
                Kind::Subscribers,
                &key,
                Value::Null,
                json!({"action": action, "reason": reason, "protected": why, "evidence": evidence}),
            ))?;
            tx.commit()?;
            out.held = Some(why);
            return Ok(out);
        }
        if action == "suspend_and_block" {
            let body = json!({"number": key, "reason": reason, "source": "detection", "added_at": actor.now, "expires_at": "", "evidence": evidence});
            let rec = Record {
                kind: Kind::Blocklist,
                key: key.clone(),
                holder_hash: None,
                unit: None,
                subtype: Some("detection".into()),
                state: None,
                body,
            };
            if tx.get(Kind::Blocklist, &key)?.is_none() {
                apply(tx.as_mut(), &rec, actor, "dispose_block")?;
                out.blocklisted = true;
            }
        }
        if let Some(mut card) = tx.get(Kind::Subscribers, &key)? {
            let before = card.clone();
            match action {
                "suspend_and_block" if card.state.as_deref() == Some("active") => {
                    suspend(&mut card, format!("R15.3 detection: {reason}"));
                    out.suspended = true;
                }
                "reverify" if card.field("real_name") == "verified" => {
                    if let Some(b) = card.body.as_object_mut() {
                        b.insert("real_name".into(), json!("pending"));
                        b.insert("reverify_evidence".into(), evidence.clone());
                        b.insert(
                            "reverify_reason".into(),
                            json!(format!("R1 second verification after detection: {reason}")),
                        );
                    }
                    out.reverify = true;
                }
                _ => {}
            }
            if card != before {
                apply(
                    tx.as_mut(),
                    &card,
                    actor,
                    if out.suspended {
                        "dispose_suspend"
                    } else {
                        "dispose_reverify"
                    },
                )?;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Disposal of a bulk-opening alert (R5.1): the agent is suspended, recorded as
    /// `dispose_suspend_agent` with the reason. `Ok(false)` when there is no such agent or it is
    /// not active (already suspended, cancelled or blacklisted).
    pub fn suspend_agent(
        &mut self,
        agent_id: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.begin()?;
        let Some(mut agent) = tx.get(Kind::Agents, agent_id.trim())? else {
            return Ok(false);
        };
        if agent.state.as_deref() != Some("active") {
            return Ok(false);
        }
        agent.state = Some("suspended".into());
        if let Some(m) = agent.body.as_object_mut() {
            m.insert("state".into(), json!("suspended"));
            m.insert(
                "suspended_reason".into(),
                json!(format!("R5.1 bulk opening detected: {reason}")),
            );
        }
        apply(tx.as_mut(), &agent, actor, "dispose_suspend_agent")?;
        tx.commit()?;
        Ok(true)
    }

    /// The appeal path: lifts a detection's block and suspension, recorded as `appeal_unblock`
    /// with the actor who decided it.
    pub fn appeal(&mut self, number: &str, actor: &Actor) -> Result<Disposal, StoreError> {
        let key = normalise_key(Kind::Subscribers, number, &self.vault);
        let mut out = Disposal {
            number: key.clone(),
            ..Disposal::default()
        };
        let mut tx = self.store.begin()?;
        if let Some(b) = tx.get(Kind::Blocklist, &key)? {
            if b.subtype.as_deref() == Some("detection") && b.field("expires_at").is_empty() {
                let mut lifted = b.clone();
                if let Some(m) = lifted.body.as_object_mut() {
                    m.insert("expires_at".into(), json!(actor.now));
                    m.insert("appeal".into(), json!(format!("lifted by {}", actor.name)));
                }
                apply(tx.as_mut(), &lifted, actor, "appeal_unblock")?;
                out.blocklisted = true;
            }
        }
        if let Some(mut card) = tx.get(Kind::Subscribers, &key)? {
            if card.state.as_deref() == Some("suspended")
                && card.field("suspended_reason").starts_with("R15.3")
            {
                card.state = Some("active".into());
                if let Some(m) = card.body.as_object_mut() {
                    m.insert("state".into(), json!("active"));
                    m.remove("suspended_reason");
                }
                apply(tx.as_mut(), &card, actor, "appeal_unblock")?;
                out.suspended = true;
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The halves of a split batch go on only if both can, and a half that is gone (its
    /// thread panicked) reads as "no" instead of leaving the other waiting.
    #[test]
    fn halves_go_on_only_together() {
        for (a_can, b_can) in [(true, true), (true, false), (false, true), (false, false)] {
            let (a, b) = rendezvous();
            let other = std::thread::spawn(move || b.both(b_can));
            assert_eq!(a.both(a_can), a_can && b_can);
            assert_eq!(other.join().unwrap(), a_can && b_can);
        }
        let (a, b) = rendezvous();
        let gone = std::thread::spawn(move || {
            let _b = b;
            panic!("a half fails before it tells");
        });
        assert!(gone.join().is_err());
        assert!(!a.both(true));
    }
}
