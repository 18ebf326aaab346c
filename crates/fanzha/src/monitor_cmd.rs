//! `fanzha monitor --cdr FILE [--format native|sichuan|jsonl] [--rules FILE]`: the batch
//! monitor. Alerts as JSON lines on stdout; a summary (records, bad records, alerts, active
//! numbers) on stderr. Bad records are counted and reported, never fatal.

use anyhow::{Context, Result};
use clap::ValueEnum;
use fanzha_detect::monitor::{parse_rules, Format, Monitor, Opening, OpeningMonitor, RulesFile};
use fanzha_monitor::{Disposer, IngestError, LedgerDisposer, Pipeline, ReportOnly};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

#[derive(Copy, Clone, ValueEnum)]
enum CdrFormat {
    /// start,caller,callee,duration_s,trunk,imei,cell
    Native,
    /// Sichuan train_voc: phone_no_m,opposite_no_m,calltype_id,start_datetime,call_dur,city_name,county_name,imei_m
    Sichuan,
    /// JSON lines with the native fields.
    Jsonl,
}

#[derive(clap::Args)]
pub struct MonitorArgs {
    /// Call records file.
    #[arg(long, required_unless_present = "openings")]
    cdr: Option<PathBuf>,
    /// A subscribers file (the ledger's `subscribers` CSV): openings through agents are
    /// watched for card farms (R5.1, many holders in an hour; alerts
    /// `{agent_id,ts,level,distinct_holders,openings,action}`), and recent activations give
    /// new cards the stricter new-card rules in the call records that follow.
    #[arg(long)]
    openings: Option<PathBuf>,
    /// Record format.
    #[arg(long, value_enum, default_value = "native")]
    format: CdrFormat,
    /// Threshold rules (TOML: [[rule]] id, feature, class, warning, critical, min_calls,
    /// hours; optional [disposal] warning/critical/model = watch | reverify |
    /// suspend_and_block); default: the built-in rules and policy.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// A scoring model (`fanzha model train --online`) applied to every number as its
    /// records arrive and once more at the end; its alerts carry rule `model`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Execute each alert's action in the ledger (blocklist + suspend, second real-name
    /// verification) as audited writes; screening blocks disposed numbers from then on.
    #[arg(long)]
    dispose: bool,
}

