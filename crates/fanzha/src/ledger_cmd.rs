//! `fanzha ledger …`: import, get, history, audit, enforce-backfill.

use crate::auth_cmd::record;
use crate::backend::StoreArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use fanzha_api::auth::AuthConfig;
use fanzha_auth::{Action, Outcome};
use fanzha_ledger::Kind;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Bulk load a CSV file of one kind. Valid rows are applied; each refused row is reported
    /// as a JSON line {"line","reason","requirement"} (header = line 1), then a summary line.
    /// Exit 0 all accepted, 2 some refused, 1 nothing processed (unknown kind, missing
    /// column, unreadable file).
    Import {
        /// units, agents, subscribers, iot_profiles, key_services, trunks,
        /// outbound_approvals, number_blocks, ported_out, official_numbers, blocklist, blacklist
        kind: String,
        /// The CSV file (header row required).
        file: PathBuf,
    },
    /// One record as JSON, personal data masked unless --reveal --purpose TEXT (recorded
    /// in the record's history and the audit trail with the operating-system user).
    Get {
        /// Kind.
        kind: String,
        /// Key: number in any form, USCC, trunk id, or person:ID / unit:USCC for the blacklist.
        key: String,
        /// Show personal data in clear (needs --purpose).
        #[arg(long, requires = "purpose")]
        reveal: bool,
        /// Why the personal data is revealed, for the audit trail.
        #[arg(long)]
        purpose: Option<String>,
    },
    /// Every event of one record: time, actor, command, before/after.
    History {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
    },
    /// The compliance report (R1.1, R1.2, R3.2, R6.1, R12.1, R25.1) as JSON.
    Audit {
        /// Number prefixes of the MVNO re-verification campaign (R1.2).
        #[arg(long, value_delimiter = ',', default_value = "170,171")]
        mvno_prefixes: Vec<String>,
    },
    /// Appeal: lift a detection's block and suspension of a number (recorded with the actor).
    Appeal {
        /// The number, any form.
        number: String,
    },
    /// Re-seal every record's personal data under a new key, in one transaction (audited).
    /// The new key keeps the current key's first 32 bytes (its hashing half, so holder
    /// hashes and blacklist keys stay valid) and replaces the last 32; FILE is made so if it
    /// does not exist. Afterwards only the new key opens the ledger: put it where --pii-key
    /// (default DATA_DIR/pii.key) points, and keep the old one archived for history bodies.
    RotateKey {
        /// The new key file (64 bytes, mode 0600), made if absent.
        #[arg(long)]
        new_key: PathBuf,
    },
    /// R1.1: suspend every subscriber still unverified after the backfill deadline.
    EnforceBackfill {
        /// The deadline (RFC 3339; China time without offset). Refused if still in the future.
        #[arg(long)]
        deadline: String,
    },
}

fn kind(s: &str) -> Result<Kind> {
    Ok(Kind::from_str(s)?)
}

