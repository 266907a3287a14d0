//! The conformance kit for kiosk.v1 terminals (docs/conformance.md).
//!
//! What J-LIS checks behind an NDA, in the open: a vendor points `kiosk-conformance run` at
//! their terminal build. The kit starts the development gateway, puts a fault-injecting,
//! recording front before it ([`front`]), starts the terminal once per [`scenario`] with the
//! environment contract ([`runner`]), and judges rule by rule from what it observed
//! ([`judge`]). A rule the kit cannot observe is reported NOT CHECKED: the card's reset,
//! unless the kit presents the card itself in a PC/SC reader (`--pcsc`, [`card`]).
//!
//! It lives apart from kiosk-terminal because it runs the gateway, whose development
//! deployment already depends on kiosk-terminal.
#![forbid(unsafe_code)]

pub mod card;
pub mod error;
pub mod front;
pub mod gateway;
pub mod judge;
pub mod pin;
#[cfg(feature = "pcsc")]
pub mod reader;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenario;

pub use error::ConformanceError;
