//! The kit's card reader (`--pcsc`, feature `pcsc`): devkit's private pcscd with a vpcd
//! reader (`kiosk_devkit::testing::PcscStack`, which holds the host-wide harness lock), and in
//! it the scenario's software card, served by the kit itself so that it can watch the card.
//!
//! The card answers exactly as devkit's `card-emulator` would (`kiosk_devkit::vpcd::answer`);
//! the kit also writes down each power and reset control and each command's header, length
//! and status word ([`CardEvent`]). A VERIFY's data is the PIN: it is looked at only to tell
//! whether the PIN's digits turn up in some *other* command, and never kept or logged.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use card::pcsc::PcscContext;
use kiosk_devkit::softcard::SoftCard;
use kiosk_devkit::testing::{PcscStack, READY_TIMEOUT, poll_until};
use kiosk_devkit::vpcd::{self, Message, ctrl};

use crate::card::{CardEvent, CardEventKind};
use crate::error::ConformanceError;

/// The vpcd slot the kit's card sits in.
const SLOT: u16 = 0;
/// How long a blocking read waits before the card's thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

fn reader_error(e: impl std::fmt::Display) -> ConformanceError {
    ConformanceError::Reader(e.to_string())
}

/// The private pcscd and its vpcd reader, for the whole run.
#[derive(Debug)]
pub struct KitReader {
    stack: PcscStack,
}

impl KitReader {
    /// Starts pcscd (waiting for the harness lock while another user has it).
    pub fn start() -> Result<Self, ConformanceError> {
        Ok(KitReader {
            stack: PcscStack::start().map_err(reader_error)?,
        })
    }

    /// The PC/SC reader name the terminal is given.
    pub fn name(&self) -> String {
        self.stack.reader(SLOT)
    }

    /// Puts the card file's card into the reader and waits until PC/SC sees it. A `blocked`
    /// card answers every VERIFY `69 83` (PIN blocked) and nothing else differently.
    pub fn insert(
        &self,
        card_path: &Path,
        pin: &str,
        blocked: bool,
    ) -> Result<InsertedCard, ConformanceError> {
        self.stack.wait_absent(SLOT).map_err(reader_error)?;
        let card = SoftCard::load(card_path).map_err(|e| ConformanceError::file(card_path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let served = Served {
            addr: self.stack.vpcd_addr(SLOT),
            card,
            pin: pin.as_bytes().to_vec(),
            blocked,
            events: Arc::clone(&events),
        };
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || served.run(&thread_stop));
        let inserted = InsertedCard {
            stop,
            thread: Some(thread),
            events,
        };
        let reader = self.name();
        poll_until(READY_TIMEOUT, "the kit's card to be present", || {
            let Ok(context) = PcscContext::establish() else {
                return Ok(None);
            };
            Ok(context.card_present(&reader).unwrap_or(false).then_some(()))
        })
        .map_err(reader_error)?;
        Ok(inserted)
    }
}

/// A card in the reader, served by a thread of the kit.
#[derive(Debug)]
pub struct InsertedCard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    events: Arc<Mutex<Vec<CardEvent>>>,
}

impl InsertedCard {
    /// Pulls the card out and hands over what it saw.
    pub fn remove(mut self) -> Vec<CardEvent> {
        self.stop_thread();
        std::mem::take(&mut *lock(&self.events))
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InsertedCard {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn lock(events: &Mutex<Vec<CardEvent>>) -> std::sync::MutexGuard<'_, Vec<CardEvent>> {
    // A panic in the card's thread leaves the events recorded so far usable.
    events.lock().unwrap_or_else(|e| e.into_inner())
}

/// The card's side of the vpcd connection.
struct Served {
    addr: String,
    card: SoftCard,
    pin: Vec<u8>,
    /// Every VERIFY is answered `69 83`, as by a card whose PIN is blocked.
    blocked: bool,
    events: Arc<Mutex<Vec<CardEvent>>>,
}

impl Served {
    /// Connects to vpcd (retrying until pcscd's driver listens) and serves until stopped.
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match TcpStream::connect(&self.addr) {
                Ok(stream) => {
                    // A new connection is a card newly inserted: no security state.
                    self.card.power_off();
                    if self.serve(stream, stop).is_err() || !stop.load(Ordering::Relaxed) {
                        self.record(CardEventKind::Disconnected);
                    }
                    self.card.power_off();
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Answers vpcd's frames until the connection closes (Ok) or fails.
    fn serve(&mut self, mut stream: TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
        stream.set_read_timeout(Some(POLL))?;
        stream.set_nodelay(true)?;
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
            while let Some((message, used)) = vpcd::parse_frame(&buf) {
                let mut observed = self.observe_before(&message);
                let reply = match message {
                    Message::Apdu([_, 0x20, ..]) if self.blocked => Some(vec![0x69, 0x83]),
                    message => vpcd::answer(&mut self.card, message),
                };
                buf.drain(..used);
                if let (Some(CardEventKind::Apdu { sw, .. }), Some([.., sw1, sw2])) =
                    (observed.as_mut(), reply.as_deref())
                {
                    *sw = u16::from_be_bytes([*sw1, *sw2]);
                }
                if let Some(kind) = observed {
                    self.record(kind);
                }
                if let Some(reply) = reply {
                    stream.write_all(&frame(&reply))?;
                }
            }
        }
        Ok(())
    }

    /// The event a message is, before the card answers it (the status word is filled in
    /// after). Only the header, the length and whether the PIN's digits occur outside a
    /// VERIFY leave this function: a VERIFY's data is the PIN.
    fn observe_before(&self, message: &Message<'_>) -> Option<CardEventKind> {
        match message {
            Message::Control(ctrl::OFF) => Some(CardEventKind::PowerOff),
            Message::Control(ctrl::ON) => Some(CardEventKind::PowerOn),
            Message::Control(ctrl::RESET) => Some(CardEventKind::Reset),
            // pcscd asks for the ATR every half second to see whether the card is still
            // there: noise, not an event of the card's state.
            Message::Control(_) => None,
            Message::Apdu(apdu) => {
                let [cla, ins, p1, p2, ..] = **apdu else {
                    return None;
                };
                let pin_outside_verify = ins != 0x20
                    && !self.pin.is_empty()
                    && apdu
                        .windows(self.pin.len())
                        .any(|w| w == self.pin.as_slice());
                Some(CardEventKind::Apdu {
                    header: [cla, ins, p1, p2],
                    len: apdu.len(),
                    sw: 0,
                    pin_outside_verify,
                })
            }
        }
    }

    fn record(&self, kind: CardEventKind) {
        lock(&self.events).push(CardEvent {
            at: Instant::now(),
            kind,
        });
    }
}

/// Frames a reply for vpcd: a 2-byte big-endian length, then the bytes (as devkit's
/// emulator does; the software card's longest answer is a few KiB).
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}
