//! The resident's card: ISO 7816-4 APDUs, the JPKI user-authentication application, and the
//! login step a terminal performs with it.
//!
//! This crate owns everything that touches a card: the APDU model ([`apdu`]), the
//! [`transport::Transport`] trait (PC/SC behind the `pcsc` feature in module `pcsc`, or
//! in-process to a [`softcard::SoftCard`]), the JPKI client ([`jpki`]), the login step
//! ([`login::authenticate`]), the software card and its card files ([`softcard`]), the vpcd
//! bridge that puts a software card behind a real pcscd ([`vpcd`], binary `card-emulator`),
//! the test PKI ([`testpki`]), the real-stack test harness (`testing`, feature `pcsc`) and the
//! fuzz entry points ([`fuzzing`]). It knows nothing about gRPC or databases.
//!
//! See `card/README.md` for the API tour and how to run the real-stack tests.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod fuzzing;
pub mod jpki;
pub mod login;
#[cfg(feature = "pcsc")]
pub mod pcsc;
pub mod pin;
mod private_file;
pub mod softcard;
#[cfg(feature = "pcsc")]
pub mod testing;
pub mod testpki;
pub mod transport;
pub mod vpcd;

pub use jpki::{JpkiCard, JpkiError, VerifiedJpkiCard};
pub use pin::Pin;
pub use softcard::{CardFile, SoftCard, SoftTransport};
pub use transport::{Transport, TransportError};
