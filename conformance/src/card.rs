//! What the card in the kit's reader saw (`--pcsc`, docs/conformance.md): every power and
//! reset event pcscd's vpcd driver sent it and every command APDU's header, with its time.
//! A VERIFY's data is the PIN: it is never kept, only its length.
//!
//! The types and the `card-reset` judgement live here, without PC/SC, so that they are built
//! and unit-tested everywhere; the reader itself is `reader.rs` (feature `pcsc`).

use std::time::Instant;

/// VERIFY's instruction byte.
const INS_VERIFY: u8 = 0x20;

/// One thing that happened to the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEventKind {
    /// vpcd control `01`: power on.
    PowerOn,
    /// vpcd control `00`: power off (the security state is lost).
    PowerOff,
    /// vpcd control `02`: warm reset (the security state is lost).
    Reset,
    /// A command APDU: its header, its length, and the card's status word.
    Apdu {
        /// CLA, INS, P1, P2.
        header: [u8; 4],
        /// The whole command's length in bytes (the data itself is not kept).
        len: usize,
        /// The status word the card answered.
        sw: u16,
        /// The PIN's digits occur in this command although it is no VERIFY.
        pin_outside_verify: bool,
    },
    /// pcscd closed the vpcd connection: the card is gone, with its security state.
    Disconnected,
}

impl CardEventKind {
    /// A successful VERIFY with data: the PIN is now verified.
    fn verified(&self) -> bool {
        matches!(self, CardEventKind::Apdu { header: [_, INS_VERIFY, ..], len, sw: 0x9000, .. } if *len > 5)
    }

    /// What ends the card's security state (a power-off, a reset, the card going away);
    /// `None` for anything else. Re-selecting the AP also clears it on the software card,
    /// but step 7 asks for a reset or power-off, so it does not count.
    fn clears(&self) -> Option<&'static str> {
        match self {
            CardEventKind::PowerOff => Some("powered off"),
            CardEventKind::Reset => Some("reset"),
            CardEventKind::Disconnected => Some("taken away by pcscd"),
            _ => None,
        }
    }
}

/// One event and when it reached the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardEvent {
    /// When.
    pub at: Instant,
    /// What.
    pub kind: CardEventKind,
}

/// Everything the card saw in one scenario, on the recording's clock.
#[derive(Debug, Clone)]
pub struct CardLog {
    /// When the scenario's recording started (the front's calls count from here).
    pub started: Instant,
    /// When the terminal process ended.
    pub terminal_exited: Instant,
    /// The events in order.
    pub events: Vec<CardEvent>,
}

/// How long after its last CloseSession a terminal may take to reset the card. Two seconds,
/// so that a terminal that disconnects leaving the card as it is still passes when pcscd
/// then powers the idle card off itself: pcsc-lite 1.9.9 does so 0.7 to 0.9 s after the last
/// client let go (docs/conformance.md).
pub const RESET_GRACE_MS: u64 = 2000;

impl CardLog {
    /// Milliseconds since the recording started.
    pub fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// The commands other than VERIFY in which the PIN's digits occurred, by header.
    pub fn pin_outside_verify(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                CardEventKind::Apdu {
                    header: [cla, ins, p1, p2],
                    pin_outside_verify: true,
                    ..
                } => Some(format!(
                    "card command {cla:02X} {ins:02X} {p1:02X} {p2:02X}"
                )),
                _ => None,
            })
            .collect()
    }

    /// Whether a VERIFY ever succeeded: the terminal logged in with this card.
    fn verified_ever(&self) -> bool {
        self.events.iter().any(|e| e.kind.verified())
    }
}

/// The `PIN_BLOCKED` action (terminal-integration.md section 5: send the resident to the
/// municipal office): `Ok` when, after the card answered VERIFY `69 83`, the terminal sent no
/// further VERIFY (retrying cannot unblock it), `Err` with what it did otherwise or when it
/// never asked the card.
pub fn judge_blocked(log: &CardLog) -> Result<String, String> {
    let is_verify = |e: &CardEvent| {
        matches!(
            e.kind,
            CardEventKind::Apdu {
                header: [_, INS_VERIFY, ..],
                ..
            }
        )
    };
    let Some(blocked) = log.events.iter().position(|e| {
        matches!(
            e.kind,
            CardEventKind::Apdu {
                header: [_, INS_VERIFY, ..],
                sw: 0x6983,
                ..
            }
        )
    }) else {
        return Err("the terminal never sent VERIFY to the card in the kit's reader".into());
    };
    let again = log.events[blocked + 1..]
        .iter()
        .filter(|e| is_verify(e))
        .count();
    if again == 0 {
        Ok("after VERIFY answered 69 83 (PIN blocked) the terminal sent no further VERIFY".into())
    } else {
        Err(format!(
            "after VERIFY answered 69 83 (PIN blocked) the terminal sent VERIFY {again} more time(s)"
        ))
    }
}

