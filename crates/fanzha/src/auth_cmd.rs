//! `fanzha auth …` (accounts) and `fanzha audit …` (the audit trail), for the operator on
//! the host. Account changes are audited with the operating-system user.

use crate::backend::{now, StoreArgs};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use fanzha_api::auth::{AuthConfig, Authenticator, Caller};
use fanzha_auth::audit::Checkpoint;
use fanzha_auth::{Action, Outcome, Role};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Add a person: the password is read from standard input (at least 8 characters of
    /// 3 classes); prints {"name","role","totp_uri"} (scan the URI into an authenticator app).
    AddUser {
        /// Login name.
        name: String,
        /// One of the ten roles.
        #[arg(long)]
        role: Role,
    },
    /// Add a machine's bearer token; prints {"name","role","token","expires_at"}. The token
    /// is shown only now.
    AddToken {
        /// Name.
        name: String,
        /// One of the ten roles.
        #[arg(long)]
        role: Role,
        /// Days it is valid.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Every principal as a JSON line, never a secret.
    List,
    /// Revoke a principal at once (a running `serve` stops accepting it within a second).
    Revoke {
        /// Name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's chain: exit 0 intact, 1 with the first broken record named.
    Verify {
        /// A checkpoint kept outside the store (`fanzha audit checkpoint` output): the trail
        /// must still reach it unchanged, so cutting off the newest records is found.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Audit records as JSON lines, oldest first.
    Export {
        /// From this time on (RFC 3339; China time without an offset).
        #[arg(long)]
        since: Option<String>,
    },
    /// The newest record's seq and MAC as {"seq","mac"}: keep it outside the store (mail
    /// it, print it, write it to WORM storage) and give it to `verify --checkpoint`.
    Checkpoint,
}

fn authenticator(store: &StoreArgs) -> Result<Authenticator> {
    Ok(store.ledger_and_auth(AuthConfig::default())?.1)
}

fn print(out: &mut impl Write, v: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub fn auth(cmd: AuthCommand, store: &StoreArgs) -> Result<ExitCode> {
    let auth = authenticator(store)?;
    let caller = store.caller();
    let mut out = std::io::stdout().lock();
    match cmd {
        AuthCommand::AddUser { name, role } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let user = auth.add_user(&name, role, password, true, &caller, &now())?;
            print(&mut out, &user)?;
        }
        AuthCommand::AddToken { name, role, days } => {
            let token = auth.add_token(&name, role, days, &caller, &now())?;
            print(&mut out, &token)?;
        }
        AuthCommand::List => {
            for p in auth.list()? {
                print(&mut out, &p)?;
            }
        }
        AuthCommand::Revoke { name } => {
            if !auth.revoke(&name, &caller, &now())? {
                eprintln!("fanzha: {name:?} was already revoked");
                return Ok(ExitCode::from(1));
            }
            print(
                &mut out,
                &serde_json::json!({"name": name, "revoked": true}),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Audits a local command's read or write; the command fails if it cannot be recorded.
pub fn record(
    auth: &Authenticator,
    caller: &Caller,
    action: Action,
    object: &str,
    purpose: &str,
    outcome: Outcome,
    detail: String,
) -> Result<()> {
    let mut e = caller.entry(&now(), action, object, outcome);
    e.purpose = purpose.to_string();
    e.detail = detail;
    auth.audit(&e)
        .context("cannot write the audit trail, so nothing is shown")?;
    Ok(())
}

pub fn audit(cmd: AuditCommand, store: &StoreArgs) -> Result<ExitCode> {
    let auth = authenticator(store)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        AuditCommand::Verify { checkpoint } => {
            let checkpoint: Option<Checkpoint> = match checkpoint {
                None => None,
                Some(p) => Some(
                    serde_json::from_slice(
                        &std::fs::read(&p)
                            .with_context(|| format!("cannot read {}", p.display()))?,
                    )
                    .with_context(|| {
                        format!("{} is not a checkpoint {{\"seq\",\"mac\"}}", p.display())
                    })?,
                ),
            };
            match auth.verify(checkpoint)? {
                Ok(v) => {
                    print(
                        &mut out,
                        &serde_json::json!({"intact": true, "records": v.records, "last": v.last}),
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    print(
                        &mut out,
                        &serde_json::json!({"intact": false, "seq": broken.seq, "reason": broken.reason}),
                    )?;
                    eprintln!("fanzha: audit trail broken at {broken}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Export { since } => {
            let since_ms = match since.as_deref() {
                None => i64::MIN,
                Some(t) => fanzha_model::time::parse_time(t)
                    .map_err(anyhow::Error::msg)?
                    .timestamp_millis(),
            };
            record(
                &auth,
                &store.caller(),
                Action::Export,
                "audit",
                "",
                Outcome::Success,
                since
                    .clone()
                    .map(|s| format!("since {s}"))
                    .unwrap_or_default(),
            )?;
            let mut after = 0;
            loop {
                let page = auth.records(after, since_ms, 10_000)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for r in &page {
                    print(&mut out, r)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint => match auth.verify(None)? {
            Ok(v) => match v.last {
                Some(c) => {
                    print(&mut out, &c)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => bail!("the audit trail is empty: nothing to keep yet"),
            },
            Err(broken) => bail!("the audit trail is already broken at {broken}: no checkpoint"),
        },
    }
}
