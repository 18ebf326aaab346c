//! Choosing and opening the concrete backends: the only place that names SQLite or
//! PostgreSQL, reads `--data-dir` / `--database-url`, and manages the key files (personal
//! data, audit chain), which are checked against the store before anything is read.

use anyhow::{bail, Context, Result};
use fanzha_api::auth::{AuthConfig, Authenticator, Caller, Now};
use fanzha_auth::{AccessStore, AuditKey};
use fanzha_ledger::pii::KEY_LEN;
use fanzha_ledger::{Ledger, PiiVault, Store};
use fanzha_ledger_postgres::PgStore;
use fanzha_ledger_sqlite::SqliteStore;
use fanzha_screen::decision_log::{
    segments, Checkpoint, DecisionLog, LogConfig, LogKey, LOG_KEY_LEN,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the ledger lives, from global flags and environment.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory of the embedded store (SQLite ledger, key files, decision log).
    #[arg(
        long,
        env = "FANZHA_DATA_DIR",
        default_value = "./fanzha-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store: postgres://user@host:port/db.
    #[arg(long, env = "FANZHA_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// The key for personal data (64 bytes, mode 0600); default: pii.key in the data dir.
    /// Created only for a new, empty ledger; a ledger refuses any other key.
    #[arg(long, env = "FANZHA_PII_KEY", global = true)]
    pub pii_key: Option<PathBuf>,
    /// The key of the audit trail's chain (32 bytes, mode 0600), kept outside the
    /// database; default: audit.key in the data dir. Created only for an empty trail.
    #[arg(long, env = "FANZHA_AUDIT_KEY", global = true)]
    pub audit_key: Option<PathBuf>,
    /// The key of the decision log's chain (32 bytes, mode 0600), kept outside the log
    /// directory; default: decisions.key in the data dir. Created only for a log with no
    /// keyed records yet.
    #[arg(long, env = "FANZHA_DECISIONS_KEY", global = true)]
    pub decisions_key: Option<PathBuf>,
    /// A note on who is acting, recorded beside the operating-system user (who is the
    /// actor of local commands).
    #[arg(long, env = "FANZHA_ACTOR", global = true)]
    pub actor: Option<String>,
}

/// The ledger over the store the flags name.
pub type LedgerOf = Ledger<Box<dyn Store>>;

/// The setting holding the PII key's check value.
const PII_CHECK: &str = "pii_key_check";
/// The setting naming the key a rotation re-seals to, until it is done.
const PII_CHECK_NEXT: &str = "pii_key_check_next";
/// The setting saying every current record's personal data is sealed bound to its record.
const PII_BINDING: &str = "pii_binding";
/// The setting holding the decision log key's check value.
const DECISIONS_CHECK: &str = "decisions_key_check";
/// The setting holding the decision log's newest checkpoint.
pub const DECISIONS_CHECKPOINT: &str = "decision_log_checkpoint";
/// The setting holding the audit key's check value.
const AUDIT_CHECK: &str = "audit_key_check";

impl StoreArgs {
    /// Opens the backend named by the flags.
    pub fn open_store(&self) -> Result<Box<dyn Store>> {
        Ok(match &self.database_url {
            Some(url) => Box::new(
                PgStore::connect(url)
                    .with_context(|| format!("cannot open PostgreSQL ledger at {}", redact(url)))?,
            ),
            None => Box::new(self.open_sqlite()?),
        })
    }

