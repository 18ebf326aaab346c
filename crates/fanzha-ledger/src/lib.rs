//! The ledger: fanzha's source of truth (R1–R7, R12, R17, R25). Every write is a row checked
//! against the regulation — refused with a specific reason and requirement ID, or applied
//! and recorded in an append-only history a regulator can query.
//!
//! This crate knows the rules and the record shapes. It does not know SQL or any database
//! (backends implement [`store::Store`]), nor the command line or HTTP.

pub mod conformance;
pub mod kind;
pub mod ledger;
pub mod pii;
pub mod rules;
pub mod store;

pub use kind::Kind;
pub use ledger::{Actor, ImportError, ImportReport, Ledger, ResealError, Resealed, RowRefusal};
pub use pii::PiiVault;
pub use store::{Record, Store, StoreError};
