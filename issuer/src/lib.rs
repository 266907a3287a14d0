//! One municipality's issuer: the resident register, the eligibility rules, and every
//! certificate rendered as a signed Japanese PDF.
//!
//! It decides eligibility on the current register inside one database transaction and renders
//! what it decided. It knows nothing about terminals, sessions or payment.
#![forbid(unsafe_code)]

pub mod document;
