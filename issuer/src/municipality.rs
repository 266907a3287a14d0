//! `issuer municipality apply` and `issuer municipality show`: a municipality's name, fees by
//! effective date, service hours and closures as an audited operator command.
//!
//! The file (`file.rs`, JSON, docs/municipality.example.json) is checked whole before the
//! database is touched; `apply.rs` then compares it with the register inside one
//! transaction, refuses every conflict at once (nothing written), and records each change
//! with the operator's operating-system account and reason (`operator.rs`) in
//! `municipality_changes`. `show.rs` prints what the go-live checklist compares with the
//! council's ordinance.

mod apply;
mod file;
mod operator;
mod show;

pub use apply::{ApplySummary, apply};
pub use file::Plan;
pub use operator::{Operator, Reason};
pub use show::show;
