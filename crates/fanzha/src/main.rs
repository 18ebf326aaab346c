//! `fanzha`: the command line of the anti-telecom-fraud platform. This binary is the only
//! place that reads the clock, the environment and the file system, and that chooses the
//! concrete backends; the library crates get all of that as parameters.

mod auth_cmd;
mod backend;
mod bench;
mod bench_http;
mod demo;
mod ledger_cmd;
mod model_cmd;
mod monitor_cmd;
mod screen_cmd;
mod serve;
mod serve_config;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of the C library's allocator: an import frees its batches' millions of
/// small strings at once, and glibc then spent more time consolidating free lists than the
/// ledger spent applying the rows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option `purge_delay` (`mi_option_purge_delay` in mimalloc.h, v2 and v3; the
/// sys crate names no constant for it): how long freed memory stays with the process
/// before it is given back to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is given back to the system after 10 s unused, not mimalloc's 1 s. An
/// import's batches take about a second each: with 1 s, each batch's memory went back to
/// the system just before the next batch needed it again, and came back as fresh pages the
/// kernel had to zero (a tenth of the CPU time of a million-row SQLite import). An idle
/// service still hands its memory back.
fn keep_freed_memory_for_reuse() {
    // SAFETY: sets a plain integer option; mimalloc allows this at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) }
}

/// fanzha (反诈): the carrier-side anti-telecom-fraud platform.
#[derive(Parser)]
#[command(name = "fanzha", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    store: backend::StoreArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: build a synthetic province in the embedded store, replay a day of
    /// traffic with planted attacks through screening, print what was stopped.
    Demo(demo::DemoArgs),
    /// Validate identifiers and numbers: one JSON object per value on stdout.
    /// Exit 0 when every value is valid, 1 otherwise, 2 on usage errors.
    Validate(validate::Args),
    /// The ledger: real-name and key-service records with the regulation's rules.
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// The long-running service: SIP redirect server (UDP+TCP), HTTP API, metrics, health.
    Serve(serve::ServeArgs),
    /// Screen call attempts (JSON lines) against the store: one verdict per line, in order.
    /// A line that is no call attempt yields {"id","error"}; exit 2 at the end if any was bad.
    Screen(screen_cmd::ScreenArgs),
    /// The hash-chained decision log: verify, retention.
    #[command(subcommand)]
    Decisions(screen_cmd::DecisionsCommand),
    /// Batch run of the bad-number monitor over call records; alerts as JSON lines.
    Monitor(monitor_cmd::MonitorArgs),
    /// The fraud-number scoring model: train, eval, score.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Accounts: people (password + TOTP) and machines (bearer tokens), one role each.
    #[command(subcommand)]
    Auth(auth_cmd::AuthCommand),
    /// The audit trail of personal-data reads, ledger writes, logins and account changes.
    #[command(subcommand)]
    Audit(auth_cmd::AuditCommand),
    /// Benchmarks shipped with the product (last output line: one JSON object).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Demo(args) => demo::run(args, &cli.store),
        Command::Ledger(cmd) => ledger_cmd::run(cmd, &cli.store),
        Command::Bench(cmd) => bench::run(cmd, &cli.store),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Monitor(args) => monitor_cmd::run(args, &cli.store),
        Command::Screen(args) => screen_cmd::run(args, &cli.store),
        Command::Serve(args) => serve::run(args, &cli.store),
        Command::Decisions(cmd) => screen_cmd::decisions(cmd, &cli.store),
        Command::Auth(cmd) => auth_cmd::auth(cmd, &cli.store),
        Command::Audit(cmd) => auth_cmd::audit(cmd, &cli.store),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fanzha: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Output closed early (`fanzha … | head`): not an error worth a message.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// Today's date in China Standard Time (the regulation's and the data's time zone).
pub fn today_in_china() -> fanzha_model::Date {
    use chrono::Datelike;
    let now = chrono::Utc::now() + chrono::Duration::hours(8);
    fanzha_model::Date {
        year: now.year() as u16,
        month: now.month() as u8,
        day: now.day() as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number set at start is mimalloc's purge delay: the option reads 1000 ms,
    /// v3's default purge delay, until it is set (a mimalloc upgrade that renumbers its
    /// options fails here rather than silently setting another one), and the value set
    /// after.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment chose the default; nothing to recognise it by
        }
        // SAFETY: reads and sets a plain integer option.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000);
        keep_freed_memory_for_reuse();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 10_000);
    }
}
