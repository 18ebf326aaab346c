//! The door: who a request is, and the audit trail every read of personal data goes
//! through. [`Authenticator`] keeps a cache of principals (reloaded when the store's access
//! version changes, so a revocation by another process counts within the reload interval),
//! the people's sessions, and the store's audit chain.
//!
//! Blocking: login (argon2id) and audit appends touch the store; call them off the async
//! workers. Bearer and session checks are in memory.

use arc_swap::ArcSwap;
use fanzha_auth::audit::Checkpoint;
use fanzha_auth::credential::{self, CredentialError, Totp, TOKEN_PREFIX};
use fanzha_auth::store::{AccessError, AccessStore, Principal, PrincipalKind, PrincipalView};
use fanzha_auth::{Action, AuditEntry, AuditKey, AuditRecord, Outcome, Role};
use fanzha_ledger::PiiVault;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// Settings of the door.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// A session unused this long ends (DESIGN: 30 minutes).
    pub idle_timeout_s: i64,
    /// Failed logins in a row that lock an account (DESIGN: 5).
    pub max_failures: u32,
    /// How long a lockout lasts (DESIGN: 30 minutes).
    pub lockout_s: i64,
    /// The session cookie carries `Secure` (served over TLS).
    pub secure_cookie: bool,
    /// The issuer named in TOTP URIs.
    pub issuer: String,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            idle_timeout_s: 30 * 60,
            max_failures: 5,
            lockout_s: 30 * 60,
            secure_cookie: false,
            issuer: "fanzha".into(),
        }
    }
}

/// An authenticated principal making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Principal name (the actor of every history event and audit record it causes).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// User or token.
    pub kind: PrincipalKind,
    /// The client's address, or `local`.
    pub client: String,
    /// Authenticated by a session cookie (so state changes need the CSRF token).
    pub session: Option<SessionRef>,
}

/// The session a request came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRef {
    /// Hash of the session id (the key of the session table).
    pub id_hash: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Caller {
    /// A local command on the host: the OS user, who holds the key files anyway.
    pub fn local(os_user: &str) -> Caller {
        Caller {
            name: format!("os:{os_user}"),
            role: Role::SystemAdmin,
            kind: PrincipalKind::User,
            client: "local".into(),
            session: None,
        }
    }

    /// An audit entry for something this caller did.
    pub fn entry(&self, now: &Now, action: Action, object: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            ts: now.rfc3339.clone(),
            at_ms: now.unix_ms,
            principal: self.name.clone(),
            role: if self.client == "local" {
                String::new()
            } else {
                self.role.as_str().to_string()
            },
            client: self.client.clone(),
            action,
            object: object.to_string(),
            purpose: String::new(),
            outcome,
            detail: String::new(),
        }
    }
}

/// The time as the binary gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Now {
    /// RFC 3339, China time.
    pub rfc3339: String,
    /// Unix milliseconds.
    pub unix_ms: i64,
    /// Today in China.
    pub today: fanzha_model::Date,
}

impl Now {
    /// Unix seconds.
    pub fn unix_s(&self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }
}

/// Why a request or login was not let in. The message is for the audit trail; clients
/// get [`AuthFailure::public_message`], which never says whether a name exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No credential at all.
    #[error("no credential")]
    Missing,
    /// A token or session id that is not (or no longer) known.
    #[error("unknown credential")]
    Unknown,
    /// A revoked principal.
    #[error("revoked")]
    Revoked,
    /// An expired token.
    #[error("expired")]
    Expired,
    /// A session unused past the idle timeout.
    #[error("session idle past the timeout")]
    Idle,
    /// A wrong password, TOTP code or name.
    #[error("wrong name, password or code")]
    BadLogin,
    /// Locked after too many failures.
    #[error("locked out until {0}")]
    Locked(i64),
}

