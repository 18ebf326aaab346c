//! `fanzha screen --calls FILE.jsonl` and `fanzha decisions verify|retain`.

use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_policy::RuleConfig;
use fanzha_screen::compile::compile;
use fanzha_screen::decision_log::{self, Entry};
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
    let engine = Engine::new(
        snapshot,
        RuleConfig {
            shadow,
            ..RuleConfig::default()
        },
    );
    let log = if args.no_log {
        None
    } else {
        std::fs::create_dir_all(&store.data_dir)?;
        Some(store.decision_log(|_| {})?)
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
    /// Check the decision log's keyed chain against the newest checkpoint the store keeps:
    /// an edited, removed or reordered record or segment, or one cut from the end, is
    /// named. Exit 0 intact, 1 otherwise.
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
            let key = store.decisions_key()?;
            let checkpoint = store.decisions_checkpoint()?;
            let v = decision_log::verify(&dir, &key, checkpoint.as_ref())?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(if v.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DecisionsCommand::Retain { days } => {
            let cutoff = chrono::Utc::now().timestamp() - days * 86_400;
            let key = store.decisions_key()?;
            let r = decision_log::apply_retention(&dir, &key, cutoff)?;
            println!(
                "{}",
                json!({"dropped_segments": r.dropped_segments, "retention_days": days, "anchor": r.anchor})
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
