//! Principals, the audit trail and settings in the ledger's SQLite file
//! ([`fanzha_auth::AccessStore`]). Audit appends are `BEGIN IMMEDIATE` transactions, serial
//! across threads and processes like every other write, so the chain cannot fork.

use crate::SqliteStore;
use fanzha_auth::store::{AccessError, AccessStore, Principal, PrincipalKind};
use fanzha_auth::{AuditEntry, AuditRecord, Role};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

fn db(e: rusqlite::Error) -> AccessError {
    AccessError::Database(e.to_string())
}

const PRINCIPAL_COLUMNS: &str = "name, kind, role, created_at, expires_at, revoked_at, \
     password_hash, totp_sealed, token_hash, failed_logins, locked_until, created_by";

fn to_principal(r: &Row<'_>) -> rusqlite::Result<Result<Principal, AccessError>> {
    let name: String = r.get(0)?;
    let kind: String = r.get(1)?;
    let role: String = r.get(2)?;
    let (Some(kind), Ok(role)) = (PrincipalKind::parse(&kind), role.parse::<Role>()) else {
        return Ok(Err(AccessError::Corrupt(format!(
            "principal {name:?}: kind {kind:?}, role {role:?}"
        ))));
    };
    Ok(Ok(Principal {
        name,
        kind,
        role,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        password_hash: r.get(6)?,
        totp_sealed: r.get(7)?,
        token_hash: r.get(8)?,
        failed_logins: r.get(9)?,
        locked_until: r.get(10)?,
        created_by: r.get(11)?,
    }))
}

const AUDIT_COLUMNS: &str = "seq, ts, at_ms, principal, role, client, action, object, purpose, \
     outcome, detail, prev, mac";

fn to_audit(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        ts: r.get(1)?,
        at_ms: r.get(2)?,
        principal: r.get(3)?,
        role: r.get(4)?,
        client: r.get(5)?,
        action: r.get(6)?,
        object: r.get(7)?,
        purpose: r.get(8)?,
        outcome: r.get(9)?,
        detail: r.get(10)?,
        prev: r.get(11)?,
        mac: r.get(12)?,
    })
}

impl AccessStore for SqliteStore {
    fn add_principal(&mut self, p: &Principal) -> Result<(), AccessError> {
        let r = self.conn.execute(
            &format!(
                "INSERT INTO principals({PRINCIPAL_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT(name) DO NOTHING"
            ),
            params![
                p.name,
                p.kind.as_str(),
                p.role.as_str(),
                p.created_at,
                p.expires_at,
                p.revoked_at,
                p.password_hash,
                p.totp_sealed,
                p.token_hash,
                p.failed_logins,
                p.locked_until,
                p.created_by
            ],
        );
        match r.map_err(db)? {
            0 => Err(AccessError::Exists(p.name.clone())),
            _ => Ok(()),
        }
    }

    fn principal(&mut self, name: &str) -> Result<Option<Principal>, AccessError> {
        self.conn
            .query_row(
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = ?1"),
                [name],
                to_principal,
            )
            .optional()
            .map_err(db)?
            .transpose()
    }

    fn principals(&mut self) -> Result<Vec<Principal>, AccessError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY name"
            ))
            .map_err(db)?;
        let rows = st.query_map([], to_principal).map_err(db)?;
        rows.map(|r| r.map_err(db).and_then(|p| p)).collect()
    }

    fn revoke(&mut self, name: &str, at: i64) -> Result<bool, AccessError> {
        let n = self
            .conn
            .execute(
                "UPDATE principals SET revoked_at = ?2, version = version + 1 \
                 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, at],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    fn set_role(&mut self, name: &str, role: Role) -> Result<bool, AccessError> {
        let n = self
            .conn
            .execute(
                "UPDATE principals SET role = ?2, version = version + 1 WHERE name = ?1",
                params![name, role.as_str()],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    fn set_totp(&mut self, name: &str, totp_sealed: &str) -> Result<bool, AccessError> {
        let n = self
            .conn
            .execute(
                "UPDATE principals SET totp_sealed = ?2, version = version + 1 WHERE name = ?1",
                params![name, totp_sealed],
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
        self.conn
            .execute(
                "UPDATE principals SET failed_logins = ?2, locked_until = ?3, \
                 version = version + 1 WHERE name = ?1",
                params![name, failed_logins, locked_until],
            )
            .map_err(db)
            .map(drop)
    }

    fn access_version(&mut self) -> Result<i64, AccessError> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(version), 0) FROM principals",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }

    fn append_audit(
        &mut self,
        entry: &AuditEntry,
        chain: &dyn Fn(i64, &str) -> AuditRecord,
    ) -> Result<AuditRecord, AccessError> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(db)?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let (seq, prev) = last.map_or((1, String::new()), |(s, m)| (s + 1, m));
        let r = chain(seq, &prev);
        debug_assert_eq!(r.principal, entry.principal);
        tx.execute(
            &format!(
                "INSERT INTO audit({AUDIT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                r.seq,
                r.ts,
                r.at_ms,
                r.principal,
                r.role,
                r.client,
                r.action,
                r.object,
                r.purpose,
                r.outcome,
                r.detail,
                r.prev,
                r.mac
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(r)
    }

    fn audit_records(
        &mut self,
        after_seq: i64,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AccessError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ?1 AND at_ms >= ?2 \
                 ORDER BY seq LIMIT ?3"
            ))
            .map_err(db)?;
        let rows = st
            .query_map(
                params![after_seq, since_ms, limit.min(i64::MAX as usize) as i64],
                to_audit,
            )
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn setting(&mut self, name: &str) -> Result<Option<String>, AccessError> {
        self.conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)
    }

    fn set_setting(&mut self, name: &str, value: &str) -> Result<(), AccessError> {
        self.conn
            .execute(
                "INSERT INTO settings(name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map_err(db)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trail refuses UPDATE and DELETE, as the history does.
    #[test]
    fn the_audit_trail_is_append_only() {
        let mut s = SqliteStore::in_memory().unwrap();
        let k = fanzha_auth::AuditKey::new(&[1; 32]).unwrap();
        let e = AuditEntry {
            ts: "2026-12-08T10:00:00+08:00".into(),
            at_ms: 0,
            principal: "ana".into(),
            role: "analyst".into(),
            client: "local".into(),
            action: fanzha_auth::Action::RecordRead,
            object: "x".into(),
            purpose: String::new(),
            outcome: fanzha_auth::Outcome::Success,
            detail: String::new(),
        };
        s.append_audit(&e, &|seq, prev| AuditRecord::chain(&e, seq, prev, &k))
            .unwrap();
        let err = s
            .conn
            .execute("UPDATE audit SET purpose = 'x'", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = s.conn.execute("DELETE FROM audit", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