impl AuthFailure {
    /// What the client is told.
    pub fn public_message(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "a credential is required: Authorization: Bearer TOKEN, or a console session".into()
            }
            AuthFailure::Locked(_) => {
                "the account is locked after too many failed logins; try again later".into()
            }
            AuthFailure::Idle => "the session ended after 30 minutes idle; log in again".into(),
            AuthFailure::Expired => "the token has expired".into(),
            AuthFailure::BadLogin => "wrong name, password or code".into(),
            AuthFailure::Unknown | AuthFailure::Revoked => {
                "the credential is not valid (unknown or revoked)".into()
            }
        }
    }
}

/// Errors of account management and auditing.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AccessError),
    /// A credential could not be made or checked.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A name that is not allowed.
    #[error("bad principal name {0:?}: 1-64 characters of letters, digits, '.', '_', '-', '@'")]
    BadName(String),
    /// Sealing the TOTP secret failed.
    #[error("cannot seal the TOTP secret: {0}")]
    Seal(String),
    /// A principal may not change its own role.
    #[error("a principal cannot change its own role")]
    OwnRole,
    /// No such principal.
    #[error("no principal named {0:?}")]
    NoSuch(String),
    /// A token's lifetime out of range.
    #[error("a token lives 1 to 3650 days, not {0}")]
    BadDays(i64),
}

/// A new user: what `auth add-user` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NewUser {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The otpauth URI for an authenticator app (absent for a user made without TOTP).
    pub totp_uri: Option<String>,
}

/// A new token: what `auth add-token` prints, the only time the token is shown.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NewToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The bearer token.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A person's session, made at login.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The session id (the cookie's value; stored only as its hash).
    pub id: String,
    /// The CSRF token state-changing requests must send in `X-CSRF-Token`.
    pub csrf: String,
    /// Who.
    pub name: String,
    /// Role.
    pub role: Role,
}

#[derive(Clone, Debug)]
struct Cached {
    name: String,
    role: Role,
    kind: PrincipalKind,
    expires_at: Option<i64>,
}

#[derive(Default)]
struct Cache {
    version: i64,
    /// Active tokens by the SHA-256 of the token.
    tokens: FxHashMap<[u8; 32], Arc<Cached>>,
    /// Active principals by name (sessions look their principal up here each request).
    by_name: FxHashMap<String, Arc<Cached>>,
}

struct Session {
    name: String,
    csrf: String,
    last_seen_ms: i64,
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "fanzha_session";
/// The header a session's state-changing requests carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Principals, sessions and the audit trail.
pub struct Authenticator {
    store: Mutex<Box<dyn AccessStore>>,
    key: AuditKey,
    vault: PiiVault,
    config: AuthConfig,
    cache: ArcSwap<Cache>,
    sessions: Mutex<FxHashMap<String, Session>>,
    /// The newest TOTP step each person logged in with: a code is good once (RFC 6238 §5.2).
    totp_used: Mutex<FxHashMap<String, i64>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

/// A dummy argon2id hash verified against when a login names no user, so the answer takes
/// as long as for a real one and does not tell which names exist.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZmFuemhhLWR1bW15LXNhbHQ$3Lx8rGd3J3Vd0C3HcA7YzHrS7ZbB3cC5s6eMZ2p8F0E";

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// What an audit record may carry of a name a client claimed: bounded, printable.
fn claimed(name: &str) -> String {
    let mut s: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.is_empty() {
        s.push('?');
    }
    s
}

impl Authenticator {
    /// Over a store, the audit chain's key and the vault that seals TOTP secrets.
    pub fn new(
        store: Box<dyn AccessStore>,
        key: AuditKey,
        vault: PiiVault,
        config: AuthConfig,
    ) -> Result<Authenticator, AccessError> {
        let a = Authenticator {
            store: Mutex::new(store),
            key,
            vault,
            config,
            cache: ArcSwap::from_pointee(Cache {
                version: i64::MIN,
                ..Cache::default()
            }),
            sessions: Mutex::new(FxHashMap::default()),
            totp_used: Mutex::new(FxHashMap::default()),
        };
        a.reload_if_changed()?;
        Ok(a)
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn AccessStore>> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads the principals when the store's access version moved; true if it did.
    pub fn reload_if_changed(&self) -> Result<bool, AccessError> {
        let mut store = self.store();
        let version = store.access_version()?;
        if version == self.cache.load().version {
            return Ok(false);
        }
        let mut cache = Cache {
            version,
            ..Cache::default()
        };
        for p in store.principals()? {
            if p.revoked_at.is_some() {
                continue;
            }
            let c = Arc::new(Cached {
                name: p.name.clone(),
                role: p.role,
                kind: p.kind,
                expires_at: p.expires_at,
            });
            if let Some(h) = p.token_hash.as_deref().and_then(digest_of_hex) {
                cache.tokens.insert(h, c.clone());
            }
            cache.by_name.insert(p.name, c);
        }
        drop(store);
        self.cache.store(Arc::new(cache));
        // Sessions of principals no longer active end now.
        let cache = self.cache.load();
        self.sessions()
            .retain(|_, s| cache.by_name.contains_key(&s.name));
        Ok(true)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, FxHashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The principal a bearer token stands for, at `now_s`.
    pub fn bearer(&self, token: &str, client: &str, now_s: i64) -> Result<Caller, AuthFailure> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(AuthFailure::Unknown);
        }
        let cache = self.cache.load();
        let c = cache
            .tokens
            .get(&credential::secret_digest(token))
            .ok_or(AuthFailure::Unknown)?;
        if c.expires_at.is_some_and(|e| now_s >= e) {
            return Err(AuthFailure::Expired);
        }
        Ok(Caller {
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            client: client.to_string(),
            session: None,
        })
    }

