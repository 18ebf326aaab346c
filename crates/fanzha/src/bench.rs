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
    /// Compile a generated province (1 M subscribers, 10 k trunks, 50 k approvals, 100 k
    /// blocklist entries) and screen a realistic call mix on one core. Last line:
    /// {"verdicts_per_sec","p50_ns","p99_ns","subscribers","build_ms","bytes_per_subscriber"}.
    Screen {
        /// Subscribers in the province.
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: u64,
        /// Call attempts in the mix.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
    },
}

pub fn run(cmd: BenchCommand, store: &StoreArgs) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Import { rows } => import(rows, store),
        BenchCommand::Screen { subscribers, calls } => screen(subscribers, calls),
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

fn screen(subscribers: u64, calls: u64) -> Result<ExitCode> {
    use fanzha_policy::{evaluate, Counters, RuleConfig};
    use fanzha_synth::{traffic, Province, Spec};
    eprintln!("generating a province of {subscribers} subscribers …");
    let spec = Spec {
        subscribers,
        ..Spec::bench()
    };
    let province = Province::generate(spec);
    let records: std::collections::HashMap<Kind, Vec<fanzha_ledger::Record>> = Kind::ALL
        .iter()
        .map(|&k| (k, province.records(k)))
        .collect();
    let start = Instant::now();
    let (snapshot, _) = fanzha_screen::compile::compile_records(1, |k| {
        Ok(records.get(&k).cloned().unwrap_or_default())
    })?;
    let build = start.elapsed();
    // The clone of the records is part of the closure's cost; measure it alone and subtract.
    let t = Instant::now();
    let cloned: usize = Kind::ALL
        .iter()
        .map(|k| records.get(k).cloned().unwrap_or_default().len())
        .sum();
    let clone_cost = t.elapsed();
    let build_ms = build.saturating_sub(clone_cost).as_millis();
    eprintln!(
        "compiled {} subscribers ({cloned} records) in {build_ms} ms; generating {calls} calls …",
        snapshot.subscriber_count()
    );
    let mix: Vec<fanzha_policy::CallAttempt> = traffic(&province, calls, 11)
        .iter()
        .map(|(_, w)| w.resolve(&snapshot))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("generated call does not resolve: {e}"))?;
    let config = RuleConfig::default();
    let mut counters = Counters::new(&snapshot);
    // Warm up, then the throughput pass on this one thread.
    let mut blocked = 0u64;
    for c in mix.iter().take(100_000) {
        blocked += (evaluate(&snapshot, c, &mut counters, &config).code != 302) as u64;
    }
    let mut counters = Counters::new(&snapshot);
    let t = Instant::now();
    for c in &mix {
        blocked += (evaluate(&snapshot, std::hint::black_box(c), &mut counters, &config).code
            != 302) as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    // Latency: each verdict timed on its own (the clock read, ~20 ns, is included).
    let mut counters = Counters::new(&snapshot);
    let mut lat: Vec<u64> = Vec::with_capacity(mix.len().min(200_000));
    for c in mix.iter().take(200_000) {
        let t = Instant::now();
        std::hint::black_box(evaluate(&snapshot, c, &mut counters, &config));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let bytes = snapshot.subscriber_bytes() as f64 / snapshot.subscriber_count().max(1) as f64;
    eprintln!("blocked {blocked} of {} evaluations", mix.len() + 100_000);
    println!(
        "{}",
        json!({
            "verdicts_per_sec": (mix.len() as f64 / secs).round(),
            "p50_ns": pct(0.50), "p99_ns": pct(0.99),
            "subscribers": snapshot.subscriber_count(),
            "build_ms": build_ms,
            "bytes_per_subscriber": (bytes * 10.0).round() / 10.0,
        })
    );
    Ok(ExitCode::SUCCESS)
}
