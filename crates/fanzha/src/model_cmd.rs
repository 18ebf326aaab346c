//! `fanzha model train|eval|score`: the scoring model over per-number feature tables
//! (first column an id, a `label` column, every other column numeric; empty = missing).

use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_detect::{Model, Params, Table};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Train a gradient-boosted tree model; 5-fold cross-validation picks the decision
    /// threshold (max macro-F1) and reports honest metrics on stderr.
    Train {
        /// Labelled feature table (CSV).
        #[arg(long)]
        features: PathBuf,
        /// Where to write the model (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Seed (training is deterministic for a seed).
        #[arg(long, default_value_t = 2016)]
        seed: u64,
        /// Boosting rounds.
        #[arg(long, default_value_t = 600)]
        rounds: u32,
        /// Shrinkage per tree.
        #[arg(long, default_value_t = 0.03)]
        learning_rate: f32,
        /// Tree depth.
        #[arg(long, default_value_t = 5)]
        max_depth: u32,
        /// Share of features per tree.
        #[arg(long, default_value_t = 0.5)]
        col_sample: f32,
        /// Do not derive the ratio features.
        #[arg(long)]
        no_ratios: bool,
        /// Only the features the live monitor computes (the Sichuan voice columns it shares:
        /// opposite_count, opposite_unique, voc_calltype1, imeis, …), so `fanzha monitor
        /// --model` and `fanzha serve` can apply the model to the call stream.
        #[arg(long)]
        online: bool,
    },
    /// Evaluate on a labelled table: one JSON object {rows, auc, macro_f1, precision, recall, threshold}.
    Eval {
        /// Model file.
        #[arg(long)]
        model: PathBuf,
        /// Labelled feature table.
        #[arg(long)]
        features: PathBuf,
    },
    /// Score a table: one JSON line per id {id, score, fraud}.
    Score {
        /// Model file.
        #[arg(long)]
        model: PathBuf,
        /// Feature table (label optional).
        #[arg(long)]
        features: PathBuf,
    },
}

fn table(path: &Path, need_label: bool) -> Result<Table> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Table::from_csv(&data, need_label).with_context(|| format!("{}", path.display()))
}

/// Reads a model file written by `fanzha model train`.
pub fn load(path: &Path) -> Result<Model> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read model {}", path.display()))?;
    let m: Model = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fanzha model", path.display()))?;
    anyhow::ensure!(
        m.format == "fanzha-gbdt-1",
        "unsupported model format {:?}",
        m.format
    );
    m.validate()
        .map_err(|e| anyhow::anyhow!("{} is not a usable model: {e}", path.display()))?;
    Ok(m)
}

pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Train {
            features,
            out,
            seed,
            rounds,
            learning_rate,
            max_depth,
            col_sample,
            no_ratios,
            online,
        } => {
            let mut t = table(&features, true)?;
            if online {
                let keep: Vec<String> = t
                    .features
                    .iter()
                    .filter(|f| fanzha_detect::monitor::online_feature(f))
                    .cloned()
                    .collect();
                anyhow::ensure!(
                    !keep.is_empty(),
                    "{}: no column is a feature the monitor computes",
                    features.display()
                );
                eprintln!("fanzha model: online features: {}", keep.join(", "));
                t = t.project(&keep);
            }
            let ratios = if no_ratios {
                Vec::new()
            } else {
                fanzha_detect::sichuan_ratios()
            };
            let params = Params {
                seed,
                rounds,
                learning_rate,
                max_depth,
                col_sample,
                ratios,
                ..Params::default()
            };
            let m = Model::train_cv(&t, &params, 5);
            std::fs::write(&out, serde_json::to_vec(&m)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "fanzha model: {} rows, {} features, {} trees → {}",
                t.rows(),
                t.features.len(),
                rounds,
                out.display()
            );
            println!(
                "{}",
                json!({"rows": t.rows(), "features": t.features.len(), "threshold": m.threshold, "cv": m.cv})
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Eval { model, features } => {
            let m = load(&model)?;
            let t = table(&features, true)?;
            let r = m.evaluate(&t).context("the table has no label column")?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Score { model, features } => {
            let m = load(&model)?;
            let t = table(&features, false)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (id, s) in t.ids.iter().zip(m.score(&t)) {
                serde_json::to_writer(
                    &mut out,
                    &json!({"id": id, "score": s, "fraud": s >= m.threshold}),
                )?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
