//! The storage boundary for principals and the audit trail. Backends (the ledger's SQLite
//! and PostgreSQL stores) keep them beside the ledger; they know SQL, not roles or MACs.

use crate::audit::{AuditEntry, AuditRecord};
use crate::role::Role;
use serde::{Deserialize, Serialize};

/// A person (password + TOTP) or a machine (bearer token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A machine.
    Token,
}

impl PrincipalKind {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Token => "token",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "user" => Some(PrincipalKind::User),
            "token" => Some(PrincipalKind::Token),
            _ => None,
        }
    }
}

/// A principal as stored, secrets included (never serialised: see [`PrincipalView`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Unique name.
    pub name: String,
    /// User or token.
    pub kind: PrincipalKind,
    /// Its one role.
    pub role: Role,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Expires (tokens), Unix seconds.
    pub expires_at: Option<i64>,
    /// Revoked, Unix seconds.
    pub revoked_at: Option<i64>,
    /// Users: argon2id PHC string.
    pub password_hash: Option<String>,
    /// Users: the TOTP secret, sealed by the caller (never in clear in the store). None for
    /// a user made without TOTP (the demo's supervisor).
    pub totp_sealed: Option<String>,
    /// Tokens: SHA-256 of the token, hex.
    pub token_hash: Option<String>,
    /// Failed logins in a row.
    pub failed_logins: u32,
    /// Locked out until, Unix seconds.
    pub locked_until: Option<i64>,
    /// Who made it.
    pub created_by: String,
}

impl Principal {
    /// Whether it may authenticate at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What `auth list` shows of a principal: never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrincipalView {
    /// Name.
    pub name: String,
    /// User or token.
    pub kind: PrincipalKind,
    /// Role.
    pub role: Role,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Expires.
    pub expires_at: Option<i64>,
    /// Revoked.
    pub revoked_at: Option<i64>,
    /// Locked out until.
    pub locked_until: Option<i64>,
    /// Users: whether TOTP is set.
    pub totp: bool,
    /// Who made it.
    pub created_by: String,
}

impl From<&Principal> for PrincipalView {
    fn from(p: &Principal) -> PrincipalView {
        PrincipalView {
            name: p.name.clone(),
            kind: p.kind,
            role: p.role,
            created_at: p.created_at,
            expires_at: p.expires_at,
            revoked_at: p.revoked_at,
            locked_until: p.locked_until,
            totp: p.totp_sealed.is_some(),
            created_by: p.created_by.clone(),
        }
    }
}

/// Errors of an access store.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The database said no.
    #[error("database error: {0}")]
    Database(String),
    /// A principal of that name exists.
    #[error("a principal named {0:?} exists")]
    Exists(String),
    /// A stored value this program cannot read (corruption or a newer program).
    #[error("corrupt access record {0}")]
    Corrupt(String),
}

/// Principals and the audit trail, in the ledger's database.
pub trait AccessStore: Send {
    /// Adds a principal; [`AccessError::Exists`] if the name is taken (revoked names stay
    /// taken, so history keeps meaning one principal per name).
    fn add_principal(&mut self, p: &Principal) -> Result<(), AccessError>;
    /// One principal by name.
    fn principal(&mut self, name: &str) -> Result<Option<Principal>, AccessError>;
    /// Every principal, by name.
    fn principals(&mut self) -> Result<Vec<Principal>, AccessError>;
    /// Revokes at `at`; false when there is no such principal or it was already revoked.
    fn revoke(&mut self, name: &str, at: i64) -> Result<bool, AccessError>;
    /// Sets the role; false when there is no such principal.
    fn set_role(&mut self, name: &str, role: Role) -> Result<bool, AccessError>;
    /// Replaces a user's sealed TOTP secret (a key rotation re-seals them); false when there
    /// is no such principal.
    fn set_totp(&mut self, name: &str, totp_sealed: &str) -> Result<bool, AccessError>;
    /// Records the login state after an attempt.
    fn set_login_state(
        &mut self,
        name: &str,
        failed_logins: u32,
        locked_until: Option<i64>,
    ) -> Result<(), AccessError>;
    /// A number that changes whenever any principal changes (so a service can reload its
    /// cache of them cheaply).
    fn access_version(&mut self) -> Result<i64, AccessError>;
    /// Appends a record to the audit trail, chained after the newest: `chain(seq, prev_mac)`
    /// gives the stored record. Appends are serial across processes (the backend's lock),
    /// so the chain never forks.
    fn append_audit(
        &mut self,
        entry: &AuditEntry,
        chain: &dyn Fn(i64, &str) -> AuditRecord,
    ) -> Result<AuditRecord, AccessError>;
    /// Records with `seq > after_seq` and `at_ms >= since_ms`, by seq, at most `limit`.
    fn audit_records(
        &mut self,
        after_seq: i64,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AccessError>;
    /// A setting kept with the store (key check values).
    fn setting(&mut self, name: &str) -> Result<Option<String>, AccessError>;
    /// Sets a setting.
    fn set_setting(&mut self, name: &str, value: &str) -> Result<(), AccessError>;
}

impl AccessStore for Box<dyn AccessStore> {
    fn add_principal(&mut self, p: &Principal) -> Result<(), AccessError> {
        (**self).add_principal(p)
    }
    fn principal(&mut self, name: &str) -> Result<Option<Principal>, AccessError> {
        (**self).principal(name)
    }
    fn principals(&mut self) -> Result<Vec<Principal>, AccessError> {
        (**self).principals()
    }
    fn revoke(&mut self, name: &str, at: i64) -> Result<bool, AccessError> {
        (**self).revoke(name, at)
    }
    fn set_role(&mut self, name: &str, role: Role) -> Result<bool, AccessError> {
        (**self).set_role(name, role)
    }
    fn set_totp(&mut self, name: &str, totp_sealed: &str) -> Result<bool, AccessError> {
        (**self).set_totp(name, totp_sealed)
    }
    fn set_login_state(
        &mut self,
        name: &str,
        failed_logins: u32,
        locked_until: Option<i64>,
    ) -> Result<(), AccessError> {
        (**self).set_login_state(name, failed_logins, locked_until)
    }
    fn access_version(&mut self) -> Result<i64, AccessError> {
        (**self).access_version()
    }
    fn append_audit(
        &mut self,
        entry: &AuditEntry,
        chain: &dyn Fn(i64, &str) -> AuditRecord,
    ) -> Result<AuditRecord, AccessError> {
        (**self).append_audit(entry, chain)
    }
    fn audit_records(
        &mut self,
        after_seq: i64,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AccessError> {
        (**self).audit_records(after_seq, since_ms, limit)
    }
    fn setting(&mut self, name: &str) -> Result<Option<String>, AccessError> {
        (**self).setting(name)
    }
    fn set_setting(&mut self, name: &str, value: &str) -> Result<(), AccessError> {
        (**self).set_setting(name, value)
    }
}
