//! The card side of the login: select the JPKI application, verify the PIN on the card (it
//! goes nowhere else), read the user-authentication certificate and sign the DigestInfo of
//! the message bound to the gateway's challenge.

use card::jpki::{JpkiCard, JpkiError};
use card::login::LoginProof;
use card::pin::Pin;
use card::transport::Transport;

use crate::client::TerminalError;

/// Runs the login on the card behind `transport` with `pin`, for the challenge and context
/// from `OpenSessionResponse`. Card failures map to the terminal-side reasons of the contract.
pub fn sign_login<T: Transport>(
    transport: T,
    pin: &Pin,
    challenge: &[u8],
    auth_context_bytes: &[u8],
) -> Result<LoginProof, TerminalError> {
    let card = JpkiCard::open(transport).map_err(card_error)?;
    let mut verified = card
        .verify_pin(pin)
        .map_err(|failed| card_error(failed.into_error()))?;
    card::login::authenticate(&mut verified, challenge, auth_context_bytes).map_err(card_error)
}

/// The contract's terminal-side reason for a card error.
pub fn card_error(error: JpkiError) -> TerminalError {
    let reason = match &error {
        JpkiError::WrongPin { .. } => "PIN_WRONG",
        JpkiError::PinBlocked => "PIN_BLOCKED",
        JpkiError::NotJpkiCard => "NOT_JPKI_CARD",
        JpkiError::JukiCard => "JUKI_CARD_UNSUPPORTED",
        // A reset by another application ends the card session just as a removal does.
        JpkiError::CardRemoved
        | JpkiError::Transport(card::transport::TransportError::CardReset) => "CARD_REMOVED",
        _ => "CARD_READ_FAILED",
    };
    TerminalError::Card {
        reason,
        detail: error.to_string(),
    }
}