    /// The principal a session cookie stands for; touches the session.
    pub fn session(&self, id: &str, client: &str, now_ms: i64) -> Result<Caller, AuthFailure> {
        let id_hash = credential::secret_hash(id);
        let mut sessions = self.sessions();
        let s = sessions.get_mut(&id_hash).ok_or(AuthFailure::Unknown)?;
        if now_ms - s.last_seen_ms > self.config.idle_timeout_s * 1000 {
            sessions.remove(&id_hash);
            return Err(AuthFailure::Idle);
        }
        let cache = self.cache.load();
        let Some(c) = cache.by_name.get(&s.name) else {
            sessions.remove(&id_hash);
            return Err(AuthFailure::Revoked);
        };
        s.last_seen_ms = now_ms;
        Ok(Caller {
            name: c.name.clone(),
            role: c.role,
            kind: c.kind,
            client: client.to_string(),
            session: Some(SessionRef {
                id_hash,
                csrf: s.csrf.clone(),
            }),
        })
    }

    /// Ends a session.
    pub fn logout(&self, session: &SessionRef) {
        self.sessions().remove(&session.id_hash);
    }

    /// Ends every session of a person (the account stays); how many. Audited. Blocking.
    pub fn end_sessions(&self, name: &str, by: &Caller, now: &Now) -> Result<usize, AccountError> {
        let ended = {
            let mut sessions = self.sessions();
            let before = sessions.len();
            sessions.retain(|_, s| s.name != name);
            before - sessions.len()
        };
        let mut e = by.entry(now, Action::Logout, name, Outcome::Success);
        e.detail = format!("{ended} sessions ended by {}", by.name);
        self.audit(&e)?;
        Ok(ended)
    }

