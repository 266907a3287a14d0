//! TEST AND DEMO FIXTURES ONLY: everything the tests, the demo and the benchmarks stand up
//! that production never runs.
//!
//! - [`testpki`]: the development and test PKI (every certificate the system needs, and a
//!   resident card file per card, each card with its own RSA key from a per-user cache,
//!   [`testpki::KeyCache`]); binary `card-testpki`.
//! - [`softcard`]: the software JPKI card ([`SoftCard`]), its card files ([`CardFile`]) and
//!   an in-process [`card::Transport`] to it ([`SoftTransport`]).
//! - [`vpcd`]: the bridge that puts a software card behind pcscd's vpcd virtual reader;
//!   binary `card-emulator`.
//! - `testing` (feature `pcsc`): the real-stack test harness, a private pcscd with vpcd
//!   readers and `card-emulator` processes behind them.
//! - `generator` and `cards` (feature `generator`, on by default): the deterministic synthetic
//!   register written into the issuer's register, with the card bindings the gateway loads,
//!   and card files minted for its residents; binary `kiosk-devkit generate`.
//! - `softhsm` (feature `softhsm`): a SoftHSM2 token per test, run in a child process of the
//!   test binary with its own `SOFTHSM2_CONF`, for the PKCS#11 signing key tests.
//! - [`clock`]: where the demo's and the tests' rehearsal clocks start, the next instant within
//!   weekday office hours in JST ([`clock::office_hours_at`]).
//! - [`fuzzing`]: the fuzz entry point of the software card (the `softcard` target).
//!
//! Private keys, card files and the key cache are created 0600 in 0700 directories
//! (`private_file`). Every key here is a test key; nothing here is for production. Production
//! crates (`card`, `issuer`, `kiosk-document`, `audit`, `kiosk-db`, `kiosk-proto`) do not
//! depend on this crate, and it depends on no server (`kiosk-gateway`, `kiosk-terminal`).
//!
//! See `devkit/README.md`.
#![forbid(unsafe_code)]

#[cfg(feature = "generator")]
pub mod cards;
pub mod clock;
pub mod fuzzing;
#[cfg(feature = "generator")]
pub mod generator;
mod private_file;
pub mod softcard;
#[cfg(feature = "softhsm")]
pub mod softhsm;
#[cfg(feature = "generator")]
pub mod testdb;
#[cfg(feature = "pcsc")]
pub mod testing;
pub mod testpki;
pub mod vpcd;

pub use softcard::{CardFile, SoftCard, SoftTransport};