pub fn run(args: MonitorArgs, store: &crate::backend::StoreArgs) -> Result<ExitCode> {
    let (ledger, auth) = if args.dispose {
        let (l, a) = store.ledger_and_auth(fanzha_api::auth::AuthConfig::default())?;
        (Some(Arc::new(Mutex::new(l))), Some(a))
    } else {
        (None, None)
    };
    let local = store.actor();
    let actor = fanzha_ledger::Actor {
        name: format!("fanzha-monitor ({})", local.name),
        ..local
    };
    let mut disposals = 0u64;
    let rules = match &args.rules {
        None => RulesFile::default(),
        Some(p) => match load_rules(p) {
            Ok(r) => r,
            Err(errors) => {
                for e in errors {
                    eprintln!("fanzha monitor: {e}");
                }
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut monitor = Monitor::from_rules(rules);
    if let Some(path) = &args.model {
        let model = crate::model_cmd::load(path)?;
        monitor
            .set_model(model)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut agent_alerts = 0u64;
    if let Some(path) = &args.openings {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        match read_openings(&text) {
            Err(why) => {
                eprintln!("fanzha monitor: {}: {why}", path.display());
                return Ok(ExitCode::from(1));
            }
            Ok(openings) => {
                let latest = openings.iter().map(|o| o.at).max().unwrap_or(0);
                let recent = latest - monitor.new_card_days as i64 * 86_400;
                let mut farms = OpeningMonitor::new(Default::default());
                for o in &openings {
                    if o.at >= recent {
                        monitor.note_activation(&o.msisdn, o.at);
                    }
                    if o.agent_id.is_empty() {
                        continue;
                    }
                    let Some(a) = farms.add(&Opening {
                        agent_id: &o.agent_id,
                        holder_hash: &o.holder,
                        at: o.at,
                    }) else {
                        continue;
                    };
                    agent_alerts += 1;
                    if let (Some(l), "suspend_agent") = (&ledger, a.action) {
                        let reason = format!("{} holders within the hour", a.distinct_holders);
                        let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
                        disposals += l.suspend_agent(&a.agent_id, &reason, &actor)? as u64;
                    }
                    serde_json::to_writer(&mut out, &a)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    let mut pipeline = Pipeline::new(monitor);
    let mut disposer: Box<dyn Disposer> = match &ledger {
        Some(ledger) => Box::new(LedgerDisposer {
            ledger: ledger.clone(),
            actor: Arc::new(move || actor.clone()),
        }),
        None => Box::new(ReportOnly),
    };
    let mut reports = Vec::new();
    if let Some(path) = &args.cdr {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let format = match args.format {
            CdrFormat::Native => Format::Native,
            CdrFormat::Sichuan => Format::Sichuan,
            CdrFormat::Jsonl => Format::JsonLines,
        };
        match pipeline.ingest_body(&data, format, disposer.as_mut()) {
            Ok(r) => reports.push(r),
            Err(IngestError::Header(why)) => {
                eprintln!("fanzha monitor: {}: {why}", path.display());
                return Ok(ExitCode::from(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    reports.push(pipeline.end_of_stream(disposer.as_mut())?);
    for r in &reports {
        for e in &r.errors {
            eprintln!("fanzha monitor: line {}: {}", e.line, e.reason);
        }
        for a in &r.alerts {
            serde_json::to_writer(&mut out, a)?;
            out.write_all(b"\n")?;
        }
    }
    let monitor = pipeline.monitor();
    let (bad, alerts) = (pipeline.bad_records, pipeline.alerts);
    disposals += pipeline.disposals;
    if let (Some(auth), true) = (&auth, disposals > 0) {
        crate::auth_cmd::record(
            auth,
            &store.caller(),
            fanzha_auth::Action::LedgerWrite,
            "disposals",
            "",
            fanzha_auth::Outcome::Success,
            format!("{disposals} disposals by the monitor"),
        )?;
    }
    out.flush()?;
    eprintln!(
        "{}",
        json!({"records": monitor.records, "bad_records": bad, "alerts": alerts, "agent_alerts": agent_alerts, "disposals": disposals,
               "active_numbers": monitor.active_numbers(), "bytes_per_number": monitor.bytes_per_number()})
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a threshold-rules file (TOML `[[rule]]` tables), every error at once, each naming
/// the file.
pub fn load_rules(path: &std::path::Path) -> Result<RulesFile, Vec<String>> {
    let at = |e: String| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| vec![at(e.to_string())])?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![at(e.to_string())])?;
    let json = serde_json::to_string(&doc).map_err(|e| vec![at(e.to_string())])?;
    parse_rules(&json).map_err(|errors| errors.into_iter().map(at).collect())
}

/// One subscriber row as the openings watch reads it.
struct OpeningRow {
    msisdn: String,
    /// Empty unless opened through an agent.
    agent_id: String,
    holder: String,
    at: i64,
}

/// The rows of a subscribers CSV with a valid `activated_at`, in time order. Rows without
/// one cannot be placed in time and are skipped.
fn read_openings(data: &[u8]) -> Result<Vec<OpeningRow>, String> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(msisdn), Some(activated)) = (col("msisdn"), col("activated_at")) else {
        return Err("a subscribers file needs msisdn and activated_at columns".into());
    };
    let (channel, agent, holder) = (col("channel"), col("agent_id"), col("holder_id"));
    let mut rows = Vec::new();
    for rec in r.records().flatten() {
        let field = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").trim();
        let Ok(at) = fanzha_model::time::parse_unix(field(Some(activated))) else {
            continue;
        };
        let through_agent = field(channel) == "agent";
        rows.push(OpeningRow {
            msisdn: field(Some(msisdn)).to_string(),
            agent_id: if through_agent {
                field(agent).to_string()
            } else {
                String::new()
            },
            holder: field(holder).to_string(),
            at,
        });
    }
    rows.sort_by_key(|o| o.at);
    Ok(rows)
}