    /// A person logs in with name, password and TOTP code (a user made without TOTP gives
    /// none). Every attempt is audited; 5 failures in a row lock the account for 30 minutes.
    /// Blocking.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        code: &str,
        client: &str,
        now: &Now,
    ) -> Result<NewSession, AuthFailure> {
        let result = self.check_login(name, password, code, now);
        let (outcome, detail, role) = match &result {
            Ok(p) => (Outcome::Success, String::new(), p.role.as_str().to_string()),
            Err(e) => (Outcome::Failure, e.to_string(), String::new()),
        };
        let entry = AuditEntry {
            ts: now.rfc3339.clone(),
            at_ms: now.unix_ms,
            principal: claimed(name),
            role,
            client: client.to_string(),
            action: Action::Login,
            object: claimed(name),
            purpose: String::new(),
            outcome,
            detail,
        };
        // An attempt that cannot be recorded is refused.
        if self.audit(&entry).is_err() {
            return Err(AuthFailure::Unknown);
        }
        let p = result?;
        let id = credential::new_secret("fzs_").map_err(|_| AuthFailure::Unknown)?;
        let csrf = credential::new_secret("").map_err(|_| AuthFailure::Unknown)?;
        self.sessions().insert(
            credential::secret_hash(&id),
            Session {
                name: p.name.clone(),
                csrf: csrf.clone(),
                last_seen_ms: now.unix_ms,
            },
        );
        Ok(NewSession {
            id,
            csrf,
            name: p.name,
            role: p.role,
        })
    }

    fn check_login(
        &self,
        name: &str,
        password: &str,
        code: &str,
        now: &Now,
    ) -> Result<Principal, AuthFailure> {
        let found = if valid_name(name) {
            self.store()
                .principal(name)
                .map_err(|_| AuthFailure::Unknown)?
        } else {
            None
        };
        let Some(p) = found.filter(|p| p.kind == PrincipalKind::User) else {
            let _ = credential::verify_password(password, DUMMY_PHC);
            return Err(AuthFailure::BadLogin);
        };
        let now_s = now.unix_s();
        if let Some(until) = p.locked_until.filter(|&u| now_s < u) {
            return Err(AuthFailure::Locked(until));
        }
        if !p.active_at(now_s) {
            let _ = credential::verify_password(password, DUMMY_PHC);
            return Err(AuthFailure::BadLogin);
        }
        let password_ok = p
            .password_hash
            .as_deref()
            .is_some_and(|h| credential::verify_password(password, h).unwrap_or(false));
        let step = match &p.totp_sealed {
            None => Some(None),
            Some(sealed) => self
                .vault
                .open("principal", &p.name, "totp_secret", sealed)
                .ok()
                .and_then(|b32| Totp::from_base32(&b32))
                .and_then(|t| t.verify(code, now_s))
                .map(Some),
        };
        // A code seen before (a replay, or a second login in the same 30 s) is refused.
        let used = self.totp_used.lock().unwrap_or_else(|e| e.into_inner());
        let code_ok = match step {
            None => false,
            Some(None) => true,
            Some(Some(s)) => used.get(&p.name).is_none_or(|&last| s > last),
        };
        drop(used);
        let mut store = self.store();
        if password_ok && code_ok {
            if let Some(Some(s)) = step {
                self.totp_used
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(p.name.clone(), s);
            }
            if p.failed_logins > 0 || p.locked_until.is_some() {
                store
                    .set_login_state(&p.name, 0, None)
                    .map_err(|_| AuthFailure::Unknown)?;
            }
            return Ok(p);
        }
        let failures = p.failed_logins + 1;
        let lock = (failures >= self.config.max_failures).then(|| now_s + self.config.lockout_s);
        store
            .set_login_state(&p.name, if lock.is_some() { 0 } else { failures }, lock)
            .map_err(|_| AuthFailure::Unknown)?;
        Err(match lock {
            Some(until) => AuthFailure::Locked(until),
            None => AuthFailure::BadLogin,
        })
    }

    /// Appends to the audit trail. Blocking.
    pub fn audit(&self, entry: &AuditEntry) -> Result<AuditRecord, AccessError> {
        let key = &self.key;
        self.store().append_audit(entry, &|seq, prev| {
            AuditRecord::chain(entry, seq, prev, key)
        })
    }

