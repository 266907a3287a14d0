//! The gRPC edge that store terminals, auditors and verifiers call.
//!
//! It owns TLS and identities, card-signature verification, sessions, routing to issuers,
//! payment and print outcomes, audit writing, settlement and public verification. It knows
//! nothing about register internals or rendering.
#![forbid(unsafe_code)]