pub fn run(cmd: LedgerCommand, store: &StoreArgs) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        LedgerCommand::Import { kind: k, file } => {
            let kind = kind(&k)?;
            let data =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let actor = store.actor();
            let total = bytecount_lines(&data);
            let bar = (std::io::stderr().is_terminal() && total > 10_000).then(|| {
                let b = indicatif::ProgressBar::new(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} rows {per_sec} eta {eta}",
                    )
                    .expect("template"),
                );
                b
            });
            let report = ledger.import_csv(kind, &data, &actor, &mut |done| {
                if let Some(b) = &bar {
                    b.set_position(done);
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            record(
                &auth,
                &store.caller(),
                Action::LedgerWrite,
                kind.as_str(),
                "",
                Outcome::Success,
                format!(
                    "import {}: accepted {}, refused {}",
                    file.display(),
                    report.accepted,
                    report.refused
                ),
            )?;
            for r in &report.refusals {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
            serde_json::to_writer(
                &mut out,
                &json!({"kind": kind, "accepted": report.accepted, "refused": report.refused}),
            )?;
            out.write_all(b"\n")?;
            Ok(if report.refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        LedgerCommand::Get {
            kind: k,
            key,
            reveal,
            purpose,
        } => {
            let kind = kind(&k)?;
            let purpose = purpose.unwrap_or_default().trim().to_string();
            if reveal && purpose.is_empty() {
                anyhow::bail!("--reveal needs --purpose TEXT: why, for the audit trail");
            }
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let actor = store.actor();
            let found = ledger.get(kind, &key, reveal.then_some(&actor))?;
            record(
                &auth,
                &store.caller(),
                if reveal {
                    Action::Reveal
                } else {
                    Action::RecordRead
                },
                &format!("{kind}/{}", ledger.key(kind, &key)),
                &purpose,
                if found.is_some() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                String::new(),
            )?;
            match found {
                Some(v) => {
                    serde_json::to_writer_pretty(&mut out, &v)?;
                    out.write_all(b"\n")?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("fanzha: no {kind} record {key:?}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        LedgerCommand::History { kind: k, key } => {
            let kind = kind(&k)?;
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let events = ledger.history(kind, &key)?;
            let stored_key = ledger.key(kind, &key);
            record(
                &auth,
                &store.caller(),
                Action::HistoryRead,
                &format!("{kind}/{stored_key}"),
                "",
                Outcome::Success,
                format!("{} events", events.len()),
            )?;
            serde_json::to_writer_pretty(
                &mut out,
                &json!({"kind": kind, "key": stored_key, "events": events}),
            )?;
            out.write_all(b"\n")?;
            Ok(if events.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        LedgerCommand::RotateKey { new_key } => {
            let (done, auth) = store.rotate_key(&new_key)?;
            record(
                &auth,
                &store.caller(),
                Action::KeyRotate,
                "pii.key",
                "",
                Outcome::Success,
                format!("{} records, {} values re-sealed", done.records, done.values),
            )?;
            serde_json::to_writer(
                &mut out,
                &json!({"records": done.records, "values": done.values, "new_key": new_key}),
            )?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Audit { mvno_prefixes } => {
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let prefixes: Vec<&str> = mvno_prefixes.iter().map(String::as_str).collect();
            let report = ledger.audit(&prefixes)?;
            record(
                &auth,
                &store.caller(),
                Action::Export,
                "compliance report",
                "",
                Outcome::Success,
                String::new(),
            )?;
            serde_json::to_writer_pretty(&mut out, &report)?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Appeal { number } => {
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let d = ledger.appeal(&number, &store.actor())?;
            record(
                &auth,
                &store.caller(),
                Action::LedgerWrite,
                &format!("appeal/{}", d.number),
                "",
                Outcome::Success,
                format!("unblocked {}, reactivated {}", d.blocklisted, d.suspended),
            )?;
            serde_json::to_writer(
                &mut out,
                &json!({"number": d.number, "unblocked": d.blocklisted, "reactivated": d.suspended}),
            )?;
            out.write_all(b"\n")?;
            Ok(if d.blocklisted || d.suspended {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        LedgerCommand::EnforceBackfill { deadline } => {
            let t = fanzha_model::time::parse_time(&deadline).map_err(anyhow::Error::msg)?;
            let now = chrono::Utc::now();
            if t > now {
                anyhow::bail!(
                    "deadline {} has not passed yet: nothing suspended",
                    t.to_rfc3339()
                );
            }
            let (mut ledger, auth) = store.ledger_and_auth(AuthConfig::default())?;
            let suspended = ledger.enforce_backfill(&t.to_rfc3339(), &store.actor())?;
            record(
                &auth,
                &store.caller(),
                Action::LedgerWrite,
                "subscribers",
                "",
                Outcome::Success,
                format!("enforce-backfill: {} suspended", suspended.len()),
            )?;
            serde_json::to_writer(
                &mut out,
                &json!({"deadline": t.to_rfc3339(), "suspended": suspended.len(), "msisdns": suspended}),
            )?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn bytecount_lines(data: &[u8]) -> u64 {
    data.iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1) as u64
}
