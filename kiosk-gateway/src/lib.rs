//! The gRPC edge that store terminals, auditors and verifiers call.
//!
//! It owns TLS and identities, card-signature verification, sessions, routing to issuers,
//! payment and print outcomes, audit writing, settlement and public verification. It knows
//! nothing about register internals or rendering.
//!
//! Protobuf types stop at this crate's service modules: handlers convert messages into the
//! validated domain types below by hand, and [`error::GatewayError`] is turned into a
//! `tonic::Status` in one place.
//!
//! Two deployments serve through the same server-building path (`deployment::server_parts`):
//! the production one (`deployment`, `trust`), with the certificates and keys the
//! configuration names, and the embedded development one (`provision`, with `demo`), which
//! mints its own PKI and synthetic registers. The embedded one and `demo` exist only with the
//! default feature `embedded`; a production build leaves it out (`--no-default-features`),
//! and with it the development fixtures and the reference terminal.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_bindings;
pub mod admin_enroll;
pub mod admin_route;
pub mod cardauth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
#[cfg(feature = "embedded")]
pub mod demo;
pub mod deployment;
pub mod durations;
pub mod effective;
pub mod error;
pub mod flow;
pub mod identity;
pub mod limits;
pub mod logging;
#[cfg(feature = "embedded")]
pub mod provision;
pub mod revocation;
pub mod route;
pub mod server;
pub mod service;
pub mod shed;
pub mod store;
pub mod tls;
pub mod tls_key;
pub mod trust;
pub mod validate;