    fn open_sqlite(&self) -> Result<SqliteStore> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create data dir {}", self.data_dir.display()))?;
        let path = self.data_dir.join("ledger.sqlite");
        SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))
    }

    /// A connection to the store's principals and audit trail (beside the ledger's own,
    /// so an audit append never waits for an import).
    pub fn open_access(&self) -> Result<Box<dyn AccessStore>> {
        Ok(match &self.database_url {
            Some(url) => Box::new(
                PgStore::connect(url)
                    .with_context(|| format!("cannot open PostgreSQL ledger at {}", redact(url)))?,
            ),
            None => Box::new(self.open_sqlite()?),
        })
    }

    fn key_path(&self, flag: &Option<PathBuf>, default: &str) -> Result<PathBuf> {
        Ok(match flag {
            Some(p) => p.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                self.data_dir.join(default)
            }
        })
    }

    /// The PII vault under the configured key, checked against the ledger: created only
    /// for a new, empty ledger; a ledger that has a key refuses a missing or different one.
    pub fn vault_for(
        &self,
        store: &mut dyn Store,
        access: &mut dyn AccessStore,
    ) -> Result<PiiVault> {
        let path = self.key_path(&self.pii_key, "pii.key")?;
        let stored = access.setting(PII_CHECK)?;
        let empty = stored.is_none() && store.version()? == 0;
        let key = match read_key(&path, KEY_LEN)? {
            Some(k) => k,
            None if empty => create_key(&path, &PiiVault::generate_key()?)?,
            None => bail!(
                "the ledger holds sealed personal data but its PII key {} is missing: restore the key file from your backup (a new key cannot open the data); pass --pii-key FILE if it lives elsewhere",
                path.display()
            ),
        };
        let vault = PiiVault::new(&key)?;
        // A rotation in progress (or interrupted after its re-seal) names the key it
        // rotates to: that key is the ledger's as well.
        let next = access.setting(PII_CHECK_NEXT)?.filter(|n| !n.is_empty());
        match stored {
            Some(_) if next.as_deref() == Some(vault.check_value().as_str()) => {}
            Some(check) if check != vault.check_value() => bail!(
                "the PII key {} is not this ledger's key (its check value is {}, the ledger's {check}): use the key the ledger was sealed with; to change keys, `fanzha ledger rotate-key --new-key FILE` under the old one",
                path.display(),
                vault.check_value()
            ),
            Some(_) => {}
            // A new ledger, or one from before check values: this key is its key from now on.
            None => access.set_setting(PII_CHECK, &vault.check_value())?,
        }
        Ok(vault)
    }

    /// The audit chain's key, checked against the trail as the PII key is.
    pub fn audit_key_for(&self, access: &mut dyn AccessStore) -> Result<AuditKey> {
        let path = self.key_path(&self.audit_key, "audit.key")?;
        let stored = access.setting(AUDIT_CHECK)?;
        let empty = stored.is_none() && access.audit_records(0, i64::MIN, 1)?.is_empty();
        let key = match read_key(&path, fanzha_auth::audit::AUDIT_KEY_LEN)? {
            Some(k) => k,
            None if empty => {
                let mut k = [0u8; fanzha_auth::audit::AUDIT_KEY_LEN];
                fanzha_auth::credential::fill_random(&mut k)?;
                create_key(&path, &k)?
            }
            None => bail!(
                "the audit trail exists but its key {} is missing: restore it from your backup (without it the trail cannot be verified or extended); pass --audit-key FILE if it lives elsewhere",
                path.display()
            ),
        };
        let key = AuditKey::new(&key).context("audit key too short")?;
        match stored {
            Some(check) if check != key.check_value() => bail!(
                "the audit key {} is not this trail's key (check value {}, the trail's {check})",
                path.display(),
                key.check_value()
            ),
            Some(_) => {}
            None => access.set_setting(AUDIT_CHECK, &key.check_value())?,
        }
        Ok(key)
    }

    /// The decision log's directory.
    pub fn decisions_dir(&self) -> PathBuf {
        self.data_dir.join("decisions")
    }

    /// The decision log's key, checked against the store: created only while the log holds
    /// no keyed record; a log that has them refuses a missing or different key.
    pub fn decisions_key(&self) -> Result<LogKey> {
        let mut access = self.open_access()?;
        let path = self.key_path(&self.decisions_key, "decisions.key")?;
        let stored = access.setting(DECISIONS_CHECK)?;
        let key = match read_key(&path, LOG_KEY_LEN)? {
            Some(k) => k,
            None if stored.is_none() && !log_has_records(&self.decisions_dir())? => {
                let mut k = [0u8; LOG_KEY_LEN];
                fanzha_auth::credential::fill_random(&mut k)?;
                create_key(&path, &k)?
            }
            None => bail!(
                "the decision log has records but its key {} is missing: restore it from your backup (without it the log cannot be verified or extended); pass --decisions-key FILE if it lives elsewhere",
                path.display()
            ),
        };
        let log_key = LogKey::new(&key).context("decision log key too short")?;
        let check = log_key.check_value();
        match stored {
            Some(s) if s != check => bail!(
                "the decision log key {} is not this log's key (check value {check}, the store's {s})",
                path.display()
            ),
            Some(_) => {}
            None => access.set_setting(DECISIONS_CHECK, &check)?,
        }
        Ok(log_key)
    }

    /// The newest checkpoint of the decision log, as the store keeps it.
    pub fn decisions_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let mut access = self.open_access()?;
        Ok(match access.setting(DECISIONS_CHECKPOINT)? {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .context("the store's decision log checkpoint is unreadable")?,
            ),
        })
    }

    /// Opens the decision log (creating its key if new), its checkpoints written to the
    /// store from the log's writer thread on a connection of its own.
    pub fn decision_log(&self, tune: impl FnOnce(&mut LogConfig)) -> Result<DecisionLog> {
        let key = self.decisions_key()?;
        let mut access = self.open_access()?;
        let mut config = LogConfig::new(key);
        tune(&mut config);
        config.on_checkpoint = Some(Box::new(move |c: &Checkpoint| {
            let text = serde_json::to_string(c).expect("serialises");
            if let Err(e) = access.set_setting(DECISIONS_CHECKPOINT, &text) {
                eprintln!("fanzha: decision log checkpoint not kept: {e}");
            }
        }));
        Ok(DecisionLog::open_with(&self.decisions_dir(), config)?)
    }

    /// The ledger over the configured store and key.
    pub fn ledger(&self) -> Result<Ledger<Box<dyn Store>>> {
        Ok(self.open_ledger()?.0)
    }

    /// The ledger and its access store, the key checked; a ledger whose personal data was
    /// sealed before values were bound to their record is re-sealed first (once).
    fn open_ledger(&self) -> Result<(LedgerOf, Box<dyn AccessStore>)> {
        let mut store = self.open_store()?;
        let mut access = self.open_access()?;
        let vault = self.vault_for(store.as_mut(), access.as_mut())?;
        let fresh = store.version()? == 0;
        let mut ledger = Ledger::new(store, vault);
        if access.setting(PII_BINDING)?.is_none() {
            if !fresh {
                let actor = StoreArgs::actor_named("fanzha (re-seal bound to records)");
                let done = ledger
                    .reseal(None, &actor)
                    .context("re-sealing personal data bound to its records")?;
                eprintln!(
                    "fanzha: personal data of {} records re-sealed bound to their records (once)",
                    done.records
                );
            }
            access.set_setting(PII_BINDING, "record")?;
        }
        Ok((ledger, access))
    }

    /// The ledger and the door (principals, audit trail), each on its own connection.
    pub fn ledger_and_auth(
        &self,
        config: AuthConfig,
    ) -> Result<(Ledger<Box<dyn Store>>, Authenticator)> {
        let (ledger, mut access) = self.open_ledger()?;
        let key = self.audit_key_for(access.as_mut())?;
        let auth = Authenticator::new(access, key, ledger.vault().clone(), config)?;
        Ok((ledger, auth))
    }

    /// `fanzha ledger rotate-key --new-key FILE`: every current record's personal data
    /// re-sealed under the new key in one transaction. The new key keeps the old one's
    /// hashing half (holder hashes and blacklist keys stay valid) and gets a new sealing
    /// half; a FILE that does not exist is made so. Its check value is recorded before the
    /// re-seal and made the ledger's after, so an interruption leaves both keys accepted
    /// and a second run (with the old key) completes it.
    pub fn rotate_key(&self, new_key: &Path) -> Result<(fanzha_ledger::Resealed, Authenticator)> {
        let (mut ledger, mut access) = self.open_ledger()?;
        let old = ledger.vault().clone();
        let key = match read_key(new_key, KEY_LEN)? {
            Some(k) => k,
            None => {
                let mut k = read_key(&self.key_path(&self.pii_key, "pii.key")?, KEY_LEN)?
                    .context("the current PII key is missing")?;
                fanzha_auth::credential::fill_random(&mut k[32..])?;
                create_key(new_key, &k)?
            }
        };
        let new = PiiVault::new(&key)?;
        if !old.hashes_like(&new) {
            bail!(fanzha_ledger::ResealError::HashingKeyChanged);
        }
        access.set_setting(PII_CHECK_NEXT, &new.check_value())?;
        let done = ledger.reseal(Some(new.clone()), &self.actor())?;
        // People's TOTP secrets, sealed under the same key, follow.
        let audit_key = self.audit_key_for(access.as_mut())?;
        let auth = Authenticator::new(access, audit_key.clone(), old, AuthConfig::default())?;
        auth.reseal_totp(&new)?;
        drop(auth);
        let mut access = self.open_access()?;
        access.set_setting(PII_CHECK, &new.check_value())?;
        access.set_setting(PII_CHECK_NEXT, "")?;
        let auth = Authenticator::new(access, audit_key, new, AuthConfig::default())?;
        Ok((done, auth))
    }

    /// The local caller: the operating-system user, who holds the key files anyway.
    pub fn caller(&self) -> Caller {
        let mut c = Caller::local(&os_user());
        if let Some(note) = self.actor.as_deref().filter(|a| !a.is_empty()) {
            c.name = format!("{} ({note})", c.name);
        }
        c
    }

    /// An actor for a benchmark's own throwaway ledger.
    pub fn actor_named(name: &str) -> fanzha_ledger::Actor {
        let now = now();
        fanzha_ledger::Actor {
            name: name.to_string(),
            now: now.rfc3339,
            today: now.today,
        }
    }

    /// The actor of local writes, and the clock.
    pub fn actor(&self) -> fanzha_ledger::Actor {
        let now = now();
        fanzha_ledger::Actor {
            name: self.caller().name,
            now: now.rfc3339,
            today: now.today,
        }
    }
}

