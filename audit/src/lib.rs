//! The append-only audit log: RFC 6962 Merkle hashing, signed C2SP checkpoints, inclusion and
//! consistency proofs, and the auditor's offline verification.
//!
//! It knows how events are encoded and proven, not how they are produced. The library knows
//! nothing of gRPC: the gateway maps [`store`] calls to `AuditService`. The `kiosk-audit`
//! binary works from an export file, directly from the database, or (cargo feature `online`,
//! the only user of `kiosk-proto`/`tonic` here) against `AuditService` over mutual TLS.
//! README.md documents the canonical encoding, locking rules and the API for the gateway.
//!
//! - [`event`]: the event model ([`Event`], typed [`Fact`]s, [`Pseudonymizer`]) and its
//!   canonical versioned encoding.
//! - [`merkle`]: leaf/node hashing, proof planning over stored subtree hashes, RFC 9162
//!   verification.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies in C2SP signed-notes (Ed25519).
//! - [`store`]: migrations, append in the caller's transaction, proofs, checkpoints,
//!   anomalies, in SQLite or PostgreSQL through `sqlx::Any`.
//! - [`operator`]: the operating-system account an operator command runs under.
//! - [`settlement`]: 交付実績 recomputed from events.
//! - [`verify`]: export format, re-hashing, naming tampering.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod event;
pub mod merkle;
pub mod operator;
pub mod settlement;
pub mod store;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier, SignedCheckpoint};
pub use event::{
    Actor, ActorKind, AnomalyKind, CertificateType, Event, EventType, Fact, Ident, IssuanceFacts,
    MunicipalityCode, PrintOutcome, Pseudonym, Pseudonymizer, ReasonCode, ResolutionNote,
    UnixMillis,
};
pub use merkle::{Hash, verify_consistency, verify_inclusion};
pub use store::{
    Anomaly, Appended, EventFilter, StoreError, StoredEvent, append, append_batch, checkpoint_now,
    checkpoint_schedule, consistency_proof, inclusion_proof, migrate,
};
