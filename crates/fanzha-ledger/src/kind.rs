//! The ledger's record kinds and their CSV contracts (DESIGN.md "Ledger CSV files").

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// One kind of ledger record; the name is the CSV kind of `fanzha ledger import <kind>`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Enterprises, government bodies, institutions, social organisations (R7.1, R7.3).
    Units,
    /// Sales agents opening cards for the operator (R5.1).
    Agents,
    /// Mobile and IoT cards with their holders (R1–R4).
    Subscribers,
    /// IoT card function profiles (R4.2).
    IotProfiles,
    /// 400, 一号通 and 商务总机 numbers (R6–R8).
    KeyServices,
    /// Gateway trunks: international, interconnect, voice lines, access (R11, R12).
    Trunks,
    /// Provincial approvals for outbound calls from key services and voice lines (R8.1).
    OutboundApprovals,
    /// Number blocks allocated to this operator (R8.2, R11.6).
    NumberBlocks,
    /// Own numbers ported to another operator (R11.6).
    PortedOut,
    /// Police and government numbers notified by public security (R11.1).
    OfficialNumbers,
    /// Numbers blocked at every ingress (R15.3).
    Blocklist,
    /// Industry-shared blacklist of violating units and persons (R25.1).
    Blacklist,
    /// Numbers automatic disposal never touches (a bank's hotline, a hospital): their
    /// alerts wait for a supervisor (R15.3). An addition to the contract's twelve kinds.
    ProtectedNumbers,
}

impl Kind {
    /// Every kind, in a dependency-respecting import order.
    pub const ALL: [Kind; 13] = [
        Kind::Units,
        Kind::Blacklist,
        Kind::Agents,
        Kind::NumberBlocks,
        Kind::Subscribers,
        Kind::IotProfiles,
        Kind::KeyServices,
        Kind::Trunks,
        Kind::OutboundApprovals,
        Kind::PortedOut,
        Kind::OfficialNumbers,
        Kind::Blocklist,
        Kind::ProtectedNumbers,
    ];

    /// The kind's name as in the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Units => "units",
            Kind::Agents => "agents",
            Kind::Subscribers => "subscribers",
            Kind::IotProfiles => "iot_profiles",
            Kind::KeyServices => "key_services",
            Kind::Trunks => "trunks",
            Kind::OutboundApprovals => "outbound_approvals",
            Kind::NumberBlocks => "number_blocks",
            Kind::PortedOut => "ported_out",
            Kind::OfficialNumbers => "official_numbers",
            Kind::Blocklist => "blocklist",
            Kind::Blacklist => "blacklist",
            Kind::ProtectedNumbers => "protected_numbers",
        }
    }

    /// The contract's columns, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Units => &[
                "uscc",
                "name",
                "kind",
                "legal_rep_id",
                "legal_rep_name",
                "province",
            ],
            Kind::Agents => &["agent_id", "name", "uscc", "parent", "state"],
            Kind::Subscribers => &[
                "msisdn",
                "kind",
                "holder_id",
                "holder_name",
                "holder_uscc",
                "province",
                "channel",
                "agent_id",
                "verification",
                "real_name",
                "state",
                "imsi",
                "imei",
                "activated_at",
                "roaming",
            ],
            Kind::IotProfiles => &[
                "msisdn",
                "voice",
                "sms",
                "bound_imei",
                "allowed_callees",
                "allowed_ips",
            ],
            Kind::KeyServices => &["number", "type", "unit_uscc", "channel", "purpose", "state"],
            Kind::Trunks => &[
                "trunk_id",
                "kind",
                "owner_uscc",
                "peer",
                "contracted_numbers",
                "forwarding_approved",
                "state",
            ],
            Kind::OutboundApprovals => &[
                "service",
                "allowed_callers",
                "purpose",
                "windows",
                "max_per_hour",
                "max_per_day",
                "valid_until",
            ],
            Kind::NumberBlocks => &["prefix", "holder"],
            Kind::PortedOut => &["msisdn", "recipient"],
            Kind::OfficialNumbers => &["number", "owner"],
            Kind::ProtectedNumbers => &["number", "owner", "reason"],
            Kind::Blocklist => &["number", "source", "reason", "added_at", "expires_at"],
            Kind::Blacklist => &[
                "subject_kind",
                "subject_id",
                "name",
                "category",
                "reason",
                "source",
                "listed_at",
            ],
        }
    }

    /// Columns without which a file of this kind cannot be processed at all (the others
    /// default to empty).
    pub fn required_columns(self) -> &'static [&'static str] {
        match self {
            Kind::Units => &["uscc", "name", "kind", "legal_rep_id"],
            Kind::Agents => &["agent_id", "parent"],
            Kind::Subscribers => &["msisdn", "kind", "real_name", "state"],
            Kind::IotProfiles => &["msisdn", "voice", "sms"],
            Kind::KeyServices => &["number", "type", "unit_uscc", "channel"],
            Kind::Trunks => &["trunk_id", "kind"],
            Kind::OutboundApprovals => &["service", "allowed_callers"],
            Kind::NumberBlocks => &["prefix"],
            Kind::PortedOut => &["msisdn"],
            Kind::OfficialNumbers => &["number"],
            Kind::ProtectedNumbers => &["number"],
            Kind::Blocklist => &["number", "source"],
            Kind::Blacklist => &["subject_kind", "subject_id"],
        }
    }

    /// The requirement a malformed field of this kind violates (a refusal's default citation).
    pub fn requirement(self) -> &'static str {
        match self {
            Kind::Units => "R7.3",
            Kind::Agents => "R5.1",
            Kind::Subscribers => "R2.2",
            Kind::IotProfiles => "R4.2",
            Kind::KeyServices => "R7.3",
            Kind::Trunks => "R12.1",
            Kind::OutboundApprovals => "R8.1",
            Kind::NumberBlocks => "R8.2",
            Kind::PortedOut => "R11.6",
            Kind::OfficialNumbers => "R11.1",
            Kind::Blocklist => "R15.3",
            Kind::Blacklist => "R25.1",
            Kind::ProtectedNumbers => "R15.3",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a kind name that is none of the kinds.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind {0:?} (one of: units, agents, subscribers, iot_profiles, key_services, trunks, outbound_approvals, number_blocks, ported_out, official_numbers, blocklist, blacklist, protected_numbers)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}
