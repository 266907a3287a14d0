//! The reference terminal: a client library and CLI that vendors can read and run, with the
//! card over PC/SC or a software card file, and the load generator.
//!
//! It knows the kiosk.v1 contract and the card, nothing of the server's internals. Read
//! [`client`] for the calls in order, [`login`] for what happens on the card, and [`load`]
//! for the load generator.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod load;
pub mod login;
