//! The PC/SC transport (feature `pcsc`): a real reader through pcscd/WinSCard, with every
//! PC/SC error mapped to a [`TransportError`] a kiosk can act on.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use card::pcsc::PcscContext;
//! let ctx = PcscContext::establish()?;
//! let reader = ctx.wait_for_card(None, std::time::Duration::from_secs(30))?;
//! let transport = ctx.connect(&reader)?;
//! let card = card::JpkiCard::open(transport)?;
//! # Ok(()) }
//! ```

use std::ffi::CString;
use std::time::{Duration, Instant};

use crate::apdu::{Command, Response};
use crate::transport::{Transport, TransportError};

/// Maps a PC/SC error to what the kiosk can do about it.
pub fn map_error(e: pcsc::Error) -> TransportError {
    use pcsc::Error as E;
    match e {
        // pcscd killed mid-session shows up as NoService, not ServiceStopped
        // (card-profile.md section 4).
        E::NoService | E::ServiceStopped | E::CommError => TransportError::NoService,
        E::NoReadersAvailable | E::UnknownReader | E::ReaderUnavailable => TransportError::NoReader,
        E::NoSmartcard => TransportError::NoCard,
        // A card that vanishes in the middle of an exchange, before pcscd's polling noticed,
        // fails the transmit with NOT_TRANSACTED (observed with vpcd when the card process
        // dies); a mute or unpowered card is just as gone for the kiosk: take it out and
        // insert it again.
        E::RemovedCard | E::NotTransacted | E::UnpoweredCard | E::UnresponsiveCard => {
            TransportError::CardRemoved
        }
        E::ResetCard => TransportError::CardReset,
        E::Timeout => TransportError::Timeout,
        E::SharingViolation => TransportError::Busy,
        other => TransportError::Other(other.to_string()),
    }
}

/// A PC/SC context (a connection to the resource manager).
#[derive(Clone)]
pub struct PcscContext {
    ctx: pcsc::Context,
}

impl std::fmt::Debug for PcscContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcscContext")
    }
}

impl PcscContext {
    /// Connects to the PC/SC service; [`TransportError::NoService`] if pcscd is not running.
    pub fn establish() -> Result<Self, TransportError> {
        pcsc::Context::establish(pcsc::Scope::User)
            .map(|ctx| Self { ctx })
            .map_err(map_error)
    }

    /// The names of the connected readers (empty when there are none).
    pub fn readers(&self) -> Result<Vec<String>, TransportError> {
        Ok(self
            .ctx
            .list_readers_owned()
            .map_err(map_error)?
            .into_iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect())
    }

    /// Waits until a card is present in `reader` (or in any reader when `None`) and returns
    /// that reader's name; [`TransportError::Timeout`] after `timeout`.
    pub fn wait_for_card(
        &self,
        reader: Option<&str>,
        timeout: Duration,
    ) -> Result<String, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let names: Vec<String> = self
                .readers()?
                .into_iter()
                .filter(|n| reader.is_none_or(|r| r == n))
                .collect();
            let mut states: Vec<pcsc::ReaderState> = names
                .iter()
                .filter_map(|n| CString::new(n.as_str()).ok())
                .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
                .collect();
            // Also wake up when readers come and go.
            states.push(pcsc::ReaderState::new(
                pcsc::PNP_NOTIFICATION(),
                pcsc::State::UNAWARE,
            ));
            // First call with UNAWARE returns the current state immediately; then wait for
            // a change until the deadline.
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match self.ctx.get_status_change(remaining, &mut states) {
                    Ok(()) => {}
                    Err(pcsc::Error::Timeout) => return Err(TransportError::Timeout),
                    Err(e) => return Err(map_error(e)),
                }
                let present = states.iter().find(|s| {
                    s.name() != pcsc::PNP_NOTIFICATION()
                        && s.event_state().contains(pcsc::State::PRESENT)
                        && !s.event_state().contains(pcsc::State::MUTE)
                });
                if let Some(s) = present {
                    return Ok(s.name().to_string_lossy().into_owned());
                }
                let pnp_changed = states.iter().any(|s| {
                    s.name() == pcsc::PNP_NOTIFICATION()
                        && s.event_state().contains(pcsc::State::CHANGED)
                });
                for s in &mut states {
                    s.sync_current_state();
                }
                if pnp_changed {
                    break; // the reader list changed: rebuild it
                }
                if Instant::now() >= deadline {
                    return Err(TransportError::Timeout);
                }
            }
        }
    }

    /// Whether pcscd currently reports a card in `reader` (no waiting).
    pub fn card_present(&self, reader: &str) -> Result<bool, TransportError> {
        let name = CString::new(reader).map_err(|_| TransportError::NoReader)?;
        let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
        self.ctx
            .get_status_change(Duration::ZERO, &mut states)
            .map_err(map_error)?;
        let state = states[0].event_state();
        if state.contains(pcsc::State::UNKNOWN) || state.contains(pcsc::State::UNAVAILABLE) {
            return Err(TransportError::NoReader);
        }
        Ok(state.contains(pcsc::State::PRESENT))
    }

    /// Connects to the card in `reader` (shared mode, T=0 or T=1).
    pub fn connect(&self, reader: &str) -> Result<PcscTransport, TransportError> {
        let name = CString::new(reader).map_err(|_| TransportError::NoReader)?;
        let card = self
            .ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(map_error)?;
        Ok(PcscTransport {
            card,
            buf: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        })
    }
}

/// A connected card.
///
/// Dropping it disconnects with a card reset (the pcsc crate's default), which also clears
/// the card's verified-PIN state — what a kiosk wants at the end of a session.
pub struct PcscTransport {
    card: pcsc::Card,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcscTransport")
    }
}

impl PcscTransport {
    /// The card's ATR.
    pub fn atr(&self) -> Result<Vec<u8>, TransportError> {
        Ok(self.card.status2_owned().map_err(map_error)?.atr().to_vec())
    }

    /// Disconnects, resetting the card so no verified state outlives the session.
    pub fn disconnect_with_reset(self) -> Result<(), TransportError> {
        self.card
            .disconnect(pcsc::Disposition::ResetCard)
            .map_err(|(_, e)| map_error(e))
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &Command) -> Result<Response, TransportError> {
        let bytes = command.to_bytes();
        let answer = self
            .card
            .transmit(&bytes, &mut self.buf)
            .map_err(map_error)?;
        Ok(Response::parse(answer)?)
    }
}
