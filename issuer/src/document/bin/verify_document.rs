//! `verify-document`: checks a certificate QR payload or PDF offline.
fn main() {}
