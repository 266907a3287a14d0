//! Structured JSON logs on stderr, filtered by `RUST_LOG` (default `info`), and the one
//! process-wide TLS crypto provider (ring).
//!
//! Log lines carry ids (session, issuance, terminal) and reasons, never personal data, PINs,
//! keys or certificates: the types that hold such data either do not implement `Display` or
//! redact it in `Debug`.

/// Installs the JSON subscriber and the ring crypto provider. Safe to call more than once.
pub fn init() {
    // rustls panics if two providers are compiled in and none is chosen; ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
