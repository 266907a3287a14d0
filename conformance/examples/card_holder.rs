//! A deliberately misbehaving PC/SC client, for the conformance kit's own test of
//! `card-reset` (tests/card_reset.rs): it connects to the reader in `KIOSK_CONFORMANCE_READER`,
//! verifies `KIOSK_CONFORMANCE_PIN` on the card and keeps the card so — powered, PIN verified
//! — for five seconds, longer than the rule's two-second grace after CloseSession. It is what
//! a terminal that never resets the card looks like to the card; nothing in `kiosk-terminal`
//! can behave this way.

use std::time::Duration;

/// Longer than the `card-reset` rule's two-second grace.
const HOLD: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reader = std::env::var("KIOSK_CONFORMANCE_READER")?;
    let pin = card::Pin::parse(&std::env::var("KIOSK_CONFORMANCE_PIN")?)?;
    let context = card::pcsc::PcscContext::establish()?;
    let opened = card::JpkiCard::open(context.connect(&reader)?)?;
    let verified = opened
        .verify_pin(&pin)
        .map_err(|failed| failed.into_error())?;
    std::thread::sleep(HOLD);
    drop(verified);
    Ok(())
}
