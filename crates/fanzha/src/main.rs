//! `fanzha`: the command line of the anti-telecom-fraud platform. This binary is the only
//! place that reads the clock, the environment and the file system, and that chooses the
//! concrete backends; the library crates get all of that as parameters.

mod backend;
mod bench;
mod demo;
mod ledger_cmd;
mod model_cmd;
mod monitor_cmd;
mod screen_cmd;
mod serve;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of the C library's allocator: an import frees its batches' millions of
/// small strings at once, and glibc then spent more time consolidating free lists than the
/// ledger spent applying the rows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Benchmarks shipped with the product (last output line: one JSON object).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
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
