//! The resident's card: ISO 7816-4 APDUs, the JPKI user-authentication application, and the
//! login step a terminal performs with it.
//!
//! This crate owns what production uses to talk to a card: the APDU model ([`apdu`]), the
//! [`transport::Transport`] trait (PC/SC behind the `pcsc` feature in module `pcsc`), the
//! JPKI client ([`jpki`]), the PIN ([`pin`]), the login step ([`login::authenticate`]) and
//! the exact bytes a card signs to log in ([`login`]), and the fuzz entry points of the APDU
//! parser and the client ([`fuzzing`]). It knows nothing about gRPC or databases.
//!
//! The software card, its card files, the vpcd bridge, the test PKI and the real-stack test
//! harness are TEST AND DEMO FIXTURES and live in `kiosk-devkit` (`devkit/`), which
//! production crates do not depend on.
//!
//! See `card/README.md` for the API tour.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod fuzzing;
pub mod jpki;
pub mod login;
#[cfg(feature = "pcsc")]
pub mod pcsc;
pub mod pin;
pub mod transport;

pub use jpki::{JpkiCard, JpkiError, VerifiedJpkiCard};
pub use pin::Pin;
pub use transport::{Transport, TransportError};
