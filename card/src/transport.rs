//! How APDUs reach a card: the [`Transport`] trait, and the exchange rules every transport
//! shares (GET RESPONSE on `61xx`, resend with the right Le on `6Cxx`).

use crate::apdu::{ApduError, Command, Response};

/// A failure to exchange APDUs with a card, in terms a kiosk can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The PC/SC service (pcscd) is not running or went away.
    #[error("the smart card service is not running")]
    NoService,
    /// No card reader is connected (or the named reader is unknown).
    #[error("no card reader")]
    NoReader,
    /// The reader has no card in it.
    #[error("no card in the reader")]
    NoCard,
    /// The card was taken out during the session.
    #[error("the card was removed")]
    CardRemoved,
    /// The card was reset (by another application or a power event); its security state
    /// is gone, so the session must start again.
    #[error("the card was reset")]
    CardReset,
    /// Waiting for a reader or card took too long.
    #[error("timed out waiting for the card")]
    Timeout,
    /// The card (or the emulator) answered bytes that are not a response APDU.
    #[error("malformed response from the card: {0}")]
    Malformed(#[from] ApduError),
    /// Another application holds the card exclusively.
    #[error("the card is in use by another application")]
    Busy,
    /// Any other PC/SC failure (the message names the PC/SC error, never card data).
    #[error("card reader failure: {0}")]
    Other(String),
}

/// Sends one APDU to a card and returns its answer.
///
/// Implementations deliver bytes; [`exchange`] adds the ISO 7816-4 response chaining rules,
/// so clients should call that.
pub trait Transport {
    /// Sends a command and returns the raw response (data and status word).
    fn transmit(&mut self, command: &Command) -> Result<Response, TransportError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, command: &Command) -> Result<Response, TransportError> {
        (**self).transmit(command)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &Command) -> Result<Response, TransportError> {
        (**self).transmit(command)
    }
}

/// How many GET RESPONSE rounds we follow before calling the card broken: 64 KiB of data
/// in 256-byte pieces, and then some.
const MAX_CHAINED: usize = 300;

/// Sends `command` and follows `61xx` (GET RESPONSE, concatenating the data) and `6Cxx`
/// (resend with Le = xx), so the caller sees one complete response.
pub fn exchange<T: Transport + ?Sized>(
    transport: &mut T,
    command: &Command,
) -> Result<Response, TransportError> {
    let mut response = transport.transmit(command)?;
    if response.sw().sw1() == 0x6C {
        let le = match response.sw().sw2() {
            0 => 256,
            n => usize::from(n),
        };
        let again = Command::new(
            command.cla(),
            command.ins(),
            command.p1(),
            command.p2(),
            command.data().to_vec(),
            Some(le),
        )?;
        response = transport.transmit(&again)?;
    }
    let mut data = Vec::new();
    for _ in 0..MAX_CHAINED {
        if response.sw().sw1() != 0x61 {
            if data.is_empty() {
                return Ok(response);
            }
            data.extend_from_slice(response.data());
            return Ok(Response::new(data, response.sw()));
        }
        data.extend_from_slice(response.data());
        let le = match response.sw().sw2() {
            0 => 256,
            n => usize::from(n),
        };
        // GET RESPONSE keeps the class of the original command's channel bits.
        let get = Command::new(command.cla() & 0x03, 0xC0, 0, 0, Vec::new(), Some(le))?;
        response = transport.transmit(&get)?;
    }
    // A card that chains forever is broken; report it instead of looping.
    Err(TransportError::Other("card kept chaining responses".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::StatusWord;

    /// A scripted card: answers from a queue and records what it was sent.
    struct Script {
        answers: Vec<Response>,
        sent: Vec<Command>,
    }

    impl Transport for Script {
        fn transmit(&mut self, command: &Command) -> Result<Response, TransportError> {
            self.sent.push(command.clone());
            Ok(self.answers.remove(0))
        }
    }

    #[test]
    fn follows_61xx_and_6cxx() {
        let mut card = Script {
            answers: vec![
                Response::status(StatusWord::new(0x6C, 0x10)),
                Response::new(vec![1; 16], StatusWord::new(0x61, 0x05)),
                Response::new(vec![2; 5], StatusWord::OK),
            ],
            sent: vec![],
        };
        let cmd = Command::new(0, 0xB0, 0, 0, vec![], Some(256)).unwrap();
        let r = exchange(&mut card, &cmd).unwrap();
        assert_eq!(r.sw(), StatusWord::OK);
        assert_eq!(r.data().len(), 21);
        assert_eq!(card.sent[1].le(), Some(16));
        assert_eq!(card.sent[2].ins(), 0xC0);
        assert_eq!(card.sent[2].le(), Some(5));
    }
}
