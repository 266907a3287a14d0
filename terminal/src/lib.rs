//! The reference terminal: a client library and CLI that vendors can read and run, with the
//! card over PC/SC or a software card file, and the load generator.
//!
//! It knows the kiosk.v1 contract and the card, nothing of the server's internals.
#![forbid(unsafe_code)]
