//! `fanzha`: the command line of the anti-telecom-fraud platform. This binary is the only
//! place that reads the clock, the environment and the file system, and that chooses the
//! concrete backends; the library crates get all of that as parameters.

mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// fanzha (反诈): the carrier-side anti-telecom-fraud platform.
#[derive(Parser)]
#[command(name = "fanzha", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate identifiers and numbers: one JSON object per value on stdout.
    /// Exit 0 when every value is valid, 1 otherwise, 2 on usage errors.
    Validate(validate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fanzha: {e:#}");
            ExitCode::from(1)
        }
    }
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
