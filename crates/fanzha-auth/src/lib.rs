//! Who may do what, and the record of what was done (R17.1, MLPS level 3).
//!
//! - [`role`]: the ten roles and the one permission table routes are checked against.
//! - [`credential`]: argon2id passwords with the contract's policy, bearer tokens and
//!   session ids (256 random bits, stored as their SHA-256), TOTP (RFC 6238).
//! - [`audit`]: the audit record and its keyed chain, and the verifier that finds an
//!   edited, removed, reordered or cut-off record.
//! - [`store`]: the [`store::AccessStore`] trait the ledger's backends implement, with one
//!   [`conformance`] suite.
//!
//! Knows no HTTP, no SQL, no clock (times are parameters) and no file: the binary gives it
//! keys and time, the API turns its answers into responses.

pub mod audit;
pub mod conformance;
pub mod credential;
pub mod role;
pub mod store;

pub use audit::{Action, AuditEntry, AuditKey, AuditRecord, Outcome};
pub use role::{Permission, Role};
pub use store::{AccessError, AccessStore, Principal, PrincipalKind, PrincipalView};
