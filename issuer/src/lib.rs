//! One municipality's issuer: the resident register, the eligibility rules, and every
//! certificate rendered as a signed Japanese PDF.
//!
//! It decides eligibility on the current register inside one database transaction and renders
//! what it decided. It knows nothing about terminals, sessions or payment.
//!
//! Map of the crate:
//! - [`register`]: the schema (`migrations/sqlite`, `migrations/postgres`) and the store over
//!   `sqlx::AnyPool`, one code path for SQLite and PostgreSQL.
//! - [`rules`]: each eligibility rule of the domain as a named function with its reason code
//!   (the reasons themselves are [`reason`]'s, re-exported there).
//! - [`content`]: register data to the document model of [`document`].
//! - [`issuer`]: the in-process handle ([`Issuer`]): menu, quote, render (all or nothing,
//!   recorded in the issued-document registry in the same transaction), void.
//! - [`service`]: the `kiosk.v1.IssuerService` server over the handle, the only place that
//!   knows the wire types.
//! - [`serve`]: `issuer serve`, the service as its own process over mutual TLS (gateways
//!   only), with health and a graceful drain.
//! - [`import`]: `issuer import`, a register loaded from the municipality's JSON Lines files
//!   (one transaction) and change files (異動) applied on top, one transaction per change.
//! - [`bindings`]: the card bindings file (which card belongs to which resident of which
//!   municipality) the gateway loads. The synthetic register that writes test ones is
//!   `kiosk_devkit::generator` (TEST ONLY), outside this crate.
//! - [`document`]: layout, PDF rendering and signing. The document format, its readers and
//!   verifiers, and the vocabulary every crate shares (certificate types, municipality codes,
//!   resident references, issuance ids) are [`kiosk_document`]'s.
//!
//! See `README.md` in the crate for the schema and the rules in prose.
#![forbid(unsafe_code)]

pub mod bindings;
pub mod calendar;
pub mod content;
pub mod document;
pub mod error;
pub mod import;
pub mod issuer;
pub mod model;
pub mod municipality;
pub mod reason;
pub mod register;
pub mod rules;
pub mod serve;
pub mod service;

pub use error::IssuerError;
pub use issuer::{
    CertificateRenderer, Confirmed, DocumentStatus, Issuer, PendingIssuance, QuoteLine,
    RenderOutput,
};
pub use model::{
    CertificateOptions, Member, MemberRelation, Menu, MenuEntry, RenderedDocument, RequestItem,
};
pub use register::Register;
