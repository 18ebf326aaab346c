//! Choosing and opening the concrete backends: the only place that names SQLite or
//! PostgreSQL, reads `--data-dir` / `--database-url`, and manages the PII key file.

use anyhow::{bail, Context, Result};
use fanzha_ledger::pii::KEY_LEN;
use fanzha_ledger::{Ledger, PiiVault, Store};
use fanzha_ledger_postgres::PgStore;
use fanzha_ledger_sqlite::SqliteStore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the ledger lives, from global flags and environment.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory of the embedded store (SQLite ledger, PII key, decision log).
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
    /// The key for personal data (64 bytes); default: pii.key in the data dir, created with
    /// mode 0600 on first use.
    #[arg(long, env = "FANZHA_PII_KEY", global = true)]
    pub pii_key: Option<PathBuf>,
    /// Who is acting (recorded in the ledger's history).
    #[arg(long, env = "FANZHA_ACTOR", global = true)]
    pub actor: Option<String>,
}

impl StoreArgs {
    /// Opens the backend named by the flags.
    pub fn open_store(&self) -> Result<Box<dyn Store>> {
        Ok(match &self.database_url {
            Some(url) => Box::new(
                PgStore::connect(url)
                    .with_context(|| format!("cannot open PostgreSQL ledger at {}", redact(url)))?,
            ),
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("cannot create data dir {}", self.data_dir.display())
                })?;
                let path = self.data_dir.join("ledger.sqlite");
                Box::new(
                    SqliteStore::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                )
            }
        })
    }

    /// The PII vault under the configured key (created on first use).
    pub fn vault(&self) -> Result<PiiVault> {
        let path = match &self.pii_key {
            Some(p) => p.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                self.data_dir.join("pii.key")
            }
        };
        let key = load_or_create_key(&path)?;
        Ok(PiiVault::new(&key)?)
    }

    /// The ledger over the configured store and key.
    pub fn ledger(&self) -> Result<Ledger<Box<dyn Store>>> {
        Ok(Ledger::new(self.open_store()?, self.vault()?))
    }

    /// The actor and the clock, for recording writes.
    pub fn actor(&self) -> fanzha_ledger::Actor {
        let name = self
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "cli".to_string());
        let now = chrono::Utc::now().with_timezone(&fanzha_model::time::cst());
        fanzha_ledger::Actor {
            name,
            now: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            today: crate::today_in_china(),
        }
    }
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

fn load_or_create_key(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(k) if k.len() == KEY_LEN => Ok(k),
        Ok(k) => bail!(
            "PII key {} has {} bytes, expected {KEY_LEN}",
            path.display(),
            k.len()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PiiVault::generate_key()?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(&key)?;
                    f.sync_all()?;
                    Ok(key.to_vec())
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => {
                    Err(e).with_context(|| format!("cannot create PII key {}", path.display()))
                }
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read PII key {}", path.display())),
    }
}
