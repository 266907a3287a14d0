//! Test support for the generator's registers: the test date and municipality, and a fresh
//! database per test (`kiosk_devkit::testdb`, shared with the issuer's tests).

#![allow(dead_code)]

use time::macros::date;

/// The register's "today" in every test: Tuesday 2026-11-24.
pub const AS_OF: time::Date = date!(2026 - 11 - 24);
/// The test municipality (千代田区, with a valid check digit).
pub const CODE: &str = "131016";

pub use kiosk_devkit::testdb::TestDb;
