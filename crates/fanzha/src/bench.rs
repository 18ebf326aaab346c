//! `fanzha bench …`: the shipped benchmarks whose last output line is one JSON object.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_ledger::{Kind, Ledger, Store};
use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Import N generated subscribers (validate, hash, encrypt, five-card check, history
    /// event) into a fresh ledger: SQLite in a temporary directory, or PostgreSQL with
    /// --database-url (in a fresh schema). Last line: {"rows","rows_per_sec","backend"}.
    Import {
        /// Rows to generate.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
}

pub fn run(cmd: BenchCommand, store: &StoreArgs) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Import { rows } => import(rows, store),
    }
}

/// A subscribers CSV of `rows` verified mobile cards, three per holder.
pub fn subscribers_csv(rows: u64) -> String {
    let mut s = String::with_capacity(rows as usize * 160);
    s.push_str(
        fanzha_ledger::Kind::Subscribers
            .columns()
            .join(",")
            .as_str(),
    );
    s.push('\n');
    for i in 0..rows {
        let id = fanzha_model::synth::nth_resident_id(i / 3);
        let seg = ["138", "139", "150", "186", "189"][(i % 5) as usize];
        s.push_str(&format!(
            "{seg}{:08},mobile,{id},测试用户,,北京,own_store,,id_reader,verified,active,4600{:011},,2024-05-01T10:00:00+08:00,\n",
            i / 5,
            i
        ));
    }
    s
}

fn import(rows: u64, store: &StoreArgs) -> Result<ExitCode> {
    let tmp = std::env::temp_dir().join(format!("fanzha-bench-{}", std::process::id()));
    let (backend, cleanup): (Box<dyn Store>, Option<std::path::PathBuf>) = match &store.database_url
    {
        Some(url) => {
            let schema = format!("bench_{}", std::process::id());
            (
                Box::new(fanzha_ledger_postgres::PgStore::connect_in_schema(
                    url,
                    Some(&schema),
                )?),
                None,
            )
        }
        None => {
            std::fs::create_dir_all(&tmp)?;
            let s = fanzha_ledger_sqlite::SqliteStore::open(&tmp.join("ledger.sqlite"))
                .context("open bench ledger")?;
            (Box::new(s), Some(tmp.clone()))
        }
    };
    let name = backend.backend();
    let mut ledger = Ledger::new(backend, fanzha_ledger::PiiVault::new(&[9u8; 64])?);
    eprintln!("generating {rows} subscribers …");
    let csv = subscribers_csv(rows);
    let actor = store.actor();
    eprintln!("importing into {name} …");
    let start = Instant::now();
    let report = ledger.import_csv(Kind::Subscribers, csv.as_bytes(), &actor, &mut |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(dir) = cleanup {
        drop(ledger);
        let _ = std::fs::remove_dir_all(dir);
    }
    anyhow::ensure!(
        report.refused == 0,
        "bench rows were refused: {:?}",
        report.refusals.first()
    );
    println!(
        "{}",
        json!({"rows": report.accepted, "rows_per_sec": (report.accepted as f64 / secs).round(), "backend": name, "seconds": secs})
    );
    Ok(ExitCode::SUCCESS)
}
