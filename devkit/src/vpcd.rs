//! The bridge that puts a [`SoftCard`] behind pcscd's virtual reader driver (vsmartcard
//! vpcd), so real PC/SC applications — our JPKI client, OpenSC — talk to it.
//!
//! Protocol (card-profile.md 3.1): the card is a TCP client of vpcd; every message in both
//! directions is a 2-byte big-endian length and that many bytes. A 1-byte message from vpcd
//! is a control code (`00` power off, `01` power on, `02` reset, `04` send the ATR); a longer
//! one is a command APDU, answered with the response APDU. Power and reset get no reply.
//!
//! The connection loop reconnects with backoff when pcscd goes away (its restart closes the
//! socket) and stops when the caller's stop flag is raised. Retry counters are saved to the
//! card file whenever they change, so a blocked PIN stays blocked across restarts.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::softcard::{CardFileError, SoftCard};

/// Control codes from vpcd.
pub mod ctrl {
    /// Power off.
    pub const OFF: u8 = 0x00;
    /// Power on.
    pub const ON: u8 = 0x01;
    /// Reset.
    pub const RESET: u8 = 0x02;
    /// Send the ATR.
    pub const ATR: u8 = 0x04;
}

/// Failures of the bridge.
#[derive(Debug, thiserror::Error)]
pub enum VpcdError {
    /// The card file could not be loaded or saved.
    #[error(transparent)]
    CardFile(#[from] CardFileError),
    /// A socket error other than the connection going away.
    #[error("vpcd socket: {0}")]
    Io(#[from] std::io::Error),
}

/// What one message from vpcd asks the card to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A control code (power, reset, ATR request, or an unknown one).
    Control(u8),
    /// A command APDU.
    Apdu(&'a [u8]),
}

/// Splits the first complete frame off `buf`: returns the message and the number of bytes it
/// used, or `None` if more bytes are needed. Never panics on any input.
pub fn parse_frame(buf: &[u8]) -> Option<(Message<'_>, usize)> {
    let [hi, lo, rest @ ..] = buf else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let payload = rest.get(..len)?;
    let message = match payload {
        [code] => Message::Control(*code),
        _ => Message::Apdu(payload),
    };
    Some((message, 2 + len))
}

/// Frames a reply: 2-byte big-endian length, then the bytes. The software card's longest
/// reply is one READ BINARY of its largest EF (a few KiB), far below the 65535 the length
/// field allows; anything longer would be cut rather than mis-framed.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}

/// Answers one vpcd message; returns the reply to send, if any.
pub fn answer(card: &mut SoftCard, message: Message<'_>) -> Option<Vec<u8>> {
    match message {
        Message::Control(ctrl::OFF) => {
            card.power_off();
            None
        }
        Message::Control(ctrl::ON) => {
            card.power_on();
            None
        }
        Message::Control(ctrl::RESET) => {
            card.reset();
            None
        }
        Message::Control(ctrl::ATR) => Some(card.atr().to_vec()),
        Message::Control(other) => {
            tracing::warn!(code = other, "unknown vpcd control code ignored");
            None
        }
        Message::Apdu(apdu) => {
            // Header only: the data of a VERIFY is the PIN.
            if let [cla, ins, p1, p2, ..] = apdu {
                tracing::debug!(
                    "C-APDU {cla:02X} {ins:02X} {p1:02X} {p2:02X} ({} bytes)",
                    apdu.len()
                );
            }
            let response = card.process(apdu);
            if let [.., sw1, sw2] = response.as_slice() {
                tracing::debug!("R-APDU SW {sw1:02X}{sw2:02X} ({} bytes)", response.len());
            }
            Some(response)
        }
    }
}

/// The emulator: one card file behind one vpcd slot.
#[derive(Debug)]
pub struct Emulator {
    vpcd: String,
    card_path: PathBuf,
    card: SoftCard,
}

/// How long a blocking read waits before the loop looks at the stop flag again.
const POLL: Duration = Duration::from_millis(100);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Emulator {
    /// Loads the card file; `vpcd` is `HOST:PORT` of pcscd's vpcd slot.
    pub fn new(vpcd: &str, card_path: &Path) -> Result<Self, VpcdError> {
        Ok(Self {
            vpcd: vpcd.to_owned(),
            card_path: card_path.to_owned(),
            card: SoftCard::load(card_path)?,
        })
    }

    /// Runs until `stop` is raised: connects to vpcd, answers it, and reconnects with
    /// exponential backoff whenever the connection fails or closes (pcscd restarted).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), VpcdError> {
        let mut backoff = BACKOFF_MIN;
        while !stop.load(Ordering::Relaxed) {
            match TcpStream::connect(&self.vpcd) {
                Ok(stream) => {
                    tracing::info!(vpcd = %self.vpcd, "connected to vpcd");
                    backoff = BACKOFF_MIN;
                    // A new connection is a card newly inserted: no security state.
                    self.card.power_off();
                    match self.serve(stream, stop) {
                        Ok(()) if stop.load(Ordering::Relaxed) => {}
                        Ok(()) => tracing::info!("vpcd closed the connection"),
                        Err(VpcdError::Io(e)) => tracing::warn!(error = %e, "vpcd connection lost"),
                        Err(e) => return Err(e),
                    }
                    self.card.power_off();
                }
                Err(e) => {
                    tracing::debug!(error = %e, ?backoff, "vpcd not reachable, retrying");
                    sleep_unless_stopped(backoff, stop);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.save_if_changed()?;
        tracing::info!("card emulator stopped");
        Ok(())
    }

    /// Serves one connection until it closes (Ok) or fails.
    fn serve(&mut self, mut stream: TcpStream, stop: &AtomicBool) -> Result<(), VpcdError> {
        stream.set_read_timeout(Some(POLL))?;
        stream.set_nodelay(true)?;
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            // Frames may arrive split or several at once; answer every complete one.
            while let Some((message, used)) = parse_frame(&buf) {
                let reply = answer(&mut self.card, message);
                buf.drain(..used);
                // Persist a changed retry counter before the host hears the outcome, as a
                // card writes its EEPROM before answering: a crash cannot "refund" a try.
                self.save_if_changed()?;
                if let Some(reply) = reply {
                    stream.write_all(&frame(&reply))?;
                }
            }
        }
        Ok(())
    }

    fn save_if_changed(&mut self) -> Result<(), VpcdError> {
        if self.card.take_counters_changed() {
            self.card.card_file().save(&self.card_path)?;
        }
        Ok(())
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    // Backoff between reconnects, in short steps so a signal ends it promptly. This is pacing,
    // not synchronisation.
    let step = Duration::from_millis(25);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        slept += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(parse_frame(&[0, 1, 4]), Some((Message::Control(4), 3)));
        assert_eq!(parse_frame(&[0, 2, 4]), None);
        assert_eq!(parse_frame(&[0]), None);
        assert_eq!(
            parse_frame(&[0, 4, 0, 0xA4, 4, 0, 9]),
            Some((Message::Apdu(&[0, 0xA4, 4, 0]), 6))
        );
        assert_eq!(frame(&[0x90, 0]), vec![0, 2, 0x90, 0]);
    }
}
