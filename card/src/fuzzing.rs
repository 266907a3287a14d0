//! Entry points for the cargo-fuzz targets in the top-level `fuzz/` folder. Each takes
//! arbitrary bytes and must never panic; they live here so the targets stay one line and
//! so the same code runs in the unit tests below. The software card's target is
//! `kiosk_devkit::fuzzing::softcard`, with the card it fuzzes.

use crate::apdu::{Command, Response};
use crate::jpki::JpkiCard;
use crate::transport::{Transport, TransportError};

/// Command and response APDU parsing, and that what parses re-encodes to an equal value.
pub fn apdu(data: &[u8]) {
    if let Ok(c) = Command::parse(data) {
        let again = Command::parse(&c.to_bytes());
        assert_eq!(again.as_ref(), Ok(&c), "command round trip");
    }
    if let Ok(r) = Response::parse(data) {
        assert_eq!(r.to_bytes(), data, "response round trip");
    }
}

/// A card that answers with the fuzzer's bytes: the input is split into responses at each
/// `0xFF 0xFE` marker.
struct ScriptedCard<'a> {
    answers: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl Transport for ScriptedCard<'_> {
    fn transmit(&mut self, _: &Command) -> Result<Response, TransportError> {
        match self.answers.next() {
            Some(bytes) => Ok(Response::parse(bytes)?),
            None => Err(TransportError::CardRemoved),
        }
    }
}

/// The JPKI client against a card that answers arbitrary bytes: certificate length
/// discovery, chunked reads, PIN status words and the signature must all fail cleanly.
pub fn client(data: &[u8]) {
    fn marker(b: &u8) -> bool {
        *b == 0xFE
    }
    let transport = ScriptedCard {
        answers: data.split(marker as fn(&u8) -> bool),
    };
    let Ok(mut card) = JpkiCard::open(transport) else {
        return;
    };
    let _ = card.read_auth_certificate();
    let _ = card.pin_tries_left();
    let pin = crate::pin::Pin::parse("1234");
    if let Ok(pin) = pin
        && let Ok(mut verified) = card.verify_pin(&pin)
    {
        let _ = verified.sign_digest_info(&[0x30; 51]);
        let _ = crate::login::authenticate(&mut verified, b"c", b"x");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_accept_seed_inputs() {
        apdu(&[0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00]);
        apdu(&[0x90]);
        client(&[
            0x90, 0x00, 0xFE, 0x90, 0x00, 0xFE, 0x30, 0x82, 0x01, 0x00, 0x90, 0x00,
        ]);
        client(&[]);
    }
}
