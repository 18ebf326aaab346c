//! `fanzha monitor --cdr FILE [--format native|sichuan|jsonl] [--rules FILE]`: the batch
//! monitor. Alerts as JSON lines on stdout; a summary (records, bad records, alerts, active
//! numbers) on stderr. Bad records are counted and reported, never fatal.

use anyhow::{Context, Result};
use clap::ValueEnum;
use fanzha_detect::monitor::{
    default_rules, parse_json_record, parse_rules, read_csv, Format, Monitor, Opening,
    OpeningMonitor, RulesFile,
};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
    let mut ledger = if args.dispose {
        Some(store.ledger()?)
    } else {
        None
    };
    let actor = fanzha_ledger::Actor {
        name: "fanzha-monitor".into(),
        ..store.actor()
    };
    let mut disposals = 0u64;
    let rules = match &args.rules {
        None => RulesFile {
            rule: default_rules(),
            disposal: Default::default(),
        },
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
    let mut monitor = Monitor::new(rules.rule);
    monitor.disposal = rules.disposal;
    if let Some(path) = &args.model {
        let model = crate::model_cmd::load(path)?;
        monitor
            .set_model(model)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let mut last_ts = 0i64;
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
                    if let (Some(l), "suspend_agent") = (ledger.as_mut(), a.action) {
                        let reason = format!("{} holders within the hour", a.distinct_holders);
                        disposals += l.suspend_agent(&a.agent_id, &reason, &actor)? as u64;
                    }
                    serde_json::to_writer(&mut out, &a)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    let data = match &args.cdr {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => Vec::new(),
    };
    let (mut bad, mut alerts) = (0u64, 0u64);
    let mut emit = |a: fanzha_detect::monitor::Alert, out: &mut dyn Write| -> Result<()> {
        if let Some(l) = ledger.as_mut() {
            let d = l.dispose(&a.number, a.action, &a.rules.join(","), &actor)?;
            disposals += (d.blocklisted || d.suspended || d.reverify) as u64;
        }
        let v = serde_json::to_value(&a)?;
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    let mut report_bad = |line: u64, why: String| {
        if bad < 20 {
            eprintln!("fanzha monitor: line {line}: {why}");
        }
        bad += 1;
    };
    let cdr_name = args
        .cdr
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match args.format {
        _ if args.cdr.is_none() => {}
        CdrFormat::Native | CdrFormat::Sichuan => {
            let format = if matches!(args.format, CdrFormat::Native) {
                Format::Native
            } else {
                Format::Sichuan
            };
            let mut failed = None;
            let mut raised = Vec::new();
            let header = read_csv(
                &data,
                format,
                |batch| {
                    if failed.is_some() {
                        return;
                    }
                    last_ts = batch.iter().fold(last_ts, |t, c| t.max(c.start));
                    monitor.add_batch(batch, &mut raised);
                    for a in raised.drain(..) {
                        alerts += 1;
                        if let Err(e) = emit(a, &mut out) {
                            failed = Some(e);
                            return;
                        }
                    }
                },
                &mut report_bad,
            );
            if let Err(why) = header {
                eprintln!("fanzha monitor: {cdr_name}: {why}");
                return Ok(ExitCode::from(1));
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        CdrFormat::Jsonl => {
            let mut scratch = Vec::new();
            let mut raised = Vec::new();
            for (i, line) in data.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = match serde_json::from_slice(line) {
                    Ok(v) => v,
                    Err(e) => {
                        report_bad(i as u64 + 1, e.to_string());
                        continue;
                    }
                };
                match parse_json_record(&v, &mut scratch) {
                    Ok(c) => {
                        last_ts = last_ts.max(c.start);
                        monitor.add_batch(std::slice::from_ref(&c), &mut raised);
                        for a in raised.drain(..) {
                            alerts += 1;
                            emit(a, &mut out)?;
                        }
                    }
                    Err(why) => report_bad(i as u64 + 1, why),
                }
            }
        }
    }
    let mut last = monitor.take_pending();
    last.extend(monitor.score_all(last_ts));
    for a in last {
        alerts += 1;
        emit(a, &mut out)?;
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
