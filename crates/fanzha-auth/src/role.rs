//! The ten roles of the contract and what each may do. One table, [`Role::permissions`],
//! answers every access question; routes name the [`Permission`] they need.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A principal's one role (DESIGN "Identity, roles and audit", R17.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A gateway (SBC) asking for verdicts.
    Gateway,
    /// A feed of call records, complaints and user marks.
    Ingest,
    /// A label look-up client (phones, apps).
    LabelReader,
    /// A metrics scraper.
    Monitoring,
    /// Reads the ledger masked, works alerts, traceback and cases.
    Analyst,
    /// An analyst who may also reveal personal data with a purpose and decide disposals.
    Supervisor,
    /// Writes the ledger, imports, configuration.
    SystemAdmin,
    /// Accounts and roles, nothing else.
    SecurityAdmin,
    /// The audit trail, nothing else.
    AuditAdmin,
    /// Read-only: reports, ledger history, cases, all masked.
    Regulator,
}

/// Something a route or command does that a role may or may not be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `POST /v1/screen`.
    Screen,
    /// `POST /v1/cdr`, complaints, marks.
    Ingest,
    /// Label look-ups.
    LabelRead,
    /// `GET /metrics`.
    Metrics,
    /// What every principal may: the API's description, who it is, ending its session.
    Basic,
    /// Ledger records, masked.
    LedgerRead,
    /// Ledger history, masked.
    LedgerHistory,
    /// `GET /v1/numbers/{n}`, masked.
    NumberView,
    /// Personal data in clear, with a stated purpose.
    Reveal,
    /// Monitor alerts.
    AlertsRead,
    /// Traceback queries and call captures.
    Traceback,
    /// Cases, read.
    CasesRead,
    /// Cases, worked (advanced through their states).
    CasesWork,
    /// Disposals decided by a person.
    Dispose,
    /// Appeals against a disposal.
    Appeal,
    /// `POST /v1/ledger/{kind}`.
    LedgerWrite,
    /// Bulk imports.
    Import,
    /// Service configuration.
    Configure,
    /// Accounts and roles.
    Accounts,
    /// The audit trail.
    AuditRead,
    /// Reports.
    ReportsRead,
}

use Permission as P;

const ANALYST: &[Permission] = &[
    P::Basic,
    P::LedgerRead,
    P::LedgerHistory,
    P::NumberView,
    P::AlertsRead,
    P::Traceback,
    P::CasesRead,
    P::CasesWork,
    P::LabelRead,
];

const SUPERVISOR: &[Permission] = &[
    P::Basic,
    P::LedgerRead,
    P::LedgerHistory,
    P::NumberView,
    P::AlertsRead,
    P::Traceback,
    P::CasesRead,
    P::CasesWork,
    P::LabelRead,
    P::Reveal,
    P::Dispose,
    P::Appeal,
];

impl Role {
    /// Every role, in the contract's order.
    pub const ALL: [Role; 10] = [
        Role::Gateway,
        Role::Ingest,
        Role::LabelReader,
        Role::Monitoring,
        Role::Analyst,
        Role::Supervisor,
        Role::SystemAdmin,
        Role::SecurityAdmin,
        Role::AuditAdmin,
        Role::Regulator,
    ];