    /// Audit records after `after_seq` from `since_ms` on, at most `limit`. Blocking.
    pub fn records(
        &self,
        after_seq: i64,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AccessError> {
        self.store().audit_records(after_seq, since_ms, limit)
    }

    /// Checks the whole trail against the key (and a checkpoint held outside). Blocking.
    pub fn verify(
        &self,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Result<fanzha_auth::audit::Verified, fanzha_auth::audit::Broken>, AccessError> {
        let mut v = fanzha_auth::audit::Verifier::new(&self.key, checkpoint);
        let mut after = 0;
        loop {
            let page = self.store().audit_records(after, i64::MIN, 10_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                if let Err(b) = v.push(r) {
                    return Ok(Err(b));
                }
            }
        }
        Ok(v.finish())
    }

    /// Adds a person. `with_totp` false only for the demo's supervisor. Blocking.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        with_totp: bool,
        by: &Caller,
        now: &Now,
    ) -> Result<NewUser, AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName(name.to_string()));
        }
        credential::check_password_policy(password)?;
        let totp = with_totp.then(Totp::generate).transpose()?;
        let totp_sealed = totp
            .as_ref()
            .map(|t| {
                self.vault
                    .seal("principal", name, "totp_secret", &t.base32())
            })
            .transpose()
            .map_err(|e| AccountError::Seal(e.to_string()))?;
        let p = Principal {
            name: name.to_string(),
            kind: PrincipalKind::User,
            role,
            created_at: now.unix_s(),
            expires_at: None,
            revoked_at: None,
            password_hash: Some(credential::hash_password(password)?),
            totp_sealed,
            token_hash: None,
            failed_logins: 0,
            locked_until: None,
            created_by: by.name.clone(),
        };
        self.account_change(by, now, Action::AccountAdd, name, role.as_str(), |s| {
            s.add_principal(&p)
        })?;
        Ok(NewUser {
            name: name.to_string(),
            role,
            totp_uri: totp.map(|t| t.uri(&self.config.issuer, name)),
        })
    }

    /// Adds a machine's token, valid for `days`. Blocking.
    pub fn add_token(
        &self,
        name: &str,
        role: Role,
        days: i64,
        by: &Caller,
        now: &Now,
    ) -> Result<NewToken, AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName(name.to_string()));
        }
        if !(1..=3650).contains(&days) {
            return Err(AccountError::BadDays(days));
        }
        let token = credential::new_secret(TOKEN_PREFIX)?;
        let expires = now.unix_s() + days * 86_400;
        let p = Principal {
            name: name.to_string(),
            kind: PrincipalKind::Token,
            role,
            created_at: now.unix_s(),
            expires_at: Some(expires),
            revoked_at: None,
            password_hash: None,
            totp_sealed: None,
            token_hash: Some(credential::secret_hash(&token)),
            failed_logins: 0,
            locked_until: None,
            created_by: by.name.clone(),
        };
        self.account_change(by, now, Action::AccountAdd, name, role.as_str(), |s| {
            s.add_principal(&p)
        })?;
        Ok(NewToken {
            name: name.to_string(),
            role,
            token,
            expires_at: rfc3339_of(expires),
        })
    }

    /// Re-seals every user's TOTP secret from this door's vault to `to` (a key rotation);
    /// how many. Blocking.
    pub fn reseal_totp(&self, to: &PiiVault) -> Result<u64, AccountError> {
        let mut store = self.store();
        let mut n = 0;
        for p in store.principals()? {
            let Some(sealed) = &p.totp_sealed else {
                continue;
            };
            let clear = self
                .vault
                .open("principal", &p.name, "totp_secret", sealed)
                .map_err(|e| AccountError::Seal(format!("{}: {e}", p.name)))?;
            let resealed = to
                .seal("principal", &p.name, "totp_secret", &clear)
                .map_err(|e| AccountError::Seal(e.to_string()))?;
            store.set_totp(&p.name, &resealed)?;
            n += 1;
        }
        Ok(n)
    }

    /// Every principal, never a secret. Blocking.
    pub fn list(&self) -> Result<Vec<PrincipalView>, AccessError> {
        Ok(self
            .store()
            .principals()?
            .iter()
            .map(PrincipalView::from)
            .collect())
    }

    /// Revokes a principal at once (its sessions end, its token stops working). Blocking.
    pub fn revoke(&self, name: &str, by: &Caller, now: &Now) -> Result<bool, AccountError> {
        let at = now.unix_s();
        let revoked = self.account_change(by, now, Action::AccountRevoke, name, "", |s| {
            s.revoke(name, at)
        })?;
        if !revoked && self.store().principal(name)?.is_none() {
            return Err(AccountError::NoSuch(name.to_string()));
        }
        Ok(revoked)
    }

    /// Changes a principal's role; never one's own. Blocking.
    pub fn set_role(
        &self,
        name: &str,
        role: Role,
        by: &Caller,
        now: &Now,
    ) -> Result<(), AccountError> {
        if name == by.name {
            let mut e = by.entry(now, Action::AccountRole, name, Outcome::Denied);
            e.detail = format!("own role to {role}");
            self.audit(&e)?;
            return Err(AccountError::OwnRole);
        }
        match self.account_change(by, now, Action::AccountRole, name, role.as_str(), |s| {
            s.set_role(name, role)
        })? {
            true => Ok(()),
            false => Err(AccountError::NoSuch(name.to_string())),
        }
    }

    /// An account change, then its audit record (success or failure; a record that cannot
    /// be written fails the call), then the cache reloaded so the change counts at once.
    fn account_change<T>(
        &self,
        by: &Caller,
        now: &Now,
        action: Action,
        object: &str,
        detail: &str,
        change: impl FnOnce(&mut Box<dyn AccessStore>) -> Result<T, AccessError>,
    ) -> Result<T, AccountError> {
        let result = change(&mut self.store());
        let mut e = by.entry(
            now,
            action,
            object,
            if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        );
        e.detail = match &result {
            Ok(_) => detail.to_string(),
            Err(err) => err.to_string(),
        };
        self.audit(&e)?;
        let out = result?;
        self.reload_if_changed()?;
        Ok(out)
    }
}

