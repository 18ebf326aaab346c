//! fanzha's domain vocabulary: phone numbers and the numbering plan, Chinese resident ID
//! numbers, Unified Social Credit Codes, IMEI and IMSI, and masking of personal data.
//!
//! This crate is pure: it does no I/O, reads no clock and draws no randomness. Time ("today")
//! is a parameter; reference data is embedded at compile time.

pub mod date;
pub mod imei;
pub mod imsi;
pub mod mask;
pub mod number;
pub mod resident_id;
pub mod synth;
pub mod time;
pub mod uscc;

pub use date::Date;
pub use number::{classify, parse, NumberInfo, NumberKind, PhoneNumber};