    /// The one permission table.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Role::Gateway => &[P::Basic, P::Screen],
            Role::Ingest => &[P::Basic, P::Ingest],
            Role::LabelReader => &[P::Basic, P::LabelRead],
            Role::Monitoring => &[P::Basic, P::Metrics],
            Role::Analyst => ANALYST,
            Role::Supervisor => SUPERVISOR,
            Role::SystemAdmin => &[P::Basic, P::LedgerWrite, P::Import, P::Configure],
            Role::SecurityAdmin => &[P::Basic, P::Accounts],
            Role::AuditAdmin => &[P::Basic, P::AuditRead],
            Role::Regulator => &[
                P::Basic,
                P::ReportsRead,
                P::LedgerRead,
                P::LedgerHistory,
                P::CasesRead,
            ],
        }
    }

    /// Whether this role may do `p`.
    pub fn may(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Ingest => "ingest",
            Role::LabelReader => "label_reader",
            Role::Monitoring => "monitoring",
            Role::Analyst => "analyst",
            Role::Supervisor => "supervisor",
            Role::SystemAdmin => "system_admin",
            Role::SecurityAdmin => "security_admin",
            Role::AuditAdmin => "audit_admin",
            Role::Regulator => "regulator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of the ten.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (one of gateway, ingest, label_reader, monitoring, analyst, supervisor, system_admin, security_admin, audit_admin, regulator)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

impl Permission {
    /// The snake_case name, as in messages.
    pub fn as_str(self) -> &'static str {
        // Kept in step with the serde names by `names_round_trip_and_match_serde`.
        match self {
            P::Screen => "screen",
            P::Ingest => "ingest",
            P::LabelRead => "label_read",
            P::Metrics => "metrics",
            P::Basic => "basic",
            P::LedgerRead => "ledger_read",
            P::LedgerHistory => "ledger_history",
            P::NumberView => "number_view",
            P::Reveal => "reveal",
            P::AlertsRead => "alerts_read",
            P::Traceback => "traceback",
            P::CasesRead => "cases_read",
            P::CasesWork => "cases_work",
            P::Dispose => "dispose",
            P::Appeal => "appeal",
            P::LedgerWrite => "ledger_write",
            P::Import => "import",
            P::Configure => "configure",
            P::Accounts => "accounts",
            P::AuditRead => "audit_read",
            P::ReportsRead => "reports_read",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Separation of duties (MLPS level 3): the three administrators share nothing but the
    /// basics (the API's description, their own session), and none of them reads personal data or screens calls.
    #[test]
    fn the_three_administrators_never_overlap() {
        let admins = [Role::SecurityAdmin, Role::SystemAdmin, Role::AuditAdmin];
        for a in admins {
            for b in admins.iter().filter(|&&b| b != a) {
                for p in a.permissions().iter().filter(|&&p| p != P::Basic) {
                    assert!(!b.may(*p), "{a} and {b} both may {p:?}");
                }
            }
            for p in [P::Reveal, P::LedgerRead, P::NumberView, P::Screen] {
                assert!(!a.may(p), "{a} may {p:?}");
            }
        }
    }

    #[test]
    fn only_a_supervisor_reveals_and_a_supervisor_may_all_an_analyst_may() {
        for r in Role::ALL {
            assert_eq!(r.may(P::Reveal), r == Role::Supervisor, "{r}");
        }
        for p in Role::Analyst.permissions() {
            assert!(Role::Supervisor.may(*p), "{p:?}");
        }
    }

    #[test]
    fn the_contract_table() {
        assert!(Role::Gateway.may(P::Screen));
        assert!(!Role::Gateway.may(P::LedgerRead));
        assert!(Role::Ingest.may(P::Ingest) && !Role::Ingest.may(P::Screen));
        assert!(Role::LabelReader.may(P::LabelRead) && Role::Analyst.may(P::LabelRead));
        assert!(Role::Monitoring.may(P::Metrics) && !Role::Analyst.may(P::Metrics));
        assert!(Role::SystemAdmin.may(P::LedgerWrite) && !Role::Supervisor.may(P::LedgerWrite));
        assert!(Role::AuditAdmin.may(P::AuditRead) && !Role::SecurityAdmin.may(P::AuditRead));
        assert!(Role::Regulator.may(P::LedgerHistory) && Role::Regulator.may(P::ReportsRead));
        assert!(!Role::Regulator.may(P::CasesWork) && !Role::Regulator.may(P::Reveal));
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            for p in r.permissions() {
                assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
            }
        }
        assert!("root".parse::<Role>().is_err());
    }
}
