//! `fanzha screen --calls FILE.jsonl` and `fanzha decisions verify|retain`.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_policy::RuleConfig;
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::{self, DecisionLog, Entry};
use fanzha_screen::wire::{parse_rule_list, CallWire, VerdictWire};
use fanzha_screen::Engine;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ScreenArgs {
    /// Call attempts, one JSON object per line ("-" for standard input).
    #[arg(long)]
    calls: PathBuf,
    /// Rules in shadow mode: reported, never blocking (comma-separated rule IDs).
    #[arg(long, default_value = "")]
    shadow: String,
    /// Do not write the decision log.
    #[arg(long)]
    no_log: bool,
}

/// The decision log directory of a store configuration.
pub fn log_dir(store: &StoreArgs) -> PathBuf {
    store.data_dir.join("decisions")
}

pub fn run(args: ScreenArgs, store: &StoreArgs) -> Result<ExitCode> {
    let shadow = parse_rule_list(&args.shadow).map_err(anyhow::Error::msg)?;
    let mut ledger_store = store.open_store()?;
    let (snapshot, report) =
        compile(ledger_store.as_mut()).context("compile the policy snapshot")?;
    for s in &report.skipped {
        eprintln!("fanzha: snapshot skipped {s}");
    }
    let engine = Engine::new(snapshot, RuleConfig { shadow });
    let log = if args.no_log {
        None
    } else {
        std::fs::create_dir_all(&store.data_dir)?;
        Some(DecisionLog::open(&log_dir(store))?)
    };
    let input: Box<dyn BufRead> = if args.calls.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.calls)
                .with_context(|| format!("cannot read {}", args.calls.display()))?,
        ))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let snapshot = engine.snapshot();
    let mut bad = false;
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let result = CallWire::from_json(&text).and_then(|w| match w.resolve(&snapshot) {
            Ok(c) => Ok((w, c)),
            Err(e) => Err((w.id.clone(), e)),
        });
        match result {
            Ok((wire, call)) => {
                let verdict = engine.decide(&snapshot, &call);
                let v = VerdictWire::new(wire.id.clone(), &verdict);
                serde_json::to_writer(&mut out, &v)?;
                if let Some(log) = &log {
                    log.log(Entry {
                        ts: call.ts,
                        generation: verdict.generation,
                        call: serde_json::to_string(&wire)?,
                        verdict: serde_json::to_string(&v)?,
                    });
                }
            }
            Err((id, e)) => {
                bad = true;
                serde_json::to_writer(
                    &mut out,
                    &json!({"id": id, "error": e.to_string(), "line": n + 1}),
                )?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if let Some(log) = log {
        log.close()?;
    }
    Ok(if bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Subcommand)]
pub enum DecisionsCommand {
    /// Check the hash chain of the decision log: a deleted or altered record is reported.
    Verify,
    /// Drop log segments older than the retention period (whole China calendar days).
    Retain {
        /// Days to keep (R12.1/R13.1 retention, e.g. 180).
        #[arg(long, default_value_t = 180)]
        days: i64,
    },
}

pub fn decisions(cmd: DecisionsCommand, store: &StoreArgs) -> Result<ExitCode> {
    let dir = log_dir(store);
    match cmd {
        DecisionsCommand::Verify => {
            let v = decision_log::verify(&dir)?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(if v.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DecisionsCommand::Retain { days } => {
            let cutoff = chrono::Utc::now().timestamp() - days * 86_400;
            let dropped = decision_log::apply_retention(&dir, cutoff)?;
            println!(
                "{}",
                json!({"dropped_segments": dropped, "retention_days": days})
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
