//! Entry points for the cargo-fuzz targets in the top-level `fuzz/` folder. Each takes
//! arbitrary bytes and must never panic; they live here so the targets stay one line and
//! so the same code runs in the unit tests below.

use std::sync::OnceLock;

use crate::apdu::{Command, Response};
use crate::jpki::JpkiCard;
use crate::softcard::{CardFile, SoftCard};
use crate::transport::{Transport, TransportError};
use crate::vpcd::{Message, answer, parse_frame};

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

fn template() -> Option<&'static SoftCard> {
    static CARD: OnceLock<Option<SoftCard>> = OnceLock::new();
    CARD.get_or_init(|| {
        let text = include_str!("../testdata/pki/cards/resident-0001.toml");
        CardFile::from_toml(text)
            .ok()
            .and_then(|f| SoftCard::from_file(f).ok())
    })
    .as_ref()
}

/// The software card's command handling, driven through the vpcd framing: the input is a
/// stream of vpcd frames (control codes and command APDUs). Every APDU must get a response
/// ending in a status word.
pub fn softcard(data: &[u8]) {
    let Some(template) = template() else {
        return;
    };
    let mut card = template.clone();
    let mut rest = data;
    while let Some((message, used)) = parse_frame(rest) {
        let is_apdu = matches!(message, Message::Apdu(_));
        let reply = answer(&mut card, message);
        if is_apdu {
            let reply = reply.unwrap_or_default();
            assert!(
                Response::parse(&reply).is_ok(),
                "every APDU gets a status word"
            );
        }
        rest = &rest[used..];
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
        // ATR request, power on, SELECT JPKI, SELECT 0018, empty VERIFY.
        let mut frames = vec![0, 1, 4, 0, 1, 1];
        let select = [
            0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0, 0, 0, 1,
        ];
        frames.extend_from_slice(&[0, select.len() as u8]);
        frames.extend_from_slice(&select);
        frames.extend_from_slice(&[0, 7, 0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x18]);
        frames.extend_from_slice(&[0, 4, 0x00, 0x20, 0x00, 0x80]);
        softcard(&frames);
        client(&[
            0x90, 0x00, 0xFE, 0x90, 0x00, 0xFE, 0x30, 0x82, 0x01, 0x00, 0x90, 0x00,
        ]);
        client(&[]);
    }
}