/// A stored token hash (hex) as its 32 bytes.
fn digest_of_hex(h: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}

/// Unix seconds as RFC 3339 in China time.
pub fn rfc3339_of(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .unwrap_or_default()
        .with_timezone(&fanzha_model::time::cst())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        assert_eq!(credential::verify_password("x", DUMMY_PHC), Ok(false));
    }

    fn now_at(s: i64) -> Now {
        Now {
            rfc3339: rfc3339_of(s),
            unix_ms: s * 1000,
            today: fanzha_model::Date {
                year: 2026,
                month: 12,
                day: 8,
            },
        }
    }

    /// After a key rotation re-seals the TOTP secrets, people log in under the new key
    /// with the same authenticator app.
    #[test]
    fn totp_secrets_follow_a_key_rotation() {
        let path = std::env::temp_dir().join(format!("fanzha-totp-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let open = || Box::new(fanzha_ledger_sqlite::SqliteStore::open(&path).unwrap());
        let key = AuditKey::new(&[1; 32]).unwrap();
        let old = PiiVault::new(&[2; 64]).unwrap();
        let mut k = [2u8; 64];
        k[32..].fill(3);
        let new = PiiVault::new(&k).unwrap();
        let t0 = 1_796_000_000;
        let a = Authenticator::new(open(), key.clone(), old, AuthConfig::default()).unwrap();
        let u = a
            .add_user(
                "ana",
                Role::Analyst,
                "Correct-horse-1",
                true,
                &Caller::local("t"),
                &now_at(t0),
            )
            .unwrap();
        let secret = u
            .totp_uri
            .unwrap()
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        let totp = Totp::from_base32(&secret).unwrap();
        assert_eq!(a.reseal_totp(&new).unwrap(), 1);
        let b = Authenticator::new(open(), key, new, AuthConfig::default()).unwrap();
        let code = format!("{:06}", totp.code_at(t0));
        assert!(b
            .login("ana", "Correct-horse-1", &code, "local", &now_at(t0))
            .is_ok());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn claimed_names_are_bounded_and_printable() {
        assert_eq!(claimed(""), "?");
        assert_eq!(claimed("a\r\nb"), "ab");
        assert_eq!(claimed(&"x".repeat(500)).len(), 64);
    }
}