/// The system clock, as the API takes it.
pub struct SystemClock;

impl fanzha_api::Clock for SystemClock {
    fn now(&self) -> Now {
        now()
    }
    fn unix_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// Now, as the libraries take it.
pub fn now() -> Now {
    let t = chrono::Utc::now().with_timezone(&fanzha_model::time::cst());
    Now {
        rfc3339: t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        unix_ms: t.timestamp_millis(),
        today: crate::today_in_china(),
    }
}

/// The name of the operating-system user running this process (not `$USER`, which the
/// caller sets).
pub fn os_user() -> String {
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both alive and of the sizes given.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: on success pw_name points into `buf`, NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name.to_string_lossy().into_owned();
    }
    format!("uid{uid}")
}

/// Whether a decision log directory holds any record.
fn log_has_records(dir: &Path) -> Result<bool> {
    for (_, p) in segments(dir)? {
        if std::fs::metadata(&p)?.len() > 0 {
            return Ok(true);
        }
    }
    Ok(dir.join("anchor.json").exists())
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A key file: None if absent; an error if the size is wrong or anyone but the owner may
/// read it.
fn read_key(path: &Path, len: usize) -> Result<Option<Vec<u8>>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read key {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "key {} may be read by group or others (mode {mode:o}): `chmod 600 {}` and check who has copied it",
                path.display(),
                path.display()
            );
        }
    }
    let k = std::fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?;
    if k.len() != len {
        bail!(
            "key {} has {} bytes, expected {len}",
            path.display(),
            k.len()
        );
    }
    Ok(Some(k))
}

/// Writes a new key file, mode 0600; if another process made one first, that one is used.
fn create_key(path: &Path, key: &[u8]) -> Result<Vec<u8>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(key)?;
            f.sync_all()?;
            Ok(key.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Give the writer a moment to finish.
            for _ in 0..50 {
                if let Some(k) = read_key(path, key.len())? {
                    return Ok(k);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            bail!("key {} is being created by another process", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create key {}", path.display())),
    }
}
