//! Helpers shared by the end-to-end tests: the binary on a data dir, and the worked example
//! ledger of the contract (tests/data/screen).
#![allow(dead_code)] // each test crate uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// The worked example of the contract (copied from the shared examples).
pub const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/screen");

/// `fanzha --data-dir DATA` with the embedded store (never a PostgreSQL from the environment).
pub fn fanzha_cmd(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fanzha"));
    c.arg("--data-dir")
        .arg(data)
        .env_remove("FANZHA_DATABASE_URL");
    c
}

/// Runs `fanzha --data-dir DATA ARGS…` to completion.
pub fn fanzha_in(data: &Path, args: &[&str]) -> Output {
    fanzha_cmd(data).args(args).output().expect("fanzha runs")
}

/// Imports the example's CSV files in dependency order; every row must be accepted.
pub fn import_example(data: &Path) {
    for kind in [
        "units",
        "number_blocks",
        "subscribers",
        "key_services",
        "trunks",
        "outbound_approvals",
        "official_numbers",
        "blocklist",
    ] {
        let o = fanzha_in(
            data,
            &["ledger", "import", kind, &format!("{EXAMPLE}/{kind}.csv")],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
