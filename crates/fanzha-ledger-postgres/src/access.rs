//! Principals, the audit trail and settings in the ledger's PostgreSQL database
//! ([`fanzha_auth::AccessStore`]). Audit appends take one advisory lock for their
//! transaction, so writers on any connection append one after another and the chain cannot
//! fork.

use crate::{db_error, PgStore};
use fanzha_auth::store::{AccessError, AccessStore, Principal, PrincipalKind};
use fanzha_auth::{AuditEntry, AuditRecord, Role};
use fanzha_ledger::StoreError;
use tokio_postgres::Row;

/// The advisory lock audit appends hold (a class of its own, beside the ledger's).
const AUDIT_LOCK: i64 = 7_175_606_506;

fn db(e: tokio_postgres::Error) -> AccessError {
    match db_error(e) {
        StoreError::Database(m) => AccessError::Database(m),
        other => AccessError::Database(other.to_string()),
    }
}

const PRINCIPAL_COLUMNS: &str = "name, kind, role, created_at, expires_at, revoked_at, \
     password_hash, totp_sealed, token_hash, failed_logins, locked_until, created_by";

fn to_principal(r: &Row) -> Result<Principal, AccessError> {
    let name: String = r.get(0);
    let kind: String = r.get(1);
    let role: String = r.get(2);
    let (Some(kind), Ok(role)) = (PrincipalKind::parse(&kind), role.parse::<Role>()) else {
        return Err(AccessError::Corrupt(format!(
            "principal {name:?}: kind {kind:?}, role {role:?}"
        )));
    };
    let failed: i32 = r.get(9);
    Ok(Principal {
        name,
        kind,
        role,
        created_at: r.get(3),
        expires_at: r.get(4),
        revoked_at: r.get(5),
        password_hash: r.get(6),
        totp_sealed: r.get(7),
        token_hash: r.get(8),
        failed_logins: failed.max(0) as u32,
        locked_until: r.get(10),
        created_by: r.get(11),
    })
}

const AUDIT_COLUMNS: &str = "seq, ts, at_ms, principal, role, client, action, object, purpose, \
     outcome, detail, prev, mac";

fn to_audit(r: &Row) -> AuditRecord {
    AuditRecord {
        seq: r.get(0),
        ts: r.get(1),
        at_ms: r.get(2),
        principal: r.get(3),
        role: r.get(4),
        client: r.get(5),
        action: r.get(6),
        object: r.get(7),
        purpose: r.get(8),
        outcome: r.get(9),
        detail: r.get(10),
        prev: r.get(11),
        mac: r.get(12),
    }
}

impl AccessStore for PgStore {
    fn add_principal(&mut self, p: &Principal) -> Result<(), AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let failed = p.failed_logins.min(i32::MAX as u32) as i32;
        let n = self
            .db()
            .execute(
                &format!(
                    "INSERT INTO principals({PRINCIPAL_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (name) DO NOTHING"
                ),
                &[
                    &p.name,
                    &p.kind.as_str(),
                    &p.role.as_str(),
                    &p.created_at,
                    &p.expires_at,
                    &p.revoked_at,
                    &p.password_hash,
                    &p.totp_sealed,
                    &p.token_hash,
                    &failed,
                    &p.locked_until,
                    &p.created_by,
                ],
            )
            .map_err(db)?;
        match n {
            0 => Err(AccessError::Exists(p.name.clone())),
            _ => Ok(()),
        }
    }

    fn principal(&mut self, name: &str) -> Result<Option<Principal>, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        self.db()
            .query_opt(
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = $1"),
                &[&name],
            )
            .map_err(db)?
            .map(|r| to_principal(&r))
            .transpose()
    }

    fn principals(&mut self) -> Result<Vec<Principal>, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        self.db()
            .query(
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY name"),
                &[],
            )
            .map_err(db)?
            .iter()
            .map(to_principal)
            .collect()
    }

    fn revoke(&mut self, name: &str, at: i64) -> Result<bool, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let n = self
            .db()
            .execute(
                "UPDATE principals SET revoked_at = $2, version = version + 1 \
                 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &at],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    fn set_role(&mut self, name: &str, role: Role) -> Result<bool, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let n = self
            .db()
            .execute(
                "UPDATE principals SET role = $2, version = version + 1 WHERE name = $1",
                &[&name, &role.as_str()],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    fn set_totp(&mut self, name: &str, totp_sealed: &str) -> Result<bool, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let n = self
            .db()
            .execute(
                "UPDATE principals SET totp_sealed = $2, version = version + 1 WHERE name = $1",
                &[&name, &totp_sealed],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    fn set_login_state(
        &mut self,
        name: &str,
        failed_logins: u32,
        locked_until: Option<i64>,
    ) -> Result<(), AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let failed = failed_logins.min(i32::MAX as u32) as i32;
        self.db()
            .execute(
                "UPDATE principals SET failed_logins = $2, locked_until = $3, \
                 version = version + 1 WHERE name = $1",
                &[&name, &failed, &locked_until],
            )
            .map_err(db)
            .map(drop)
    }

    fn access_version(&mut self) -> Result<i64, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let row = self
            .db()
            .query_one(
                "SELECT coalesce(sum(version), 0)::bigint FROM principals",
                &[],
            )
            .map_err(db)?;
        Ok(row.get(0))
    }

    fn append_audit(
        &mut self,
        _entry: &AuditEntry,
        chain: &dyn Fn(i64, &str) -> AuditRecord,
    ) -> Result<AuditRecord, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let rt = self
            .rt
            .as_ref()
            .expect("the runtime lives until the store is dropped");
        let tx = rt.block_on(self.client.transaction()).map_err(db)?;
        rt.block_on(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK]))
            .map_err(db)?;
        let last = rt
            .block_on(tx.query_opt("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1", &[]))
            .map_err(db)?;
        let (seq, prev) = last.map_or((1, String::new()), |r| {
            (r.get::<_, i64>(0) + 1, r.get::<_, String>(1))
        });
        let r = chain(seq, &prev);
        rt.block_on(tx.execute(
            &format!(
                "INSERT INTO audit({AUDIT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            &[
                &r.seq,
                &r.ts,
                &r.at_ms,
                &r.principal,
                &r.role,
                &r.client,
                &r.action,
                &r.object,
                &r.purpose,
                &r.outcome,
                &r.detail,
                &r.prev,
                &r.mac,
            ],
        ))
        .map_err(db)?;
        rt.block_on(tx.commit()).map_err(db)?;
        Ok(r)
    }

    fn audit_records(
        &mut self,
        after_seq: i64,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        let limit = limit.min(i64::MAX as usize) as i64;
        Ok(self
            .db()
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 AND at_ms >= $2 \
                     ORDER BY seq LIMIT $3"
                ),
                &[&after_seq, &since_ms, &limit],
            )
            .map_err(db)?
            .iter()
            .map(to_audit)
            .collect())
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>, AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        Ok(self
            .db()
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    fn set_setting(&mut self, name: &str, value: &str) -> Result<(), AccessError> {
        self.ensure_connected()
            .map_err(|e| AccessError::Database(e.to_string()))?;
        self.db()
            .execute(
                "INSERT INTO settings(name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&name, &value],
            )
            .map_err(db)
            .map(drop)
    }
}
