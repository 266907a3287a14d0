//! Keeping revocation current while serving: the client CAs' CRLs (terminals, auditors) in
//! the TLS verifier, and the JPKI authentication CAs' CRLs (one file, a CRL per CA) in the
//! card verifier.
//!
//! In production an outside CRL fetcher writes the files the configuration names
//! (`client_crl_files`, `card_crl_file`). `serve` re-reads them every `crl_refresh_secs` and
//! at once on SIGHUP, and installs whatever changed. A file that cannot be read or parsed
//! leaves the previous lists in force and is logged as an error; those lists refuse everyone
//! once their nextUpdate passes (a stale CRL refuses), so a broken fetcher fails closed, never
//! open.
//!
//! The embedded development deployment (`crate::provision`, feature `embedded`) may instead
//! hand over a source that mints the client CRLs itself ([`ClientCrls::Minted`]); this module
//! knows nothing of where such lists come from. A production gateway always reads files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateRevocationListDer;

use crate::cardauth::CardVerifier;
use crate::tls::ReloadableServerConfig;

/// Mints the current client CRLs (DER), one per client CA.
pub type MintCrls =
    Box<dyn Fn() -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> + Send + Sync>;

/// Where the client CRLs come from.
pub enum ClientCrls {
    /// Files kept current by an outside fetcher, one per client CA, DER or PEM.
    Files(Vec<PathBuf>),
    /// Lists the deployment mints itself (the embedded development PKI, TEST ONLY), minted
    /// again once `every` has passed since the last installed ones.
    Minted {
        /// Mints the lists.
        mint: MintCrls,
        /// How long minted lists stay before new ones are minted.
        every: Duration,
    },
}

/// Reads a CRL file, DER or PEM.
pub fn read_crl(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    kiosk_document::pem::crl_der(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM CRL: {e}", path.display()))
}

/// Reads the card CRL file: DER (one CRL) or PEM (one CRL per card CA, concatenated).
pub fn read_crls(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    kiosk_document::pem::crls_der(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not PEM CRLs: {e}", path.display()))
}

impl ClientCrls {
    /// The current lists.
    pub fn load(&self) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
        match self {
            ClientCrls::Files(paths) => paths
                .iter()
                .map(|p| read_crl(p).map(CertificateRevocationListDer::from))
                .collect(),
            ClientCrls::Minted { mint, .. } => mint(),
        }
    }
}

/// What was installed last, to install only what changed.
pub struct Refresher {
    client: ClientCrls,
    card_file: PathBuf,
    tls: Arc<ReloadableServerConfig>,
    cards: Arc<CardVerifier>,
    installed_client: Vec<Vec<u8>>,
    installed_card: Vec<Vec<u8>>,
    client_loaded_at: Instant,
}

/// What one refresh did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// The client CRLs were replaced.
    pub client: bool,
    /// The card CRL was replaced.
    pub card: bool,
}

impl Refresher {
    /// A refresher for `tls` and `cards`, which were built with `installed_client` and
    /// `installed_card` read from these sources. It records those very bytes, not a second
    /// read: a file replaced between the two reads would otherwise count as installed.
    pub fn new(
        client: ClientCrls,
        card_file: PathBuf,
        tls: Arc<ReloadableServerConfig>,
        cards: Arc<CardVerifier>,
        installed_client: &[CertificateRevocationListDer<'_>],
        installed_card: Vec<Vec<u8>>,
    ) -> Refresher {
        Refresher {
            client,
            card_file,
            tls,
            cards,
            installed_client: installed_client.iter().map(|c| c.to_vec()).collect(),
            installed_card,
            client_loaded_at: Instant::now(),
        }
    }

    /// Re-reads the sources and installs what changed. On an error nothing of that list is
    /// replaced; the other list is still refreshed.
    pub fn refresh(&mut self) -> (Refreshed, Vec<anyhow::Error>) {
        let mut done = Refreshed::default();
        let mut errors = Vec::new();
        let client_due = match &self.client {
            ClientCrls::Files(_) => true,
            ClientCrls::Minted { every, .. } => self.client_loaded_at.elapsed() >= *every,
        };
        if client_due {
            match self.client.load() {
                Ok(crls) => {
                    let bytes: Vec<Vec<u8>> = crls.iter().map(|c| c.to_vec()).collect();
                    if bytes != self.installed_client {
                        match self.tls.replace_crls(crls) {
                            Ok(()) => {
                                self.installed_client = bytes;
                                self.client_loaded_at = Instant::now();
                                done.client = true;
                            }
                            Err(e) => errors.push(anyhow::anyhow!("client CRLs: {e}")),
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        match read_crls(&self.card_file) {
            Ok(bytes) if bytes != self.installed_card => match self.cards.replace_crls(&bytes) {
                Ok(()) => {
                    self.installed_card = bytes;
                    done.card = true;
                }
                Err(e) => errors.push(anyhow::anyhow!("card CRL: {e}")),
            },
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        (done, errors)
    }

    /// Refreshes every `interval` and on SIGHUP until the task is aborted, logging what it
    /// replaced and what it could not.
    pub fn spawn(mut self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let on_signal = async {
                    match hangup.as_mut() {
                        Some(signal) => {
                            signal.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let on_signal = std::future::pending::<()>();
                let trigger = tokio::select! {
                    _ = tokio::time::sleep(interval) => "interval",
                    _ = on_signal => "SIGHUP",
                };
                let (done, errors) = self.refresh();
                for error in &errors {
                    tracing::error!(
                        %error,
                        trigger,
                        "revocation list not replaced; the previous one stays in force until it is stale"
                    );
                }
                if done.client || done.card {
                    tracing::info!(
                        trigger,
                        client = done.client,
                        card = done.card,
                        "revocation lists replaced"
                    );
                } else if errors.is_empty() {
                    tracing::debug!(trigger, "revocation lists unchanged");
                }
            }
        })
    }
}
