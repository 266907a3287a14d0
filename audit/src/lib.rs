//! The append-only audit log: RFC 6962 Merkle hashing, signed C2SP checkpoints, inclusion and
//! consistency proofs, and the auditor's offline verification.
//!
//! It knows how events are encoded and proven, not how they are produced.
#![forbid(unsafe_code)]
