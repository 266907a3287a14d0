//! The kiosk.v1 contract that terminal vendors, auditors and the issuer code against.
//!
//! This crate owns the `.proto` files under `kiosk/v1/`, the Rust code generated from them at
//! build time (pure Rust through protox: no `protoc` anywhere), the encoded descriptor set for
//! server reflection, and the table of error reasons with the words a kiosk shows, in ja-JP,
//! en-US and the further languages of `kiosk/v1/locales/`. It knows nothing about how the
//! services are implemented: domain crates convert to and from these types by hand at the edge.
#![forbid(unsafe_code)]

pub mod certificate_types;
pub mod errors_doc;
pub mod locales;
pub mod reasons;
pub mod refusals;

/// The generated messages and services of package `kiosk.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("kiosk.v1");
}

/// The encoded `FileDescriptorSet` of every kiosk.v1 file and its imports, for
/// `tonic-reflection` and for clients that load the contract at run time.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kiosk_v1_descriptor.bin"));

/// The `google.rpc.ErrorInfo.domain` of every kiosk.v1 error.
pub const ERROR_DOMAIN: &str = "kiosk.v1";
