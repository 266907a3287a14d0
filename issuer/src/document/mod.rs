//! Certificate documents: the layout model, PDF rendering with the embedded Mincho font, the
//! signed QR payload, the PDF signature, and the per-page subject markers.
