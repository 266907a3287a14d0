//! Certificate documents: the layout model, PDF rendering with the embedded Mincho font, the
//! signed QR payload, the PDF signature, and the per-page subject markers.
//!
//! Flow: the register side builds a [`model::Certificate`] and calls
//! [`render::Renderer::render`] which lays it out, draws it with krilla and returns the PDF
//! bytes together with the page subjects.

pub mod era;
pub mod font;
pub mod markers;
pub mod model;
pub mod pdf;
pub mod qr;
pub mod render;
pub mod samples;
pub mod sign;
#[cfg(test)]
mod tests;