/// The `card-reset` verdict: `Ok` with what was seen when the card's security state ended
/// by `close_ms + RESET_GRACE_MS`, `Err` with what was seen when it did not.
/// `close_ms` is the last CloseSession (or the end of the run when there was none).
pub fn judge_reset(log: &CardLog, close_ms: u64) -> Result<String, String> {
    if !log.verified_ever() {
        return Err(
            "no VERIFY succeeded on the card in the kit's reader (KIOSK_CONFORMANCE_READER): the terminal did not log in with it"
                .into(),
        );
    }
    let due = close_ms.saturating_add(RESET_GRACE_MS);
    let mut verified_at: Option<u64> = None;
    let mut cleared: Option<(&str, u64)> = None;
    for event in log.events.iter().filter(|e| log.ms(e.at) <= due) {
        let at = log.ms(event.at);
        if event.kind.verified() {
            verified_at = Some(at);
        } else if let Some(how) = event.kind.clears()
            && verified_at.take().is_some()
        {
            cleared = Some((how, at));
        }
    }
    match (verified_at, cleared) {
        (Some(at), _) => Err(format!(
            "the PIN was verified at +{at} ms and the card was still powered with it verified {RESET_GRACE_MS} ms after the last CloseSession (+{close_ms} ms): no reset or power-off"
        )),
        (None, Some((how, at))) => Ok(format!(
            "the card was {how} at +{at} ms after its PIN was verified (last CloseSession at +{close_ms} ms)"
        )),
        (None, None) => Err("the card's PIN state could not be followed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn log(events: &[(u64, CardEventKind)]) -> CardLog {
        let started = Instant::now();
        CardLog {
            started,
            terminal_exited: started,
            events: events
                .iter()
                .map(|(ms, kind)| CardEvent {
                    at: started + Duration::from_millis(*ms),
                    kind: kind.clone(),
                })
                .collect(),
        }
    }

    fn verify(sw: u16) -> CardEventKind {
        CardEventKind::Apdu {
            header: [0, INS_VERIFY, 0, 0x80],
            len: 9,
            sw,
            pin_outside_verify: false,
        }
    }

    #[test]
    fn a_blocked_pin_is_not_tried_again() {
        assert!(judge_blocked(&log(&[(10, verify(0x6983))])).is_ok());
        let retried = log(&[(10, verify(0x6983)), (20, verify(0x6983))]);
        assert!(judge_blocked(&retried).is_err());
        assert!(judge_blocked(&log(&[(10, CardEventKind::PowerOn)])).is_err());
    }

    #[test]
    fn a_reset_before_or_soon_after_the_close_passes() {
        let before = log(&[(10, verify(0x9000)), (20, CardEventKind::Reset)]);
        assert!(judge_reset(&before, 500).is_ok());
        let after = log(&[(10, verify(0x9000)), (1400, CardEventKind::PowerOff)]);
        assert!(judge_reset(&after, 500).is_ok());
    }

    #[test]
    fn a_card_left_verified_fails() {
        let late = log(&[(10, verify(0x9000)), (3000, CardEventKind::Reset)]);
        assert!(
            judge_reset(&late, 500)
                .unwrap_err()
                .contains("still powered")
        );
        // Verified again after the reset, and left so.
        let again = log(&[
            (10, verify(0x9000)),
            (20, CardEventKind::Reset),
            (30, verify(0x9000)),
        ]);
        assert!(judge_reset(&again, 500).is_err());
    }

    #[test]
    fn a_wrong_pin_or_no_verify_is_no_login() {
        let wrong = log(&[(10, verify(0x63C2)), (20, CardEventKind::Reset)]);
        assert!(judge_reset(&wrong, 500).unwrap_err().contains("no VERIFY"));
    }
}
