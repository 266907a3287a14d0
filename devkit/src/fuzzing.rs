//! Entry points for the cargo-fuzz targets in the top-level `fuzz/` folder that concern the
//! fixtures: the software card driven through the vpcd framing. Each takes arbitrary bytes
//! and must never panic; they live here so the targets stay one line and so the same code runs
//! in the unit tests below. The APDU parser's and the JPKI client's targets are in
//! `card::fuzzing`.

use std::sync::OnceLock;

use card::apdu::Response;

use crate::softcard::{CardFile, SoftCard};
use crate::vpcd::{Message, answer, parse_frame};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_accept_seed_inputs() {
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
    }
}
