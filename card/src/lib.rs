//! The resident's card: ISO 7816-4 APDUs, the JPKI user-authentication application, and the
//! login step a terminal performs with it.
//!
//! This crate owns everything that touches a card: the APDU model, the `Transport` trait (PC/SC
//! behind the `pcsc` feature, or in-process), the JPKI client, the software card and its vpcd
//! bridge, and the test PKI. It knows nothing about gRPC or databases.
#![forbid(unsafe_code)]

pub mod login;
